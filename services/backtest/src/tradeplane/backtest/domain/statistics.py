"""Performance statistics of a run, from its equity curve and round-trip trades.

Definitions (E_t = equity at the close of bar t, t = 0..n-1; E_-1 = initial cash; P = bars
per year = 365 x 86,400 / bar seconds, as crypto trades every day):

- returns r_t = E_t / E_(t-1) - 1 for t = 0..n-1
- total_return = E_(n-1) / E_-1 - 1
- annualized_return = (1 + total_return) ^ (P / n) - 1
- sharpe = mean(r) / std(r, ddof=1) x sqrt(P)          (risk-free rate 0; 0 if std is 0)
- sortino = mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(P) (inf if no down bar and mean > 0)
- drawdown_t = 1 - E_t / max(E_-1, E_0..E_t); max_drawdown = max_t drawdown_t
- max_drawdown_duration = longest time from a peak (its bar's time; the first bar's time
  for the initial cash) to the first bar back at or above it, or to the last bar
- calmar = annualized_return / max_drawdown (inf if no drawdown and return > 0, else 0)
- win_rate = closed trades with pnl > 0 (after fees) / closed trades
- profit_factor = sum of winning pnl / |sum of losing pnl| over closed trades
  (inf with wins and no losses; 0 with neither)
- exposure = fraction of bars ending with a non-zero position
- trade_count = closed round trips; fees_paid = all commissions
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SECONDS_PER_YEAR = 365 * 86_400


@dataclass(frozen=True, slots=True)
class Statistics:
    """Mirrors `trading.backtest.v1.Statistics` (durations in seconds)."""

    total_return: float
    annualized_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration: float
    win_rate: float
    profit_factor: float
    exposure: float
    trade_count: int
    fees_paid: float
    final_equity: float
    bar_count: int


def drawdown(equity: FloatArray, initial: float) -> FloatArray:
    """1 - E_t / running peak (the peak includes the initial cash)."""
    peak = np.maximum.accumulate(np.maximum(equity, initial))
    result: FloatArray = 1.0 - equity / peak
    return result


def max_drawdown_duration(drawdowns: FloatArray, time: IntArray) -> float:
    """Seconds of the longest peak-to-recovery (or peak-to-end) span."""
    n = len(drawdowns)
    under = drawdowns > 0.0
    if n == 0 or not under.any():
        return 0.0
    # Runs of consecutive underwater bars: starts where under turns on, ends where it turns off.
    edges = np.diff(np.concatenate(([False], under, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # first bar back at the peak (n if never)
    peak_times = time[np.maximum(starts - 1, 0)]
    end_times = time[np.minimum(ends, n - 1)]
    return float(np.max(end_times - peak_times))


def _annualize(total: float, years_inverse: float) -> float:
    """(1 + total) ^ years_inverse - 1; a short run extrapolated to a year may overflow."""
    if total <= -1.0:
        return -1.0
    try:
        return math.expm1(math.log1p(total) * years_inverse)
    except OverflowError:
        return math.inf


def compute_statistics(
    equity: FloatArray,
    drawdowns: FloatArray,
    position: FloatArray,
    time: IntArray,
    initial: float,
    closed_pnls: FloatArray,
    fees_paid: float,
    bar_seconds: float,
) -> Statistics:
    n = len(equity)
    periods = SECONDS_PER_YEAR / bar_seconds
    final = float(equity[-1]) if n else initial
    total = final / initial - 1.0
    annualized = _annualize(total, periods / n) if n else 0.0
    sharpe = sortino = 0.0
    if n >= 2:
        previous = np.concatenate(([initial], equity[:-1]))
        returns = equity / previous - 1.0
        mean = float(returns.mean())
        std = float(returns.std(ddof=1))
        if std > 0:
            sharpe = mean / std * math.sqrt(periods)
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        if downside > 0:
            sortino = mean / downside * math.sqrt(periods)
        elif mean > 0:
            sortino = math.inf
    max_dd = float(drawdowns.max()) if n else 0.0
    calmar = annualized / max_dd if max_dd > 0 else math.inf if annualized > 0 else 0.0
    # P&L after fees of each closed round trip (numpy sums, so both fill paths add alike).
    wins = float(np.sum(closed_pnls[closed_pnls > 0]))
    losses = -float(np.sum(closed_pnls[closed_pnls < 0]))
    profit_factor = wins / losses if losses > 0 else math.inf if wins > 0 else 0.0
    closed = len(closed_pnls)
    return Statistics(
        total_return=total,
        annualized_return=annualized,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_dd,
        max_drawdown_duration=max_drawdown_duration(drawdowns, time),
        win_rate=int(np.count_nonzero(closed_pnls > 0)) / closed if closed else 0.0,
        profit_factor=profit_factor,
        exposure=float(np.count_nonzero(position) / n) if n else 0.0,
        trade_count=closed,
        fees_paid=fees_paid,
        final_equity=final,
        bar_count=n,
    )
