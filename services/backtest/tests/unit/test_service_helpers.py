"""Pure helpers of the service layer: decimal formatting, grid axes, A/B alignment, specs."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tradeplane.backtest.service_layer.models import RunSpec, SweepSpec
from tradeplane.backtest.service_layer.results import _aligned_equity
from tradeplane.backtest.service_layer.rows import num, nums
from tradeplane.backtest.service_layer.sweeps import axis_values
from tradeplane.runtime.errors import InvalidArgument


def test_num_is_an_exact_plain_decimal() -> None:
    assert num(0.1) == "0.1"
    assert num(1e-7) == "0.0000001"
    assert Decimal(num(12345.678)) == Decimal(repr(12345.678))
    assert num(float("nan")) == "" and num(None) == ""


def test_nums_is_num_over_a_column() -> None:
    edge = [0.0, -0.0, 0.1, 1e-4, 9.99e-5, -1e-7, 1e15, 1e16, -3.5e20, 123456.789, 5e-324]
    edge += [float("nan"), float("inf"), float("-inf")]
    walk = np.random.default_rng(7).normal(0, 1, 10_000) * np.logspace(-12, 20, 10_000)
    for column in (np.array(edge), walk):
        assert nums(column) == [num(float(x)) for x in column]


def test_axis_values_explicit_or_range() -> None:
    assert axis_values(0, "p", [" 3", "5 "], "", "", "") == ["3", "5"]
    assert axis_values(0, "p", [], "10", "30", "10") == ["10", "20", "30"]
    assert axis_values(0, "p", [], "0.5", "1.0", "0.25") == ["0.50", "0.75", "1.00"]
    with pytest.raises(InvalidArgument) as info:
        axis_values(1, "p", [], "1", "5", "0")
    assert info.value.field == "config.grid.axes[1].step"
    with pytest.raises(InvalidArgument) as info:
        axis_values(0, "p", [], "5", "1", "1")
    assert info.value.field == "config.grid.axes[0].stop"
    with pytest.raises(InvalidArgument) as info:
        axis_values(2, "", ["1"], "", "", "")
    assert info.value.field == "config.grid.axes[2].name"


def test_aligned_equity_marks_missing_bars_empty() -> None:
    a = (np.array([0, 60, 120], dtype=np.int64), np.array([1.0, 2.0, 3.0]))
    b = (np.array([60, 120, 180], dtype=np.int64), np.array([5.0, 6.0, 7.0]))
    assert _aligned_equity(a, b, 10) == [
        (0, "1.0", ""),
        (60, "2.0", "5.0"),
        (120, "3.0", "6.0"),
        (180, "", "7.0"),
    ]
    assert len(_aligned_equity(a, b, 3)) == 3
    assert _aligned_equity(None, None, 10) == []


def test_specs_round_trip_through_json() -> None:
    spec = RunSpec(
        "sma_crossover",
        {"fast_period": "5"},
        "BTC-USD",
        "1m",
        0,
        3600,
        Decimal("10000.50"),
        commission_bps=Decimal("10"),
        fill_rule="close",
    )
    assert RunSpec.from_json(spec.to_json()) == spec
    sweep = SweepSpec(spec, {"fast_period": ["3", "5"]}, "max_drawdown", 2)
    assert SweepSpec.from_json(sweep.to_json()) == sweep
