"""The state at any instant: nearest snapshot + a short replay equals a full replay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tradeplane.backtest.domain.playback as playback_module
from tradeplane.backtest.domain import BacktestSettings, FillRule, run_event
from tradeplane.strategies import create_strategy

CASES = [
    ("grid", {"levels": 8, "spacing_pct": 0.25, "level_cash": "100"}),
    ("rsi_mean_reversion", {"stop_loss_pct": 0.4, "rsi_period": 5}),
    ("dca", {"every_bars": 25, "quote_amount": "40", "take_profit_pct": 1.5}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("fill_rule", list(FillRule))
def test_state_at_t_equals_a_run_truncated_after_t(
    walk: Any, name: str, params: dict[str, object], fill_rule: FillRule
) -> None:
    bars = walk(1500, 31)
    settings = BacktestSettings(
        2000.0, commission_fixed=0.05, commission_bps=4.0, fill_rule=fill_rule, snapshot_every=64
    )
    result = run_event(create_strategy(name, params), bars, settings)
    assert len(result.fills) > 10
    rng = np.random.default_rng(1)
    for t in [0, 63, 64, 127, 1499, *rng.integers(0, 1500, 12).tolist()]:
        state = result.playback.state_at(t, recent_fills=5)
        # A full replay to t: the same strategy run on the bars up to t only.
        replay = run_event(create_strategy(name, params), bars.head(t + 1), settings)
        assert state.cash == replay.cash[-1] == result.cash[t]
        assert state.quantity == replay.position[-1] == result.position[t]
        assert state.equity == replay.equity[-1]
        assert state.drawdown == replay.drawdown[-1]
        snapshot = replay.playback.state_at(t)
        assert state.realized_pnl == snapshot.realized_pnl
        assert state.average_entry_price == snapshot.average_entry_price
        working = [o.order_id for o in replay.orders if o.status.value == "open"]
        assert [o.order_id for o in state.open_orders] == working
        assert list(state.recent_fills) == replay.fills[-5:][::-1]
        assert state.time == bars.time[t] and state.mark_price == bars.close[t]


def test_at_most_k_bars_are_replayed(walk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = walk(3000, 32)
    settings = BacktestSettings(2000.0, snapshot_every=100)
    result = run_event(create_strategy("grid", {"spacing_pct": 0.2}), bars, settings)
    replayed: list[int] = []
    original = playback_module._replay
    monkeypatch.setattr(
        playback_module,
        "_replay",
        lambda portfolio, fill: (replayed.append(fill.bar_index), original(portfolio, fill)),
    )
    for t in (150, 999, 2950):
        replayed.clear()
        result.playback.state_at(t)
        snapshot_bar = (t + 1) // 100 * 100 - 1
        assert all(snapshot_bar < bar <= t for bar in replayed)
    assert len(result.playback._snapshots.bars) == 30


def test_lookup_by_time(walk: Any) -> None:
    bars = walk(300, 33)
    result = run_event(create_strategy("dca", {"every_bars": 10}), bars, BacktestSettings(900.0))
    playback = result.playback
    before = playback.state_at_time(int(bars.time[0]) - 1)
    assert (before.bar_index, before.cash, before.equity, before.quantity) == (-1, 900.0, 900.0, 0)
    assert before.open_orders == () and before.recent_fills == ()
    between = playback.state_at_time(int(bars.time[42]) + 30)
    assert between.bar_index == 42
    assert playback.state_at_time(int(bars.time[-1]) + 10**6).bar_index == 299
    with pytest.raises(IndexError):
        playback.state_at(300)
