"""Test helpers for the gateway (also for end-to-end tests elsewhere): a WebSocket client that
answers heartbeats like a browser. Uses the `websockets` client over a real socket."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

_ids = itertools.count(1)


class Client:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.hello: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Client:
        conn = await connect(url, open_timeout=5, **kwargs)
        client = cls(conn)
        client.hello = (await client.recv())["hello"]
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(frame))

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(wait):
            while True:
                frame: dict[str, Any] = json.loads(await self.conn.recv())
                if "ping" in frame:  # answer heartbeats like a browser would
                    await self.send({"pong": {"nonce": frame["ping"].get("nonce", "")}})
                    continue
                return frame

    async def recv_kind(self, kind: str, wait: float = 5.0) -> dict[str, Any]:
        """The next frame of `kind`, skipping others."""
        async with asyncio.timeout(wait):
            while True:
                frame = await self.recv(wait)
                if kind in frame:
                    return dict(frame[kind])

    async def subscribe(self, **subscribe: Any) -> dict[str, Any]:
        request_id = f"r{next(_ids)}"
        await self.send({"requestId": request_id, "subscribe": subscribe})
        while True:
            frame = await self.recv()
            if "subscribed" in frame and frame["subscribed"].get("requestId") == request_id:
                return dict(frame["subscribed"])
            if "error" in frame:
                raise AssertionError(f"subscribe failed: {frame['error']}")

    async def close(self) -> None:
        await self.conn.close()
