"""GapRefiller: after a disconnect or a sequence gap, rewrite the affected candles from the
venue's REST candles so the stored candles end up exact.

A gap spans [last trade time before it, newest trade time in the first trades message after
it] and concerns every subscribed product (the sequence number is per connection, so which
product lost messages is unknown). Every bucket of every interval touching that span is
refilled once it is final: its end has passed on the wall clock, the feed has seen a later
trade (or the market stayed quiet for `quiet_seconds`), and then `delay_seconds` more, so the
live aggregator has written its own partial version before and no later trade of that bucket
is expected. Buckets still open (e.g. today's 1d candle) wait until they end.

REST candles carry no trade count: a refilled candle keeps the stored count (the trades
received live), so `trade_count` is a lower bound for refilled buckets; OHLCV are exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tradeplane.market.adapters.venues.coinbase import metrics
from tradeplane.market.adapters.venues.coinbase.parsing import VenueCandle
from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import (
    ALL_INTERVALS,
    Interval,
    epoch_seconds,
    from_epoch_seconds,
)
from tradeplane.market.service_layer.ports import CandleRepository

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
SLOW_POLL_SECONDS = 1.0  # with many buckets pending (a long outage), look less often
RETRY_SECONDS = 5.0


class CandleSource(Protocol):
    async def candles(
        self, product_id: str, interval: Interval, start: int, end: int
    ) -> list[VenueCandle]: ...


@dataclass
class _Pending:
    resolved_wall: float  # wall time (epoch s) when the gap was closed
    ready_at: float | None = None  # monotonic time it became final
    not_before: float = 0.0  # monotonic: retry after an error


Key = tuple[str, Interval, int]  # (product, interval, bucket start)


class GapRefiller:
    def __init__(
        self,
        source: CandleSource,
        repo: CandleRepository,
        product_ids: Sequence[str],
        *,
        intervals: Sequence[Interval] = ALL_INTERVALS,
        delay_seconds: float = 5.0,
        quiet_seconds: float = 60.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.repo = repo
        self.product_ids = list(product_ids)
        self.intervals = tuple(intervals)
        self.delay_seconds = delay_seconds
        self.quiet_seconds = quiet_seconds
        self._wall = wall_clock
        self._pending: dict[Key, _Pending] = {}
        self._trade_clock: int | None = None  # newest trade time seen (epoch s)
        self.refilled = 0  # candles rewritten, for tests and logs
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def last_stored(self) -> datetime | None:
        """Start of the newest stored 1-minute candle of any product (None: nothing stored)."""
        latest = [await self.repo.latest(p, Interval.ONE_MINUTE) for p in self.product_ids]
        starts = [c.start for c in latest if c is not None]
        return max(starts) if starts else None

    def observe_trade_time(self, moment: datetime) -> None:
        ts = epoch_seconds(moment)
        if self._trade_clock is None or ts > self._trade_clock:
            self._trade_clock = ts

    def add_gap(self, begin: datetime, end: datetime) -> None:
        """Schedule a refill of every bucket touching [begin, end] for every product."""
        lo, hi = epoch_seconds(min(begin, end)), epoch_seconds(max(begin, end))
        now = self._wall()
        for interval in self.intervals:
            for start in range(interval.floor(lo), interval.floor(hi) + 1, interval.seconds):
                for product in self.product_ids:
                    # Re-added buckets start their wait over: the new gap may hide more trades.
                    self._pending[(product, interval, start)] = _Pending(now)
        self._idle.clear()
        log.info(
            "feed gap scheduled for refill",
            extra={"begin": begin.isoformat(), "end": end.isoformat(), "pending": self.pending},
        )

    async def wait_idle(self) -> None:
        """Until nothing is pending (tests)."""
        await self._idle.wait()

    def _due(self) -> list[Key]:
        now_wall, now_mono = self._wall(), time.monotonic()
        due: list[Key] = []
        for key, p in self._pending.items():
            _, interval, start = key
            end = start + interval.seconds
            if p.ready_at is None:
                later_trade = self._trade_clock is not None and self._trade_clock >= end
                quiet = now_wall >= max(end, p.resolved_wall) + self.quiet_seconds
                if now_wall >= end and (later_trade or quiet):
                    p.ready_at = now_mono
            if (
                p.ready_at is not None
                and now_mono - p.ready_at >= self.delay_seconds
                and now_mono >= p.not_before
            ):
                due.append(key)
        return due

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS if len(self._pending) < 1000 else SLOW_POLL_SECONDS)
            due = self._due()
            if due:
                await self.refill(due)
            if not self._pending:
                self._idle.set()

    async def refill(self, keys: Sequence[Key]) -> None:
        """Fetch and store the given buckets: one REST range per (product, interval)."""
        groups: dict[tuple[str, Interval], list[int]] = {}
        for product, interval, start in keys:
            groups.setdefault((product, interval), []).append(start)
        for (product, interval), starts in groups.items():
            first, last = min(starts), max(starts)
            try:
                candles = await self._fetch_and_store(product, interval, first, last)
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.GAP_REFILL_ERRORS.inc()
                log.exception(
                    "gap refill failed; will retry",
                    extra={"product": product, "interval": interval.code},
                )
                retry = time.monotonic() + RETRY_SECONDS
                for start in starts:
                    self._pending[(product, interval, start)].not_before = retry
                continue
            for start in starts:
                self._pending.pop((product, interval, start), None)
            self.refilled += candles
            metrics.GAP_REFILLS.labels(interval.code).inc()

    async def _fetch_and_store(
        self, product: str, interval: Interval, first: int, last: int
    ) -> int:
        end = last + interval.seconds
        fetched = await self.source.candles(product, interval, first, end)
        if not fetched:
            return 0
        _, stored = await self.repo.page_with_warmup(
            product, interval, first, end, limit=(end - first) // interval.seconds, warmup=0
        )
        counts = {epoch_seconds(c.start): c.trade_count for c in stored}
        candles = [
            Candle(
                product_id=product,
                interval=interval,
                start=from_epoch_seconds(v.start),
                open=v.open,
                high=v.high,
                low=v.low,
                close=v.close,
                volume=v.volume,
                trade_count=counts.get(v.start, 0),
                closed=True,
            )
            for v in fetched
        ]
        await self.repo.upsert(candles)
        log.info(
            "feed gap refilled",
            extra={"product": product, "interval": interval.code, "candles": len(candles)},
        )
        return len(candles)
