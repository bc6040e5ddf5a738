"""FakeCoinbase: a local Coinbase Advanced Trade server (market-data WebSocket + REST) for tests.

One port serves both, like the real pair of hosts would (`ws_url`, `rest_url`), over TLS when
given a server `ssl.SSLContext` (wss:// and https://). It runs on starlette + uvicorn in the
test's event loop, so tests drive it directly and it speaks real sockets.

WebSocket (documented Advanced Trade market-data protocol):
- A client sends one `{"type": "subscribe", "channel": C, "product_ids": [...], "jwt"?: ...}`
  per channel; C is one of heartbeats, market_trades, ticker, level2, candles. The server
  answers with a `subscriptions` message and, for market_trades, ticker, level2 and candles,
  a snapshot (market_trades: the last `snapshot_size` trades of the subscribed products).
  `unsubscribe` removes products again.
- Every message is an envelope `{"channel", "client_id": "", "timestamp", "sequence_num",
  "events"}`; `sequence_num` counts all messages of one connection, from 0. level2 answers
  on channel `l2_data`. Errors are `{"type": "error", "message": ...}`.
- With `jwt_public_key`, every subscribe message must carry a JWT signed by that key (ES256
  or EdDSA; claims sub, iss="cdp", nbf, exp; header kid = sub and a nonce). A rejected one
  gets `{"type": "error", "message": "authentication failure"}` and counts in
  `auth_failures`; the connection stays open (the client decides to leave).

REST:
- `GET /api/v3/brokerage/market/products/{product_id}/candles?start&end&granularity[&limit]`
  (public) and `GET /api/v3/brokerage/products/{product_id}/candles` (private: needs a JWT
  when `jwt_public_key` is set) -> `{"candles": [{"start", "low", "high", "open", "close",
  "volume"}]}`, newest first, numbers as strings, empty buckets left out; at most
  `max_candles_per_request` buckets per request (400 otherwise). Candles are built from every
  trade the fake knows, including those it never delivered (`publish_skipped`, or published
  while nobody listened): that is what a client's gap refill relies on.
- `add_route(method, path, handler)` adds endpoints (e.g. orders, accounts) for other tests.
- `fake.accounts` (coinbase_accounts.py): the paged accounts list (balances), counting calls;
  fault controls `down`, `rate_limited_for` (429 + Retry-After), `delay`.
- `fake.orders` (coinbase_orders.py): order create/cancel/edit/get/list, fills and the `user`
  channel, with fault controls (lost answers, 429, 5xx, delays, outside changes).
  A bearer JWT, when sent and a key is set, must be valid and bound to "METHOD host/path".

Trades are scripted: `publish` records and delivers them (ticker/level2 updates first, then
market_trades, then candles), `publish_skipped` records them and makes every connection skip
a sequence number (lost messages). Fault controls: `drop_connections()`,
`refuse_connections = True` (handshakes answered 403), `silent = True` (nothing is delivered:
messages, heartbeats included, are lost, so a client's heartbeat timeout fires).

    async with FakeCoinbase(heartbeat_interval=0.2) as fake:
        feed_config = CoinbaseConfig(product_ids=["BTC-USD"], ws_url=fake.ws_url,
                                     rest_url=fake.rest_url)
        await fake.wait_subscribed("market_trades")
        await fake.publish([ScriptedTrade("BTC-USD", "1", when, Decimal("60000"), ...)])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt as pyjwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from tradeplane.testing.fakes.coinbase_accounts import FakeAccounts
from tradeplane.testing.fakes.coinbase_orders import FakeCoinbaseOrders

log = logging.getLogger(__name__)

PUBLIC_CANDLES_PATH = "/api/v3/brokerage/market/products/{product_id}/candles"
PRIVATE_CANDLES_PATH = "/api/v3/brokerage/products/{product_id}/candles"
MAX_CANDLES_PER_REQUEST = 350  # documented maximum per candles response
GRANULARITY_SECONDS: dict[str, int] = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
CHANNELS = ("heartbeats", "market_trades", "ticker", "level2", "candles")
# The subscription name of a channel -> the `channel` its messages carry.
ENVELOPE_CHANNEL = {"level2": "l2_data"}
WS_CANDLE_SECONDS = 300  # the candles channel streams five-minute candles
BOOK_QUANTITY = Decimal("1")  # size of the best bid and offer level of the fake's book
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RouteHandler = Callable[["RestRequest"], Awaitable[tuple[int, Any]]]
"""An `add_route` handler: gets the request, returns (HTTP status, JSON body)."""
ChannelSnapshot = Callable[["_Connection"], None]
"""An `extra_channels` hook: called when a connection subscribes to the channel."""


@dataclass(frozen=True, slots=True)
class ScriptedTrade:
    """One trade the fake publishes. `side` is the taker's side, "BUY" or "SELL" (as
    Coinbase writes it; lower case is accepted); `time` must be timezone-aware."""

    product_id: str
    trade_id: str
    time: datetime
    price: Decimal
    size: Decimal
    side: str

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"trade {self.trade_id}: time must be timezone-aware")
        side = self.side.upper()
        if side not in ("BUY", "SELL"):
            raise ValueError(f"trade {self.trade_id}: side must be BUY or SELL")
        object.__setattr__(self, "side", side)

    def to_json(self) -> dict[str, str]:
        """The trade as a market_trades event lists it."""
        return {
            "trade_id": self.trade_id,
            "product_id": self.product_id,
            "price": str(self.price),
            "size": str(self.size),
            "side": self.side,
            "time": rfc3339(self.time),
        }


@dataclass(frozen=True, slots=True)
class RestRequest:
    """What an `add_route` handler gets. `jwt_claims`: the verified claims of the bearer JWT
    (None without one, or when the fake checks no JWTs)."""

    method: str
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    jwt_claims: Mapping[str, Any] | None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class FakeCandle:
    start: int  # epoch seconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def to_json(self) -> dict[str, str]:
        return {
            "start": str(self.start),
            "low": str(self.low),
            "high": str(self.high),
            "open": str(self.open),
            "close": str(self.close),
            "volume": str(self.volume),
        }


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds, "Z" suffix (Coinbase sends up to nanoseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


def _order_key(trade: ScriptedTrade) -> tuple[datetime, tuple[int, int, str]]:
    # Open/close by (time, trade id); all-digit ids (Coinbase's) compare as numbers.
    tid = trade.trade_id
    return (trade.time, (0, int(tid), "") if tid.isdigit() else (1, 0, tid))


def candles_of(trades: Iterable[ScriptedTrade], seconds: int) -> list[FakeCandle]:
    """OHLCV per `seconds` bucket (oldest first), only buckets that have trades."""
    buckets: dict[int, list[ScriptedTrade]] = {}
    for t in trades:
        ts = epoch_seconds(t.time)
        buckets.setdefault(ts - ts % seconds, []).append(t)
    out = []
    for start in sorted(buckets):
        ordered = sorted(buckets[start], key=_order_key)
        prices = [t.price for t in ordered]
        out.append(
            FakeCandle(
                start=start,
                open=prices[0],
                high=max(prices),
                low=min(prices),
                close=prices[-1],
                volume=sum((t.size for t in ordered), Decimal(0)),
            )
        )
    return out


class _AuthError(Exception):
    pass


class _Connection:
    """One accepted WebSocket: its subscriptions, sequence counter and an outbox drained by
    one sender task (so messages leave in `sequence_num` order)."""

    def __init__(self, ws: WebSocket, number: int) -> None:
        self.ws = ws
        self.number = number
        self.subscriptions: dict[str, set[str]] = {}
        self.next_seq = 0
        self.heartbeat_counter = 0
        self.closed = False
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.sender = asyncio.create_task(self._send_loop(), name=f"fake-coinbase-send-{number}")

    def products(self, channel: str) -> set[str]:
        return self.subscriptions.get(channel, set())

    def enqueue(self, text: str) -> None:
        if not self.closed:
            self.outbox.put_nowait(text)

    async def drained(self) -> None:
        await self.outbox.join()

    async def _send_loop(self) -> None:
        try:
            while True:
                text = await self.outbox.get()
                try:
                    await self.ws.send_text(text)
                finally:
                    self.outbox.task_done()
        except Exception:  # the client went away: what is left is lost
            log.debug("fake coinbase: send failed", exc_info=True)
        finally:
            self.closed = True
            self._discard_outbox()

    def _discard_outbox(self) -> None:
        while not self.outbox.empty():
            self.outbox.get_nowait()
            self.outbox.task_done()

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sender
        self._discard_outbox()
        with contextlib.suppress(Exception):  # already closed by the client
            await self.ws.close(code, reason)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield  # a test process keeps its own signal handling


@dataclass
class _ProductState:
    last_price: Decimal | None = None
    volume: Decimal = Decimal(0)
    low: Decimal | None = None
    high: Decimal | None = None
    trades: list[ScriptedTrade] = field(default_factory=list)


class FakeCoinbase:
    """The fake server. Use as `async with FakeCoinbase(...) as fake` (or start()/stop()).

    heartbeat_interval: seconds between heartbeats to `heartbeats` subscribers.
    snapshot_size: trades in the market_trades snapshot a subscription gets (0: none).
    quote_spread: the ticker's (and level2 book's) best bid/ask are last price -/+ this.
    book_levels: levels per side of the level2 book: level k (from 0) at last price -/+
        (k + 1) * quote_spread with size (k + 1) * BOOK_QUANTITY (`book(product_id)`).
    ssl_context: a server TLS context -> wss:// and https:// URLs.
    jwt_public_key: PEM public key (EC P-256 or Ed25519) the JWTs must be signed with;
        None = no authentication checked. jwt_key_name: also require sub == this name.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        heartbeat_interval: float = 1.0,
        snapshot_size: int = 50,
        quote_spread: Decimal = Decimal("0.01"),
        ssl_context: ssl.SSLContext | None = None,
        jwt_public_key: str | bytes | None = None,
        jwt_key_name: str | None = None,
        max_candles_per_request: int = MAX_CANDLES_PER_REQUEST,
        book_levels: int = 1,
    ) -> None:
        self.host = host
        self.book_levels = book_levels
        self.heartbeat_interval = heartbeat_interval
        self.snapshot_size = snapshot_size
        self.quote_spread = quote_spread
        self.ssl_context = ssl_context
        self.jwt_key_name = jwt_key_name
        self.max_candles_per_request = max_candles_per_request
        self._jwt_key: Any = None
        if jwt_public_key is not None:
            pem = jwt_public_key.encode() if isinstance(jwt_public_key, str) else jwt_public_key
            self._jwt_key = serialization.load_pem_public_key(pem)

        # More WebSocket channels (e.g. `user`, from fakes.coinbase_orders): name -> snapshot.
        self.extra_channels: dict[str, ChannelSnapshot] = {}
        # Fault controls, set freely by tests.
        self.refuse_connections = False
        self.silent = False

        # What happened, for assertions.
        self.trades: list[ScriptedTrade] = []  # every trade known, in publish order
        self.subscribe_messages: list[dict[str, Any]] = []  # accepted ones
        self.subscriptions_total: Counter[str] = Counter()  # accepted subscribes per channel
        self.connections_total = 0  # accepted WebSocket connections
        self.connections_refused = 0
        self.auth_failures = 0  # WebSocket and REST
        self.rest_requests: list[str] = []  # "METHOD /path?query" of every HTTP request

        self.port = 0
        self._products: dict[str, _ProductState] = {}
        self._connections: list[_Connection] = []
        self._server: _QuietServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._app = Starlette(
            routes=[
                WebSocketRoute("/", self._websocket),
                Route(PUBLIC_CANDLES_PATH, self._endpoint(self._candles, public=True)),
                Route(PRIVATE_CANDLES_PATH, self._endpoint(self._candles, public=False)),
            ]
        )
        self.accounts = FakeAccounts()  # GET /api/v3/brokerage/accounts (coinbase_accounts.py)
        self.accounts.mount(self)
        # Orders, fills and the `user` channel (coinbase_orders.py).
        self.orders = FakeCoinbaseOrders()
        self.orders.mount(self)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        tls = self.ssl_context
        config = uvicorn.Config(
            self._asgi,
            log_config=None,
            access_log=False,
            interface="asgi3",
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=None,  # liveness is the heartbeats channel's job
            timeout_graceful_shutdown=2,
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
        )
        self._server = _QuietServer(config)
        self._serve_task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name="fake-coinbase"
        )
        while not self._server.started:
            if self._serve_task.done():
                await self._serve_task  # raises the start-up error
                raise RuntimeError("fake coinbase server stopped during start-up")
            await asyncio.sleep(0.01)
        self._heartbeat_task = asyncio.create_task(self._heartbeats(), name="fake-coinbase-hb")

    async def stop(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self.drop_connections(1001, "server shutting down")
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            await self._serve_task
            self._server = self._serve_task = None

    async def __aenter__(self) -> FakeCoinbase:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- controls ---------------------------------------------------------------------------

    async def publish(self, trades: Sequence[ScriptedTrade], *, per_message: int = 10) -> None:
        """Record `trades` and deliver them to subscribers, `per_message` trades per
        market_trades message; returns once every message is handed to the sockets."""
        for i in range(0, len(trades), per_message):
            chunk = trades[i : i + per_message]
            before = {p: s.last_price for p, s in self._products.items()}
            self._record(chunk)
            for conn in list(self._connections):
                self._deliver(conn, chunk, before)
        await self.flush()

    def publish_skipped(self, trades: Sequence[ScriptedTrade]) -> None:
        """Record `trades` as happened, but their messages are lost: every open connection
        skips a sequence number. REST candles include them."""
        self._record(trades)
        for conn in self._connections:
            conn.next_seq += 1

    async def drop_connections(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every open WebSocket (with a close frame) now."""
        connections, self._connections = self._connections, []
        for conn in connections:
            await conn.close(code, reason)

    async def flush(self) -> None:
        """Until every queued message has been handed to its socket."""
        await asyncio.gather(*(c.drained() for c in list(self._connections)))

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Poll `predicate` until true; AssertionError after `within` seconds."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake coinbase: condition not met within {within} s")
            await asyncio.sleep(0.01)

    async def wait_subscribed(self, channel: str, count: int = 1, within: float = 10.0) -> None:
        """Until `count` subscribe messages for `channel` were accepted (over all
        connections so far)."""
        await self.wait_for(lambda: self.subscriptions_total[channel] >= count, within)

    def add_route(
        self, method: str, path: str, handler: RouteHandler, *, public: bool = False
    ) -> None:
        """Serve `handler` at `path` (starlette syntax: "/orders/{order_id}"). Routes that
        are not `public` need a valid bearer JWT when the fake checks JWTs."""
        endpoint = self._endpoint(handler, public=public)
        self._app.router.routes.append(Route(path, endpoint, methods=[method.upper()]))

    def candles(self, product_id: str, granularity_seconds: int) -> list[FakeCandle]:
        """The candles the REST endpoint serves (oldest first), from every known trade."""
        state = self._products.get(product_id)
        return candles_of(state.trades if state else [], granularity_seconds)

    # -- trades -> messages -----------------------------------------------------------------

    def _record(self, trades: Iterable[ScriptedTrade]) -> None:
        for t in trades:
            self.trades.append(t)
            state = self._products.setdefault(t.product_id, _ProductState())
            state.trades.append(t)
            state.last_price = t.price
            state.volume += t.size
            state.low = t.price if state.low is None else min(state.low, t.price)
            state.high = t.price if state.high is None else max(state.high, t.price)

    def _deliver(
        self,
        conn: _Connection,
        chunk: Sequence[ScriptedTrade],
        before: Mapping[str, Decimal | None],
    ) -> None:
        # Quotes first: a client attaches the current top of book to the trades that follow.
        touched = list(dict.fromkeys(t.product_id for t in chunk))
        tickers = [self._ticker(p) for p in touched if p in conn.products("ticker")]
        if tickers:
            self._send(conn, "ticker", [{"type": "update", "tickers": tickers}])
        # A product's first trade creates its book: a snapshot (the subscription had none).
        books = [
            self._book_event(p, "update" if before.get(p) else "snapshot", before.get(p))
            for p in touched
            if p in conn.products("level2")
        ]
        if books:
            self._send(conn, "level2", books)
        trades = [t.to_json() for t in chunk if t.product_id in conn.products("market_trades")]
        if trades:
            self._send(conn, "market_trades", [{"type": "update", "trades": trades}])
        candles = [self._ws_candle(p) for p in touched if p in conn.products("candles")]
        if candles:
            self._send(conn, "candles", [{"type": "update", "candles": candles}])

    def _ticker(self, product_id: str) -> dict[str, str]:
        state = self._products[product_id]
        assert state.last_price is not None
        first = state.trades[0].price
        return {
            "type": "ticker",
            "product_id": product_id,
            "price": str(state.last_price),
            "volume_24_h": str(state.volume),
            "low_24_h": str(state.low),
            "high_24_h": str(state.high),
            "low_52_w": str(state.low),
            "high_52_w": str(state.high),
            "price_percent_chg_24_h": str((state.last_price - first) / first * 100),
            "best_bid": str(state.last_price - self.quote_spread),
            "best_bid_quantity": str(BOOK_QUANTITY),
            "best_ask": str(state.last_price + self.quote_spread),
            "best_ask_quantity": str(BOOK_QUANTITY),
        }

    def book(self, product_id: str) -> dict[str, dict[Decimal, Decimal]]:
        """The level2 book the fake has published for the product: {"bid"/"offer": levels}."""
        price = self._products[product_id].last_price
        assert price is not None
        return {side: dict(self._book_levels(side, price)) for side in ("bid", "offer")}

    def _book_levels(self, side: str, price: Decimal) -> list[tuple[Decimal, Decimal]]:
        sign = -1 if side == "bid" else 1
        return [
            (price + sign * (k + 1) * self.quote_spread, (k + 1) * BOOK_QUANTITY)
            for k in range(self.book_levels)
        ]

    def _book_event(
        self, product_id: str, kind: str, previous_price: Decimal | None
    ) -> dict[str, Any]:
        """The fake's book is `book_levels` levels per side around the last price; an update
        removes the previous levels no longer in the book and sets the new ones."""
        price = self._products[product_id].last_price
        assert price is not None
        now = rfc3339(datetime.now(UTC))
        updates = []
        for side in ("bid", "offer"):
            new = dict(self._book_levels(side, price))
            if previous_price is not None and previous_price != price:
                for level, _ in self._book_levels(side, previous_price):
                    if level not in new:
                        updates.append(
                            {
                                "side": side,
                                "event_time": now,
                                "price_level": str(level),
                                "new_quantity": "0",
                            }
                        )
            for level, quantity in new.items():
                updates.append(
                    {
                        "side": side,
                        "event_time": now,
                        "price_level": str(level),
                        "new_quantity": str(quantity),
                    }
                )
        return {"type": kind, "product_id": product_id, "updates": updates}

    def _ws_candle(self, product_id: str) -> dict[str, str]:
        """The five-minute candle holding the product's newest trade."""
        state = self._products[product_id]
        newest = epoch_seconds(state.trades[-1].time)
        start = newest - newest % WS_CANDLE_SECONDS
        in_bucket = [
            t for t in state.trades if start <= epoch_seconds(t.time) < start + WS_CANDLE_SECONDS
        ]
        return {**candles_of(in_bucket, WS_CANDLE_SECONDS)[0].to_json(), "product_id": product_id}

    def _send(self, conn: _Connection, channel: str, events: list[dict[str, Any]]) -> None:
        seq = conn.next_seq
        conn.next_seq += 1
        if self.silent:
            return  # lost on the way: the sequence number is used up all the same
        envelope = {
            "channel": ENVELOPE_CHANNEL.get(channel, channel),
            "client_id": "",
            "timestamp": rfc3339(datetime.now(UTC)),
            "sequence_num": seq,
            "events": events,
        }
        conn.enqueue(json.dumps(envelope))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            now = datetime.now(UTC)
            # Go's time.Time formatting, as Coinbase sends it.
            current = f"{now:%Y-%m-%d %H:%M:%S.%f}000 +0000 UTC m=+{time.monotonic():.9f}"
            for conn in list(self._connections):
                if "heartbeats" in conn.subscriptions:
                    conn.heartbeat_counter += 1
                    event = {
                        "current_time": current,
                        "heartbeat_counter": str(conn.heartbeat_counter),
                    }
                    self._send(conn, "heartbeats", [event])

    # -- WebSocket --------------------------------------------------------------------------

    async def _websocket(self, ws: WebSocket) -> None:
        if self.refuse_connections:
            self.connections_refused += 1
            await ws.close(1013)  # before accept: the handshake is answered 403
            return
        await ws.accept()
        self.connections_total += 1
        conn = _Connection(ws, self.connections_total)
        self._connections.append(conn)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", "replace")
                if text is not None:
                    self._on_message(conn, text)
        finally:
            if conn in self._connections:
                self._connections.remove(conn)
                await conn.close(1000, "")

    def _error(self, conn: _Connection, message: str) -> None:
        # Errors carry no envelope and no sequence number.
        if not self.silent:
            conn.enqueue(json.dumps({"type": "error", "message": message}))

    def _on_message(self, conn: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._error(conn, "malformed JSON")
            return
        if not isinstance(message, dict):
            self._error(conn, "malformed message")
            return
        kind, channel = message.get("type"), message.get("channel")
        products = message.get("product_ids") or []
        if kind not in ("subscribe", "unsubscribe"):
            self._error(conn, f"unknown message type {kind!r}")
            return
        if channel not in CHANNELS and channel not in self.extra_channels:
            self._error(conn, f"Failure to subscribe: unknown channel {channel!r}")
            return
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            self._error(conn, "product_ids must be a list of strings")
            return
        if self._jwt_key is not None:
            try:
                self._verify_jwt(message.get("jwt"), uri=None)
            except _AuthError as exc:
                self.auth_failures += 1
                log.info("fake coinbase: subscribe rejected: %s", exc)
                self._error(conn, "authentication failure")
                return
        if kind == "unsubscribe":
            conn.subscriptions.get(channel, set()).difference_update(products)
            self._send_subscriptions(conn)
            return
        conn.subscriptions.setdefault(channel, set()).update(products)
        self._send_subscriptions(conn)
        self._send_snapshot(conn, channel, products)
        self.subscribe_messages.append(message)
        self.subscriptions_total[channel] += 1
        if channel in self.extra_channels:
            self.extra_channels[channel](conn)

    def broadcast(self, channel: str, events: list[dict[str, Any]]) -> None:
        """Send one envelope to every connection subscribed to `channel`."""
        for conn in list(self._connections):
            if channel in conn.subscriptions:
                self._send(conn, channel, events)

    def _send_subscriptions(self, conn: _Connection) -> None:
        current = {
            channel: sorted(products) if channel != "heartbeats" else ["heartbeats"]
            for channel, products in conn.subscriptions.items()
        }
        self._send(conn, "subscriptions", [{"subscriptions": current}])

    def _send_snapshot(self, conn: _Connection, channel: str, products: list[str]) -> None:
        known = [p for p in products if p in self._products]  # products with trades
        if channel == "market_trades":
            wanted = set(products)
            recent = [t for t in self.trades if t.product_id in wanted]
            recent = recent[-self.snapshot_size :] if self.snapshot_size > 0 else []
            trades = [t.to_json() for t in reversed(recent)]  # newest first, as Coinbase
            self._send(conn, channel, [{"type": "snapshot", "trades": trades}])
        elif channel == "ticker" and known:
            tickers = [self._ticker(p) for p in known]
            self._send(conn, channel, [{"type": "snapshot", "tickers": tickers}])
        elif channel == "level2" and known:
            self._send(conn, channel, [self._book_event(p, "snapshot", None) for p in known])
        elif channel == "candles" and known:
            candles = [self._ws_candle(p) for p in known]
            self._send(conn, channel, [{"type": "snapshot", "candles": candles}])

    # -- JWTs -------------------------------------------------------------------------------

    def _verify_jwt(self, token: Any, uri: str | None) -> dict[str, Any]:
        """The documented CDP claims; raises _AuthError."""
        if not isinstance(token, str) or not token:
            raise _AuthError("no JWT")
        try:
            header = pyjwt.get_unverified_header(token)
            claims: dict[str, Any] = pyjwt.decode(
                token,
                self._jwt_key,
                algorithms=["ES256", "EdDSA"],
                issuer="cdp",
                options={"require": ["sub", "iss", "nbf", "exp"]},
            )
        except pyjwt.PyJWTError as exc:
            raise _AuthError(f"invalid JWT: {exc}") from None
        if header.get("kid") != claims["sub"]:
            raise _AuthError("JWT header kid differs from sub")
        if not header.get("nonce"):
            raise _AuthError("JWT header without nonce")
        if self.jwt_key_name is not None and claims["sub"] != self.jwt_key_name:
            raise _AuthError(f"unknown API key {claims['sub']!r}")
        if uri is not None and claims.get("uri") != uri:
            raise _AuthError(f"JWT uri {claims.get('uri')!r} is not {uri!r}")
        return claims

    def _rest_claims(self, request: Request, public: bool) -> dict[str, Any] | None:
        if self._jwt_key is None:
            return None
        authorization = request.headers.get("authorization", "")
        if not authorization:
            if public:
                return None
            raise _AuthError("no bearer JWT")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise _AuthError("Authorization is not Bearer")
        uri = f"{request.method} {request.headers.get('host', '')}{request.url.path}"
        return self._verify_jwt(token.strip(), uri=uri)

    # -- REST -------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            self.rest_requests.append(
                f"{scope['method']} {scope['path']}" + (f"?{query}" if query else "")
            )
        await self._app(scope, receive, send)

    def _endpoint(
        self, handler: RouteHandler, *, public: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                claims = self._rest_claims(request, public)
            except _AuthError as exc:
                self.auth_failures += 1
                return _error_response(401, "UNAUTHENTICATED", str(exc))
            rest_request = RestRequest(
                method=request.method,
                path=request.url.path,
                path_params=dict(request.path_params),
                query=dict(request.query_params),
                headers=dict(request.headers),
                body=await request.body(),
                jwt_claims=claims,
            )
            status, body = await handler(rest_request)
            if isinstance(body, Response):  # a handler that sets headers (e.g. Retry-After)
                return body
            return JSONResponse(body, status_code=status)

        return endpoint

    async def _candles(self, request: RestRequest) -> tuple[int, Any]:
        granularity = request.query.get("granularity", "")
        seconds = GRANULARITY_SECONDS.get(granularity)
        if seconds is None:
            return _error_body(400, f"unknown granularity {granularity!r}")
        try:
            start, end = int(request.query["start"]), int(request.query["end"])
            limit = int(request.query.get("limit", self.max_candles_per_request))
        except (KeyError, ValueError):
            return _error_body(400, "start and end (unix seconds) are required")
        first = start - start % seconds
        buckets = (end - end % seconds - first) // seconds + 1
        if end < start or buckets > min(limit, self.max_candles_per_request):
            return _error_body(
                400,
                "number of candles requested should be less than or equal to "
                f"{min(limit, self.max_candles_per_request)}",
            )
        product_id = request.path_params["product_id"]
        candles = [c for c in self.candles(product_id, seconds) if first <= c.start <= end]
        return 200, {"candles": [c.to_json() for c in reversed(candles)]}  # newest first


def _error_body(status: int, message: str) -> tuple[int, dict[str, str]]:
    code = "INVALID_ARGUMENT" if status == 400 else "UNKNOWN"
    return status, {"error": code, "error_details": message, "message": message}


def _error_response(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"error": code, "error_details": message, "message": message}, status_code=status
    )
