"""Optuna suggestions for search sweeps: inside the declared space, deterministic per seed."""

from __future__ import annotations

import pytest

from tradeplane.backtest.service_layer.search import search_axis, suggest
from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import strategy_class

PARAMS = {p.name: p for p in strategy_class("bollinger_breakout").parameters}


def _axes() -> dict[str, dict[str, object]]:
    return {
        "period": search_axis(0, PARAMS["period"], [], "5", "50", "5"),
        "stddev": search_axis(1, PARAMS["stddev"], [], "1.0", "3.0", ""),
        "size_fraction": search_axis(2, PARAMS["size_fraction"], ["0.5", "1.0"], "", "", ""),
    }


def test_suggestions_stay_in_the_space_and_repeat_per_seed() -> None:
    axes = _axes()
    first = suggest(axes, [], maximize=True, seed=1, count=5)
    assert first == suggest(axes, [], maximize=True, seed=1, count=5)
    history = [(params, float(i)) for i, params in enumerate(first)]
    later = suggest(axes, history, maximize=True, seed=2, count=3)
    for params in [*first, *later]:
        assert int(params["period"]) % 5 == 0 and 5 <= int(params["period"]) <= 50
        assert 1.0 <= float(params["stddev"]) <= 3.0
        assert params["size_fraction"] in ("0.5", "1.0")
        strategy_class("bollinger_breakout")(params)  # valid parameters


def test_axes_are_checked_against_the_parameter() -> None:
    with pytest.raises(InvalidArgument) as info:
        search_axis(0, PARAMS["period"], [], "1", "50", "1")  # period >= 2
    assert info.value.field == "params.period"
    with pytest.raises(InvalidArgument) as info:
        search_axis(3, PARAMS["stddev"], [], "3", "1", "")
    assert info.value.field == "config.search.axes[3].stop"
