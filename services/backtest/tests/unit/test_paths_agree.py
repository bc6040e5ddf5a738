"""The vectorised fill simulation and the bar-by-bar engine give identical runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tradeplane.backtest.domain import (
    BacktestResult,
    BacktestSettings,
    FillRule,
    run_backtest,
    run_event,
    run_vectorised,
)
from tradeplane.strategies import create_strategy

CASES = [
    ("sma_crossover", {"fast_period": 10, "slow_period": 30}),
    ("sma_crossover", {"fast_period": 3, "slow_period": 7, "size_fraction": 0.5}),
    ("ema_crossover", {"fast_period": 5, "slow_period": 20}),
    ("bollinger_breakout", {"period": 20, "stddev": 1.5}),
    ("rsi_mean_reversion", {"rsi_period": 7, "oversold": 35, "exit_level": 55}),
]
SETTINGS = [
    BacktestSettings(10_000.0),
    BacktestSettings(10_000.0, commission_fixed=0.25, commission_bps=7.5, slippage_bps=3.0),
    BacktestSettings(10_000.0, commission_bps=10.0, fill_rule=FillRule.CLOSE),
]


def _order_fields(result: BacktestResult) -> list[tuple[Any, ...]]:
    return [
        (
            o.order_id,
            o.request.side,
            o.request.size,
            o.request.quote_size,
            o.submit_bar,
            o.update_bar,
            o.status,
            o.filled_size,
            o.average_fill_price,
            o.fees,
        )
        for o in result.orders
    ]


def _fill_fields(result: BacktestResult) -> list[tuple[Any, ...]]:
    return [f[:9] for f in result.fills]  # everything but the free-text reason


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("settings", SETTINGS, ids=["no-fees", "fees-slippage", "close"])
@pytest.mark.parametrize("seed", [1, 2])
def test_bar_by_bar_equals_vectorised(
    walk: Any, name: str, params: dict[str, object], settings: BacktestSettings, seed: int
) -> None:
    bars = walk(4000, seed)
    event = run_event(create_strategy(name, params), bars, settings)
    vector = run_vectorised(create_strategy(name, params), bars, settings)
    assert vector is not None and vector.vectorised and not event.vectorised
    assert len(event.trades) > 5, "the scenario should trade"
    assert _fill_fields(vector) == _fill_fields(event)
    assert _order_fields(vector) == _order_fields(event)
    assert [vars_of(t) for t in vector.trades] == [vars_of(t) for t in event.trades]
    np.testing.assert_array_equal(vector.cash, event.cash)
    np.testing.assert_array_equal(vector.position, event.position)
    np.testing.assert_array_equal(vector.equity, event.equity)
    assert vector.statistics == event.statistics
    for t in (0, 1234, 3999):
        a, b = vector.playback.state_at(t), event.playback.state_at(t)
        assert (a.cash, a.quantity, a.realized_pnl, a.average_entry_price) == (
            b.cash,
            b.quantity,
            b.realized_pnl,
            b.average_entry_price,
        )
        assert [o.order_id for o in a.open_orders] == [o.order_id for o in b.open_orders]


def vars_of(trade: Any) -> dict[str, Any]:
    return {k: getattr(trade, k) for k in trade.__slots__}


def test_run_backtest_picks_the_vectorised_path_only_when_it_can(walk: Any) -> None:
    bars = walk(500, 4)
    settings = BacktestSettings(1000.0)
    assert run_backtest(create_strategy("sma_crossover"), bars, settings).vectorised
    assert not run_backtest(create_strategy("grid"), bars, settings).vectorised
    with_stop = create_strategy("rsi_mean_reversion", {"stop_loss_pct": 1})
    assert not run_backtest(with_stop, bars, settings).vectorised
    forced = run_backtest(create_strategy("sma_crossover"), bars, settings, vectorised=False)
    assert not forced.vectorised


def test_progress_is_reported_to_the_end(walk: Any) -> None:
    bars = walk(300, 5)
    seen: list[tuple[int, int]] = []
    run_backtest(
        create_strategy("grid"),
        bars,
        BacktestSettings(1000.0),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (300, 300)


def test_an_account_too_small_for_its_fees_agrees_too(walk: Any) -> None:
    """Rejections (entries that cannot pay the fixed fee) take the Broker route, same result."""
    bars = walk(3000, 9)
    settings = BacktestSettings(100.0, commission_fixed=9.0, commission_bps=50.0)
    params = {"fast_period": 3, "slow_period": 8}
    event = run_event(create_strategy("sma_crossover", params), bars, settings)
    vector = run_vectorised(create_strategy("sma_crossover", params), bars, settings)
    assert vector is not None
    assert any(o.status.value == "rejected" for o in event.orders)
    assert _fill_fields(vector) == _fill_fields(event)
    assert _order_fields(vector) == _order_fields(event)
    np.testing.assert_array_equal(vector.equity, event.equity)
    assert vector.statistics == event.statistics
