"""Statistics against hand computation on a three-bar daily equity curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeplane.backtest.domain import compute_statistics
from tradeplane.backtest.domain.statistics import drawdown

DAY = 86_400


def test_statistics_match_the_hand_computation() -> None:
    # Initial 100; closes at 110, 99, 121 on three consecutive days.
    equity = np.array([110.0, 99.0, 121.0])
    time = np.array([0, DAY, 2 * DAY])
    dd = drawdown(equity, 100.0)
    assert dd.tolist() == pytest.approx([0.0, 0.1, 0.0])
    closed = np.array([10.0, -4.0, 6.0])  # P&L after fees of the closed round trips
    stats = compute_statistics(
        equity, dd, np.array([1.0, 0.0, 2.0]), time, 100.0, closed, 3.5, float(DAY)
    )

    returns = [0.10, 99 / 110 - 1, 121 / 99 - 1]
    mean = sum(returns) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    downside = math.sqrt((99 / 110 - 1) ** 2 / 3)
    annual = 1.21 ** (365 / 3) - 1
    assert stats.total_return == pytest.approx(0.21)
    assert stats.annualized_return == pytest.approx(annual)
    assert stats.sharpe == pytest.approx(mean / std * math.sqrt(365))
    assert stats.sortino == pytest.approx(mean / downside * math.sqrt(365))
    assert stats.max_drawdown == pytest.approx(0.1)
    assert stats.calmar == pytest.approx(annual / 0.1)
    # Peak at day 0 (110), back above it on day 2.
    assert stats.max_drawdown_duration == 2 * DAY
    assert stats.win_rate == pytest.approx(2 / 3)
    assert stats.profit_factor == pytest.approx(16 / 4)
    assert stats.exposure == pytest.approx(2 / 3)
    assert stats.trade_count == 3
    assert (stats.fees_paid, stats.final_equity, stats.bar_count) == (3.5, 121.0, 3)


def test_an_unrecovered_drawdown_lasts_to_the_end_and_starts_at_the_initial_peak() -> None:
    equity = np.array([95.0, 90.0, 97.0, 99.0])
    time = np.array([0, 60, 120, 180])
    dd = drawdown(equity, 100.0)
    stats = compute_statistics(equity, dd, np.zeros(4), time, 100.0, np.array([]), 0.0, 60.0)
    assert stats.max_drawdown == pytest.approx(0.1)
    assert stats.max_drawdown_duration == 180
    assert stats.exposure == 0.0
    assert (stats.win_rate, stats.profit_factor, stats.trade_count) == (0.0, 0.0, 0)


def test_a_flat_run_has_zero_ratios() -> None:
    equity = np.full(5, 100.0)
    stats = compute_statistics(
        equity,
        drawdown(equity, 100.0),
        np.zeros(5),
        np.arange(5) * 60,
        100.0,
        np.array([]),
        0.0,
        60.0,
    )
    assert (stats.total_return, stats.sharpe, stats.sortino, stats.calmar) == (0, 0, 0, 0)
    assert (stats.max_drawdown, stats.max_drawdown_duration) == (0.0, 0.0)


def test_only_winners_give_an_infinite_profit_factor() -> None:
    equity = np.array([101.0, 102.0])
    stats = compute_statistics(
        equity,
        drawdown(equity, 100.0),
        np.zeros(2),
        np.array([0, 60]),
        100.0,
        np.array([2.0]),
        0.0,
        60.0,
    )
    assert stats.profit_factor == math.inf
    assert stats.sortino == math.inf
    assert stats.win_rate == 1.0
