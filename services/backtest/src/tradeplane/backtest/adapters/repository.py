"""SqlBacktestRepository: runs (which are also the job queue), progress and results.

Queue: a QUEUED run is a job. DESIGN.md prefers a queue library; we checked procrastinate
and pgqueuer (Postgres only: no SQLite, which is the embedded default) and arq/saq (Redis
only, which the embedded default does not run). A run row is already the job's state, so the
queue is that table: `claim_next` takes the oldest QUEUED (or abandoned RUNNING) row with
`SELECT ... FOR UPDATE SKIP LOCKED` on Postgres, so concurrent workers never pick the same
row, then flips it with a compare-and-set on `status`/`worker_id` (the CAS alone serialises
claims on SQLite, which has one writer at a time and ignores FOR UPDATE).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tradeplane.backtest.adapters import orm
from tradeplane.backtest.service_layer.models import (
    INTERVAL_SECONDS,
    RANK_STATISTICS,
    IndicatorColumn,
    ProgressView,
    RunSpec,
    RunStatistics,
    RunView,
    Status,
    SweepSpec,
    SweepView,
)

_ACTIVE = (Status.QUEUED.value, Status.RUNNING.value)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

INSERT_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class EquitySeries:
    time: IntArray
    equity: FloatArray
    cash: FloatArray
    drawdown: FloatArray  # rows per executemany batch (bounded memory, few round trips)


def now_us() -> int:
    return time.time_ns() // 1_000


def _run_view(row: Row[Any]) -> RunView:
    m = row._mapping
    stats = RunStatistics(**json.loads(m["statistics_json"])) if m["statistics_json"] else None
    return RunView(
        backtest_id=m["backtest_id"],
        spec=RunSpec.from_json(m["config_json"]),
        status=Status(m["status"]),
        progress=m["progress"],
        statistics=stats,
        error=m["error"],
        sweep_id=m["sweep_id"] or "",
        create_time_us=m["create_time_us"],
        start_time_us=m["start_time_us"],
        end_time_us=m["end_time_us"],
        vectorised=m["vectorised"],
        bars_done=m["bars_done"],
        bars_total=m["bars_total"],
        cancel_requested=m["cancel_requested"],
    )


def _sweep_view(row: Row[Any]) -> SweepView:
    m = row._mapping
    return SweepView(
        sweep_id=m["sweep_id"],
        spec=SweepSpec.from_json(m["config_json"]),
        status=Status(m["status"]),
        total=m["total"],
        done=m["done"],
        error=m["error"],
        create_time_us=m["create_time_us"],
        end_time_us=m["end_time_us"],
    )


def _progress_view(row: Row[Any]) -> ProgressView:
    m = row._mapping
    return ProgressView(
        seq=m["seq"],
        backtest_id=m["backtest_id"],
        sweep_id=m["sweep_id"],
        status=Status(m["status"]),
        progress=m["progress"],
        done=m["done"],
        total=m["total"],
        bars_per_second=m["bars_per_second"],
        eta_seconds=m["eta_seconds"],
        message=m["message"],
        time_us=m["time_us"],
    )


async def _insert_chunked(
    conn: AsyncConnection, table: Any, rows: Sequence[Mapping[str, Any]]
) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        await conn.execute(insert(table), list(rows[start : start + INSERT_CHUNK]))


COPY_THRESHOLD = 20_000  # rows above which Postgres gets COPY, SQLite the driver's executemany


async def _copy_rows(conn: AsyncConnection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Postgres COPY FROM STDIN on the transaction's own connection (psycopg 3): a
    million-bar run's rows go in several times faster than through INSERT batches."""
    names = [column.name for column in table.columns]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    async with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            await copy.write_row([row[name] for name in names])


async def _executemany_rows(
    conn: AsyncConnection, table: Any, rows: Sequence[Mapping[str, Any]]
) -> None:
    """SQLite: one prepared INSERT run over plain tuples by the driver (aiosqlite), in the
    transaction's connection; SQLAlchemy's per-row parameter processing took about half the
    time of storing a million-bar run. The rows are already in storage types (strings, ints)."""
    names = [column.name for column in table.columns]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    )
    for start in range(0, len(rows), INSERT_CHUNK * 10):
        chunk = rows[start : start + INSERT_CHUNK * 10]
        await driver.executemany(statement, [tuple(row[n] for n in names) for row in chunk])


class SqlBacktestRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # -- runs --------------------------------------------------------------------------------

    async def add_run(
        self, backtest_id: str, spec: RunSpec, *, sweep_id: str | None, total_bars: int
    ) -> RunView:
        async with self._engine.begin() as conn:
            await self._insert_runs(conn, [(backtest_id, spec)], sweep_id, total_bars, now_us())
        run = await self.get_run(backtest_id)
        assert run is not None
        return run

    async def _insert_runs(
        self,
        conn: AsyncConnection,
        runs: Sequence[tuple[str, RunSpec]],
        sweep_id: str | None,
        total_bars: int,
        created: int,
        holdout_of: Mapping[str, str] | None = None,
        max_parallel: int = 0,
    ) -> None:
        """QUEUED runs, each with its first progress update (seq 1), in two batched inserts."""
        rows = [
            {
                "backtest_id": backtest_id,
                "sweep_id": sweep_id,
                "holdout_of": (holdout_of or {}).get(backtest_id),
                "max_parallel": max_parallel,
                "strategy": spec.strategy,
                "product_id": spec.product_id,
                "interval": spec.interval,
                "config_json": spec.to_json(),
                "status": Status.QUEUED.value,
                "cancel_requested": False,
                "progress": 0.0,
                "bars_done": 0,
                "bars_total": total_bars,
                "progress_seq": 1,
                "error": "",
                "create_time_us": created,
                "attempts": 0,
                "vectorised": False,
            }
            for backtest_id, spec in runs
        ]
        updates = [
            {
                "target_id": backtest_id,
                "seq": 1,
                "backtest_id": backtest_id,
                "sweep_id": sweep_id or "",
                "status": Status.QUEUED.value,
                "progress": 0.0,
                "done": 0,
                "total": total_bars,
                "bars_per_second": 0.0,
                "eta_seconds": 0.0,
                "message": "queued",
                "time_us": created,
            }
            for backtest_id, _ in runs
        ]
        await _insert_chunked(conn, orm.runs, rows)
        await _insert_chunked(conn, orm.progress, updates)

    async def get_run(self, backtest_id: str) -> RunView | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orm.runs).where(orm.runs.c.backtest_id == backtest_id))
            ).first()
        return _run_view(row) if row is not None else None

    async def get_runs(self, ids: Iterable[str]) -> dict[str, RunView]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(orm.runs).where(orm.runs.c.backtest_id.in_(list(ids))))
            ).all()
        return {r.backtest_id: _run_view(r) for r in rows}

    async def list_runs(
        self,
        *,
        strategy: str,
        product_id: str,
        statuses: Sequence[Status],
        sweep_id: str,
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[RunView]:
        """Newest first; `after` is the (create_time_us, backtest_id) of the last one seen."""
        c = orm.runs.c
        query = select(orm.runs)
        if strategy:
            query = query.where(c.strategy == strategy)
        if product_id:
            query = query.where(c.product_id == product_id)
        if statuses:
            query = query.where(c.status.in_([s.value for s in statuses]))
        if sweep_id:
            query = query.where(c.sweep_id == sweep_id)
        if after is not None:
            t, i = after
            query = query.where(
                or_(c.create_time_us < t, and_(c.create_time_us == t, c.backtest_id < i))
            )
        query = query.order_by(c.create_time_us.desc(), c.backtest_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_run_view(r) for r in rows]

    async def request_cancel(self, backtest_id: str) -> None:
        """A QUEUED run is canceled at once; a RUNNING one is flagged for its worker."""
        c = orm.runs.c
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(orm.runs)
                .where(c.backtest_id == backtest_id, c.status == Status.QUEUED.value)
                .values(status=Status.CANCELED.value, end_time_us=now_us(), cancel_requested=True)
            )
            if result.rowcount:
                row = (
                    await conn.execute(select(c.bars_total).where(c.backtest_id == backtest_id))
                ).one()
                await self._add_progress(
                    conn, backtest_id, Status.CANCELED, 0.0, 0, row[0], 0.0, 0.0, "canceled"
                )
                await self._sweep_step(conn, backtest_id)
                return
            await conn.execute(
                update(orm.runs)
                .where(c.backtest_id == backtest_id, c.status == Status.RUNNING.value)
                .values(cancel_requested=True)
            )

    # -- the queue ---------------------------------------------------------------------------

    async def queue_stats(self) -> tuple[int, float]:
        """(queued runs, wait of the oldest in seconds) for the metrics."""
        c = orm.runs.c
        query = select(func.count(), func.min(c.create_time_us)).where(
            c.status == Status.QUEUED.value
        )
        async with self._engine.connect() as conn:
            count, oldest = (await conn.execute(query)).one()
        return int(count), 0.0 if oldest is None else max(0.0, (now_us() - oldest) / 1e6)

    async def claim_next(self, worker_id: str, stale_seconds: float) -> str | None:
        """Takes the oldest QUEUED run (or a RUNNING one whose worker stopped heartbeating)
        for `worker_id`; None when there is nothing to do."""
        c = orm.runs.c
        now = now_us()
        stale_before = now - int(stale_seconds * 1e6)
        running = orm.runs.alias("running")
        running_of_sweep = (
            select(func.count())
            .where(running.c.sweep_id == c.sweep_id, running.c.status == Status.RUNNING.value)
            .scalar_subquery()
        )
        # A sweep's max_parallel: runs of a sweep at its limit are not claimable.
        claimable = or_(
            and_(
                c.status == Status.QUEUED.value,
                or_(c.max_parallel == 0, running_of_sweep < c.max_parallel),
            ),
            and_(c.status == Status.RUNNING.value, c.heartbeat_us < stale_before),
        )
        async with self._engine.begin() as conn:
            query = (
                select(c.backtest_id, c.status, c.worker_id, c.sweep_id, c.max_parallel)
                .where(claimable)
                .order_by(c.create_time_us, c.backtest_id)
                .limit(1)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True, of=orm.runs)
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            if row.max_parallel and row.status == Status.QUEUED.value:
                # Claims of one throttled sweep are serialised on its row, then counted again
                # (the filter above read only what was committed before this transaction).
                w = orm.sweeps.c
                if self._postgres:
                    await conn.execute(
                        select(w.sweep_id).where(w.sweep_id == row.sweep_id).with_for_update()
                    )
                busy = (
                    await conn.execute(
                        select(func.count()).where(
                            c.sweep_id == row.sweep_id, c.status == Status.RUNNING.value
                        )
                    )
                ).scalar_one()
                if busy >= row.max_parallel:
                    return None
            previous_worker = row.worker_id
            result = await conn.execute(
                update(orm.runs)
                .where(
                    c.backtest_id == row.backtest_id,
                    c.status == row.status,
                    c.worker_id.is_(None)
                    if previous_worker is None
                    else c.worker_id == previous_worker,
                )
                .values(
                    status=Status.RUNNING.value,
                    worker_id=worker_id,
                    heartbeat_us=now,
                    start_time_us=now,
                    attempts=c.attempts + 1,
                )
            )
            if result.rowcount != 1:
                return None  # another worker won the race (SQLite path)
            return str(row.backtest_id)

    async def heartbeat(
        self, backtest_id: str, worker_id: str, done: int, total: int, rate: float, eta: float
    ) -> bool:
        """Records progress (a new progress update when it moved); returns whether a cancel
        was requested. A worker that lost the job (retaken as stale) sees True."""
        c = orm.runs.c
        fraction = done / total if total else 0.0
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(c.cancel_requested, c.worker_id, c.bars_done, c.status).where(
                        c.backtest_id == backtest_id
                    )
                )
            ).one()
            if row.worker_id != worker_id or row.status != Status.RUNNING.value:
                return True
            values: dict[str, Any] = {"heartbeat_us": now_us()}
            if done != row.bars_done:
                values.update(bars_done=done, bars_total=total, progress=fraction)
                await self._add_progress(
                    conn, backtest_id, Status.RUNNING, fraction, done, total, rate, eta, ""
                )
            await conn.execute(update(orm.runs).where(c.backtest_id == backtest_id).values(values))
            return bool(row.cancel_requested)

    async def release(self, backtest_id: str, worker_id: str) -> None:
        """Hands an unfinished run back to the queue (a worker shutting down)."""
        c = orm.runs.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(orm.runs)
                .where(
                    c.backtest_id == backtest_id,
                    c.worker_id == worker_id,
                    c.status == Status.RUNNING.value,
                )
                .values(status=Status.QUEUED.value, worker_id=None, heartbeat_us=None)
            )

    async def mark_started(self, backtest_id: str, total: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(orm.runs)
                .where(orm.runs.c.backtest_id == backtest_id)
                .values(bars_total=total)
            )
            await self._add_progress(
                conn, backtest_id, Status.RUNNING, 0.0, 0, total, 0.0, 0.0, "running"
            )

    async def finish(
        self,
        backtest_id: str,
        worker_id: str,
        status: Status,
        *,
        error: str = "",
        done: int = 0,
        total: int = 0,
        rate: float = 0.0,
    ) -> bool:
        """Ends a run this worker holds as FAILED or CANCELED; False when it no longer holds it."""
        c = orm.runs.c
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(orm.runs)
                .where(
                    c.backtest_id == backtest_id,
                    c.worker_id == worker_id,
                    c.status == Status.RUNNING.value,
                )
                .values(status=status.value, error=error, end_time_us=now_us())
            )
            if result.rowcount != 1:
                return False
            fraction = done / total if total else 0.0
            await self._add_progress(
                conn, backtest_id, status, fraction, done, total, rate, 0.0, error or status.value
            )
            await self._sweep_step(conn, backtest_id)
            return True

    async def store_results(
        self,
        backtest_id: str,
        worker_id: str,
        *,
        statistics: RunStatistics,
        vectorised: bool,
        indicators: Sequence[IndicatorColumn],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        rate: float,
    ) -> bool:
        """Writes every result table and completes the run in one transaction (a crash
        leaves the run retakable and no half-written results)."""
        c = orm.runs.c
        async with self._engine.begin() as conn:
            held = (
                await conn.execute(
                    select(c.worker_id, c.status).where(c.backtest_id == backtest_id)
                )
            ).one()
            if held.worker_id != worker_id or held.status != Status.RUNNING.value:
                return False
            for name in ("series", "orders", "fills", "trades", "snapshots", "bars"):
                table = getattr(orm, name)
                await conn.execute(table.delete().where(table.c.backtest_id == backtest_id))
                rows = tables.get(name, ())
                if self._postgres and len(rows) > COPY_THRESHOLD:
                    await _copy_rows(conn, table, rows)
                elif len(rows) > COPY_THRESHOLD:
                    await _executemany_rows(conn, table, rows)
                else:
                    await _insert_chunked(conn, table, rows)
            stats = {name: getattr(statistics, name) for name in orm.STAT_COLUMNS}
            await conn.execute(
                update(orm.runs)
                .where(c.backtest_id == backtest_id)
                .values(
                    status=Status.COMPLETED.value,
                    progress=1.0,
                    bars_done=statistics.bar_count,
                    bars_total=statistics.bar_count,
                    end_time_us=now_us(),
                    vectorised=vectorised,
                    statistics_json=json.dumps(asdict(statistics)),
                    indicators_json=json.dumps([_indicator_dict(i) for i in indicators]),
                    **stats,
                )
            )
            await self._add_progress(
                conn,
                backtest_id,
                Status.COMPLETED,
                1.0,
                statistics.bar_count,
                statistics.bar_count,
                rate,
                0.0,
                "completed",
            )
            await self._sweep_step(conn, backtest_id)
            return True

    # -- sweeps ------------------------------------------------------------------------------

    async def add_sweep(
        self, sweep_id: str, spec: SweepSpec, runs: Sequence[tuple[str, RunSpec]], total_bars: int
    ) -> SweepView:
        created = now_us()
        planned = spec.search_trials if spec.is_search else len(runs)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(orm.sweeps).values(
                    sweep_id=sweep_id,
                    strategy=spec.base.strategy,
                    config_json=spec.to_json(),
                    status=Status.QUEUED.value,
                    rank_by=spec.rank_by,
                    total=planned,
                    done=0,
                    progress_seq=1,
                    varied_json=json.dumps(sorted(spec.axes)),
                    holdout_queued=False,
                    queued=len(runs),
                    error="",
                    create_time_us=created,
                )
            )
            await conn.execute(
                insert(orm.progress).values(
                    target_id=sweep_id,
                    seq=1,
                    backtest_id="",
                    sweep_id=sweep_id,
                    status=Status.QUEUED.value,
                    progress=0.0,
                    done=0,
                    total=planned,
                    bars_per_second=0.0,
                    eta_seconds=0.0,
                    message="queued",
                    time_us=created,
                )
            )
            await self._insert_runs(
                conn, runs, sweep_id, total_bars, created, max_parallel=spec.max_parallel
            )
        sweep = await self.get_sweep(sweep_id)
        assert sweep is not None
        return sweep

    async def _sweep_step(self, conn: AsyncConnection, backtest_id: str) -> None:
        """A run of a sweep ended: count it and publish the sweep's progress (the UPDATE
        takes the sweep row's lock, so workers finishing together count correctly)."""
        sweep_id = (
            await conn.execute(
                select(orm.runs.c.sweep_id).where(orm.runs.c.backtest_id == backtest_id)
            )
        ).scalar_one_or_none()
        if not sweep_id:
            return
        w = orm.sweeps.c
        row = (
            await conn.execute(
                update(orm.sweeps)
                .where(w.sweep_id == sweep_id, w.status.in_(_ACTIVE))
                .values(
                    done=w.done + 1,
                    progress_seq=w.progress_seq + 1,
                    status=Status.RUNNING.value,
                )
                .returning(
                    w.done,
                    w.total,
                    w.progress_seq,
                    w.create_time_us,
                    w.config_json,
                    w.holdout_queued,
                )
            )
        ).first()
        if row is None:
            return  # canceled already
        total = row.total
        status = Status.RUNNING
        if row.done >= row.total:
            spec = SweepSpec.from_json(row.config_json)
            added = 0
            if spec.holdout_start is not None and not row.holdout_queued:
                added = await self._queue_holdout(conn, sweep_id, spec)
            total += added
            if added:
                await conn.execute(
                    update(orm.sweeps)
                    .where(w.sweep_id == sweep_id)
                    .values(total=total, holdout_queued=True)
                )
            else:
                status = Status.COMPLETED
                await conn.execute(
                    update(orm.sweeps)
                    .where(w.sweep_id == sweep_id)
                    .values(status=status.value, end_time_us=now_us())
                )
        elapsed = max((now_us() - row.create_time_us) / 1e6, 1e-9)
        rate = row.done / elapsed
        await conn.execute(
            insert(orm.progress).values(
                target_id=sweep_id,
                seq=row.progress_seq,
                backtest_id="",
                sweep_id=sweep_id,
                status=status.value,
                progress=row.done / total if total else 1.0,
                done=row.done,
                total=total,
                bars_per_second=0.0,
                eta_seconds=(total - row.done) / rate if rate > 0 else 0.0,
                message=f"backtest {backtest_id} ended",
                time_us=now_us(),
            )
        )

    async def _queue_holdout(self, conn: AsyncConnection, sweep_id: str, spec: SweepSpec) -> int:
        """Queues the walk-forward re-runs: the best in-sample results on the hold-out."""
        assert spec.holdout_start is not None
        c = orm.runs.c
        column = c[spec.rank_by]
        order = column.desc() if RANK_STATISTICS[spec.rank_by] else column.asc()
        best = (
            await conn.execute(
                select(c.backtest_id, c.config_json)
                .where(
                    c.sweep_id == sweep_id,
                    c.holdout_of.is_(None),
                    c.status == Status.COMPLETED.value,
                )
                .order_by(column.is_(None), order, c.backtest_id)
                .limit(spec.holdout_top)
            )
        ).all()
        runs, sources = [], {}
        for source_id, config_json in best:
            in_sample = RunSpec.from_json(config_json)
            holdout_id = str(uuid.uuid4())
            runs.append(
                (holdout_id, replace(in_sample, start=spec.holdout_start, end=spec.base.end))
            )
            sources[holdout_id] = source_id
        bars = (spec.base.end - spec.holdout_start) // INTERVAL_SECONDS[spec.base.interval]
        await self._insert_runs(
            conn, runs, sweep_id, bars, now_us(), sources, max_parallel=spec.max_parallel
        )
        return len(runs)

    async def add_trial(
        self, sweep_id: str, run: tuple[str, RunSpec], total_bars: int, max_parallel: int = 0
    ) -> bool:
        """Queues one more search trial if the sweep still wants one (a slot is reserved by an
        atomic counter, so concurrent workers never queue more than the planned trials)."""
        w = orm.sweeps.c
        async with self._engine.begin() as conn:
            reserved = await conn.execute(
                update(orm.sweeps)
                .where(
                    w.sweep_id == sweep_id,
                    w.status.in_(_ACTIVE),
                    w.queued < w.total,
                    w.holdout_queued.is_(False),
                )
                .values(queued=w.queued + 1)
            )
            if reserved.rowcount != 1:
                return False
            await self._insert_runs(
                conn, [run], sweep_id, total_bars, now_us(), max_parallel=max_parallel
            )
            return True

    async def search_history(
        self, sweep_id: str, statistic: str
    ) -> list[tuple[dict[str, str], float]]:
        """(params, statistic) of the sweep's completed in-sample runs."""
        c = orm.runs.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(c.config_json, c[statistic]).where(
                        c.sweep_id == sweep_id,
                        c.holdout_of.is_(None),
                        c.status == Status.COMPLETED.value,
                        c[statistic].is_not(None),
                    )
                )
            ).all()
        return [(RunSpec.from_json(r[0]).params, float(r[1])) for r in rows]

    async def holdout_runs(self, sweep_id: str, ids: Sequence[str]) -> dict[str, RunView]:
        """The hold-out re-runs of these in-sample runs, by in-sample id."""
        c = orm.runs.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(orm.runs).where(c.sweep_id == sweep_id, c.holdout_of.in_(list(ids)))
                )
            ).all()
        return {r.holdout_of: _run_view(r) for r in rows}

    async def get_sweep(self, sweep_id: str) -> SweepView | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orm.sweeps).where(orm.sweeps.c.sweep_id == sweep_id))
            ).first()
        return _sweep_view(row) if row is not None else None

    async def list_sweeps(
        self, *, strategy: str, limit: int, after: tuple[int, str] | None
    ) -> list[SweepView]:
        w = orm.sweeps.c
        query = select(orm.sweeps)
        if strategy:
            query = query.where(w.strategy == strategy)
        if after is not None:
            t, i = after
            query = query.where(
                or_(w.create_time_us < t, and_(w.create_time_us == t, w.sweep_id < i))
            )
        query = query.order_by(w.create_time_us.desc(), w.sweep_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_sweep_view(r) for r in rows]

    async def ranked_runs(
        self, sweep_id: str, statistic: str, higher_is_better: bool, offset: int, limit: int
    ) -> list[RunView]:
        """The sweep's runs best first by `statistic` (runs without results last)."""
        c = orm.runs.c
        column = c[statistic]
        order = column.desc() if higher_is_better else column.asc()
        query = (
            select(orm.runs)
            .where(c.sweep_id == sweep_id, c.holdout_of.is_(None))
            .order_by(column.is_(None), order, c.backtest_id)
            .offset(offset)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_run_view(r) for r in rows]

    async def cancel_sweep(self, sweep_id: str) -> None:
        """Cancels the sweep, its queued runs at once, and flags its running ones."""
        c, w = orm.runs.c, orm.sweeps.c
        now = now_us()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(orm.sweeps)
                    .where(w.sweep_id == sweep_id, w.status.in_(_ACTIVE))
                    .values(
                        status=Status.CANCELED.value,
                        end_time_us=now,
                        progress_seq=w.progress_seq + 1,
                    )
                    .returning(w.done, w.total, w.progress_seq)
                )
            ).first()
            if row is None:
                return
            queued = (
                (
                    await conn.execute(
                        update(orm.runs)
                        .where(c.sweep_id == sweep_id, c.status == Status.QUEUED.value)
                        .values(
                            status=Status.CANCELED.value, end_time_us=now, cancel_requested=True
                        )
                        .returning(c.backtest_id)
                    )
                )
                .scalars()
                .all()
            )
            for backtest_id in queued:
                await self._add_progress(
                    conn, backtest_id, Status.CANCELED, 0.0, 0, 0, 0.0, 0.0, "canceled"
                )
            await conn.execute(
                update(orm.runs)
                .where(c.sweep_id == sweep_id, c.status == Status.RUNNING.value)
                .values(cancel_requested=True)
            )
            await conn.execute(
                insert(orm.progress).values(
                    target_id=sweep_id,
                    seq=row.progress_seq,
                    backtest_id="",
                    sweep_id=sweep_id,
                    status=Status.CANCELED.value,
                    progress=row.done / row.total if row.total else 0.0,
                    done=row.done,
                    total=row.total,
                    bars_per_second=0.0,
                    eta_seconds=0.0,
                    message="canceled",
                    time_us=now,
                )
            )

    # -- progress ----------------------------------------------------------------------------

    async def _add_progress(
        self,
        conn: AsyncConnection,
        backtest_id: str,
        status: Status,
        fraction: float,
        done: int,
        total: int,
        rate: float,
        eta: float,
        message: str,
    ) -> None:
        c = orm.runs.c
        seq = (
            await conn.execute(
                update(orm.runs)
                .where(c.backtest_id == backtest_id)
                .values(progress_seq=c.progress_seq + 1)
                .returning(c.progress_seq, c.sweep_id)
            )
        ).one()
        await conn.execute(
            insert(orm.progress).values(
                target_id=backtest_id,
                seq=seq[0],
                backtest_id=backtest_id,
                sweep_id=seq[1] or "",
                status=status.value,
                progress=fraction,
                done=done,
                total=total,
                bars_per_second=rate,
                eta_seconds=eta,
                message=message,
                time_us=now_us(),
            )
        )

    async def progress_after(
        self, target_id: str, seq: int, limit: int = 500
    ) -> list[ProgressView]:
        p = orm.progress.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(orm.progress)
                    .where(p.target_id == target_id, p.seq > seq)
                    .order_by(p.seq)
                    .limit(limit)
                )
            ).all()
        return [_progress_view(r) for r in rows]

    async def latest_progress(self, target_id: str) -> ProgressView | None:
        p = orm.progress.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(orm.progress)
                    .where(p.target_id == target_id)
                    .order_by(p.seq.desc())
                    .limit(1)
                )
            ).first()
        return _progress_view(row) if row is not None else None

    # -- results -----------------------------------------------------------------------------

    async def page(
        self,
        table_name: str,
        backtest_id: str,
        *,
        time_column: str,
        start: int | None,
        end: int | None,
        after_seq: int,
        limit: int,
        order_column: str = "seq",
        columns: Sequence[str] | None = None,
    ) -> list[Row[Any]]:
        """Rows of one run's result table in `order_column` order after `after_seq`, with
        `time_column` in [start, end)."""
        table = getattr(orm, table_name)
        cols = [table.c[name] for name in columns] if columns else [table]
        query = select(*cols).where(
            table.c.backtest_id == backtest_id, table.c[order_column] > after_seq
        )
        if start is not None:
            query = query.where(table.c[time_column] >= start)
        if end is not None:
            query = query.where(table.c[time_column] < end)
        query = query.order_by(table.c[order_column]).limit(limit)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def count_bars(self, backtest_id: str, start: int | None, end: int | None) -> int:
        b = orm.bars.c
        query = select(func.count()).where(b.backtest_id == backtest_id)
        if start is not None:
            query = query.where(b.time >= start)
        if end is not None:
            query = query.where(b.time < end)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def fills_between(self, backtest_id: str, first: int, last: int) -> list[Row[Any]]:
        """Fills with time in [first, last] (markers of a candle page)."""
        f = orm.fills.c
        async with self._engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(orm.fills)
                        .where(f.backtest_id == backtest_id, f.time >= first, f.time <= last)
                        .order_by(f.seq)
                    )
                ).all()
            )

    async def bar_at(self, backtest_id: str, timestamp: int) -> Row[Any] | None:
        """The last bar at or before `timestamp` (one index lookup)."""
        b = orm.bars.c
        async with self._engine.connect() as conn:
            return (
                await conn.execute(
                    select(b.bar_index, b.time, b.close, b.equity, b.drawdown)
                    .where(b.backtest_id == backtest_id, b.time <= timestamp)
                    .order_by(b.time.desc())
                    .limit(1)
                )
            ).first()

    async def playback_tables(
        self, backtest_id: str, max_rows: int
    ) -> tuple[list[Row[Any]], list[Row[Any]], list[Row[Any]]] | None:
        """A completed run's snapshots, fills and orders, each in its playback order, or None
        when fills or orders exceed `max_rows` (too big to hold in memory)."""
        s, f, o = orm.snapshots.c, orm.fills.c, orm.orders.c
        async with self._engine.connect() as conn:
            for table in (orm.fills, orm.orders):
                count = (
                    await conn.execute(
                        select(func.count()).where(table.c.backtest_id == backtest_id)
                    )
                ).scalar_one()
                if count > max_rows:
                    return None
            snapshots = (
                await conn.execute(
                    select(orm.snapshots).where(s.backtest_id == backtest_id).order_by(s.bar_index)
                )
            ).all()
            fills = (
                await conn.execute(
                    select(orm.fills)
                    .where(f.backtest_id == backtest_id)
                    .order_by(f.bar_index, f.seq)
                )
            ).all()
            orders = (
                await conn.execute(
                    select(orm.orders).where(o.backtest_id == backtest_id).order_by(o.seq)
                )
            ).all()
        return list(snapshots), list(fills), list(orders)

    async def playback_rows(
        self, backtest_id: str, timestamp: int, recent: int
    ) -> tuple[Row[Any] | None, Row[Any] | None, list[Row[Any]], list[Row[Any]], list[Row[Any]]]:
        """What GetPlaybackState needs, each an index lookup: the last bar at or before
        `timestamp`, the nearest snapshot at or before it, the fills after the snapshot up to
        the bar (at most K bars of them), the orders working after the bar, and the most
        recent fills."""
        b, s, f, o = orm.bars.c, orm.snapshots.c, orm.fills.c, orm.orders.c
        async with self._engine.connect() as conn:
            bar = (
                await conn.execute(
                    select(b.bar_index, b.time, b.close, b.equity, b.drawdown)
                    .where(b.backtest_id == backtest_id, b.time <= timestamp)
                    .order_by(b.time.desc())
                    .limit(1)
                )
            ).first()
            if bar is None:
                return None, None, [], [], []
            index = bar.bar_index
            snapshot = (
                await conn.execute(
                    select(orm.snapshots)
                    .where(s.backtest_id == backtest_id, s.bar_index <= index)
                    .order_by(s.bar_index.desc())
                    .limit(1)
                )
            ).first()
            base_bar = snapshot.bar_index if snapshot is not None else -2
            # Every query below is an index range of at most K bars (or `recent` rows).
            replay = list(
                (
                    await conn.execute(
                        select(orm.fills)
                        .where(
                            f.backtest_id == backtest_id,
                            f.bar_index > base_bar,
                            f.bar_index <= index,
                        )
                        .order_by(f.bar_index, f.seq)
                    )
                ).all()
            )
            base_open = json.loads(snapshot.open_orders) if snapshot is not None else []
            still_open = (
                (
                    await conn.execute(
                        select(orm.orders).where(
                            o.backtest_id == backtest_id, o.seq.in_(base_open), o.done_bar > index
                        )
                    )
                ).all()
                if base_open
                else []
            )
            placed = (
                await conn.execute(
                    select(orm.orders).where(
                        o.backtest_id == backtest_id,
                        o.submit_bar > base_bar,
                        o.submit_bar <= index,
                        o.done_bar > index,
                    )
                )
            ).all()
            working = sorted([*still_open, *placed], key=lambda r: r.seq)
            latest = list(
                (
                    await conn.execute(
                        select(orm.fills)
                        .where(f.backtest_id == backtest_id, f.bar_index <= index)
                        .order_by(f.bar_index.desc(), f.seq.desc())
                        .limit(recent)
                    )
                ).all()
            )
        return cast(Row[Any], bar), snapshot, replay, working, latest

    async def equity_series(self, backtest_id: str) -> EquitySeries | None:
        """The run's per-bar time, equity, cash and drawdown as arrays (for downsampling)."""
        s = orm.series.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orm.series).where(s.backtest_id == backtest_id))
            ).first()
        if row is None:
            return None
        return EquitySeries(
            np.frombuffer(row.time, dtype="<i8"),
            np.frombuffer(row.equity, dtype="<f8"),
            np.frombuffer(row.cash, dtype="<f8"),
            np.frombuffer(row.drawdown, dtype="<f8"),
        )

    async def all_trades(self, backtest_id: str, limit: int) -> list[Row[Any]]:
        t = orm.trades.c
        async with self._engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(orm.trades)
                        .where(t.backtest_id == backtest_id)
                        .order_by(t.seq)
                        .limit(limit)
                    )
                ).all()
            )

    async def indicator_columns(self, backtest_id: str) -> list[IndicatorColumn]:
        async with self._engine.connect() as conn:
            text = (
                await conn.execute(
                    select(orm.runs.c.indicators_json).where(orm.runs.c.backtest_id == backtest_id)
                )
            ).scalar_one_or_none()
        return [IndicatorColumn(**d) for d in json.loads(text)] if text else []


def _indicator_dict(column: IndicatorColumn) -> dict[str, Any]:
    return asdict(column)
