"""Backfill: at startup, fill the candle store with history up to now (one bulk write)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.history import history_candles, merge_candles
from tradeplane.market.domain.intervals import ALL_INTERVALS, Interval, epoch_seconds
from tradeplane.market.domain.products import Product
from tradeplane.market.service_layer.ports import CandleRepository, HistorySource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    candles_written: int
    seconds: float


async def backfill(
    source: HistorySource,
    repo: CandleRepository,
    products: Sequence[Product],
    *,
    days: float,
    now: int,
) -> BackfillResult:
    """Generate the 1-minute history missing between max(now - days, last stored minute) and
    the current minute, derive every interval from it, merge with the stored partial candles
    of the buckets it continues, and write it all in one batch. The source then continues
    live from the last close, so history and live ticks join up."""
    began = time.perf_counter()
    end = Interval.ONE_MINUTE.floor(now)
    window_start = Interval.ONE_MINUTE.floor(int(now - days * 86400))
    to_write: list[Candle] = []
    for product in products:
        pid = product.product_id
        latest = await repo.latest(pid, Interval.ONE_MINUTE)
        start, start_price = window_start, None
        if latest is not None:
            start = max(window_start, epoch_seconds(latest.start) + 60)
            start_price = float(latest.close)
        last_close = start_price
        if start < end:
            history = source.minute_history(pid, start, (end - start) // 60, start_price)
            candles = history_candles(history, product, ALL_INTERVALS, end)
            stored = {(c.interval, c.start): c for c in await repo.open_candles(pid)}
            for candle in candles:
                earlier = stored.get((candle.interval, candle.start))
                to_write.append(candle if earlier is None else merge_candles(earlier, candle))
            last_close = float(history.close[-1])
        if last_close is not None:
            # Trade ids keep increasing across restarts: derived from the clock.
            source.resume_from(pid, last_close, trade_counter=now * 1000)
    await repo.upsert(to_write)
    result = BackfillResult(len(to_write), time.perf_counter() - began)
    log.info(
        "backfill done",
        extra={"candles": result.candles_written, "seconds": round(result.seconds, 3)},
    )
    return result
