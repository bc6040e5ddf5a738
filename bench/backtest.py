"""Backtest engines side by side: SMA(10)/SMA(30) crossover on synthetic one-minute bars.

    .venv/bin/python bench/backtest.py [--bars 1000000] [--repeat 3] [--skip-backtesting-py]

Runs, on the same seeded random walk and in the same process:

- numpy floor: the crossover as plain whole-array numpy (signals, position, equity by
  cumulative product) — the fastest this strategy can be computed, no orders or records;
- ours, vectorised: `run_vectorised` (the strategy's `signals` through the array fill
  simulation, with orders, fills, trades, equity, statistics and playback snapshots);
- ours, event-driven: `run_event` (the same strategy's `on_bar`, bar by bar);
- vectorbt (`Portfolio.from_signals`, warm: its numba functions compiled by a first run)
  and backtesting.py, when installed (`make bench-deps`); otherwise "not installed".

Every engine fills a signal on bar t at bar t+1's open, spends all cash on an entry and
pays no fees, so final equities must agree. backtesting.py buys whole units only, so its
prices are scaled down by 1e8 (an entry buys tens of millions of units; returns are
unchanged); the leftover cash of each entry makes it differ from the others slightly. Prints bars/s
and CPU seconds (best of --repeat, indicators included), ratios, final equities, and the
targets of issue 6: vectorised / vectorbt >= 1.0 and event-driven / backtesting.py >= 10.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

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
PRICE_SCALE = 1e-8  # backtesting.py trades whole units: make a unit tiny


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


def crossings(bars: BarSeries) -> tuple[np.ndarray, np.ndarray]:
    """Up and down crossings of SMA(FAST) over SMA(SLOW) at each bar's close."""
    sma = INDICATORS["sma"]
    fast = sma.compute(bars, {"period": FAST})["value"]
    slow = sma.compute(bars, {"period": SLOW})["value"]
    up = np.zeros(len(fast), dtype=np.bool_)
    down = np.zeros(len(fast), dtype=np.bool_)
    up[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
    down[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    return up, down


def numpy_floor(bars: BarSeries) -> float:
    """Final equity of the crossover, all in, next-open fills, no fees, in whole arrays."""
    close, open_ = bars.close, bars.open
    up, down = crossings(bars)
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


def vectorbt_run(bars: BarSeries) -> Callable[[], float] | None:
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return None
    close = pd.Series(bars.close)
    open_ = pd.Series(bars.open)

    def run() -> float:
        fast = vbt.MA.run(close, FAST)
        slow = vbt.MA.run(close, SLOW)
        # Signals at bar t's close, executed at bar t+1's open: shift by one bar.
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, init_cash=INITIAL, fees=0.0, freq="1min"
        )
        return float(pf.value().iloc[-1])

    return run


def backtesting_py_run(bars: BarSeries) -> Callable[[], float] | None:
    try:
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        return None

    def sma(values: Any, period: int) -> Any:
        return pd.Series(values).rolling(period).mean().to_numpy()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    frame = pd.DataFrame(
        {
            "Open": bars.open * PRICE_SCALE,
            "High": bars.high * PRICE_SCALE,
            "Low": bars.low * PRICE_SCALE,
            "Close": bars.close * PRICE_SCALE,
            "Volume": bars.volume,
        },
        index=pd.to_datetime(bars.time, unit="s"),
    )

    def run() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, SmaCross, cash=INITIAL, commission=0.0).run()
        return float(stats["Equity Final [$]"])

    return run


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds of `repeat` runs, and the last result. CPU time
    is what the run itself used: on a loaded machine it moves less than wall time."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--skip-backtesting-py", action="store_true", help="it takes ~20 s per million bars"
    )
    args = parser.parse_args()
    n = args.bars
    bars = synthetic_bars(n)
    settings = BacktestSettings(INITIAL)
    params = {"fast_period": FAST, "slow_period": SLOW}

    def vectorised() -> BacktestResult | None:
        return run_vectorised(create_strategy("sma_crossover", params), bars, settings)

    def event() -> BacktestResult:
        return run_event(create_strategy("sma_crossover", params), bars, settings)

    print(f"SMA({FAST})/SMA({SLOW}) crossover, {n:,} one-minute bars, next-open fills, no fees")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[tuple[str, float | None, float | None, float | None]] = []
    floor_s, floor_cpu, floor_equity = best_of(args.repeat, lambda: numpy_floor(bars))
    rows.append(("numpy floor (no records)", floor_s, floor_cpu, float(floor_equity)))  # type: ignore[arg-type]
    vector_s, vector_cpu, vector_result = best_of(args.repeat, vectorised)
    assert isinstance(vector_result, BacktestResult)
    rows.append(("ours, vectorised", vector_s, vector_cpu, float(vector_result.equity[-1])))
    event_s, event_cpu, event_result = best_of(max(1, args.repeat - 1), event)
    assert isinstance(event_result, BacktestResult)
    rows.append(("ours, event-driven (on_bar)", event_s, event_cpu, float(event_result.equity[-1])))

    vbt_run = vectorbt_run(bars)
    vbt_s: float | None = None
    if vbt_run is None:
        rows.append(("vectorbt (not installed)", None, None, None))
    else:
        vbt_run()  # compile its numba functions: the figure is the warm one
        vbt_s, vbt_cpu, vbt_equity = best_of(args.repeat, vbt_run)
        rows.append(("vectorbt (warm)", vbt_s, vbt_cpu, float(vbt_equity)))  # type: ignore[arg-type]

    bt_run = None if args.skip_backtesting_py else backtesting_py_run(bars)
    bt_s: float | None = None
    if bt_run is None:
        why = "skipped" if args.skip_backtesting_py else "not installed"
        rows.append((f"backtesting.py ({why})", None, None, None))
    else:
        bt_s, bt_cpu, bt_equity = best_of(1, bt_run)
        rows.append(("backtesting.py", bt_s, bt_cpu, float(bt_equity)))  # type: ignore[arg-type]

    print(f"{len(vector_result.trades):,} round trips, {len(vector_result.fills):,} fills")
    header = f"{'engine':<30} {'seconds':>8} {'cpu s':>7} {'bars/s':>12} {'final equity':>22}"
    print(f"{header} {'rel. diff':>9}")
    for name, seconds, cpu, equity in rows:
        if seconds is None or cpu is None or equity is None:
            print(f"{name:<30} {'-':>8} {'-':>7} {'-':>12} {'-':>22} {'-':>9}")
            continue
        diff = abs(equity - floor_equity) / floor_equity  # type: ignore[operator]
        print(
            f"{name:<30} {seconds:>8.3f} {cpu:>7.3f} {n / seconds:>12,.0f} {equity:>22.10f}"
            f" {diff:>9.1e}"
        )
    vector_equity, event_equity = rows[1][3], rows[2][3]
    print(f"vectorised == event-driven (bitwise): {vector_equity == event_equity}")
    # The targets are wall-clock ratios; the same ratios of CPU seconds are less load-bound.
    if vbt_s is not None:
        print(
            f"target vectorised / vectorbt >= 1.0: {vbt_s / vector_s:.2f}"
            f" (cpu {vbt_cpu / vector_cpu:.2f})"
        )
    if bt_s is not None:
        print(
            f"target event-driven / backtesting.py >= 10: {bt_s / event_s:.1f}"
            f" (cpu {bt_cpu / event_cpu:.1f})"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
