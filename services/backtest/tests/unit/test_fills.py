"""Known-answer fills on a five-bar series, computed by hand.

bar  open  high  low  close
 0   100   101    99   100
 1   102   105   101   104
 2   103   104    95    96
 3    90    92    88    91   (gaps down)
 4    95   110    94   108
"""

from __future__ import annotations

from typing import Any

import pytest

from tradeplane.backtest.domain import (
    BacktestSettings,
    FillKind,
    FillRule,
    OrderStatus,
    run_event,
)
from tradeplane.strategies import OrderRequest, OrderType, Side, StrategyContext
from tradeplane.strategies.api import Fill

ROWS = [
    (100.0, 101.0, 99.0, 100.0),
    (102.0, 105.0, 101.0, 104.0),
    (103.0, 104.0, 95.0, 96.0),
    (90.0, 92.0, 88.0, 91.0),
    (95.0, 110.0, 94.0, 108.0),
]
BUY1 = OrderRequest(Side.BUY, size=1.0)
SELL1 = OrderRequest(Side.SELL, size=1.0)


def _run(rows_bars: Any, strategy: Any, **settings: Any) -> Any:
    return run_event(strategy, rows_bars(ROWS), BacktestSettings(1000.0, **settings))


def test_a_signal_fills_at_the_next_bars_open(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({0: [BUY1]}))
    (fill,) = result.fills
    assert (fill.bar_index, fill.price, fill.size, fill.fee) == (1, 102.0, 1.0, 0.0)
    assert result.cash.tolist() == [1000.0, 898.0, 898.0, 898.0, 898.0]
    assert result.equity.tolist() == [1000.0, 1002.0, 994.0, 989.0, 1006.0]
    assert result.orders[0].status is OrderStatus.FILLED
    assert (result.orders[0].submit_bar, result.orders[0].update_bar) == (0, 1)


def test_fill_at_close_fills_on_the_signal_bar(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({0: [BUY1], 2: [SELL1]}), fill_rule=FillRule.CLOSE)
    assert [(f.bar_index, f.price) for f in result.fills] == [(0, 100.0), (2, 96.0)]
    assert result.cash.tolist() == [900.0, 900.0, 996.0, 996.0, 996.0]
    (trade,) = result.trades
    assert (trade.entry_price, trade.exit_price, trade.pnl, trade.open) == (
        100.0,
        96.0,
        -4.0,
        False,
    )
    assert trade.bars_held(4) == 2


def test_commission_is_fixed_plus_basis_points(rows_bars: Any, scripted: Any) -> None:
    order = OrderRequest(Side.BUY, size=2.0)
    result = _run(rows_bars, scripted({0: [order]}), commission_fixed=1.0, commission_bps=10.0)
    (fill,) = result.fills
    assert fill.fee == pytest.approx(1.0 + 204.0 * 0.001)
    assert result.cash[1] == pytest.approx(1000.0 - 204.0 - 1.204)
    assert result.statistics.fees_paid == pytest.approx(1.204)


def test_slippage_moves_market_fills_against_the_trader(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({0: [BUY1], 3: [SELL1]}), slippage_bps=50.0)
    buy, sell = result.fills
    assert buy.price == pytest.approx(102.0 * 1.005)
    assert sell.price == pytest.approx(95.0 * 0.995)
    (trade,) = result.trades
    assert trade.pnl == pytest.approx(95.0 * 0.995 - 102.0 * 1.005)


def test_limit_buy_fills_at_its_price_once_the_low_reaches_it(
    rows_bars: Any, scripted: Any
) -> None:
    limit = OrderRequest(Side.BUY, OrderType.LIMIT, size=1.0, limit_price=97.0)
    result = _run(rows_bars, scripted({0: [limit]}), slippage_bps=50.0)
    (fill,) = result.fills
    assert (fill.bar_index, fill.price) == (2, 97.0)  # no slippage on a resting limit


def test_limit_buy_gapped_through_fills_at_the_better_open(rows_bars: Any, scripted: Any) -> None:
    limit = OrderRequest(Side.BUY, OrderType.LIMIT, size=1.0, limit_price=93.0)
    result = _run(rows_bars, scripted({0: [limit]}))
    (fill,) = result.fills
    assert (fill.bar_index, fill.price) == (3, 90.0)


def test_limit_sell_fills_when_the_high_reaches_it(rows_bars: Any, scripted: Any) -> None:
    sell = OrderRequest(Side.SELL, OrderType.LIMIT, size=1.0, limit_price=109.0)
    result = _run(rows_bars, scripted({0: [BUY1], 1: [sell]}))
    assert [(f.bar_index, f.price) for f in result.fills] == [(1, 102.0), (4, 109.0)]


def test_stop_buy_triggers_within_the_range(rows_bars: Any, scripted: Any) -> None:
    stop = OrderRequest(Side.BUY, OrderType.STOP, size=1.0, stop_price=105.0)
    result = _run(rows_bars, scripted({0: [stop]}), slippage_bps=10.0)
    (fill,) = result.fills
    assert fill.bar_index == 1
    assert fill.price == pytest.approx(105.0 * 1.001)


def test_stop_sell_gapped_through_fills_at_the_worse_open(rows_bars: Any, scripted: Any) -> None:
    stop = OrderRequest(Side.SELL, OrderType.STOP, size=1.0, stop_price=92.0)
    result = _run(rows_bars, scripted({0: [BUY1], 1: [stop]}))
    assert [(f.bar_index, f.price) for f in result.fills] == [(1, 102.0), (3, 90.0)]
    assert result.trades[0].pnl == -12.0


def test_stop_limit_fills_at_the_trigger_when_within_the_limit(
    rows_bars: Any, scripted: Any
) -> None:
    order = OrderRequest(
        Side.BUY, OrderType.STOP_LIMIT, size=1.0, stop_price=104.0, limit_price=104.5
    )
    result = _run(rows_bars, scripted({0: [order]}))
    (fill,) = result.fills
    assert (fill.bar_index, fill.price) == (1, 104.0)


def test_stop_limit_gapped_past_its_limit_rests_as_a_limit(rows_bars: Any, scripted: Any) -> None:
    order = OrderRequest(
        Side.SELL, OrderType.STOP_LIMIT, size=1.0, stop_price=92.0, limit_price=91.0
    )
    result = _run(rows_bars, scripted({0: [BUY1], 1: [order]}))
    # Bar 3 opens at 90: triggered below the 91 limit, so it rests; bar 4 trades through 91.
    assert [(f.bar_index, f.price) for f in result.fills] == [(1, 102.0), (4, 95.0)]


def test_quote_size_spends_that_much_cash_including_fees(rows_bars: Any, scripted: Any) -> None:
    order = OrderRequest(Side.BUY, quote_size=500.0)
    result = _run(rows_bars, scripted({0: [order]}), commission_fixed=1.0, commission_bps=10.0)
    (fill,) = result.fills
    assert fill.size == pytest.approx(499.0 / (102.0 * 1.001))
    assert result.cash[1] == pytest.approx(500.0, abs=1e-9)


def test_fractional_sizes_are_kept(rows_bars: Any, scripted: Any) -> None:
    order = OrderRequest(Side.BUY, size=0.0125)
    result = _run(rows_bars, scripted({0: [order]}))
    assert result.position[1] == 0.0125
    assert result.cash[1] == pytest.approx(1000.0 - 0.0125 * 102.0)


def test_orders_beyond_cash_or_position_are_rejected(rows_bars: Any, scripted: Any) -> None:
    too_big = OrderRequest(Side.BUY, size=20.0)
    result = _run(rows_bars, scripted({0: [too_big], 1: [SELL1]}))
    assert [o.status for o in result.orders] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert result.orders[0].note == "insufficient cash"
    assert result.orders[1].note == "sell larger than the position"
    assert result.fills == []
    assert result.equity.tolist() == [1000.0] * 5


def test_shorts_when_allowed(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({0: [SELL1], 3: [BUY1]}), allow_short=True)
    assert result.position.tolist() == [0.0, -1.0, -1.0, -1.0, 0.0]
    (trade,) = result.trades
    assert (trade.side, trade.pnl) == (Side.SELL, 102.0 - 95.0)


def test_cancel_stops_a_working_order(rows_bars: Any, scripted: Any) -> None:
    limit = OrderRequest(Side.BUY, OrderType.LIMIT, size=1.0, limit_price=50.0)
    result = _run(rows_bars, scripted({0: [limit]}, cancels={2: ["o-1"]}))
    (order,) = result.orders
    assert (order.status, order.update_bar) == (OrderStatus.CANCELED, 2)


def test_round_trip_trade_and_pnl(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({0: [BUY1], 3: [SELL1]}), commission_fixed=0.5)
    (trade,) = result.trades
    assert (trade.entry_bar, trade.exit_bar, trade.entry_price, trade.exit_price) == (1, 4, 102, 95)
    assert trade.fees == 1.0
    assert trade.pnl == -8.0
    assert trade.return_fraction == pytest.approx(-8.0 / 102.0)
    assert [f.kind for f in result.fills] == [FillKind.ENTRY, FillKind.EXIT]
    assert result.playback.state_at(4).realized_pnl == -7.0


def test_partial_exits_and_average_entry(rows_bars: Any, scripted: Any) -> None:
    half = OrderRequest(Side.SELL, size=0.5)
    result = _run(
        rows_bars,
        scripted({0: [BUY1], 1: [BUY1], 2: [half], 3: [OrderRequest(Side.SELL, size=1.5)]}),
    )
    # Buys at 102 (bar 1) and 103 (bar 2): average 102.5. Sells 0.5 at 90, 1.5 at 95.
    assert result.position.tolist() == [0.0, 1.0, 2.0, 1.5, 0.0]
    state = result.playback.state_at(3)
    assert state.average_entry_price == 102.5
    assert state.realized_pnl == pytest.approx(0.5 * (90 - 102.5))
    assert state.unrealized_pnl == pytest.approx(1.5 * (91 - 102.5))
    (trade,) = result.trades
    assert trade.pnl == pytest.approx(0.5 * (90 - 102.5) + 1.5 * (95 - 102.5))
    assert trade.entry_size == 2.0


def test_on_fill_sees_the_last_closed_bar_not_the_fill_bar(rows_bars: Any, scripted: Any) -> None:
    seen: list[tuple[int, float, float]] = []

    def hook(ctx: StrategyContext, fill: Fill) -> None:
        seen.append((ctx.bar_index, ctx.price("close"), ctx.position))

    _run(rows_bars, scripted({0: [BUY1]}, on_fill_hook=hook))
    assert seen == [(0, 100.0, 1.0)]  # bar 1's close (104) is not known at its open


def test_orders_placed_in_on_fill_work_from_the_next_bar(rows_bars: Any, scripted: Any) -> None:
    def hook(ctx: StrategyContext, fill: Fill) -> None:
        if fill.side is Side.BUY:
            ctx.submit(OrderRequest(Side.SELL, OrderType.STOP, size=1.0, stop_price=98.0))

    result = _run(rows_bars, scripted({0: [BUY1]}, on_fill_hook=hook))
    assert result.orders[1].submit_bar == 1
    # Bar 1's low (101) never reached 98; bar 2's low (95) did: fills at the 98 stop.
    assert [(f.bar_index, f.price) for f in result.fills] == [(1, 102.0), (2, 98.0)]


def test_a_signal_on_the_last_bar_stays_working(rows_bars: Any, scripted: Any) -> None:
    result = _run(rows_bars, scripted({4: [BUY1]}))
    assert result.fills == []
    assert result.orders[0].status is OrderStatus.OPEN
    assert [o.order_id for o in result.playback.state_at(4).open_orders] == ["o-1"]
