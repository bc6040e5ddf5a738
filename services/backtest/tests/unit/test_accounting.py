"""Cash, positions and equity stay consistent with the fills at every bar."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tradeplane.backtest.domain import BacktestSettings, FillRule, run_event
from tradeplane.strategies import Side, create_strategy

STRATEGIES = [
    ("grid", {"levels": 6, "spacing_pct": 0.3, "level_cash": "150"}),
    ("dca", {"every_bars": 50, "quote_amount": "100", "take_profit_pct": 2}),
    ("rsi_mean_reversion", {"stop_loss_pct": 0.5, "size_fraction": 0.7}),
    ("bollinger_breakout", {}),
]


@pytest.mark.parametrize(("name", "params"), STRATEGIES)
@pytest.mark.parametrize("fill_rule", list(FillRule))
def test_cash_plus_position_times_close_is_equity_at_every_bar(
    walk: Any, name: str, params: dict[str, object], fill_rule: FillRule
) -> None:
    bars = walk(3000, 11)
    settings = BacktestSettings(
        5000.0, commission_fixed=0.1, commission_bps=5.0, slippage_bps=2.0, fill_rule=fill_rule
    )
    result = run_event(create_strategy(name, params), bars, settings)
    assert len(result.fills) > 4

    # Cash and position recomputed independently from the fill list.
    signed = np.zeros(len(bars))
    flows = np.zeros(len(bars))
    for fill in result.fills:
        sign = 1.0 if fill.side is Side.BUY else -1.0
        signed[fill.bar_index] += sign * fill.size
        flows[fill.bar_index] -= sign * fill.size * fill.price + fill.fee
    np.testing.assert_allclose(result.position, np.cumsum(signed), atol=1e-9)
    np.testing.assert_allclose(result.cash, 5000.0 + np.cumsum(flows), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(result.equity, result.cash + result.position * bars.close)
    assert (result.cash > -1e-6).all(), "no borrowing without allow_short"
    assert (result.position > -1e-12).all()

    fees = sum(f.fee for f in result.fills)
    assert result.statistics.fees_paid == pytest.approx(fees)
    assert sum(t.fees for t in result.trades) == pytest.approx(fees)
    # Realised P&L after fees of the closed trades, plus the open one marked to the last
    # close, is the whole change in equity.
    assert sum(t.pnl for t in result.trades) == pytest.approx(result.equity[-1] - 5000.0)
