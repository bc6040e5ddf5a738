"""Let a started database call finish even if the caller is cancelled.

A cancelled RPC (client deadline, disconnect, server stop) or a stopped background task must not
abandon a database call half-way: the driver call keeps running on its thread and, on SQLite,
the orphaned connection can keep the database write lock for seconds. Worse, SQLAlchemy answers
a cancelled call by closing the connection, and a SECOND cancellation during that close (gRPC
cancels a call, then the server stop or the event loop's teardown cancels it again) makes it
force-stop aiosqlite's worker thread under its own pending close, which then waits forever.

So the call runs in a task of its own that the caller's cancellations never reach, however many
arrive; the caller waits for it (it is short) and then raises its cancellation. Only a
cancellation of that task itself (the event loop shutting down) ends it early.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_completion(work: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise  # the work itself was cancelled, or it ended as we were
            cancelled = exc
        except Exception:
            if cancelled is None:
                raise
            break  # the caller's cancellation wins over the work's own failure
        else:
            break
    if cancelled is not None:
        raise cancelled
    return task.result()
