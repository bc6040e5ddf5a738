"""The Coinbase `user` WebSocket channel: updates of the account's orders.

Subscribes to `user` and `heartbeats` (one message each, each with a fresh JWT). The first
`user` message of a connection is a snapshot of the open orders; then updates. Each order
carries cumulative state (cumulative_quantity, avg_price, total_fees, status), so nothing is
lost by reading a state twice; what happened while disconnected is caught by a resync
(reconciliation) after every reconnect. Reconnects back off with jitter; silence longer than
`heartbeat_timeout_seconds` counts as a dead connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect

from tradeplane.coinbase.jwt import ws_jwt
from tradeplane.execution.adapters.venues.coinbase.config import CoinbaseVenueConfig

log = logging.getLogger(__name__)

OrdersHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class UserChannel:
    def __init__(
        self,
        config: CoinbaseVenueConfig,
        on_orders: OrdersHandler,
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._config = config
        self._on_orders = on_orders
        self._on_reconnect = on_reconnect
        self.connected = False
        self.connections = 0
        self.last_error = ""
        self._resyncs: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
                self.last_error = "connection closed"
            except (
                OSError,
                TimeoutError,
                websockets.exceptions.WebSocketException,
                ValueError,
            ) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.connected = False
            cap = min(self._config.backoff_max_seconds * 6, 0.5 * 2**attempt)
            attempt = min(attempt + 1, 10)
            delay = random.uniform(cap / 2, cap)
            log.warning(
                "coinbase user channel disconnected; reconnecting",
                extra={"error": self.last_error, "retry_in_seconds": round(delay, 3)},
            )
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        tls: ssl.SSLContext | None = None
        if self._config.ws_url.startswith("wss:") and self._config.ca_file:
            tls = ssl.create_default_context(cafile=self._config.ca_file)
        async with connect(
            self._config.ws_url,
            ssl=tls,
            open_timeout=self._config.timeout_seconds,
            ping_interval=None,
        ) as ws:
            for channel in ("heartbeats", "user"):
                jwt = ws_jwt(self._config.api_key, self._config.api_secret)
                await ws.send(
                    orjson.dumps({"type": "subscribe", "channel": channel, "jwt": jwt}).decode()
                )
            subscribed = False
            while True:
                async with asyncio.timeout(self._config.heartbeat_timeout_seconds):
                    raw = await ws.recv()
                is_user = await self._handle(raw)
                if is_user and not subscribed:
                    # Connected counts from the first `user` message (the snapshot): from then
                    # on every change arrives here, so a resync started now misses nothing.
                    # Started at the handshake it could read REST before the subscription
                    # was live and lose a fill landing in between.
                    subscribed = True
                    self._subscribed()

    def _subscribed(self) -> None:
        self.connected = True
        self.connections += 1
        log.info("coinbase user channel connected", extra={"url": self._config.ws_url})
        if self.connections > 1:
            # Orders that finished while we were away are not in the new snapshot.
            task = asyncio.ensure_future(self._on_reconnect())
            self._resyncs.add(task)
            task.add_done_callback(self._resyncs.discard)

    async def _handle(self, raw: str | bytes) -> bool:
        """Handles one message; True when it was a `user` channel message."""
        message = orjson.loads(raw)
        if not isinstance(message, dict):
            return False
        if message.get("type") == "error":
            raise ValueError(f"coinbase user channel error: {message.get('message')}")
        if message.get("channel") != "user":
            return False
        orders: list[dict[str, Any]] = []
        for event in message.get("events") or []:
            if isinstance(event, dict):
                orders.extend(o for o in event.get("orders") or [] if isinstance(o, dict))
        if orders:
            await self._on_orders(orders)
        return True
