"""Trades, candles and the aggregation of one into the other.

Two shapes of candle: `Candle` (Decimal fields) is the stored and served record; `CandleArrays`
(float64 columns) is what the vectorised maths (indicators, resampling) works on.

OHLC with out-of-order trades: open is the price of the earliest trade by (time, trade_id),
close the price of the latest; high/low/volume/count do not depend on order. Trade ids that
are all digits (Coinbase's) compare as numbers, others as strings, and numeric ids sort first.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradeplane.market.domain.intervals import (
    ALL_INTERVALS,
    Interval,
    epoch_seconds,
    from_epoch_seconds,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SIDES = frozenset({"buy", "sell"})


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade print. `time` is normalised to UTC; naive datetimes are rejected."""

    product_id: str
    trade_id: str
    time: datetime
    price: Decimal
    size: Decimal
    side: str  # "buy" or "sell": the taker's side

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"trade {self.trade_id}: time must be timezone-aware")
        if self.time.utcoffset() != timedelta(0):
            object.__setattr__(self, "time", self.time.astimezone(UTC))
        if self.side not in _SIDES:
            raise ValueError(f"trade {self.trade_id}: side must be 'buy' or 'sell'")
        if not self.price > 0:
            raise ValueError(f"trade {self.trade_id}: price must be positive")
        if not self.size > 0:
            raise ValueError(f"trade {self.trade_id}: size must be positive")


@dataclass(frozen=True, slots=True)
class Candle:
    """OHLCV of one product over one interval bucket starting at `start` (UTC)."""

    product_id: str
    interval: Interval
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    closed: bool

    @property
    def end(self) -> datetime:
        """Exclusive end of the bucket."""
        return self.start + self.interval.duration


class TradeTooLate(Exception):
    """Raised by `CandleAggregator.add` for a trade older than the correction window: the
    candles it belongs to were already dropped from memory, so it cannot be applied here
    (a backfill from stored trades/candles is the way to fix those)."""

    def __init__(self, trade: Trade, horizon: datetime) -> None:
        super().__init__(
            f"trade {trade.product_id}/{trade.trade_id} at {trade.time.isoformat()} is before "
            f"the correction horizon {horizon.isoformat()}"
        )
        self.trade = trade
        self.horizon = horizon


# ---------------------------------------------------------------------------------------------
# Ordering of trades inside a bucket


def _id_key(trade_id: str) -> tuple[int, int, str]:
    # Numeric ids compare as numbers ("99" < "100"); others lexically, after numeric ones.
    if trade_id.isdigit():
        return (0, int(trade_id), "")
    return (1, 0, trade_id)


_OrderKey = tuple[datetime, tuple[int, int, str]]


def _order_key(trade: Trade) -> _OrderKey:
    return (trade.time, _id_key(trade.trade_id))


class _Bucket:
    """Mutable OHLCV accumulator of one (product, interval, start)."""

    __slots__ = (
        "close",
        "close_key",
        "closed",
        "count",
        "high",
        "low",
        "open",
        "open_key",
        "start",
        "volume",
    )

    def __init__(self, start: int, trade: Trade, key: _OrderKey, closed: bool) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = trade.price
        self.open_key = self.close_key = key
        self.volume = trade.size
        self.count = 1
        self.closed = closed

    def add(self, trade: Trade, key: _OrderKey) -> None:
        price = trade.price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        if key < self.open_key:
            self.open, self.open_key = price, key
        if key > self.close_key:
            self.close, self.close_key = price, key
        self.volume += trade.size
        self.count += 1

    def snapshot(self, product_id: str, interval: Interval) -> Candle:
        return Candle(
            product_id=product_id,
            interval=interval,
            start=from_epoch_seconds(self.start),
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            trade_count=self.count,
            closed=self.closed,
        )


class _RecentIds:
    """The last `capacity` trade ids of one product, for duplicate detection."""

    __slots__ = ("_capacity", "_ids", "_order")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def seen_before(self, trade_id: str) -> bool:
        """True if `trade_id` is among the recent ids; otherwise remembers it."""
        if trade_id in self._ids:
            return True
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())
        return False


# ---------------------------------------------------------------------------------------------
# Live aggregation


class CandleAggregator:
    """Builds candles of every interval from a stream of trades of any number of products.

    - `add(trade)` applies one trade (in any order) and returns the candles it changed, one per
      interval, in `intervals` order. A trade whose bucket is already closed corrects that
      closed candle (returned with `closed=True`).
    - `close_until(now)` closes every candle whose bucket ended at or before `now` and returns
      them; time only moves forward (an earlier `now` is a no-op).
    - Closed candles are kept for `retention` after the close watermark so late trades can
      correct them; a trade older than that horizon raises `TradeTooLate` (counted in
      `too_late`). Before the first `close_until` nothing is too late.
    - A trade id already seen among the product's last `dedup_window` trades is a duplicate
      (e.g. the snapshot a WebSocket sends again after a reconnect): ignored, `add` returns
      [] and `duplicates` is incremented. `dedup_window=0` disables the check.
    - Buckets without trades produce no candle (no empty candles are invented).
    """

    def __init__(
        self,
        intervals: Sequence[Interval] = ALL_INTERVALS,
        *,
        retention: timedelta = timedelta(days=2),
        dedup_window: int = 100_000,
    ) -> None:
        if not intervals:
            raise ValueError("at least one interval is required")
        if retention < timedelta(0):
            raise ValueError("retention must not be negative")
        self._intervals = tuple(intervals)
        self._retention = int(retention.total_seconds())
        self._dedup_window = dedup_window
        self._buckets: dict[tuple[str, Interval], dict[int, _Bucket]] = {}
        self._open: dict[tuple[str, Interval, int], _Bucket] = {}
        # (end, tie-breaker, product, interval, start) of every bucket, to drop expired ones.
        self._expiry: list[tuple[int, int, str, Interval, int]] = []
        self._tie = itertools.count()
        self._recent: dict[str, _RecentIds] = {}
        self._closed_until: int | None = None
        self.too_late = 0
        self.duplicates = 0

    @property
    def intervals(self) -> tuple[Interval, ...]:
        return self._intervals

    @property
    def horizon(self) -> datetime | None:
        """Trades before this time are too late to apply (None: no close yet)."""
        if self._closed_until is None:
            return None
        return from_epoch_seconds(self._closed_until - self._retention)

    def add(self, trade: Trade) -> list[Candle]:
        ts = epoch_seconds(trade.time)
        if self._closed_until is not None and ts < self._closed_until - self._retention:
            self.too_late += 1
            horizon = from_epoch_seconds(self._closed_until - self._retention)
            raise TradeTooLate(trade, horizon)
        product = trade.product_id
        if self._dedup_window > 0:
            recent = self._recent.get(product)
            if recent is None:
                recent = self._recent[product] = _RecentIds(self._dedup_window)
            if recent.seen_before(trade.trade_id):
                self.duplicates += 1
                return []
        key = _order_key(trade)
        changed: list[Candle] = []
        for interval in self._intervals:
            seconds = interval.seconds
            start = ts - ts % seconds
            buckets = self._buckets.get((product, interval))
            if buckets is None:
                buckets = self._buckets[(product, interval)] = {}
            bucket = buckets.get(start)
            if bucket is None:
                end = start + seconds
                closed = self._closed_until is not None and end <= self._closed_until
                bucket = buckets[start] = _Bucket(start, trade, key, closed)
                if not closed:
                    self._open[(product, interval, start)] = bucket
                heapq.heappush(self._expiry, (end, next(self._tie), product, interval, start))
            else:
                bucket.add(trade, key)
            changed.append(bucket.snapshot(product, interval))
        return changed

    def close_until(self, now: datetime) -> list[Candle]:
        """Close the candles that ended at or before `now`; oldest first per product/interval."""
        now_ts = epoch_seconds(now)
        if self._closed_until is not None and now_ts <= self._closed_until:
            return []
        self._closed_until = now_ts
        ended = [
            (product, interval, start)
            for (product, interval, start) in self._open
            if start + interval.seconds <= now_ts
        ]
        ended.sort(key=lambda k: (k[0], k[1].seconds, k[2]))
        closed: list[Candle] = []
        for k in ended:
            bucket = self._open.pop(k)
            bucket.closed = True
            closed.append(bucket.snapshot(k[0], k[1]))
        horizon = now_ts - self._retention
        while self._expiry and self._expiry[0][0] <= horizon:
            _, _, product, interval, start = heapq.heappop(self._expiry)
            del self._buckets[(product, interval)][start]
        return closed

    def current(self, product_id: str, interval: Interval) -> Candle | None:
        """The most recent candle held for (product, interval), open or closed."""
        buckets = self._buckets.get((product_id, interval))
        if not buckets:
            return None
        return buckets[max(buckets)].snapshot(product_id, interval)

    def recent(self, product_id: str, interval: Interval) -> list[Candle]:
        """Every candle still held in memory for (product, interval), oldest first."""
        buckets = self._buckets.get((product_id, interval), {})
        return [buckets[s].snapshot(product_id, interval) for s in sorted(buckets)]


def candles_from_trades(
    trades: Iterable[Trade], interval: Interval, *, now: datetime | None = None
) -> list[Candle]:
    """Candles of `interval` from a batch of trades (any order, any products), sorted by
    (product, start). Duplicate (product, trade_id) pairs count once. A candle is `closed`
    when its bucket ended at or before `now`; with `now=None` every candle is closed."""
    now_ts = None if now is None else epoch_seconds(now)
    seconds = interval.seconds
    buckets: dict[tuple[str, int], _Bucket] = {}
    seen: set[tuple[str, str]] = set()
    for trade in trades:
        ident = (trade.product_id, trade.trade_id)
        if ident in seen:
            continue
        seen.add(ident)
        ts = epoch_seconds(trade.time)
        start = ts - ts % seconds
        bucket = buckets.get((trade.product_id, start))
        key = _order_key(trade)
        if bucket is None:
            closed = now_ts is None or start + seconds <= now_ts
            buckets[(trade.product_id, start)] = _Bucket(start, trade, key, closed)
        else:
            bucket.add(trade, key)
    return [buckets[k].snapshot(k[0], interval) for k in sorted(buckets)]


# ---------------------------------------------------------------------------------------------
# Columnar candles for vector maths


def _column(values: Iterable[float], count: int) -> FloatArray:
    return np.fromiter(values, dtype=np.float64, count=count)


@dataclass(frozen=True, slots=True, eq=False)
class CandleArrays:
    """Candles as columns: `start` (int64 epoch seconds, ascending) and float64 OHLCV."""

    start: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = len(self.start)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, not {n}")

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleArrays:
        n = len(candles)
        return cls(
            start=np.fromiter((epoch_seconds(c.start) for c in candles), dtype=np.int64, count=n),
            open=_column((float(c.open) for c in candles), n),
            high=_column((float(c.high) for c in candles), n),
            low=_column((float(c.low) for c in candles), n),
            close=_column((float(c.close) for c in candles), n),
            volume=_column((float(c.volume) for c in candles), n),
        )

    @classmethod
    def from_columns(
        cls,
        start: Sequence[int] | npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
    ) -> CandleArrays:
        """From any array-likes (lists of Decimal work too); copies into contiguous arrays."""
        return cls(
            start=np.ascontiguousarray(start, dtype=np.int64),
            open=np.ascontiguousarray(open, dtype=np.float64),
            high=np.ascontiguousarray(high, dtype=np.float64),
            low=np.ascontiguousarray(low, dtype=np.float64),
            close=np.ascontiguousarray(close, dtype=np.float64),
            volume=np.ascontiguousarray(volume, dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> CandleArrays:
        return cls.from_columns([], [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, index: slice) -> CandleArrays:
        if not isinstance(index, slice):
            raise TypeError("CandleArrays supports slicing only")
        return CandleArrays(
            start=self.start[index],
            open=self.open[index],
            high=self.high[index],
            low=self.low[index],
            close=self.close[index],
            volume=self.volume[index],
        )

    def index_of(self, ts_epoch_seconds: int) -> int:
        """Index of the first candle starting at or after `ts_epoch_seconds`."""
        return int(np.searchsorted(self.start, ts_epoch_seconds, side="left"))


def resample(arrays: CandleArrays, interval: Interval) -> CandleArrays:
    """Aggregate narrower candles (e.g. 1m) into `interval` buckets, vectorised.

    Input must be sorted by strictly increasing start. Open is the first candle's open, close
    the last one's close, high/low the extremes, volume the sum. Empty buckets give no row."""
    n = len(arrays)
    if n == 0:
        return CandleArrays.empty()
    if n > 1 and not bool(np.all(np.diff(arrays.start) > 0)):
        raise ValueError("candles must be sorted by strictly increasing start")
    seconds = interval.seconds
    bucket = arrays.start - arrays.start % seconds
    first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    last = np.concatenate((first[1:] - 1, [n - 1]))
    return CandleArrays(
        start=bucket[first],
        open=arrays.open[first],
        high=np.maximum.reduceat(arrays.high, first),
        low=np.minimum.reduceat(arrays.low, first),
        close=arrays.close[last],
        volume=np.add.reduceat(arrays.volume, first),
    )
