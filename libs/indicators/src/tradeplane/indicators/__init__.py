"""Technical indicators over whole candle columns, vectorised with numpy.

The one implementation used by the market service (GetCandles indicators), the strategy
library and so the backtest engine. `compute` takes any object with float64 numpy columns
`open`/`high`/`low`/`close`/`volume` of equal length (`PriceColumns`), e.g. the market's
CandleArrays.

Conventions (each checked against a plain textbook loop in tests/test_indicators.py):

- Every output is a float64 array as long as the input, NaN where the indicator has no value
  yet (not enough bars before it). Every output is causal: the value at bar t depends on
  bars 0..t only, bit for bit (which is what makes "no look-ahead" hold for strategies).
- EMA: alpha = 2 / (period + 1), seeded at index period-1 with the SMA of the first `period`
  values, then y[t] = alpha * x[t] + (1 - alpha) * y[t-1].
- Wilder smoothing (RSI, ATR): alpha = 1 / period, seeded with the plain mean of the first
  `period` inputs.
- RSI: price changes from bar 1 on; first value at index `period`; 100 * avg_gain /
  (avg_gain + avg_loss), which is 100 - 100 / (1 + RS); 50 when both averages are 0.
- MACD: macd = EMA(fast) - EMA(slow) from index slow-1; signal = EMA(signal) of the macd line
  (seeded with the SMA of its first `signal` values); histogram = macd - signal.
- Bollinger: middle = SMA(period); upper/lower = middle +/- stddev * population std-dev.
- ATR: true range from bar 1 on (it needs the previous close), Wilder-smoothed; first value
  at index `period` (the TA-Lib convention).
- VWAP over typical price (high + low + close) / 3: `period` 0 is cumulative from the first
  candle of the series given; n is a rolling n-bar VWAP. NaN where the volume sum is 0.

Warm-up (`IndicatorDef.warmup`): the number of bars to prepend to a requested range so the
values at its first candle equal those computed over the full history. Windowed indicators
need `period - 1` bars. Recursive ones (EMA, Wilder) forget their seed only geometrically, so
they get the bars after which the seed's weight (1 - alpha)^k is below 1e-12, i.e. about 14x
the period for EMA and 28x for Wilder; that is "equal" to 1e-12 of the price scale.
Cumulative VWAP (`period` 0) has no warm-up by definition: it is anchored at the first
computed candle, so the caller decides the anchor by the range it passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from tradeplane.runtime.errors import InvalidArgument

__all__ = [
    "INDICATORS",
    "FloatArray",
    "IndicatorDef",
    "Outputs",
    "ParamDef",
    "Params",
    "PriceColumns",
    "spec_key",
    "validate_spec",
]

FloatArray = npt.NDArray[np.float64]


class PriceColumns(Protocol):
    """Float64 OHLCV columns of one length, oldest first (e.g. the market's CandleArrays)."""

    @property
    def open(self) -> FloatArray: ...

    @property
    def high(self) -> FloatArray: ...

    @property
    def low(self) -> FloatArray: ...

    @property
    def close(self) -> FloatArray: ...

    @property
    def volume(self) -> FloatArray: ...


# Below this weight a term of a geometric recursion no longer changes a float64 result.
_NEGLIGIBLE_WEIGHT = 1e-18
# Seed weight left after the warm-up of a recursive indicator.
_CONVERGENCE = 1e-12
_MAX_PERIOD = 10_000


# ---------------------------------------------------------------------------------------------
# Numerical kernels


def _nan(length: int) -> FloatArray:
    return np.full(length, np.nan, dtype=np.float64)


def _linear_recurrence(b: FloatArray, decay: float) -> FloatArray:
    """y[t] = decay * y[t-1] + b[t] with y[-1] = 0, without a Python loop per element.

    A doubling scan (Hillis-Steele): after the step with shift s, y[t] holds the sum of
    decay^k * b[t-k] for k < 2s. Terms whose weight decay^s fell below 1e-18 cannot change a
    float64 result, so the scan stops there: log2(bars to forget) passes, e.g. 9 for EMA(14),
    each one vectorised. Every multiplier is <= 1, so it is as stable as the plain loop.
    """
    y = np.array(b, dtype=np.float64, copy=True)
    shift, weight = 1, decay
    while shift < len(y) and weight > _NEGLIGIBLE_WEIGHT:
        y[shift:] += weight * y[:-shift]
        shift *= 2
        weight *= weight
    return y


def _smoothed(x: FloatArray, period: int, alpha: float) -> FloatArray:
    """Exponential smoothing seeded at index period-1 with the mean of x[:period]."""
    out = _nan(len(x))
    if period > len(x):
        return out
    b = alpha * x[period - 1 :]
    b[0] = x[:period].mean()
    out[period - 1 :] = _linear_recurrence(b, 1.0 - alpha)
    return out


def _ema(x: FloatArray, period: int) -> FloatArray:
    return _smoothed(x, period, 2.0 / (period + 1))


def _wilder(x: FloatArray, period: int) -> FloatArray:
    return _smoothed(x, period, 1.0 / period)


def _blocks(x: FloatArray, n: int) -> FloatArray:
    """x as rows of n values (the last row padded with zeros that are never read)."""
    rows = -(-len(x) // n)
    padded = np.zeros(rows * n, dtype=np.float64)
    padded[: len(x)] = x
    return padded.reshape(rows, n)


def _window_sums(own: FloatArray, prev: FloatArray, n: int, length: int) -> FloatArray:
    """Sums over each window [t-n+1, t], t >= n-1, from blocks of n rows.

    With blocks as wide as the window, a window ending in block b is a prefix of block b
    (from `own`) plus a suffix of block b-1 (from `prev`). Partial sums never run longer than
    one block, so rounding stays at the scale of the window, unlike a global cumsum.
    """
    own_cum = np.cumsum(own, axis=1)
    prev_cum = own_cum if prev is own else np.cumsum(prev, axis=1)
    sums = np.empty_like(own_cum)
    sums[0] = own_cum[0]
    np.subtract(own_cum[1:], prev_cum[:-1], out=sums[1:])
    sums[1:] += prev_cum[:-1, -1:]
    return sums.reshape(-1)[n - 1 : length]


def _rolling_sum(x: FloatArray, n: int) -> FloatArray:
    out = _nan(len(x))
    if n > len(x):
        return out
    blocks = _blocks(x, n)
    out[n - 1 :] = _window_sums(blocks, blocks, n, len(x))
    return out


def _rolling_mean_std(x: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """Rolling mean and population standard deviation over n bars.

    E[x^2] - E[x]^2 cancels catastrophically on prices (1e9 vs a variance near 1), so values
    are taken relative to the first value of the window's last block (`own`), and the
    previous block's values relative to that same reference (`prev`): the sums then only
    see local deviations.
    """
    length = len(x)
    mean, std = _nan(length), _nan(length)
    if n > length:
        return mean, std
    blocks = _blocks(x, n)
    ref = blocks[:, 0].copy()
    next_ref = np.append(ref[1:], ref[-1])
    own = blocks - ref[:, None]
    prev = blocks - next_ref[:, None]
    s1 = _window_sums(own, prev, n, length)
    s2 = _window_sums(own * own, prev * prev, n, length)
    m1 = s1 / n
    var = np.maximum(s2 / n - m1 * m1, 0.0)
    mean[n - 1 :] = np.repeat(ref, n)[n - 1 : length] + m1
    std[n - 1 :] = np.sqrt(var)
    return mean, std


# ---------------------------------------------------------------------------------------------
# Indicators. Each takes resolved integer/float params and returns its named outputs.

Params = Mapping[str, float]
Outputs = dict[str, FloatArray]


def _sma(a: PriceColumns, p: Params) -> Outputs:
    period = int(p["period"])
    return {"value": _rolling_sum(a.close, period) / period}


def _ema_indicator(a: PriceColumns, p: Params) -> Outputs:
    return {"value": _ema(a.close, int(p["period"]))}


def _rsi(a: PriceColumns, p: Params) -> Outputs:
    period = int(p["period"])
    out = _nan(len(a.close))
    if len(a.close) < 2:
        return {"value": out}
    delta = np.diff(a.close)
    avg_gain = _wilder(np.maximum(delta, 0.0), period)
    avg_loss = _wilder(np.maximum(-delta, 0.0), period)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total == 0.0, 50.0, 100.0 * avg_gain / total)
    out[1:] = rsi  # NaN where the averages are not defined yet
    return {"value": out}


def _macd(a: PriceColumns, p: Params) -> Outputs:
    fast, slow, signal_period = int(p["fast"]), int(p["slow"]), int(p["signal"])
    macd = _ema(a.close, fast) - _ema(a.close, slow)
    signal = _nan(len(a.close))
    if slow <= len(a.close):
        signal[slow - 1 :] = _ema(macd[slow - 1 :], signal_period)
    return {"macd": macd, "signal": signal, "histogram": macd - signal}


def _bollinger(a: PriceColumns, p: Params) -> Outputs:
    middle, std = _rolling_mean_std(a.close, int(p["period"]))
    width = p["stddev"] * std
    return {"upper": middle + width, "middle": middle, "lower": middle - width}


def _atr(a: PriceColumns, p: Params) -> Outputs:
    period = int(p["period"])
    out = _nan(len(a.close))
    if len(a.close) < 2:
        return {"value": out}
    prev_close = a.close[:-1]
    high, low = a.high[1:], a.low[1:]
    true_range = np.maximum(
        high - low, np.maximum(np.abs(high - prev_close), np.abs(low - prev_close))
    )
    out[1:] = _wilder(true_range, period)
    return {"value": out}


def _vwap(a: PriceColumns, p: Params) -> Outputs:
    period = int(p["period"])
    weighted = (a.high + a.low + a.close) / 3.0 * a.volume
    if period == 0:
        price_volume, volume = np.cumsum(weighted), np.cumsum(a.volume)
    else:
        price_volume, volume = _rolling_sum(weighted, period), _rolling_sum(a.volume, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(volume > 0.0, price_volume / volume, np.nan)
    return {"value": value}


# ---------------------------------------------------------------------------------------------
# Warm-up


def _forget(alpha: float) -> int:
    """Bars after which a seed's weight (1 - alpha)^k drops below _CONVERGENCE."""
    if alpha >= 1.0:
        return 0
    return math.ceil(math.log(_CONVERGENCE) / math.log1p(-alpha))


def _ema_warmup(period: int) -> int:
    return period - 1 + _forget(2.0 / (period + 1))


def _wilder_warmup(period: int) -> int:
    # One extra bar: the first change needs the bar before it.
    return period + _forget(1.0 / period)


# ---------------------------------------------------------------------------------------------
# Registry, validation, cache keys


class ParamDef(NamedTuple):
    default: float
    min: float
    max: float
    integer: bool


@dataclass(frozen=True, slots=True)
class IndicatorDef:
    """One indicator: its parameters (inclusive ranges), output names, warm-up and maths."""

    name: str
    params: Mapping[str, ParamDef]
    outputs: tuple[str, ...]
    _warmup: Callable[[Params], int]
    _compute: Callable[[PriceColumns, Params], Outputs]
    # Cross-parameter rule: returns (param name, message) when violated.
    _check: Callable[[Params], tuple[str, str] | None] | None = None

    def resolve(self, params: Params) -> dict[str, float]:
        """`params` with defaults filled in (not validated; see `validate_spec`)."""
        return {k: float(params.get(k, d.default)) for k, d in self.params.items()}

    def warmup(self, params: Params) -> int:
        """Bars of history needed before the first requested candle (see module doc)."""
        return self._warmup(self.resolve(params))

    def compute(self, arrays: PriceColumns, params: Params) -> dict[str, FloatArray]:
        """Every output over the whole series; arrays as long as `arrays`, NaN where undefined."""
        return self._compute(arrays, self.resolve(params))


def _period(default: int, minimum: int = 1) -> ParamDef:
    return ParamDef(float(default), float(minimum), float(_MAX_PERIOD), True)


def _macd_check(p: Params) -> tuple[str, str] | None:
    if p["fast"] >= p["slow"]:
        return ("fast", f"must be less than slow ({p['slow']:g})")
    return None


INDICATORS: Mapping[str, IndicatorDef] = {
    d.name: d
    for d in (
        IndicatorDef(
            "sma", {"period": _period(20)}, ("value",), lambda p: int(p["period"]) - 1, _sma
        ),
        IndicatorDef(
            "ema",
            {"period": _period(20)},
            ("value",),
            lambda p: _ema_warmup(int(p["period"])),
            _ema_indicator,
        ),
        IndicatorDef(
            "rsi",
            {"period": _period(14)},
            ("value",),
            lambda p: _wilder_warmup(int(p["period"])),
            _rsi,
        ),
        IndicatorDef(
            "macd",
            {"fast": _period(12), "slow": _period(26, 2), "signal": _period(9)},
            ("macd", "signal", "histogram"),
            lambda p: _ema_warmup(int(p["slow"])) + _ema_warmup(int(p["signal"])),
            _macd,
            _macd_check,
        ),
        IndicatorDef(
            "bollinger",
            {"period": _period(20), "stddev": ParamDef(2.0, 0.0, 10.0, False)},
            ("upper", "middle", "lower"),
            lambda p: int(p["period"]) - 1,
            _bollinger,
        ),
        IndicatorDef(
            "atr",
            {"period": _period(14)},
            ("value",),
            lambda p: _wilder_warmup(int(p["period"])),
            _atr,
        ),
        IndicatorDef(
            "vwap",
            {"period": _period(0, 0)},
            ("value",),
            lambda p: max(int(p["period"]) - 1, 0),
            _vwap,
        ),
    )
}


def validate_spec(
    name: str, params: Mapping[str, float], *, field_prefix: str = "indicator"
) -> dict[str, float]:
    """Check an indicator request; return its full parameters (defaults filled in).

    Raises InvalidArgument naming the field, e.g. "indicators[1].name" or
    "indicators[1].params.period", with `field_prefix="indicators[1]"`."""
    definition = INDICATORS.get(name)
    if definition is None:
        known = ", ".join(INDICATORS)
        raise InvalidArgument(
            f"{field_prefix}.name", f"unknown indicator {name!r}; expected one of {known}"
        )
    for key, raw in params.items():
        field = f"{field_prefix}.params.{key}"
        spec = definition.params.get(key)
        if spec is None:
            known = ", ".join(definition.params)
            raise InvalidArgument(field, f"unknown parameter of {name}; expected one of {known}")
        value = float(raw)
        if not math.isfinite(value):
            raise InvalidArgument(field, "must be a finite number")
        if spec.integer and not value.is_integer():
            raise InvalidArgument(field, f"must be an integer, got {value:g}")
        if not spec.min <= value <= spec.max:
            raise InvalidArgument(
                field, f"must be between {spec.min:g} and {spec.max:g}, got {value:g}"
            )
    full = definition.resolve(params)
    if definition._check is not None:
        problem = definition._check(full)
        if problem is not None:
            raise InvalidArgument(f"{field_prefix}.params.{problem[0]}", problem[1])
    return full


def _format_number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def spec_key(name: str, params: Mapping[str, float]) -> str:
    """Canonical text of an indicator spec for cache keys: defaults filled in, parameters
    sorted, integral values without a decimal point, e.g. "macd(fast=12,signal=9,slow=26)"."""
    definition = INDICATORS.get(name)
    full = definition.resolve(params) if definition is not None else dict(params)
    args = ",".join(f"{k}={_format_number(full[k])}" for k in sorted(full))
    return f"{name}({args})"
