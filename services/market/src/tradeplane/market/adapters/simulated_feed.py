"""The `simulated` feed: paces the seeded SimulatedMarket in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from tradeplane.market.domain.simulation import MinuteHistory, SimulatedMarket
from tradeplane.market.domain.ticks import Tick

MIN_PERIOD_SECONDS = 0.005  # at high rates, emit every 5 ms in bursts instead of per tick


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SimulatedFeed:
    """Implements TickFeed and HistorySource. Emits `tick_rate` ticks per second per product:
    one at a time at low rates, in small bursts (every 5 ms) at high rates."""

    name = "simulated"

    def __init__(
        self, market: SimulatedMarket, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.market = market
        self._clock = clock

    def minute_history(
        self, product_id: str, start_minute: int, minutes: int, start_price: float | None = None
    ) -> MinuteHistory:
        return self.market.minute_history(product_id, start_minute, minutes, start_price)

    def resume_from(self, product_id: str, price: float, trade_counter: int) -> None:
        self.market.resume_from(product_id, price, trade_counter)

    def now(self) -> datetime:
        return self._clock()

    async def ticks(self) -> AsyncIterator[list[Tick]]:
        rate = self.market.tick_rate
        period = max(1.0 / rate, MIN_PERIOD_SECONDS)
        began = time.monotonic()
        emitted = 0
        step = 0
        while True:
            step += 1
            # Sleep to the next slot on a fixed grid, so the rate does not drift.
            await asyncio.sleep(max(0.0, began + step * period - time.monotonic()))
            target = int((time.monotonic() - began) * rate)
            due = target - emitted
            if due > rate:  # the loop stalled: skip ahead instead of bursting a backlog
                emitted, due = target - int(rate), int(rate)
            if due <= 0:
                continue
            emitted += due
            now = self._clock()
            batch: list[Tick] = []
            for product in self.market.products:
                batch.extend(self.market.next_ticks(product.product_id, due, now))
            yield batch
