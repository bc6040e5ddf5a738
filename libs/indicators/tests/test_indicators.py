"""Indicators against independent textbook loops, causality, warm-up, and parameter validation.

The reference implementations below are deliberately plain Python loops over lists, written
from the textbook definitions, sharing no code with the vectorised module under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from tradeplane.indicators import INDICATORS, FloatArray, spec_key, validate_spec
from tradeplane.runtime.errors import InvalidArgument

NAN = float("nan")


@dataclass(frozen=True)
class Columns:
    """The plainest PriceColumns: five float64 arrays, sliceable like a candle range."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __getitem__(self, rows: slice) -> Columns:
        return Columns(
            self.open[rows], self.high[rows], self.low[rows], self.close[rows], self.volume[rows]
        )


# ---------------------------------------------------------------------------------------------
# Reference implementations (per element, textbook)


def ref_sma(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    for t in range(n - 1, len(x)):
        total = 0.0
        for j in range(t - n + 1, t + 1):
            total += x[j]
        out[t] = total / n
    return out


def ref_ema(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    if n > len(x):
        return out
    alpha = 2.0 / (n + 1)
    value = sum(x[:n]) / n
    out[n - 1] = value
    for t in range(n, len(x)):
        value = alpha * x[t] + (1 - alpha) * value
        out[t] = value
    return out


def ref_rsi(close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    if n + 1 > len(close):
        return out
    gains = [0.0] + [max(close[t] - close[t - 1], 0.0) for t in range(1, len(close))]
    losses = [0.0] + [max(close[t - 1] - close[t], 0.0) for t in range(1, len(close))]
    avg_gain = sum(gains[1 : n + 1]) / n
    avg_loss = sum(losses[1 : n + 1]) / n
    for t in range(n, len(close)):
        if t > n:
            avg_gain = (avg_gain * (n - 1) + gains[t]) / n
            avg_loss = (avg_loss * (n - 1) + losses[t]) / n
        if avg_loss == 0.0:
            out[t] = 50.0 if avg_gain == 0.0 else 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def ref_macd(
    close: list[float], fast: int, slow: int, signal: int
) -> tuple[list[float], list[float], list[float]]:
    fast_ema, slow_ema = ref_ema(close, fast), ref_ema(close, slow)
    macd = [f - s for f, s in zip(fast_ema, slow_ema, strict=True)]
    sig = [NAN] * len(close)
    if slow <= len(close):
        sig[slow - 1 :] = ref_ema(macd[slow - 1 :], signal)
    hist = [m - s for m, s in zip(macd, sig, strict=True)]
    return macd, sig, hist


def ref_bollinger(
    close: list[float], n: int, k: float
) -> tuple[list[float], list[float], list[float]]:
    upper, middle, lower = [NAN] * len(close), [NAN] * len(close), [NAN] * len(close)
    for t in range(n - 1, len(close)):
        window = close[t - n + 1 : t + 1]
        mean = sum(window) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / n)
        upper[t], middle[t], lower[t] = mean + k * std, mean, mean - k * std
    return upper, middle, lower


def ref_atr(high: list[float], low: list[float], close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    if n + 1 > len(close):
        return out
    tr = [NAN] + [
        max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        for t in range(1, len(close))
    ]
    atr = sum(tr[1 : n + 1]) / n
    out[n] = atr
    for t in range(n + 1, len(close)):
        atr = (atr * (n - 1) + tr[t]) / n
        out[t] = atr
    return out


def ref_vwap(
    high: list[float], low: list[float], close: list[float], volume: list[float], n: int
) -> list[float]:
    out = [NAN] * len(close)
    for t in range(len(close)):
        first = 0 if n == 0 else t - n + 1
        if first < 0:
            continue
        pv = vol = 0.0
        for j in range(first, t + 1):
            pv += (high[j] + low[j] + close[j]) / 3 * volume[j]
            vol += volume[j]
        out[t] = pv / vol if vol > 0 else NAN
    return out


def reference(name: str, a: Columns, p: dict[str, float]) -> dict[str, list[float]]:
    h, lo, c, v = a.high.tolist(), a.low.tolist(), a.close.tolist(), a.volume.tolist()
    if name == "sma":
        return {"value": ref_sma(c, int(p["period"]))}
    if name == "ema":
        return {"value": ref_ema(c, int(p["period"]))}
    if name == "rsi":
        return {"value": ref_rsi(c, int(p["period"]))}
    if name == "macd":
        m, s, hist = ref_macd(c, int(p["fast"]), int(p["slow"]), int(p["signal"]))
        return {"macd": m, "signal": s, "histogram": hist}
    if name == "bollinger":
        u, mid, low = ref_bollinger(c, int(p["period"]), p["stddev"])
        return {"upper": u, "middle": mid, "lower": low}
    if name == "atr":
        return {"value": ref_atr(h, lo, c, int(p["period"]))}
    if name == "vwap":
        return {"value": ref_vwap(h, lo, c, v, int(p["period"]))}
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------
# Data


def random_candles(n: int, seed: int = 7, level: float = 100.0, vol: float = 0.01) -> Columns:
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate(([level], close[:-1]))
    spread = np.abs(rng.normal(0.0, vol * level / 2, n))
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.uniform(0.0, 10.0, n)
    volume[rng.random(n) < 0.05] = 0.0  # some empty minutes
    return Columns(open_, high, low, close, volume)


def constant_candles(n: int, price: float = 42.5) -> Columns:
    col = np.full(n, price)
    return Columns(col, col, col, col, np.ones(n))


def assert_matches(actual: dict[str, np.ndarray], expected: dict[str, list[float]]) -> None:
    assert list(actual) == list(expected)
    for output, values in expected.items():
        got = actual[output]
        assert got.dtype == np.float64
        assert got.shape == (len(values),)
        # NaN exactly where the reference has none; atol covers outputs that cross zero
        # (MACD) at 1e-9 of the price scale.
        np.testing.assert_allclose(got, values, rtol=1e-9, atol=1e-9, err_msg=output)


CASES = [
    ("sma", {"period": 20}),
    ("sma", {"period": 7}),
    ("ema", {"period": 20}),
    ("ema", {"period": 3}),
    ("rsi", {"period": 14}),
    ("rsi", {"period": 5}),
    ("macd", {}),
    ("macd", {"fast": 5, "slow": 13, "signal": 4}),
    ("bollinger", {}),
    ("bollinger", {"period": 10, "stddev": 1.5}),
    ("atr", {"period": 14}),
    ("atr", {"period": 3}),
    ("vwap", {"period": 0}),
    ("vwap", {"period": 30}),
]


def _id(case: tuple[str, dict[str, float]]) -> str:
    return spec_key(*case)


# ---------------------------------------------------------------------------------------------
# Against the reference


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matches_reference_on_random_walk(case: tuple[str, dict[str, float]]) -> None:
    name, params = case
    a = random_candles(1500)
    full = validate_spec(name, params)
    assert_matches(INDICATORS[name].compute(a, full), reference(name, a, full))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matches_reference_at_high_price_with_tiny_moves(
    case: tuple[str, dict[str, float]],
) -> None:
    # Prices near 60,000 moving by cents: where E[x^2] - E[x]^2 or a long cumsum would lose
    # every significant digit of a standard deviation or window sum.
    name, params = case
    a = random_candles(3000, seed=11, level=60_000.0, vol=1e-6)
    full = validate_spec(name, params)
    expected = reference(name, a, full)
    actual = INDICATORS[name].compute(a, full)
    for output, values in expected.items():
        np.testing.assert_allclose(actual[output], values, rtol=1e-9, atol=1e-7, err_msg=output)


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_constant_series(name: str) -> None:
    a = constant_candles(200)
    out = INDICATORS[name].compute(a, validate_spec(name, {}))
    expected_value = {
        "sma": 42.5,
        "ema": 42.5,
        "rsi": 50.0,  # no gains, no losses: neutral by convention
        "atr": 0.0,
        "vwap": 42.5,
    }
    if name in expected_value:
        defined = out["value"][~np.isnan(out["value"])]
        assert len(defined) > 100
        np.testing.assert_allclose(defined, expected_value[name], rtol=1e-12)
    elif name == "macd":
        for series in out.values():
            np.testing.assert_allclose(series[~np.isnan(series)], 0.0, atol=1e-12)
    else:
        for series in out.values():
            np.testing.assert_allclose(series[19:], 42.5, rtol=1e-12)
    assert_matches(out, reference(name, a, validate_spec(name, {})))


@pytest.mark.parametrize("name", sorted(INDICATORS))
@pytest.mark.parametrize("length", [0, 1, 5])
def test_period_longer_than_series_is_all_nan(name: str, length: int) -> None:
    a = random_candles(length) if length else constant_candles(0)
    params = {k: 30.0 for k in INDICATORS[name].params if k != "stddev"}
    if name == "macd":
        params = {"fast": 10.0, "slow": 30.0, "signal": 9.0}
    out = INDICATORS[name].compute(a, validate_spec(name, params))
    assert set(out) == set(INDICATORS[name].outputs)
    for series in out.values():
        assert series.shape == (length,)
        assert np.isnan(series).all()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sma", {"period": 1}),
        ("ema", {"period": 1}),
        ("rsi", {"period": 1}),
        ("macd", {"fast": 1, "slow": 2, "signal": 1}),
        ("bollinger", {"period": 1}),
        ("atr", {"period": 1}),
        ("vwap", {"period": 1}),
    ],
)
def test_period_one(name: str, params: dict[str, float]) -> None:
    a = random_candles(300, seed=3)
    full = validate_spec(name, params)
    out = INDICATORS[name].compute(a, full)
    assert_matches(out, reference(name, a, full))
    if name in ("sma", "ema"):
        np.testing.assert_allclose(out["value"], a.close, rtol=1e-15)
    if name == "bollinger":
        np.testing.assert_array_equal(out["upper"], a.close)


def test_long_ema_period_against_reference() -> None:
    # alpha ~ 2e-4: the recursion needs many doubling steps and the seed fades slowly.
    a = random_candles(20_000, seed=5)
    full = validate_spec("ema", {"period": 5000})
    assert_matches(INDICATORS["ema"].compute(a, full), reference("ema", a, full))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_every_output_is_causal(case: tuple[str, dict[str, float]]) -> None:
    """The value at bar t is bit for bit the same whether or not later bars exist."""
    name, params = case
    a = random_candles(300, seed=13)
    full_params = validate_spec(name, params)
    whole = INDICATORS[name].compute(a, full_params)
    for cut in (1, 2, 30, 151, 299):
        head = INDICATORS[name].compute(a[:cut], full_params)
        for output, values in head.items():
            np.testing.assert_array_equal(values, whole[output][:cut], err_msg=output)


# ---------------------------------------------------------------------------------------------
# Warm-up: values over [warmup + range] equal those over the full history


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ema", {"period": 20}),
        ("ema", {"period": 50}),
        ("rsi", {"period": 14}),
        ("rsi", {"period": 30}),
        ("macd", {}),
        ("macd", {"fast": 8, "slow": 21, "signal": 5}),
        ("atr", {"period": 14}),
        ("atr", {"period": 30}),
        ("sma", {"period": 50}),
        ("bollinger", {"period": 20}),
        ("vwap", {"period": 40}),
    ],
)
def test_warmup_gives_the_full_history_values(name: str, params: dict[str, float]) -> None:
    a = random_candles(5000, seed=21)
    definition = INDICATORS[name]
    full_params = validate_spec(name, params)
    warmup = definition.warmup(full_params)
    first = 4000  # first requested candle
    assert warmup <= first
    full = definition.compute(a, full_params)
    windowed = definition.compute(a[first - warmup :], full_params)
    for output in definition.outputs:
        got = windowed[output][warmup:]
        want = full[output][first:]
        assert not np.isnan(got).any()
        # Price level is ~100: atol 1e-7 is 1e-9 of it (MACD/histogram cross zero).
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7, err_msg=output)


def test_warmup_sizes() -> None:
    assert INDICATORS["sma"].warmup({"period": 20}) == 19
    assert INDICATORS["bollinger"].warmup({}) == 19
    assert INDICATORS["vwap"].warmup({"period": 0}) == 0
    assert INDICATORS["vwap"].warmup({"period": 10}) == 9
    # Recursive ones: the seed's weight (1-alpha)^k falls below 1e-12.
    ema = INDICATORS["ema"].warmup({"period": 20})
    assert (1 - 2 / 21) ** (ema - 19) < 1e-12 <= (1 - 2 / 21) ** (ema - 20)
    rsi = INDICATORS["rsi"].warmup({})
    assert (1 - 1 / 14) ** (rsi - 14) < 1e-12
    assert INDICATORS["macd"].warmup({}) > INDICATORS["ema"].warmup({"period": 26})


def test_cumulative_vwap_is_anchored_at_first_candle() -> None:
    a = random_candles(100)
    out = INDICATORS["vwap"].compute(a[10:], {"period": 0})["value"]
    tp = (a.high[10:] + a.low[10:] + a.close[10:]) / 3
    assert out[-1] == pytest.approx(np.sum(tp * a.volume[10:]) / np.sum(a.volume[10:]))


# ---------------------------------------------------------------------------------------------
# Validation and cache keys


def test_validate_fills_defaults() -> None:
    assert validate_spec("macd", {}) == {"fast": 12.0, "slow": 26.0, "signal": 9.0}
    assert validate_spec("bollinger", {"stddev": 2.5}) == {"period": 20.0, "stddev": 2.5}
    assert validate_spec("vwap", {}) == {"period": 0.0}
    assert all(set(d.outputs) for d in INDICATORS.values())
    assert INDICATORS["macd"].outputs == ("macd", "signal", "histogram")
    assert INDICATORS["bollinger"].outputs == ("upper", "middle", "lower")


@pytest.mark.parametrize(
    ("name", "params", "field", "words"),
    [
        ("smaa", {}, "indicators[2].name", "unknown indicator"),
        ("", {}, "indicators[2].name", "unknown indicator"),
        ("sma", {"length": 5}, "indicators[2].params.length", "unknown parameter"),
        ("sma", {"period": 0}, "indicators[2].params.period", "between 1 and 10000"),
        ("sma", {"period": 10_001}, "indicators[2].params.period", "between"),
        ("ema", {"period": 14.5}, "indicators[2].params.period", "integer"),
        ("rsi", {"period": float("nan")}, "indicators[2].params.period", "finite"),
        ("bollinger", {"stddev": -1}, "indicators[2].params.stddev", "between"),
        ("vwap", {"period": -1}, "indicators[2].params.period", "between 0"),
        ("macd", {"fast": 26, "slow": 12}, "indicators[2].params.fast", "less than slow"),
        ("macd", {"fast": 30}, "indicators[2].params.fast", "less than slow (26)"),
    ],
)
def test_validation_errors_name_the_field(
    name: str, params: dict[str, float], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_spec(name, params, field_prefix="indicators[2]")
    assert caught.value.field == field
    assert words in caught.value.message
    assert str(caught.value).startswith(field + ": ")


def test_spec_key_is_canonical() -> None:
    assert spec_key("macd", {}) == "macd(fast=12,signal=9,slow=26)"
    assert spec_key("macd", {"slow": 26.0, "fast": 12}) == "macd(fast=12,signal=9,slow=26)"
    assert spec_key("bollinger", {"stddev": 2.5}) == "bollinger(period=20,stddev=2.5)"
    assert spec_key("sma", {"period": 20}) == spec_key("sma", {})
    assert spec_key("sma", {"period": 50}) != spec_key("sma", {})
