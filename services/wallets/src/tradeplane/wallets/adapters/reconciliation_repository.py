"""Reconciliation runs on SQLAlchemy: runs, their wallets, discrepancies and the sequenced
update feed behind StreamReconciliations. Lists load a page plus its wallets and discrepancies
in three queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tradeplane.wallets.adapters import orm
from tradeplane.wallets.adapters.sqlite import WRITE_OPTION
from tradeplane.wallets.domain.reconciliation import (
    Discrepancy,
    Presence,
    ReconciliationRun,
    ReconciliationStatus,
    ReconciliationTrigger,
)
from tradeplane.wallets.service_layer.reconciliation import RunFilter, RunRecord

R = orm.reconciliation_runs
RW = orm.reconciliation_run_wallets
D = orm.reconciliation_discrepancies
U = orm.reconciliation_updates


def _discrepancy(row: Any) -> Discrepancy:
    return Discrepancy(
        wallet_id=row.wallet_id,
        currency=row.currency,
        ledger_balance=row.ledger_balance,
        venue_balance=row.venue_balance,
        difference=row.difference,
        tolerance=row.tolerance,
        within_tolerance=False,
        presence=Presence(row.presence),
        venue_stale=bool(row.venue_stale),
    )


class SqlReconciliationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, run: ReconciliationRun) -> int:
        async with self._engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                values = {
                    "status": run.status.value,
                    "end_time": run.end_time,
                    "checked_count": run.checked_count,
                    "venue_calls": run.venue_calls,
                    "error": run.error[:1000],
                    "venue_stale": run.venue_stale,
                }
                if not run.finished:
                    await conn.execute(
                        R.insert().values(
                            run_id=run.run_id,
                            trigger=run.trigger.value,
                            start_time=run.start_time,
                            last_seq=0,
                            **values,
                        )
                    )
                    if run.wallet_ids:
                        await conn.execute(
                            RW.insert(),
                            [{"run_id": run.run_id, "wallet_id": w} for w in run.wallet_ids],
                        )
                else:
                    rows = [
                        {
                            "run_id": run.run_id,
                            "wallet_id": d.wallet_id,
                            "currency": d.currency,
                            "ledger_balance": d.ledger_balance,
                            "venue_balance": d.venue_balance,
                            "difference": d.difference,
                            "tolerance": d.tolerance,
                            "presence": d.presence.value,
                            "venue_stale": d.venue_stale,
                        }
                        for d in run.discrepancies
                    ]
                    if rows:
                        await conn.execute(D.insert(), rows)
                result = await conn.execute(
                    U.insert().values(run_id=run.run_id, status=run.status.value)
                )
                seq = int(result.inserted_primary_key[0])  # type: ignore[index]
                await conn.execute(
                    update(R).where(R.c.run_id == run.run_id).values(last_seq=seq, **values)
                )
        return seq

    async def _records(
        self, conn: AsyncConnection, rows: Sequence[Any], seqs: Sequence[tuple[int, str, str]] = ()
    ) -> list[RunRecord]:
        """Records for run rows; with `seqs` (seq, status, run id) the snapshot of each update."""
        if not rows:
            return []
        ids = list({r.run_id for r in rows})
        wallets: dict[str, list[str]] = defaultdict(list)
        for r in await conn.execute(
            select(RW).where(RW.c.run_id.in_(ids)).order_by(RW.c.run_id, RW.c.wallet_id)
        ):
            wallets[r.run_id].append(r.wallet_id)
        found: dict[str, list[Discrepancy]] = defaultdict(list)
        query = select(D).where(D.c.run_id.in_(ids)).order_by(D.c.wallet_id, D.c.currency)
        for r in await conn.execute(query):
            found[r.run_id].append(_discrepancy(r))

        def record(row: Any, seq: int, status: str | None) -> RunRecord:
            running = status == ReconciliationStatus.RUNNING.value
            return RunRecord(
                run_id=row.run_id,
                seq=seq,
                status=ReconciliationStatus(status or row.status),
                trigger=ReconciliationTrigger(row.trigger),
                wallet_ids=tuple(wallets[row.run_id]),
                start_time=row.start_time,
                end_time=None if running else row.end_time,
                checked_count=0 if running else row.checked_count,
                discrepancies=() if running else tuple(found[row.run_id]),
                venue_calls=0 if running else row.venue_calls,
                error="" if running else row.error,
                venue_stale=False if running else bool(row.venue_stale),
            )

        if seqs:
            by_id = {r.run_id: r for r in rows}
            return [record(by_id[run_id], seq, status) for seq, status, run_id in seqs]
        return [record(r, int(r.last_seq), None) for r in rows]

    async def get(self, run_id: str) -> RunRecord | None:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(R).where(R.c.run_id == run_id))).all()
            records = await self._records(conn, rows)
        return records[0] if records else None

    async def list_runs(self, f: RunFilter) -> list[RunRecord]:
        query = select(R).order_by(R.c.start_time.desc(), R.c.run_id.desc()).limit(f.limit)
        if f.wallet_id:
            query = query.where(
                R.c.run_id.in_(select(RW.c.run_id).where(RW.c.wallet_id == f.wallet_id))
            )
        if f.statuses:
            query = query.where(R.c.status.in_([s.value for s in f.statuses]))
        if f.start is not None:
            query = query.where(R.c.start_time >= f.start)
        if f.end is not None:
            query = query.where(R.c.start_time < f.end)
        if f.after is not None:
            t, run_id = f.after
            query = query.where(
                or_(R.c.start_time < t, and_(R.c.start_time == t, R.c.run_id < run_id))
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            return await self._records(conn, rows)

    async def updates_after(self, seq: int, limit: int) -> list[RunRecord]:
        async with self._engine.connect() as conn:
            updates = (
                await conn.execute(
                    select(U.c.seq, U.c.status, U.c.run_id)
                    .where(U.c.seq > seq)
                    .order_by(U.c.seq)
                    .limit(limit)
                )
            ).all()
            if not updates:
                return []
            ids = list({u.run_id for u in updates})
            rows = (await conn.execute(select(R).where(R.c.run_id.in_(ids)))).all()
            return await self._records(
                conn, rows, [(int(u.seq), u.status, u.run_id) for u in updates]
            )

    async def last_seq(self) -> int:
        async with self._engine.connect() as conn:
            return int(
                (await conn.execute(select(func.coalesce(func.max(U.c.seq), 0)))).scalar_one()
            )

    async def first_seq(self) -> int | None:
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(func.min(U.c.seq)))).scalar_one()
        return None if value is None else int(value)
