"""SQL for venue reconciliation: orders by venue order id, and the per-venue sync state
(where the next run lists fills from, and the last outcome)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.execution.adapters import orm
from tradeplane.execution.adapters.rows import from_us, to_us


class VenueSyncStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def order_id_for(self, venue: str, venue_order_id: str) -> str | None:
        t = orm.orders
        if not venue_order_id:
            return None
        # "<> ''" lets a generic plan use the partial index (migration 0006).
        q = select(t.c.order_id).where(
            t.c.venue == venue, t.c.venue_order_id == venue_order_id, t.c.venue_order_id != ""
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(q.limit(1))).scalar_one_or_none()

    async def fills_since(self, venue: str) -> datetime | None:
        t = orm.venue_sync
        async with self._engine.connect() as conn:
            us = (
                await conn.execute(select(t.c.fills_since_us).where(t.c.venue == venue))
            ).scalar_one_or_none()
        return None if us is None else from_us(us)

    async def save(
        self, venue: str, fills_since: datetime | None, run: datetime, ok: bool, problems: list[str]
    ) -> None:
        t = orm.venue_sync
        values = {
            "fills_since_us": None if fills_since is None else to_us(fills_since),
            "last_run_us": to_us(run),
            "ok": ok,
            "mismatches": json.dumps(problems),
        }
        async with self._engine.begin() as conn:
            updated = await conn.execute(t.update().where(t.c.venue == venue).values(**values))
            if updated.rowcount == 0:
                await conn.execute(t.insert().values(venue=venue, **values))
