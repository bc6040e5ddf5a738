"""The feed runner: pulls ticks from the feed, publishes them, builds and stores candles.

Two background tasks:
- the feed loop: ticks -> tick hub + candle aggregator; when the feed raises (or ends) it is
  restarted with exponential backoff, counted in market_feed_restarts_total and shown by
  market_feed_up. The streams stay open meanwhile; they just receive nothing.
- housekeeping, every `publish_seconds`: closes ended candles, publishes changed candles on
  the candle hub (coalesced: one update per candle per period), and every `flush_seconds`
  writes the changed candles (open and closed) in one batch, so the store never sees one
  round trip per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from tradeplane.market.domain.candles import Candle, CandleAggregator, Trade, TradeTooLate
from tradeplane.market.domain.history import merge_candles
from tradeplane.market.domain.hub import StreamHub
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.market.domain.products import Product
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.service_layer import metrics
from tradeplane.market.service_layer.ports import CandleRepository, TickFeed

log = logging.getLogger(__name__)

CandleKey = tuple[str, Interval, datetime]


def candle_stream_key(product_id: str, interval: Interval) -> str:
    return f"{product_id}/{interval.code}"


class FeedRunner:
    def __init__(
        self,
        feed: TickFeed,
        products: Sequence[Product],
        tick_hub: StreamHub[Tick],
        candle_hub: StreamHub[Candle],
        repo: CandleRepository,
        *,
        publish_seconds: float = 0.25,
        flush_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        clock: Callable[[], datetime] | None = None,
        correction_window: timedelta = timedelta(days=2),
    ) -> None:
        self.feed = feed
        self.products = list(products)
        self.tick_hub = tick_hub
        self.candle_hub = candle_hub
        self.repo = repo
        self.correction_window = correction_window  # how late a trade may still correct
        self.aggregator = CandleAggregator(retention=correction_window)
        self.publish_seconds = publish_seconds
        self.flush_seconds = flush_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.clock = clock or feed.now  # closes candles; the feed's time, not always wall time
        self.running = False
        self.restarts = 0
        self.last_error: str | None = None
        self.last_ticks: dict[str, Tick] = {}
        # Stored open candles from before start, by bucket (every interval, any number of
        # buckets). Kept after their bucket closes, until late trades can no longer reach it,
        # so a late trade corrects the joined candle instead of overwriting the stored part.
        self._carry: dict[CandleKey, Candle] = {}
        self._carry_joined: set[CandleKey] = set()  # carried buckets that have live trades too
        self._carry_open: set[CandleKey] = set()  # carried buckets not closed yet
        self._next_prune: datetime | None = None
        self._to_publish: dict[CandleKey, Candle] = {}
        self._to_save: dict[CandleKey, Candle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_flush = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the stored open candles (to continue them) and the recent closed ones (for late
        trades to correct), then start both tasks."""
        since = epoch_seconds(self.clock()) - int(self.correction_window.total_seconds())
        for product in self.products:
            for candle in await self.repo.carry_candles(product.product_id, since):
                key = (candle.product_id, candle.interval, candle.start)
                self._carry[key] = candle
                if not candle.closed:
                    self._carry_open.add(key)
        self._last_flush = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._supervise_feed(), name="market-feed"),
            asyncio.create_task(self._housekeeping(), name="market-candles"),
        ]

    async def stop(self) -> None:
        """Stop both tasks and write what is still pending."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.running = False
        metrics.FEED_UP.set(0)
        await self.flush()

    # -- feed -----------------------------------------------------------------------------

    async def _supervise_feed(self) -> None:
        backoff = 0.5
        while True:
            began = time.monotonic()
            self.running = True
            metrics.FEED_UP.set(1)
            try:
                async for ticks in self.feed.ticks():
                    self.ingest(ticks)
                self.last_error = "feed ended"
                log.warning("feed ended; restarting", extra={"feed": self.feed.name})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("feed failed; restarting", extra={"feed": self.feed.name})
            self.running = False
            metrics.FEED_UP.set(0)
            self.restarts += 1
            metrics.FEED_RESTARTS.inc()
            if time.monotonic() - began > 60:
                backoff = 0.5  # it ran fine for a while: start the backoff over
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_seconds)

    def ingest(self, ticks: Sequence[Tick]) -> None:
        """Publish ticks and apply them to the candles (synchronous: no awaits per tick)."""
        if not ticks:
            return
        for tick in ticks:
            self.tick_hub.publish(tick.product_id, tick)
            self.last_ticks[tick.product_id] = tick
            trade = Trade(
                product_id=tick.product_id,
                trade_id=tick.trade_id,
                time=tick.time,
                price=tick.price,
                size=tick.size,
                side=str(tick.side),
            )
            try:
                changed = self.aggregator.add(trade)
            except TradeTooLate:
                metrics.TRADES_TOO_LATE.inc()
                continue
            for candle in changed:
                self._changed(self._with_carry(candle))
        counts: dict[str, int] = {}
        for tick in ticks:
            counts[tick.product_id] = counts.get(tick.product_id, 0) + 1
        for product_id, n in counts.items():
            metrics.TICKS_INGESTED.labels(product_id).inc(n)
        metrics.FEED_LAG.set(max(0.0, (self.clock() - ticks[-1].time).total_seconds()))

    # -- candles --------------------------------------------------------------------------

    def _with_carry(self, candle: Candle) -> Candle:
        """Join a live candle with the stored part of the same bucket (from before start)."""
        key = (candle.product_id, candle.interval, candle.start)
        carry = self._carry.get(key)
        if carry is None:
            return candle
        self._carry_joined.add(key)
        return merge_candles(carry, candle)

    def _changed(self, candle: Candle) -> None:
        key = (candle.product_id, candle.interval, candle.start)
        self._to_publish[key] = candle
        self._to_save[key] = candle

    def close_ended(self, now: datetime) -> None:
        for candle in self.aggregator.close_until(now):
            self._changed(self._with_carry(candle))
        for key in [k for k in self._carry_open if self._carry[k].end <= now]:
            self._carry_open.discard(key)
            carry = self._carry[key] = replace(self._carry[key], closed=True)
            if key not in self._carry_joined:
                # Its bucket ended without live trades: close the stored part as it is
                # (with live trades the aggregator's close above wrote the joined one).
                self._changed(carry)
        horizon = self.aggregator.horizon
        if horizon is not None and (self._next_prune is None or horizon >= self._next_prune):
            self._next_prune = horizon + timedelta(minutes=1)  # a full scan once a minute
            for key, carry in list(self._carry.items()):
                if carry.end <= horizon:  # no trade can reach this bucket any more
                    del self._carry[key]
                    self._carry_joined.discard(key)

    def publish_changed(self) -> None:
        pending, self._to_publish = self._to_publish, {}
        for candle in pending.values():
            self.candle_hub.publish(candle_stream_key(candle.product_id, candle.interval), candle)

    async def flush(self) -> None:
        """Write every changed candle in one batch; on failure keep them for the next flush."""
        if not self._to_save:
            return
        pending, self._to_save = self._to_save, {}
        try:
            await self.repo.upsert(list(pending.values()))
        except Exception:
            metrics.CANDLE_WRITE_ERRORS.inc()
            log.exception("candle write failed; will retry", extra={"candles": len(pending)})
            pending.update(self._to_save)
            self._to_save = pending

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.publish_seconds)
            try:
                self.close_ended(self.clock())
                self.publish_changed()
                if time.monotonic() - self._last_flush >= self.flush_seconds:
                    self._last_flush = time.monotonic()
                    await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("candle housekeeping failed")
