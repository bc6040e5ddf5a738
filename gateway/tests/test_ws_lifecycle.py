"""Heartbeats (both ways, dead peers closed within three intervals), bad frames, and the
graceful shutdown that closes every socket with 1001."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tradeplane.gateway.server import GatewayServer
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.gateway.testing import Client

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_server_pings_and_answers_pings(gateway_factory: Any) -> None:
    gw = await gateway_factory(gateway_heartbeat_seconds=0.2)
    conn = await connect(gw.ws("market"), open_timeout=5)
    hello = json.loads(await conn.recv())["hello"]
    assert hello["heartbeatIntervalMs"] == 200
    await conn.send(json.dumps({"ping": {"nonce": "n-1"}}))
    seen: dict[str, Any] = {}
    async with asyncio.timeout(2):
        while not ("pong" in seen and "ping" in seen):
            frame = json.loads(await conn.recv())
            seen.update(frame)
            if "ping" in frame:
                await conn.send(json.dumps({"pong": {"nonce": frame["ping"]["nonce"]}}))
    assert seen["pong"]["nonce"] == "n-1"
    await conn.close()


async def test_silent_peer_is_closed_within_three_intervals(gateway_factory: Any) -> None:
    gw = await gateway_factory(gateway_heartbeat_seconds=0.2)
    # The websockets library answers protocol pings itself, but sends no application frames.
    conn = await connect(gw.ws("market"), open_timeout=5)
    began = time.monotonic()
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(3):
            while True:
                frames.append(json.loads(await conn.recv()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    assert frames[-1]["closing"]["code"] == "CLOSE_CODE_HEARTBEAT_TIMEOUT"
    assert 0.6 <= time.monotonic() - began < 1.5  # three intervals, checked every interval


async def test_unparseable_frame_closes_4400(gateway_factory: Any) -> None:
    gw = await gateway_factory()
    client = await Client.open(gw.ws("market"))
    await client.conn.send("{not json")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_shutdown_closes_sockets_with_1001(market: Any) -> None:
    server = GatewayServer(
        GatewaySettings(
            grpc_host="127.0.0.1",
            http_port=0,
            metrics_port=-1,
            auth_mode="disabled",
            market_addr=market.target,
            shutdown_grace_seconds=2,
        )
    )
    await server.start()
    client = await Client.open(f"ws://127.0.0.1:{server.http_port}/ws/market")
    await client.subscribe(channel="CHANNEL_TICKS", productIds=["BTC-USD"])
    await client.recv_kind("data")
    before = market.tick_streams
    stopping = asyncio.create_task(server.stop())
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                frames.append(await client.recv())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert frames[-1]["closing"]["code"] == "CLOSE_CODE_GOING_AWAY"
    await stopping
    assert market.tick_streams == before - 1  # the upstream stream was closed too
