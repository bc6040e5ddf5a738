"""The registry and the built-in strategies' declarations."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import (
    OrderRequest,
    OrderType,
    Side,
    create_strategy,
    strategy_definitions,
    strategy_names,
)

BUILTIN = {
    "bollinger_breakout",
    "dca",
    "ema_crossover",
    "grid",
    "rsi_mean_reversion",
    "sma_crossover",
}


def test_registry_lists_the_built_in_strategies_by_name() -> None:
    assert set(strategy_names()) >= BUILTIN
    definitions = {d.name: d for d in strategy_definitions()}
    assert [d.name for d in strategy_definitions()] == sorted(definitions)
    sma = definitions["sma_crossover"]
    assert sma.display_name == "SMA crossover"
    assert sma.indicators == ("sma",)
    assert sma.vectorised
    assert [p.name for p in sma.parameters] == ["fast_period", "slow_period", "size_fraction"]
    assert definitions["bollinger_breakout"].indicators == ("bollinger",)
    assert not definitions["grid"].vectorised
    for definition in definitions.values():
        assert len(definition.description) > 80, f"{definition.name} needs a real description"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_strategy_runs_with_its_defaults(name: str) -> None:
    strategy = create_strategy(name)
    assert strategy.name == name
    for spec in strategy.indicators():
        spec.resolved_params()


def test_parameters_are_validated_when_creating() -> None:
    strategy = create_strategy("sma_crossover", {"fast_period": "5", "slow_period": "50"})
    assert strategy.params["fast_period"] == 5
    assert [s.params for s in strategy.indicators()] == [{"period": 5}, {"period": 50}]
    with pytest.raises(InvalidArgument) as caught:
        create_strategy("sma_crossover", {"fast_period": "50", "slow_period": "20"})
    assert caught.value.field == "params.fast_period"
    with pytest.raises(InvalidArgument) as caught:
        create_strategy("rsi_mean_reversion", {"oversold": "60"})
    assert caught.value.field == "params.oversold"
    with pytest.raises(InvalidArgument) as caught:
        create_strategy("no_such_strategy")
    assert caught.value.field == "strategy"


def test_crossover_signals_mark_the_crossing_bars() -> None:
    strategy = create_strategy("sma_crossover", {"fast_period": 2, "slow_period": 3})
    arrays = {
        "fast": np.array([np.nan, 1.0, 1.0, 4.0, 1.0, 2.0]),
        "slow": np.array([np.nan, np.nan, 2.0, 2.0, 2.0, 2.0]),
    }
    signals = strategy.signals(arrays, strategy.params)
    assert signals is not None
    entries, exits = signals
    assert entries.tolist() == [False, False, False, True, False, False]
    assert exits.tolist() == [False, False, False, False, True, False]


def test_rsi_needs_the_event_path_with_a_stop_loss() -> None:
    strategy = create_strategy("rsi_mean_reversion", {"stop_loss_pct": 2})
    assert strategy.signals({"rsi": np.zeros(3)}, strategy.params) is None


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"side": Side.BUY}, "exactly one"),
        ({"side": Side.BUY, "size": 1.0, "quote_size": 1.0}, "exactly one"),
        ({"side": Side.BUY, "size": 0.0}, "positive"),
        ({"side": Side.BUY, "size": float("nan")}, "positive"),
        ({"side": Side.BUY, "type": OrderType.LIMIT, "size": 1.0}, "limit_price"),
        ({"side": Side.BUY, "type": OrderType.STOP, "size": 1.0}, "stop_price"),
        ({"side": Side.BUY, "size": 1.0, "limit_price": 5.0}, "takes no limit_price"),
        ({"side": Side.BUY, "type": OrderType.LIMIT, "quote_size": 1.0}, "market orders"),
    ],
)
def test_malformed_orders_are_refused(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        OrderRequest(**kwargs)  # type: ignore[arg-type]


def test_order_requests_are_frozen_values() -> None:
    """OrderRequest's hand-written __init__ keeps the dataclass behaviour."""
    request = OrderRequest(
        Side.SELL, OrderType.STOP_LIMIT, size=1.5, limit_price=2.0, stop_price=2.1, reason="r"
    )
    assert (request.side, request.type, request.size, request.quote_size) == (
        Side.SELL,
        OrderType.STOP_LIMIT,
        1.5,
        None,
    )
    assert (request.limit_price, request.stop_price, request.reason) == (2.0, 2.1, "r")
    same = OrderRequest(
        side=Side.SELL,
        type=OrderType.STOP_LIMIT,
        size=1.5,
        limit_price=2.0,
        stop_price=2.1,
        reason="r",
    )
    assert request == same and hash(request) == hash(same)
    assert pickle.loads(pickle.dumps(request)) == request
    assert dataclasses.replace(request, size=3.0).size == 3.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.size = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="order amount must be positive"):
        dataclasses.replace(request, size=-1.0)
    assert OrderRequest(Side.BUY, quote_size=10.0).type is OrderType.MARKET
