"""The backtest service's domain metrics (Prometheus default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RUNS_FINISHED = Counter(
    "backtest_runs_finished",
    "Backtests a worker of this process ended, by status (completed, failed, canceled).",
    ["status"],
)
RUN_SECONDS = Histogram(
    "backtest_run_seconds",
    "Wall time of a completed backtest on a worker (candles, engine and storing results).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BARS_PROCESSED = Counter("backtest_bars_processed", "Bars run through the engine.")
MARKET_RETRIES = Counter(
    "backtest_market_retries", "Candle reads retried because the market was unavailable."
)
RUNS_RELEASED = Counter(
    "backtest_runs_released", "Unfinished runs handed back to the queue by a stopping worker."
)
