"""Monte Carlo resampling of trade P&L: deterministic per seed, known answers."""

from __future__ import annotations

import pytest

from tradeplane.backtest.domain.monte_carlo import Resampling, monte_carlo


def test_shuffle_keeps_the_total_return_and_varies_the_drawdown() -> None:
    pnls = [100.0, -50.0, -50.0, 200.0, -100.0]
    report = monte_carlo(pnls, 1000.0, Resampling.SHUFFLE, 2000, seed=7)
    r = report.total_return
    assert r.p5 == r.p50 == r.p95 == r.worst == pytest.approx(0.1)
    d = report.max_drawdown
    # Worst order: the three losses first, 200 below the initial 1000 (after both gains the
    # same losses are only 200/1300).
    assert d.worst == pytest.approx(0.2)
    assert 0 < d.p5 <= d.p50 <= d.p95 <= d.worst
    assert report.iterations == 2000


def test_bootstrap_is_deterministic_per_seed() -> None:
    pnls = [10.0, -5.0, 3.0, -8.0, 12.0] * 10
    a = monte_carlo(pnls, 500.0, Resampling.BOOTSTRAP, 500, seed=1)
    b = monte_carlo(pnls, 500.0, Resampling.BOOTSTRAP, 500, seed=1)
    c = monte_carlo(pnls, 500.0, Resampling.BOOTSTRAP, 500, seed=2)
    assert a == b and a != c
    assert a.total_return.p5 < a.total_return.p50 < a.total_return.p95


def test_no_trades_gives_flat_distributions() -> None:
    report = monte_carlo([], 1000.0, Resampling.BOOTSTRAP, 10, seed=0)
    assert report.total_return.worst == 0.0 and report.max_drawdown.worst == 0.0
