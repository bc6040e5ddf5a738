"""A completed run's snapshots, fills and orders held in memory for GetPlaybackState.

A finished run never changes, so the rows GetPlaybackState needs are read once and every
later instant is found with binary searches instead of five SQL range queries: the nearest
snapshot at or before the bar, the fills after it (at most K bars of them), the orders
working then and the most recent fills. Runs whose fills or orders exceed `max_rows` are
not indexed (the caller falls back to the SQL queries), and at most `runs` indexes are kept
(least recently used evicted), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.engine import Row

Tables = tuple[list[Row[Any]], list[Row[Any]], list[Row[Any]]]


@dataclass(frozen=True, slots=True)
class PlaybackRows:
    snapshot: Row[Any] | None
    replay: list[Row[Any]]  # fills after the snapshot up to the bar, in order
    working: list[Row[Any]]  # orders working after the bar, by seq
    latest: list[Row[Any]]  # most recent fills first


class PlaybackIndex:
    def __init__(self, snapshots: list[Row[Any]], fills: list[Row[Any]], orders: list[Row[Any]]):
        self._snapshots = snapshots
        self._snapshot_bars = np.fromiter((r.bar_index for r in snapshots), np.int64)
        self._snapshot_open = [tuple(json.loads(r.open_orders)) for r in snapshots]
        self._fills = fills
        self._fill_bars = np.fromiter((r.bar_index for r in fills), np.int64)
        self._orders = {r.seq: r for r in orders}
        by_submit = sorted(orders, key=lambda r: (r.submit_bar, r.seq))
        self._by_submit = by_submit
        self._submit_bars = np.fromiter((r.submit_bar for r in by_submit), np.int64)

    def rows_at(self, bar_index: int, recent: int) -> PlaybackRows:
        at = int(np.searchsorted(self._snapshot_bars, bar_index, side="right")) - 1
        snapshot = self._snapshots[at] if at >= 0 else None
        base_bar = snapshot.bar_index if snapshot is not None else -2
        base_open = self._snapshot_open[at] if at >= 0 else ()
        lo = int(np.searchsorted(self._fill_bars, base_bar, side="right"))
        hi = int(np.searchsorted(self._fill_bars, bar_index, side="right"))
        still_open = [
            order
            for seq in base_open
            if (order := self._orders.get(seq)) is not None and order.done_bar > bar_index
        ]
        first = int(np.searchsorted(self._submit_bars, base_bar, side="right"))
        last = int(np.searchsorted(self._submit_bars, bar_index, side="right"))
        placed = [r for r in self._by_submit[first:last] if r.done_bar > bar_index]
        working = sorted([*still_open, *placed], key=lambda r: r.seq)
        latest = self._fills[max(0, hi - recent) : hi][::-1]
        return PlaybackRows(snapshot, self._fills[lo:hi], working, latest)


class PlaybackIndexCache:
    """At most `runs` indexes, least recently used evicted; one load per run at a time."""

    def __init__(self, load: Callable[[str], Awaitable[Tables | None]], runs: int) -> None:
        self._load = load
        self._runs = runs
        self._entries: OrderedDict[str, asyncio.Task[PlaybackIndex | None]] = OrderedDict()

    async def get(self, backtest_id: str) -> PlaybackIndex | None:
        if self._runs <= 0:
            return None
        task = self._entries.get(backtest_id)
        if task is None:
            task = asyncio.ensure_future(self._build(backtest_id))
            self._entries[backtest_id] = task
            while len(self._entries) > self._runs:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(backtest_id)
        try:
            return await asyncio.shield(task)
        except Exception:
            if self._entries.get(backtest_id) is task:
                del self._entries[backtest_id]  # a failed load is retried by the next call
            raise

    async def _build(self, backtest_id: str) -> PlaybackIndex | None:
        tables = await self._load(backtest_id)
        return None if tables is None else PlaybackIndex(*tables)
