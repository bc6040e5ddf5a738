"""What the use cases need from the outside world, as Protocols (adapters implement them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import Interval
from tradeplane.market.domain.simulation import MinuteHistory
from tradeplane.market.domain.ticks import Tick


class CandleRepository(Protocol):
    async def upsert(self, candles: Sequence[Candle]) -> None:
        """Insert or correct candles in one batch."""

    async def latest(self, product_id: str, interval: Interval) -> Candle | None: ...

    async def open_candles(self, product_id: str) -> list[Candle]:
        """Stored candles not closed yet (the current bucket of each interval)."""

    async def carry_candles(self, product_id: str, since: int) -> list[Candle]:
        """Stored candles not closed yet, or starting at or after `since` (epoch seconds):
        what a restarted feed continues or may still correct with late trades."""

    async def page_with_warmup(
        self,
        product_id: str,
        interval: Interval,
        start: int,
        end: int,
        limit: int,
        warmup: int,
    ) -> tuple[list[Candle], list[Candle]]:
        """(the `warmup` candles before `start`, up to `limit` candles in [start, end)),
        each in time order, in one query."""


class TickFeed(Protocol):
    """A live source of ticks. `ticks()` yields batches until the feed fails (raises) or ends."""

    name: str

    def ticks(self) -> AsyncIterator[list[Tick]]: ...

    def now(self) -> datetime:
        """The feed's clock: wall time for live feeds, the replay cursor for recordings.
        Candles close when this passes their end."""


class HistorySource(Protocol):
    """A feed that can generate (or fetch) 1-minute history for backfill."""

    def minute_history(
        self, product_id: str, start_minute: int, minutes: int, start_price: float | None = None
    ) -> MinuteHistory: ...

    def resume_from(self, product_id: str, price: float, trade_counter: int) -> None: ...
