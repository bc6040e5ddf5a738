"""In-memory stand-ins for the market service's ports (fixtures for the unit tests)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import Interval, epoch_seconds


class FakeCandleRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, Interval, int], Candle] = {}
        self.writes = 0  # number of upsert batches

    async def upsert(self, candles: Sequence[Candle]) -> None:
        self.writes += 1
        for c in candles:
            self.rows[(c.product_id, c.interval, epoch_seconds(c.start))] = c

    def series(self, product_id: str, interval: Interval) -> list[Candle]:
        return [
            self.rows[k]
            for k in sorted(self.rows, key=lambda k: (k[0], k[1].seconds, k[2]))
            if k[0] == product_id and k[1] is interval
        ]

    async def latest(self, product_id: str, interval: Interval) -> Candle | None:
        series = self.series(product_id, interval)
        return series[-1] if series else None

    async def open_candles(self, product_id: str) -> list[Candle]:
        return [c for k, c in self.rows.items() if k[0] == product_id and not c.closed]

    async def carry_candles(self, product_id: str, since: int) -> list[Candle]:
        return [
            c
            for k, c in self.rows.items()
            if k[0] == product_id and (not c.closed or k[2] >= since)
        ]

    async def page_with_warmup(
        self, product_id: str, interval: Interval, start: int, end: int, limit: int, warmup: int
    ) -> tuple[list[Candle], list[Candle]]:
        series = self.series(product_id, interval)
        before = [c for c in series if epoch_seconds(c.start) < start]
        page = [c for c in series if start <= epoch_seconds(c.start) < end]
        return (before[-warmup:] if warmup else []), page[:limit]


@pytest.fixture
def repo() -> FakeCandleRepository:
    return FakeCandleRepository()
