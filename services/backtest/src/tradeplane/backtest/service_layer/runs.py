"""Run use cases: queue (validated), get, list, cancel, follow progress."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence

from tradeplane.backtest.adapters.market_client import MarketCandleSource
from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.domain.look_ahead import Violation, look_ahead_check
from tradeplane.backtest.service_layer.models import (
    INTERVAL_SECONDS,
    ProgressView,
    RunSpec,
    RunView,
    Status,
)
from tradeplane.backtest.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.backtest.service_layer.worker import engine_settings
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from tradeplane.strategies import strategy_class

FINAL_RUNS_CACHED = 1024


class BacktestRuns:
    def __init__(
        self,
        repo: SqlBacktestRepository,
        candles: MarketCandleSource,
        *,
        max_bars: int,
        poll_seconds: float = 0.2,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._repo = repo
        self._candles = candles
        self._max_bars = max_bars
        self._poll = poll_seconds
        self._on_queued = on_queued
        self._final: OrderedDict[str, RunView] = OrderedDict()

    async def validate(self, spec: RunSpec) -> int:
        """Checks everything that can be checked before running; returns the bar count."""
        if not spec.strategy:
            raise InvalidArgument("config.strategy", "is required")
        strategy_class(spec.strategy, field="config.strategy")(spec.params)  # params.<name>
        engine_settings(spec, 1)  # money settings
        if not spec.product_id:
            raise InvalidArgument("config.product_id", "is required")
        if spec.end <= spec.start:
            raise InvalidArgument("config.time_range", "end must be after start")
        bars = (spec.end - spec.start) // INTERVAL_SECONDS[spec.interval]
        if bars > self._max_bars:
            raise InvalidArgument(
                "config.time_range",
                f"{bars} bars of {spec.interval} is more than the maximum {self._max_bars}",
            )
        if spec.product_id not in await self._candles.product_ids():
            raise InvalidArgument("config.product_id", f"unknown product {spec.product_id!r}")
        return bars

    async def submit(self, spec: RunSpec, *, sweep_id: str | None = None) -> RunView:
        bars = await self.validate(spec)
        run = await self._repo.add_run(str(uuid.uuid4()), spec, sweep_id=sweep_id, total_bars=bars)
        self.notify_queued()
        return run

    def notify_queued(self) -> None:
        """Wakes the in-process worker (others find the work at their next poll)."""
        if self._on_queued is not None:
            self._on_queued()

    async def look_ahead(self, spec: RunSpec, samples: int) -> tuple[int, list[Violation]]:
        """Runs the strategy over the data and over it truncated at `samples` cut points
        (in a thread; synchronous for the caller) and reports changed decisions."""
        count = page_size(samples, 50, 1000, "samples")
        await self.validate(spec)
        bars = await self._candles.bars(spec.product_id, spec.interval, spec.start, spec.end)
        if not len(bars):
            raise FailedPrecondition("no closed candles in the requested range")
        cls = strategy_class(spec.strategy)
        settings = engine_settings(spec, max(len(bars), 1))
        return await asyncio.to_thread(
            look_ahead_check, lambda: cls(spec.params), bars, settings, count
        )

    async def get(self, backtest_id: str, field: str = "backtest_id") -> RunView:
        if not backtest_id:
            raise InvalidArgument(field, "is required")
        run = self._final.get(backtest_id)
        if run is not None:
            return run
        run = await self._repo.get_run(backtest_id)
        if run is None:
            raise NotFound(f"backtest {backtest_id!r} not found")
        if run.status.final:
            # A finished run never changes again: keep the most recent ones in memory.
            self._final[backtest_id] = run
            while len(self._final) > FINAL_RUNS_CACHED:
                self._final.popitem(last=False)
        return run

    async def list_runs(
        self,
        *,
        strategy: str,
        product_id: str,
        statuses: Sequence[Status],
        sweep_id: str,
        size: int,
        token: str,
    ) -> tuple[list[RunView], str]:
        limit = page_size(size, 50, 500)
        filters = [strategy, product_id, sorted(s.value for s in statuses), sweep_id]
        after = None
        if token:
            payload = decode_token(token)
            if payload.get("f") != filters:
                raise InvalidArgument("page_token", "does not match the request's filters")
            after = (int(payload["t"]), str(payload["i"]))
        runs = await self._repo.list_runs(
            strategy=strategy,
            product_id=product_id,
            statuses=statuses,
            sweep_id=sweep_id,
            limit=limit + 1,
            after=after,
        )
        next_token = ""
        if len(runs) > limit:
            runs = runs[:limit]
            last = runs[-1]
            next_token = encode_token(
                {"f": filters, "t": last.create_time_us, "i": last.backtest_id}
            )
        return runs, next_token

    async def cancel(self, backtest_id: str) -> RunView:
        run = await self.get(backtest_id)
        if not run.status.final:
            await self._repo.request_cancel(backtest_id)
        return await self.get(backtest_id)

    async def follow(
        self, backtest_id: str, since_seq: int | None, stop: asyncio.Event
    ) -> AsyncIterator[ProgressView]:
        await self.get(backtest_id)
        async for update in follow_progress(self._repo, backtest_id, since_seq, stop, self._poll):
            yield update


async def follow_progress(
    repo: SqlBacktestRepository,
    target_id: str,
    since_seq: int | None,
    stop: asyncio.Event,
    poll_seconds: float,
) -> AsyncIterator[ProgressView]:
    """Progress updates of a run or sweep: those after `since_seq` (else the latest first),
    then new ones as workers write them (polled from the database, so any worker process may
    write them), until the final one or until `stop` is set."""
    if since_seq is None:
        latest = await repo.latest_progress(target_id)
        if latest is None:
            return
        yield latest
        if latest.status.final:
            return
        last = latest.seq
    else:
        last = since_seq
    while not stop.is_set():
        updates = await repo.progress_after(target_id, last)
        for update in updates:
            yield update
            last = update.seq
            if update.status.final:
                return
        if not updates:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)
