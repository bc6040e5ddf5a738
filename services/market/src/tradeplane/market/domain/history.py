"""Turning generated 1-minute history into candles of every interval, and joining a stored
partial candle with the rest of its bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import numpy as np

from tradeplane.market.domain.candles import Candle, CandleArrays, resample
from tradeplane.market.domain.intervals import Interval, from_epoch_seconds
from tradeplane.market.domain.products import Product
from tradeplane.market.domain.simulation import MinuteHistory, decimals_of, format_fixed


def history_candles(
    history: MinuteHistory, product: Product, intervals: Sequence[Interval], end: int
) -> list[Candle]:
    """Candles of each interval from 1-minute history ending (exclusive) at `end`.

    A bucket that ends after `end` is returned open (`closed=False`): live trades complete it."""
    if len(history) == 0:
        return []
    minutes = CandleArrays(
        start=history.start,
        open=history.open,
        high=history.high,
        low=history.low,
        close=history.close,
        volume=history.volume,
    )
    price_decimals = decimals_of(product.quote_increment)
    size_decimals = decimals_of(product.base_increment)
    candles: list[Candle] = []
    for interval in intervals:
        bucket = history.start - history.start % interval.seconds
        first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
        arrays = minutes if interval.seconds == 60 else resample(minutes, interval)
        counts = np.add.reduceat(history.trade_count, first).tolist()
        columns = [
            format_fixed(arrays.open, price_decimals),
            format_fixed(arrays.high, price_decimals),
            format_fixed(arrays.low, price_decimals),
            format_fixed(arrays.close, price_decimals),
            format_fixed(arrays.volume, size_decimals),
        ]
        for i, start in enumerate(arrays.start.tolist()):
            candles.append(
                Candle(
                    product_id=product.product_id,
                    interval=interval,
                    start=from_epoch_seconds(start),
                    open=Decimal(columns[0][i]),
                    high=Decimal(columns[1][i]),
                    low=Decimal(columns[2][i]),
                    close=Decimal(columns[3][i]),
                    volume=Decimal(columns[4][i]),
                    trade_count=int(counts[i]),
                    closed=start + interval.seconds <= end,
                )
            )
    return candles


def merge_candles(earlier: Candle, later: Candle) -> Candle:
    """One candle from two parts of the same bucket: `earlier` (e.g. stored before a restart)
    and `later` (trades since). Open from the first part, close from the second."""
    if (earlier.product_id, earlier.interval, earlier.start) != (
        later.product_id,
        later.interval,
        later.start,
    ):
        raise ValueError("can only merge parts of the same candle")
    return replace(
        later,
        open=earlier.open,
        high=max(earlier.high, later.high),
        low=min(earlier.low, later.low),
        volume=earlier.volume + later.volume,
        trade_count=earlier.trade_count + later.trade_count,
    )
