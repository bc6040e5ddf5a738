"""Let a started write transaction finish even if the caller is cancelled.

A cancelled RPC (client deadline, disconnect) or a stopped background task must not abandon a
transaction half-way: the driver call keeps running on its thread and, on SQLite, the orphaned
connection can keep the database write lock for seconds. The transaction is short, so it is
left to commit or roll back on its own; the caller still sees its cancellation afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_completion(work: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise
