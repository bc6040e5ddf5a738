"""The backtest service's metrics (Prometheus default registry). Names, labels and label
values: the metrics contract in docs/observability.md."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_FINISHED = Counter(
    "backtest_runs",
    "Backtests a worker of this process ended, by status (completed, failed, canceled).",
    ["status"],
)
RUN_SECONDS = Histogram(
    "backtest_run_duration_seconds",
    "Wall time of a completed backtest on a worker (candles, engine and storing results; "
    "queue wait excluded).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BARS_PROCESSED = Counter("backtest_bars_processed", "Bars run through the engine.")
MARKET_RETRIES = Counter(
    "backtest_market_retries", "Candle reads retried because the market was unavailable."
)
RUNS_RELEASED = Counter(
    "backtest_runs_released", "Unfinished runs handed back to the queue by a stopping worker."
)
WORKERS = Gauge("backtest_workers", "Worker loops in this process.")
WORKERS_BUSY = Gauge("backtest_workers_busy", "Worker loops running a backtest.")
QUEUE_DEPTH = Gauge("backtest_queue_depth", "Runs (sweep trials included) waiting for a worker.")
QUEUE_OLDEST_AGE = Gauge(
    "backtest_queue_oldest_job_age_seconds", "Wait of the oldest queued run (0 when empty)."
)

for _status in ("completed", "failed", "canceled"):  # 0 from the start
    RUNS_FINISHED.labels(_status)
