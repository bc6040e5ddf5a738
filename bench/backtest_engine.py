"""Backtest engine alone: SMA(10)/SMA(30) crossover on synthetic one-minute bars.

    .venv/bin/python bench/backtest_engine.py [--bars 1000000] [--repeat 3]

Runs, on the same seeded random walk and in the same process:

- numpy floor: the crossover as plain whole-array numpy (signals, position, equity by
  cumulative product) — the fastest this strategy can be computed, no orders or records;
- vectorised path: `run_vectorised` (the strategy's `signals` through the fill simulation,
  with orders, fills, trades, equity, statistics and playback snapshots);
- event path: `run_event` (the same strategy's `on_bar`, bar by bar).

All three fill a signal on bar t at bar t+1's open, spend all cash on an entry and pay no
fees, so their final equities must agree. Prints bars/s (best of --repeat, indicators
included), ratios to the floor, and the final equities. For orientation on this kind of
machine (docs: PERFORMANCE.md) vectorbt runs at about 0.29x the numpy floor and
backtesting.py at about 62,000 bars/s; the targets are vectorised >= vectorbt and
event >= 10x backtesting.py. The machine is noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from tradeplane.backtest.domain import (
    BacktestResult,
    BacktestSettings,
    BarSeries,
    run_event,
    run_vectorised,
)
from tradeplane.indicators import INDICATORS
from tradeplane.strategies import create_strategy

FAST, SLOW = 10, 30
INITIAL = 10_000.0
VECTORBT_TO_FLOOR = 3.2 / 11.0  # PERFORMANCE.md: vectorbt 3.2 M/s vs numpy floor ~11 M/s
BACKTESTING_PY = 62_000.0  # PERFORMANCE.md: backtesting.py bars/s on this kind of machine


def synthetic_bars(n: int, seed: int = 7) -> BarSeries:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.concatenate(([30_000.0], close[:-1])) * np.exp(rng.normal(0.0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.0005, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.0005, n)))
    start = 1_700_000_000 - 1_700_000_000 % 60
    return BarSeries.from_arrays(
        start + 60 * np.arange(n), open_, high, low, close, rng.uniform(1, 10, n)
    )


def numpy_floor(bars: BarSeries) -> float:
    """Final equity of the crossover, all in, next-open fills, no fees, in whole arrays."""
    close, open_ = bars.close, bars.open
    sma = INDICATORS["sma"]
    fast = sma.compute(bars, {"period": FAST})["value"]
    slow = sma.compute(bars, {"period": SLOW})["value"]
    up = np.zeros(len(close), dtype=np.bool_)
    down = np.zeros(len(close), dtype=np.bool_)
    up[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
    down[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    # Crossings alternate, so "long after bar t" = the last crossing at or before t was up.
    event = np.where(up, 1, np.where(down, -1, 0))
    last = np.maximum.accumulate(np.where(event != 0, np.arange(len(event)), -1))
    signal = np.where(last >= 0, event[np.maximum(last, 0)], -1) > 0
    held = np.zeros(len(close), dtype=np.bool_)  # held at the close of bar t
    held[1:] = signal[:-1]
    entered = held & ~np.concatenate(([False], held[:-1]))
    exited = ~held & np.concatenate(([False], held[:-1]))
    previous = np.concatenate(([close[0]], close[:-1]))
    growth = np.ones(len(close))
    growth[held] = close[held] / previous[held]
    growth[entered] = close[entered] / open_[entered]
    growth[exited] = open_[exited] / previous[exited]
    return float(INITIAL * np.prod(growth))


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.bars
    bars = synthetic_bars(n)
    settings = BacktestSettings(INITIAL)
    params = {"fast_period": FAST, "slow_period": SLOW}

    def vectorised() -> BacktestResult | None:
        return run_vectorised(create_strategy("sma_crossover", params), bars, settings)

    def event() -> BacktestResult:
        return run_event(create_strategy("sma_crossover", params), bars, settings)

    floor_s, floor_equity = best_of(args.repeat, lambda: numpy_floor(bars))
    vector_s, vector_result = best_of(args.repeat, vectorised)
    event_s, event_result = best_of(max(1, args.repeat - 1), event)
    assert isinstance(vector_result, BacktestResult) and isinstance(event_result, BacktestResult)

    print(f"SMA({FAST})/SMA({SLOW}) crossover, {n:,} one-minute bars, next-open fills, no fees")
    print(f"{len(vector_result.trades):,} round trips, {len(vector_result.fills):,} fills")
    print(f"{'engine':<28} {'seconds':>8} {'bars/s':>12} {'vs floor':>9} {'final equity':>22}")
    rows = [
        ("numpy floor (no records)", floor_s, floor_equity),
        ("vectorised fill simulation", vector_s, float(vector_result.equity[-1])),
        ("event-driven (on_bar)", event_s, float(event_result.equity[-1])),
    ]
    for name, seconds, equity in rows:
        rate = n / seconds
        print(
            f"{name:<28} {seconds:>8.3f} {rate:>12,.0f} {floor_s / seconds:>8.2f}x {equity:>22.12f}"
        )
    vector_equity, event_equity = rows[1][2], rows[2][2]
    print(f"vectorised == event (bitwise): {vector_equity == event_equity}")
    print(f"|vectorised - floor| / floor: {abs(vector_equity - floor_equity) / floor_equity:.1e}")
    vector_ratio = (floor_s / vector_s) / VECTORBT_TO_FLOOR
    event_ratio = (n / event_s) / BACKTESTING_PY
    print(f"vectorised vs vectorbt (as {VECTORBT_TO_FLOOR:.2f}x the floor): {vector_ratio:.2f}")
    print(f"event vs backtesting.py ({BACKTESTING_PY:,.0f} bars/s): {event_ratio:.1f}x")


if __name__ == "__main__":
    main()
