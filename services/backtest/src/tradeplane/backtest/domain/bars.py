"""The candle columns a backtest runs over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradeplane.runtime.errors import InvalidArgument

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _frozen(values: npt.ArrayLike, dtype: type) -> npt.NDArray[np.generic]:
    # A private, read-only copy: nobody can change the data under a running backtest.
    array: npt.NDArray[np.generic] = np.array(values, dtype=dtype, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class BarSeries:
    """OHLCV columns of one product, one interval. `time` is each bar's start in epoch
    seconds, strictly increasing. Constructing one copies the inputs into read-only arrays."""

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    @classmethod
    def from_arrays(
        cls,
        time: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike | None = None,
    ) -> BarSeries:
        t = _frozen(time, np.int64)
        cols = [_frozen(c, np.float64) for c in (open, high, low, close)]
        vol = _frozen(np.zeros(len(t)) if volume is None else volume, np.float64)
        series = cls(t, cols[0], cols[1], cols[2], cols[3], vol)  # type: ignore[arg-type]
        series._check()
        return series

    def _check(self) -> None:
        n = len(self.time)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise InvalidArgument("bars", f"column {name} has a different length")
        if n and np.any(np.diff(self.time) <= 0):
            raise InvalidArgument("bars", "bar times must be strictly increasing")
        prices = np.stack([self.open, self.high, self.low, self.close])
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise InvalidArgument("bars", "prices must be finite and positive")
        if np.any(self.low > np.minimum(self.open, self.close)) or np.any(
            self.high < np.maximum(self.open, self.close)
        ):
            raise InvalidArgument("bars", "every bar needs low <= open, close <= high")

    def __len__(self) -> int:
        return len(self.time)

    def columns(self) -> Mapping[str, FloatArray]:
        """The price columns by name, as strategies and indicators read them."""
        return {
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }

    def head(self, count: int) -> BarSeries:
        """The first `count` bars (what a run would have seen up to bar count-1)."""
        return BarSeries.from_arrays(
            self.time[:count],
            self.open[:count],
            self.high[:count],
            self.low[:count],
            self.close[:count],
            self.volume[:count],
        )

    def bar_seconds(self) -> float:
        """Typical spacing of bars (the median of the first 10,000), for annualising."""
        if len(self.time) < 2:
            return 60.0
        return float(np.median(np.diff(self.time[:10_001])))
