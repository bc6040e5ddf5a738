"""Indicators a strategy declares, computed once per run over whole columns with numpy.

Names, parameters and conventions follow the market service's indicators (sma, ema, rsi,
macd, bollinger, atr, vwap; EMA seeded with the SMA of the first `period` values; Wilder
smoothing for RSI and ATR; population standard deviation for Bollinger), so a strategy's
declaration can be served by either. The maths is duplicated here on purpose for now: this
library must not import a service. Every output is causal — the value at bar t depends on
bars 0..t only — which is what makes "no look-ahead" hold for indicator reads.

Outputs are float64 arrays as long as the input, NaN during warm-up. A spec with key "fast"
yields "fast" for single-output indicators and "<key>.<output>" (e.g. "bb.upper") otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = npt.NDArray[np.float64]
Series = Mapping[str, FloatArray]

# Below this weight a term of a geometric recursion no longer changes a float64 result.
_NEGLIGIBLE_WEIGHT = 1e-18


def _nan(length: int) -> FloatArray:
    return np.full(length, np.nan, dtype=np.float64)


def _linear_recurrence(b: FloatArray, decay: float) -> FloatArray:
    """y[t] = decay * y[t-1] + b[t] (y[-1] = 0) as a doubling scan: log2(memory) vectorised
    passes instead of a Python loop. Each y[t] only ever reads earlier elements."""
    y = np.array(b, dtype=np.float64, copy=True)
    shift, weight = 1, decay
    while shift < len(y) and weight > _NEGLIGIBLE_WEIGHT:
        y[shift:] += weight * y[:-shift]
        shift *= 2
        weight *= weight
    return y


def _smoothed(x: FloatArray, period: int, alpha: float) -> FloatArray:
    out = _nan(len(x))
    if period > len(x):
        return out
    b = alpha * x[period - 1 :]
    b[0] = x[:period].mean()
    out[period - 1 :] = _linear_recurrence(b, 1.0 - alpha)
    return out


def sma(x: FloatArray, period: int) -> FloatArray:
    """Simple moving average over `period` bars (first value at index period-1)."""
    out = _nan(len(x))
    if period <= len(x):
        # A direct window sum (not a running cumsum): no drift over a million bars.
        out[period - 1 :] = np.convolve(x, np.ones(period), "valid") / period
    return out


def ema(x: FloatArray, period: int) -> FloatArray:
    """Exponential moving average, alpha = 2/(period+1), seeded with the first SMA."""
    return _smoothed(x, period, 2.0 / (period + 1))


def wilder(x: FloatArray, period: int) -> FloatArray:
    """Wilder smoothing, alpha = 1/period, seeded with the first mean."""
    return _smoothed(x, period, 1.0 / period)


def rsi(close: FloatArray, period: int) -> FloatArray:
    """Relative strength index 0..100 (first value at index `period`; 50 when flat)."""
    out = _nan(len(close))
    if len(close) < 2:
        return out
    delta = np.diff(close)
    gain = wilder(np.maximum(delta, 0.0), period)
    loss = wilder(np.maximum(-delta, 0.0), period)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = np.where(total == 0.0, 50.0, 100.0 * gain / total)
    return out


def bollinger(
    close: FloatArray, period: int, stddev: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(upper, middle, lower): SMA +/- stddev x population standard deviation."""
    middle, width = _nan(len(close)), _nan(len(close))
    if period <= len(close):
        windows = sliding_window_view(close, period)
        middle[period - 1 :] = windows.mean(axis=1)
        width[period - 1 :] = stddev * windows.std(axis=1)
    return middle + width, middle, middle - width


def macd(
    close: FloatArray, fast: int, slow: int, signal: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(macd, signal, histogram) with EMA(fast) - EMA(slow) from index slow-1."""
    line = ema(close, fast) - ema(close, slow)
    sig = _nan(len(close))
    if slow <= len(close):
        sig[slow - 1 :] = ema(line[slow - 1 :], signal)
    return line, sig, line - sig


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int) -> FloatArray:
    """Average true range, Wilder-smoothed; first value at index `period`."""
    out = _nan(len(close))
    if len(close) < 2:
        return out
    prev = close[:-1]
    h, lo = high[1:], low[1:]
    true_range = np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev)))
    out[1:] = wilder(true_range, period)
    return out


def vwap(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, period: int
) -> FloatArray:
    """VWAP of the typical price; period 0 = cumulative from the first bar, else rolling."""
    weighted = (high + low + close) / 3.0 * volume
    if period == 0:
        pv, vol = np.cumsum(weighted), np.cumsum(volume)
    else:
        pv, vol = _nan(len(close)), _nan(len(close))
        if period <= len(close):
            window = np.ones(period)
            pv[period - 1 :] = np.convolve(weighted, window, "valid")
            vol[period - 1 :] = np.convolve(volume, window, "valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(vol > 0.0, pv / vol, np.nan)


# ---------------------------------------------------------------------------------------------
# Declarations


_Compute = Callable[[Series, Mapping[str, float]], dict[str, FloatArray]]


def _one(values: FloatArray) -> dict[str, FloatArray]:
    return {"value": values}


_COMPUTE: Mapping[str, tuple[Mapping[str, float], _Compute]] = {
    "sma": ({"period": 20}, lambda s, p: _one(sma(s["close"], int(p["period"])))),
    "ema": ({"period": 20}, lambda s, p: _one(ema(s["close"], int(p["period"])))),
    "rsi": ({"period": 14}, lambda s, p: _one(rsi(s["close"], int(p["period"])))),
    "macd": (
        {"fast": 12, "slow": 26, "signal": 9},
        lambda s, p: dict(
            zip(
                ("macd", "signal", "histogram"),
                macd(s["close"], int(p["fast"]), int(p["slow"]), int(p["signal"])),
                strict=True,
            )
        ),
    ),
    "bollinger": (
        {"period": 20, "stddev": 2.0},
        lambda s, p: dict(
            zip(
                ("upper", "middle", "lower"),
                bollinger(s["close"], int(p["period"]), float(p["stddev"])),
                strict=True,
            )
        ),
    ),
    "atr": (
        {"period": 14},
        lambda s, p: _one(atr(s["high"], s["low"], s["close"], int(p["period"]))),
    ),
    "vwap": (
        {"period": 0},
        lambda s, p: _one(vwap(s["high"], s["low"], s["close"], s["volume"], int(p["period"]))),
    ),
}

INDICATOR_NAMES: tuple[str, ...] = tuple(_COMPUTE)


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """An indicator a strategy needs: read back under `key` (e.g. "fast" for sma(10))."""

    key: str
    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in _COMPUTE:
            raise ValueError(f"unknown indicator {self.name!r}; expected one of {INDICATOR_NAMES}")
        unknown = set(self.params) - set(_COMPUTE[self.name][0])
        if unknown:
            raise ValueError(f"indicator {self.name}: unknown parameters {sorted(unknown)}")

    def resolved_params(self) -> dict[str, float]:
        """The parameters with the indicator's defaults filled in."""
        defaults = _COMPUTE[self.name][0]
        return {k: float(self.params.get(k, d)) for k, d in defaults.items()}

    def compute(self, series: Series) -> dict[str, FloatArray]:
        """Every output over the whole run, keyed "<key>" or "<key>.<output>"."""
        outputs = _COMPUTE[self.name][1](series, self.resolved_params())
        if len(outputs) == 1:
            return {self.key: outputs["value"]}
        return {f"{self.key}.{name}": values for name, values in outputs.items()}


def compute_all(specs: tuple[IndicatorSpec, ...], series: Series) -> Mapping[str, FloatArray]:
    """All declared indicators over a run's columns (each computed once)."""
    out: dict[str, FloatArray] = {}
    for spec in specs:
        for key, values in spec.compute(series).items():
            if key in out:
                raise ValueError(f"two indicators are both read as {key!r}")
            out[key] = values
    return MappingProxyType(out)
