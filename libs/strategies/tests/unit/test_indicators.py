"""Indicator maths against plain textbook loops, and causality (no value uses later bars)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeplane.strategies import IndicatorSpec, compute_all
from tradeplane.strategies.indicators import INDICATOR_NAMES, bollinger, ema, rsi, sma


def _prices(n: int = 300, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def _columns(n: int = 300) -> dict[str, np.ndarray]:
    close = _prices(n)
    return {
        "open": close * 0.999,
        "high": close * 1.01,
        "low": close * 0.99,
        "close": close,
        "volume": np.linspace(1, 2, n),
    }


def test_sma_equals_the_window_mean() -> None:
    x = _prices()
    out = sma(x, 10)
    assert np.isnan(out[:9]).all()
    for t in range(9, len(x)):
        assert out[t] == pytest.approx(sum(x[t - 9 : t + 1]) / 10, rel=1e-12)


def test_ema_is_seeded_with_the_sma_then_recursive() -> None:
    x = _prices()
    out = ema(x, 5)
    alpha, y = 2 / 6, float(np.mean(x[:5]))
    assert np.isnan(out[:4]).all()
    assert out[4] == pytest.approx(y, rel=1e-12)
    for t in range(5, len(x)):
        y = alpha * x[t] + (1 - alpha) * y
        assert out[t] == pytest.approx(y, rel=1e-10)


def test_rsi_uses_wilder_smoothing() -> None:
    x = _prices()
    out = rsi(x, 14)
    delta = np.diff(x)
    gain = float(np.mean(np.maximum(delta[:14], 0)))
    loss = float(np.mean(np.maximum(-delta[:14], 0)))
    assert np.isnan(out[:14]).all()
    for t in range(14, len(x)):
        if t > 14:
            gain = (gain * 13 + max(delta[t - 1], 0)) / 14
            loss = (loss * 13 + max(-delta[t - 1], 0)) / 14
        assert out[t] == pytest.approx(100 * gain / (gain + loss), rel=1e-9)


def test_bollinger_uses_the_population_deviation() -> None:
    x = _prices()
    upper, middle, lower = bollinger(x, 20, 2.0)
    for t in range(19, len(x)):
        window = x[t - 19 : t + 1]
        assert middle[t] == pytest.approx(window.mean(), rel=1e-12)
        assert upper[t] == pytest.approx(window.mean() + 2 * window.std(), rel=1e-12)
        assert lower[t] == pytest.approx(window.mean() - 2 * window.std(), rel=1e-12)


@pytest.mark.parametrize("name", INDICATOR_NAMES)
def test_every_indicator_is_causal(name: str) -> None:
    """The value at bar t is the same whether or not later bars exist."""
    full = _columns(300)
    spec = IndicatorSpec("x", name)
    whole = spec.compute(full)
    for cut in (1, 2, 30, 151):
        head = spec.compute({k: v[:cut].copy() for k, v in full.items()})
        for key, values in head.items():
            np.testing.assert_array_equal(values, whole[key][:cut])


def test_spec_keys_name_single_and_multiple_outputs() -> None:
    values = compute_all(
        (IndicatorSpec("fast", "sma", {"period": 3}), IndicatorSpec("bb", "bollinger")),
        _columns(50),
    )
    assert set(values) == {"fast", "bb.upper", "bb.middle", "bb.lower"}
    assert all(len(v) == 50 for v in values.values())
    assert math.isnan(values["fast"][1]) and not math.isnan(values["fast"][2])


def test_unknown_indicators_and_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown indicator"):
        IndicatorSpec("x", "kama")
    with pytest.raises(ValueError, match="unknown parameters"):
        IndicatorSpec("x", "sma", {"length": 3})
    with pytest.raises(ValueError, match="both read as"):
        compute_all((IndicatorSpec("a", "sma"), IndicatorSpec("a", "ema")), _columns(30))
