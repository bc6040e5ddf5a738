"""The strategy side of indicators: spec keys, refusals, and causality through the adapter.

The maths itself is tested against textbook loops in libs/indicators/tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeplane.strategies import IndicatorSpec, compute_all, indicator_keys
from tradeplane.strategies.indicators import INDICATOR_NAMES


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


def test_indicator_keys_are_the_computed_keys_in_declaration_order() -> None:
    """The order of a context's `indicator_values`, known without computing anything."""
    specs = tuple(IndicatorSpec(f"k{i}", name) for i, name in enumerate(INDICATOR_NAMES))
    keys = indicator_keys(specs)
    assert keys == tuple(compute_all(specs, _columns(60)))
    assert IndicatorSpec("bb", "bollinger").output_keys() == ("bb.upper", "bb.middle", "bb.lower")


def test_unknown_indicators_and_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown indicator"):
        IndicatorSpec("x", "kama")
    with pytest.raises(ValueError, match="unknown parameters"):
        IndicatorSpec("x", "sma", {"length": 3})
    with pytest.raises(ValueError, match="both read as"):
        compute_all((IndicatorSpec("a", "sma"), IndicatorSpec("a", "ema")), _columns(30))
