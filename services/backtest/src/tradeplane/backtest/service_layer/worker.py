"""The worker: claims queued runs, executes them off the event loop, stores the results.

One execution: candles from the market (retried with backoff while it is down), the engine
in a thread (its progress callback reads the cancel flag), a heartbeat task that writes
progress every few hundred milliseconds and learns of cancellations, then one transaction
with every result table. A worker asked to stop hands its unfinished runs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tradeplane.backtest.adapters.market_client import MarketCandleSource
from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.domain import (
    BacktestResult,
    BacktestSettings,
    BarSeries,
    FillRule,
    run_backtest,
)
from tradeplane.backtest.service_layer import metrics
from tradeplane.backtest.service_layer.models import IndicatorColumn, RunSpec, Status
from tradeplane.backtest.service_layer.rows import (
    indicator_columns,
    result_rows,
    statistics_view,
)
from tradeplane.runtime.errors import DomainError, FailedPrecondition, Unavailable
from tradeplane.strategies import create_strategy

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised inside the engine's progress callback to stop a run."""


@dataclass
class _Progress:
    """Shared between the engine thread and the heartbeat task."""

    began: float = field(default_factory=time.perf_counter)
    done: int = 0
    total: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.began
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else 0.0

    def callback(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.cancel.is_set():
            raise _Stopped


def engine_settings(spec: RunSpec, snapshot_every: int) -> BacktestSettings:
    return BacktestSettings(
        initial_cash=float(spec.initial_cash),
        commission_fixed=float(spec.commission_fixed),
        commission_bps=float(spec.commission_bps),
        slippage_bps=float(spec.slippage_bps),
        fill_rule=FillRule(spec.fill_rule),
        snapshot_every=snapshot_every,
    )


class Worker:
    def __init__(
        self,
        repo: SqlBacktestRepository,
        candles: MarketCandleSource,
        *,
        concurrency: int = 1,
        poll_seconds: float = 0.5,
        progress_seconds: float = 0.5,
        stale_seconds: float = 120.0,
        snapshot_every: int = 1000,
        market_retries: int = 5,
    ) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._repo = repo
        self._candles = candles
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._progress_every = progress_seconds
        self._stale = stale_seconds
        self._snapshot_every = snapshot_every
        self._retries = market_retries
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, _Progress] = {}
        self.executed: list[str] = []  # ids this worker ran to an end (tests read it)
        # Called after each run this worker ended (sweeps queue their next search trial).
        self.after_run: Callable[[str], Awaitable[None]] | None = None

    def start(self) -> None:
        metrics.WORKERS.inc(self._concurrency)
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"backtest-worker-{i}")
            for i in range(self._concurrency)
        ]

    def notify(self) -> None:
        """A run was queued in this process: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for progress in self._running.values():
            progress.shutdown = True
            progress.cancel.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            metrics.WORKERS.dec(self._concurrency)
            self._tasks = []

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                backtest_id = await self._repo.claim_next(self.worker_id, self._stale)
            except Exception:
                log.exception("claiming a backtest failed; retrying")
                backtest_id = None
            if backtest_id is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                continue
            metrics.WORKERS_BUSY.inc()
            try:
                await self.execute(backtest_id)
            except Exception:
                log.exception("backtest %s crashed the worker loop", backtest_id)
            finally:
                metrics.WORKERS_BUSY.dec()

    async def execute(self, backtest_id: str) -> None:
        run = await self._repo.get_run(backtest_id)
        if run is None:
            return
        progress = _Progress()
        self._running[backtest_id] = progress
        beat = asyncio.create_task(self._heartbeat(backtest_id, progress))
        try:
            await self._execute(backtest_id, run.spec, progress)
        except _Stopped:
            if progress.shutdown:
                await self._repo.release(backtest_id, self.worker_id)
                metrics.RUNS_RELEASED.inc()
            else:
                await self._finish(backtest_id, Status.CANCELED, progress, "")
        except DomainError as error:
            await self._finish(backtest_id, Status.FAILED, progress, error.status_message())
        except Exception as error:
            log.exception("backtest %s failed", backtest_id)
            await self._finish(backtest_id, Status.FAILED, progress, f"internal error: {error}")
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._running.pop(backtest_id, None)
        if self.after_run is not None:
            try:
                await self.after_run(backtest_id)
            except Exception:
                log.exception("after-run step failed for %s", backtest_id)

    async def _finish(self, backtest_id: str, status: Status, p: _Progress, error: str) -> None:
        if await self._repo.finish(
            backtest_id,
            self.worker_id,
            status,
            error=error,
            done=p.done,
            total=p.total,
            rate=p.rate(),
        ):
            self.executed.append(backtest_id)
            metrics.RUNS_FINISHED.labels(status.value).inc()

    async def _heartbeat(self, backtest_id: str, progress: _Progress) -> None:
        while True:
            await asyncio.sleep(self._progress_every)
            try:
                cancel = await self._repo.heartbeat(
                    backtest_id,
                    self.worker_id,
                    progress.done,
                    progress.total,
                    progress.rate(),
                    progress.eta(),
                )
            except Exception:
                log.exception("progress write failed for %s", backtest_id)
                continue
            if cancel:
                progress.cancel.set()

    async def _bars(self, spec: RunSpec, progress: _Progress) -> BarSeries:
        for attempt in range(self._retries + 1):
            try:
                return await self._candles.bars(
                    spec.product_id, spec.interval, spec.start, spec.end
                )
            except Unavailable:
                if attempt == self._retries:
                    raise
                log.warning("market unavailable; retrying", extra={"attempt": attempt + 1})
                metrics.MARKET_RETRIES.inc()
                await asyncio.sleep(min(2.0**attempt, 30.0))
            if progress.cancel.is_set():
                raise _Stopped
        raise AssertionError("unreachable")

    async def _execute(self, backtest_id: str, spec: RunSpec, progress: _Progress) -> None:
        bars = await self._bars(spec, progress)
        if progress.cancel.is_set():
            raise _Stopped
        if not len(bars):
            raise FailedPrecondition("no closed candles in the requested range")
        progress.total = len(bars)
        await self._repo.mark_started(backtest_id, len(bars))
        strategy = create_strategy(spec.strategy, spec.params)
        settings = engine_settings(spec, self._snapshot_every)

        def run() -> tuple[BacktestResult, list[IndicatorColumn], dict[str, list[dict[str, Any]]]]:
            result = run_backtest(strategy, bars, settings, progress=progress.callback)
            columns = indicator_columns(strategy.indicators(), result.indicators)
            return result, columns, result_rows(backtest_id, result, columns)

        result, columns, tables = await asyncio.to_thread(run)
        stored = await self._repo.store_results(
            backtest_id,
            self.worker_id,
            statistics=statistics_view(result.statistics),
            vectorised=result.vectorised,
            indicators=columns,
            tables=tables,
            rate=progress.rate(),
        )
        if stored:
            self.executed.append(backtest_id)
            metrics.RUNS_FINISHED.labels("completed").inc()
            metrics.RUN_SECONDS.observe(time.perf_counter() - progress.began)
            metrics.BARS_PROCESSED.inc(len(bars))
