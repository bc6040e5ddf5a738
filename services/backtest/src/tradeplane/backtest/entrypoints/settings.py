"""BacktestServiceSettings: the backtest service's configuration (environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from tradeplane.runtime.config import ServiceSettings


class BacktestServiceSettings(ServiceSettings):
    service_name: str = "backtest"
    grpc_port: int = 50054  # GRPC_PORT
    metrics_port: int = 9104  # METRICS_PORT
    database_url: str  # DATABASE_URL: required (the launcher passes sqlite:///var/data/backtest.db)

    market_addr: str = "127.0.0.1:50051"  # MARKET_ADDR: where candles come from
    # BACKTEST_MARKET_TOKEN: bearer token (read scope) the workers read candles with when the
    # market service checks tokens (a queued run has no caller whose token could be forwarded).
    backtest_market_token: SecretStr | None = None
    # BACKTEST_EMBEDDED_WORKER: `serve` also runs a worker in-process (the embedded default);
    # set false when separate `python -m tradeplane.backtest worker` replicas run the queue.
    backtest_embedded_worker: bool = True
    backtest_worker_concurrency: int = Field(1, ge=1, le=64)  # runs at once per worker process
    backtest_poll_seconds: float = Field(0.5, gt=0, le=60)  # idle worker's queue poll interval
    backtest_progress_seconds: float = Field(0.5, gt=0, le=60)  # progress/heartbeat writes
    backtest_stale_seconds: float = Field(120.0, gt=0)  # a RUNNING job without heartbeat is retaken
    backtest_snapshot_every: int = Field(1000, ge=1)  # K: bars between playback snapshots
    backtest_playback_cache_runs: int = Field(4, ge=0)  # completed runs indexed in memory
    backtest_max_bars: int = Field(2_000_000, ge=1)  # longest run accepted
    backtest_max_sweep_runs: int = Field(1_000, ge=1)  # most grid combinations in one sweep
    backtest_candle_cache_seconds: float = Field(600.0, ge=0)  # candles cached per range
    backtest_market_retries: int = Field(5, ge=0)  # market-down retries (backoff 1, 2, 4.. s)
