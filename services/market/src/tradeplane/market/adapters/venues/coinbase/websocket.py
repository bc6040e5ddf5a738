"""CoinbaseFeed: the Coinbase Advanced Trade market-data WebSocket as a TickFeed.

One connection subscribes to each configured channel (one subscribe message per channel,
with a fresh JWT when an API key is configured). Ticks come from `market_trades`; the top of
book attached to each tick comes from `ticker` (or from the `level2` book when subscribed:
that book is kept per product and served by GetOrderBook/StreamOrderBook);
`candles` updates are kept as `last_candles` for inspection; `heartbeats` keep quiet
subscriptions open and prove the connection is alive.

Faults, all handled inside `ticks()` (which only ends when cancelled):
- the connection drops or fails: reconnect after a jittered exponential backoff
  (`market_feed_reconnects_total`);
- nothing arrives for `heartbeat_timeout_seconds`: the connection is presumed dead and
  replaced (`market_feed_heartbeat_timeouts_total`);
- `sequence_num` jumps (messages lost) or the connection was replaced: the time span that
  may miss trades is handed to the GapRefiller, which rewrites those candles from the REST
  candles endpoint (`market_feed_gap_refills_total`); with level2, the books are marked
  stale and level2 is resubscribed for a fresh snapshot (`market_book_resyncs_total`).
Trades repeated by the snapshot a new subscription sends are dropped by trade id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tradeplane.market.adapters.venues.coinbase import metrics, parsing
from tradeplane.market.adapters.venues.coinbase.auth.jwt import ws_jwt
from tradeplane.market.adapters.venues.coinbase.config import CoinbaseConfig
from tradeplane.market.adapters.venues.coinbase.refill import GapRefiller
from tradeplane.market.adapters.venues.coinbase.symbols import to_venue_product
from tradeplane.market.domain.order_book import LiveBook
from tradeplane.market.domain.ticks import Tick

BookListener = Callable[[LiveBook, bool], None]

log = logging.getLogger(__name__)

DEDUP_WINDOW = 10_000  # trade ids remembered per product (a snapshot repeats recent ones)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # level2 snapshots of deep books are large


class HeartbeatTimeout(Exception):
    pass


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is uniform in [cap/2, cap]
    with cap = min(max, min * 2**n), so reconnecting clients do not arrive in lockstep."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        *,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng

    def next_delay(self) -> float:
        cap = min(self.maximum, self.minimum * 2**self.attempt)
        self.attempt += 1
        return self._rng(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0


class _RecentTradeIds:
    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def seen_before(self, trade_id: str) -> bool:
        if trade_id in self._ids:
            return True
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > DEDUP_WINDOW:
            self._ids.discard(self._order.popleft())
        return False


class CoinbaseFeed:
    """Implements TickFeed. `refiller` (optional) receives the gaps to rewrite."""

    name = "coinbase"

    def __init__(
        self,
        config: CoinbaseConfig,
        refiller: GapRefiller | None = None,
        *,
        backoff: Backoff | None = None,
        on_book: BookListener | None = None,
    ) -> None:
        self.config = config
        self.refiller = refiller
        self.backoff = backoff or Backoff(config.backoff_min_seconds, config.backoff_max_seconds)
        self.products = set(config.product_ids)
        self.connected = False
        self.connections = 0  # successful connections so far
        self.reconnects = 0
        self.heartbeat_timeouts = 0
        self.sequence_gaps = 0
        self.last_error: str | None = None
        self.last_candles: dict[str, parsing.VenueCandle] = {}
        self._quotes: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        # level2: one book per product; `on_book(book, replaced)` after each change.
        self.books: dict[str, LiveBook] = {}
        self.on_book = on_book
        self.book_resyncs = 0  # level2 resubscriptions after a sequence gap
        self._resync_books = False
        self._recent: dict[str, _RecentTradeIds] = {}
        self._last_trade_time: datetime | None = None
        self._gap_begin: datetime | None = None  # set while a gap waits for its end
        self._last_seq: int | None = None
        self._started = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    # -- connection loop ------------------------------------------------------------------

    async def ticks(self) -> AsyncIterator[list[Tick]]:
        refill_task = (
            asyncio.create_task(self.refiller.run(), name="coinbase-refill")
            if self.refiller is not None
            else None
        )
        try:
            await self._gap_since_last_run()
            while True:
                try:
                    async for batch in self._session():
                        yield batch
                    self.last_error = "connection closed"
                except HeartbeatTimeout:
                    self.heartbeat_timeouts += 1
                    metrics.HEARTBEAT_TIMEOUTS.inc()
                    self.last_error = f"no message for {self.config.heartbeat_timeout_seconds} s"
                except (
                    OSError,
                    TimeoutError,
                    websockets.exceptions.WebSocketException,
                    parsing.CoinbaseErrorMessage,
                    parsing.CoinbaseProtocolError,
                ) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                self.connected = False
                self._open_gap()
                delay = self.backoff.next_delay()
                log.warning(
                    "coinbase feed disconnected; reconnecting",
                    extra={"error": self.last_error, "retry_in_seconds": round(delay, 3)},
                )
                await asyncio.sleep(delay)
                self.reconnects += 1
                metrics.RECONNECTS.inc()
        finally:
            self.connected = False
            if refill_task is not None:
                refill_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refill_task

    async def _gap_since_last_run(self) -> None:
        """Trades between the last stored candle (or the last trade, when the feed task is
        restarted in-process) and the first trade now are missing: treat them as a gap."""
        if self._started:
            self._open_gap()
            return
        self._started = True
        max_days = self.config.restart_refill_max_days
        if self.refiller is None or max_days <= 0:
            return
        last = await self.refiller.last_stored()
        if last is not None:
            self._gap_begin = max(last, self.now() - timedelta(days=max_days))
            log.info("refilling since the last stored candle", extra={"since": last.isoformat()})

    async def _session(self) -> AsyncIterator[list[Tick]]:
        """One connection: connect, subscribe, then messages until it fails."""
        tls: ssl.SSLContext | None = None
        if self.config.ws_url.startswith("wss:") and self.config.ca_file:
            tls = ssl.create_default_context(cafile=self.config.ca_file)
        async with connect(
            self.config.ws_url,
            ssl=tls,
            open_timeout=self.config.connect_timeout_seconds,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # liveness is the heartbeats channel's job
        ) as ws:
            for book in self.books.values():
                book.invalidate()  # the subscription sends a fresh snapshot
            await self._subscribe(ws)
            self.connected = True
            self.connections += 1
            self._last_seq = None
            log.info("coinbase feed connected", extra={"url": self.config.ws_url})
            timeout = self.config.heartbeat_timeout_seconds
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that races with a message, and the feed would not stop.
                    async with asyncio.timeout(timeout):
                        raw = await ws.recv()
                except TimeoutError:
                    raise HeartbeatTimeout from None
                batch = self.handle(parsing.parse_message(raw))
                # A good message (not an error reply): the next failure starts a fresh backoff.
                self.backoff.reset()
                if self._resync_books:
                    await self._resubscribe_level2(ws)
                if batch:
                    yield batch

    async def _subscribe(self, ws: ClientConnection) -> None:
        venue_ids = [to_venue_product(p) for p in self.config.product_ids]
        for channel in self.config.channels:
            jwt = None
            if self.config.api_key is not None and self.config.api_secret is not None:
                jwt = ws_jwt(self.config.api_key, self.config.api_secret)  # one per message
            message = parsing.subscribe_message(channel, venue_ids, jwt)
            await ws.send(orjson.dumps(message).decode())

    async def _resubscribe_level2(self, ws: ClientConnection) -> None:
        """Updates were lost: unsubscribe and subscribe level2 again, which makes Coinbase
        send a fresh snapshot; the books stay not-ready (no stream output) until it comes."""
        self._resync_books = False
        self.book_resyncs += 1
        metrics.BOOK_RESYNCS.inc()
        venue_ids = [to_venue_product(p) for p in self.config.product_ids]
        for kind in ("unsubscribe", "subscribe"):
            jwt = None
            if self.config.api_key is not None and self.config.api_secret is not None:
                jwt = ws_jwt(self.config.api_key, self.config.api_secret)
            message = parsing.subscribe_message("level2", venue_ids, jwt, kind=kind)
            await ws.send(orjson.dumps(message).decode())
        log.warning("level2 resubscribed after a sequence gap")

    # -- messages -------------------------------------------------------------------------

    def handle(self, envelope: parsing.Envelope) -> list[Tick]:
        """Apply one message; returns the new ticks (in time order) it carried."""
        self._check_sequence(envelope)
        channel = envelope.channel
        if channel == "market_trades":
            return self._trades(parsing.market_trades(envelope))
        if channel == "ticker":
            for t in parsing.tickers(envelope):
                self._quotes[t.product_id] = (t.best_bid, t.best_ask)
        elif channel == "l2_data":
            self._book_events(envelope)
        elif channel == "candles":
            for c in parsing.ws_candles(envelope):
                self.last_candles[c.product_id] = c
        elif channel == "subscriptions":
            log.info("coinbase subscriptions", extra={"events": envelope.events})
        return []

    def _book_events(self, envelope: parsing.Envelope) -> None:
        at = envelope.timestamp or self.now()
        for event in parsing.book_events(envelope):
            if event.product_id not in self.products:
                continue
            book = self.books.get(event.product_id)
            if book is None:
                book = self.books[event.product_id] = LiveBook(event.product_id)
            levels = [
                ("bid" if lv.side == "bid" else "ask", lv.price, lv.quantity) for lv in event.levels
            ]
            if book.apply(event.snapshot, levels, at) and self.on_book is not None:
                self.on_book(book, event.snapshot)

    def _check_sequence(self, envelope: parsing.Envelope) -> None:
        seq = envelope.sequence_num
        if seq is None:
            return
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.sequence_gaps += 1
            metrics.SEQUENCE_GAPS.inc()
            log.warning(
                "coinbase sequence gap",
                extra={"expected": self._last_seq + 1, "got": seq},
            )
            self._open_gap()
            if "level2" in self.config.channels:
                # A lost message may have been a book update: the books are wrong now.
                for book in self.books.values():
                    book.invalidate()
                self._resync_books = True
        if self._last_seq is None or seq > self._last_seq:
            self._last_seq = seq

    def _open_gap(self) -> None:
        # Trades after the last one received may be missing; the end is known once trades
        # flow again. A gap before any trade was received has nothing to repair.
        if self._gap_begin is None and self._last_trade_time is not None:
            self._gap_begin = self._last_trade_time

    def _trades(self, trades: list[parsing.MarketTrade]) -> list[Tick]:
        fresh: list[parsing.MarketTrade] = []
        for t in trades:
            if t.product_id not in self.products:
                continue
            recent = self._recent.get(t.product_id)
            if recent is None:
                recent = self._recent[t.product_id] = _RecentTradeIds()
            if not recent.seen_before(t.trade_id):
                fresh.append(t)
        if not trades:
            return []
        newest = max(t.time for t in trades)
        if self._gap_begin is not None and self.refiller is not None:
            self.refiller.add_gap(self._gap_begin, newest)
        self._gap_begin = None
        if self._last_trade_time is None or newest > self._last_trade_time:
            self._last_trade_time = newest
        if self.refiller is not None:
            self.refiller.observe_trade_time(newest)
        fresh.sort(key=lambda t: (t.time, int(t.trade_id) if t.trade_id.isdigit() else 0))
        return [self._tick(t) for t in fresh]

    def _tick(self, trade: parsing.MarketTrade) -> Tick:
        bid, ask = self._quotes.get(trade.product_id, (None, None))
        book = self.books.get(trade.product_id)
        if book is not None and book.ready:
            book_bid, book_ask = book.top()
            bid, ask = book_bid or bid, book_ask or ask
        return Tick(
            product_id=trade.product_id,
            trade_id=trade.trade_id,
            time=trade.time,
            price=trade.price,
            size=trade.size,
            side=trade.side,
            best_bid=bid if bid is not None else trade.price,
            best_ask=ask if ask is not None else trade.price,
        )
