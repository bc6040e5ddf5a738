"""Parameter sweeps: a grid fanned out as one queued backtest per combination.

Every combination is validated before anything is queued (a bad value names the axis); the
runs are ordinary queued backtests tagged with the sweep id, so every worker replica takes
part. Each run that ends bumps the sweep's counter and publishes a sweep progress update.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.service_layer.models import (
    INTERVAL_SECONDS,
    RANK_STATISTICS,
    ProgressView,
    RunSpec,
    RunView,
    SweepResultView,
    SweepSpec,
    SweepView,
)
from tradeplane.backtest.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.backtest.service_layer.runs import BacktestRuns, follow_progress
from tradeplane.backtest.service_layer.search import suggest
from tradeplane.runtime.errors import DomainError, InvalidArgument, NotFound
from tradeplane.strategies import strategy_class

MAX_AXIS_VALUES = 10_000


def axis_values(
    index: int, name: str, values: Sequence[str], start: str, stop: str, step: str
) -> list[str]:
    """An axis' values: the explicit ones, else start..stop (inclusive) by step."""
    field = f"config.grid.axes[{index}]"
    if not name:
        raise InvalidArgument(f"{field}.name", "is required")
    if values:
        return [v.strip() for v in values]
    try:
        first, last, increment = Decimal(start), Decimal(stop), Decimal(step)
    except InvalidOperation:
        raise InvalidArgument(
            f"{field}.values", "give values, or start, stop and step as decimal numbers"
        ) from None
    if increment <= 0:
        raise InvalidArgument(f"{field}.step", "must be positive")
    if last < first:
        raise InvalidArgument(f"{field}.stop", "must not be below start")
    count = int((last - first) / increment) + 1
    if count > MAX_AXIS_VALUES:
        raise InvalidArgument(f"{field}", f"{count} values is more than {MAX_AXIS_VALUES}")
    return [str(first + i * increment) for i in range(count)]


def _in_sample(spec: SweepSpec) -> RunSpec:
    """The base run without the hold-out period."""
    if spec.holdout_start is None:
        return spec.base
    if not spec.base.start < spec.holdout_start < spec.base.end:
        raise InvalidArgument("config.holdout_range.start", "must be inside config.base.time_range")
    return replace(spec.base, end=spec.holdout_start)


class BacktestSweeps:
    def __init__(
        self,
        repo: SqlBacktestRepository,
        runs: BacktestRuns,
        *,
        max_runs: int,
        poll_seconds: float = 0.2,
    ) -> None:
        self._repo = repo
        self._runs = runs
        self._max_runs = max_runs
        self._poll = poll_seconds

    async def submit(self, spec: SweepSpec) -> SweepView:
        if spec.is_search:
            return await self._submit_search(spec)
        if not spec.axes:
            raise InvalidArgument("config.grid.axes", "at least one axis is required")
        if spec.rank_by not in RANK_STATISTICS:
            raise InvalidArgument("config.rank_by", f"unknown statistic {spec.rank_by!r}")
        bars = await self._runs.validate(spec.base)  # the base run (strategy, range, money)
        in_sample = _in_sample(spec)
        cls = strategy_class(spec.base.strategy, field="config.base.strategy")
        declared = {p.name for p in cls.parameters}
        names = list(spec.axes)
        for i, name in enumerate(names):
            if name not in declared:
                raise InvalidArgument(
                    f"config.grid.axes[{i}].name",
                    f"{spec.base.strategy} has no parameter {name!r}",
                )
        combos = list(itertools.product(*(spec.axes[n] for n in names)))
        if len(combos) > self._max_runs:
            raise InvalidArgument(
                "config.grid", f"{len(combos)} combinations is more than {self._max_runs}"
            )
        runs: list[tuple[str, RunSpec]] = []
        for combo in combos:
            params = {**in_sample.params, **dict(zip(names, combo, strict=True))}
            try:
                cls(params)
            except DomainError as error:
                raise InvalidArgument(
                    "config.grid", f"combination {dict(zip(names, combo, strict=True))}: {error}"
                ) from None
            runs.append((str(uuid.uuid4()), replace(in_sample, params=params)))
        sweep = await self._repo.add_sweep(str(uuid.uuid4()), spec, runs, bars)
        self._runs.notify_queued()
        return sweep

    async def _submit_search(self, spec: SweepSpec) -> SweepView:
        """Queues the first batch of an Optuna search (`max_parallel`, default 4, trials);
        each finished trial queues the next (see `continue_search`)."""
        if spec.rank_by not in RANK_STATISTICS:
            raise InvalidArgument("config.rank_by", f"unknown statistic {spec.rank_by!r}")
        if spec.search_trials > self._max_runs:
            raise InvalidArgument(
                "config.search.trials", f"{spec.search_trials} is more than {self._max_runs}"
            )
        if not spec.search_axes:
            raise InvalidArgument("config.search.axes", "at least one axis is required")
        bars = await self._runs.validate(spec.base)
        in_sample = _in_sample(spec)
        first = min(spec.search_trials, spec.max_parallel or 4)
        suggestions = await asyncio.to_thread(
            suggest,
            spec.search_axes,
            [],
            maximize=RANK_STATISTICS[spec.rank_by],
            seed=spec.search_seed,
            count=first,
        )
        cls = strategy_class(spec.base.strategy, field="config.base.strategy")
        runs = []
        for params in suggestions:
            merged = {**in_sample.params, **params}
            cls(merged)
            runs.append((str(uuid.uuid4()), replace(in_sample, params=merged)))
        sweep = await self._repo.add_sweep(str(uuid.uuid4()), spec, runs, bars)
        self._runs.notify_queued()
        return sweep

    async def continue_search(self, backtest_id: str) -> None:
        """After a run of a search sweep ended: ask Optuna for the next trial and queue it,
        unless every planned trial is queued already."""
        run = await self._repo.get_run(backtest_id)
        if run is None or not run.sweep_id:
            return
        sweep = await self._repo.get_sweep(run.sweep_id)
        if sweep is None or not sweep.spec.is_search or sweep.status.final:
            return
        spec = sweep.spec
        history = await self._repo.search_history(sweep.sweep_id, spec.rank_by)
        seed = spec.search_seed + sweep.total + len(history)
        (params,) = await asyncio.to_thread(
            suggest,
            spec.search_axes,
            history,
            maximize=RANK_STATISTICS[spec.rank_by],
            seed=seed,
            count=1,
        )
        in_sample = _in_sample(spec)
        merged = {**in_sample.params, **params}
        bars = (in_sample.end - in_sample.start) // INTERVAL_SECONDS[in_sample.interval]
        added = await self._repo.add_trial(
            sweep.sweep_id,
            (str(uuid.uuid4()), replace(in_sample, params=merged)),
            bars,
            spec.max_parallel,
        )
        if added:
            self._runs.notify_queued()

    async def get(self, sweep_id: str) -> tuple[SweepView, SweepResultView | None]:
        if not sweep_id:
            raise InvalidArgument("sweep_id", "is required")
        sweep = await self._repo.get_sweep(sweep_id)
        if sweep is None:
            raise NotFound(f"sweep {sweep_id!r} not found")
        best = await self._repo.ranked_runs(
            sweep_id, sweep.spec.rank_by, RANK_STATISTICS[sweep.spec.rank_by], 0, 1
        )
        top = None
        if best and best[0].statistics is not None:
            holdout = await self._repo.holdout_runs(sweep_id, [best[0].backtest_id])
            top = SweepResultView(
                best[0], self._varied(sweep, best[0]), 1, holdout.get(best[0].backtest_id)
            )
        return sweep, top

    @staticmethod
    def _varied(sweep: SweepView, run: RunView) -> dict[str, str]:
        names = sweep.spec.search_axes if sweep.spec.is_search else sweep.spec.axes
        return {name: run.spec.params.get(name, "") for name in names}

    async def list_sweeps(
        self, strategy: str, size: int, token: str
    ) -> tuple[list[SweepView], str]:
        limit = page_size(size, 50, 500)
        after = None
        if token:
            payload = decode_token(token)
            if payload.get("f") != strategy:
                raise InvalidArgument("page_token", "does not match the request's filters")
            after = (int(payload["t"]), str(payload["i"]))
        sweeps = await self._repo.list_sweeps(strategy=strategy, limit=limit + 1, after=after)
        next_token = ""
        if len(sweeps) > limit:
            sweeps = sweeps[:limit]
            last = sweeps[-1]
            next_token = encode_token({"f": strategy, "t": last.create_time_us, "i": last.sweep_id})
        return sweeps, next_token

    async def results(
        self, sweep_id: str, order_by: str | None, size: int, token: str
    ) -> tuple[list[SweepResultView], str]:
        sweep, _ = await self.get(sweep_id)
        statistic = order_by or sweep.spec.rank_by
        limit = page_size(size, 100, 1000)
        offset = 0
        if token:
            payload = decode_token(token)
            if payload.get("q") != [sweep_id, statistic]:
                raise InvalidArgument("page_token", "does not match the request")
            offset = int(payload["o"])
        runs = await self._repo.ranked_runs(
            sweep_id, statistic, RANK_STATISTICS[statistic], offset, limit + 1
        )
        next_token = ""
        if len(runs) > limit:
            runs = runs[:limit]
            next_token = encode_token({"q": [sweep_id, statistic], "o": offset + limit})
        holdout = await self._repo.holdout_runs(sweep_id, [r.backtest_id for r in runs])
        views = [
            SweepResultView(
                run, self._varied(sweep, run), offset + i + 1, holdout.get(run.backtest_id)
            )
            for i, run in enumerate(runs)
        ]
        return views, next_token

    async def cancel(self, sweep_id: str) -> tuple[SweepView, SweepResultView | None]:
        await self.get(sweep_id)
        await self._repo.cancel_sweep(sweep_id)
        return await self.get(sweep_id)

    async def follow(
        self, sweep_id: str, since_seq: int | None, stop: asyncio.Event
    ) -> AsyncIterator[ProgressView]:
        await self.get(sweep_id)
        async for update in follow_progress(self._repo, sweep_id, since_seq, stop, self._poll):
            yield update
