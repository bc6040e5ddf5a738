"""GroupCommit: concurrent callers share a flush; each gets its own result or error, only
after its batch's flush returned."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tradeplane.execution.service_layer.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()  # a flush began

    async def flush(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_an_idle_caller_is_flushed_alone_and_waiting_ones_share_the_next_flush() -> None:
    rec = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(rec.flush)
    rec.release.clear()
    first = asyncio.ensure_future(gc.submit(1))
    await rec.started.wait()  # its flush began (after one turn of the event loop)
    others = [asyncio.ensure_future(gc.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not first.done()  # answered only after its flush returns
    rec.release.set()
    assert await first == 10
    assert await asyncio.gather(*others) == [20, 30, 40]
    assert rec.batches == [[1], [2, 3, 4]]


async def test_what_answered_callers_submit_next_joins_the_waiting_items() -> None:
    """An intent's caller submits its venue ack right after its flush answered: the ack joins
    the items that queued during that flush rather than waiting for the flush after."""
    rec = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(rec.flush)

    async def caller(i: int) -> int:
        await gc.submit(i)
        return await gc.submit(i + 100)

    rec.release.clear()
    callers = [asyncio.ensure_future(caller(i)) for i in (1, 2, 3)]
    await rec.started.wait()
    late = asyncio.ensure_future(gc.submit(4))  # queues while the first flush runs
    await asyncio.sleep(0)
    rec.release.set()
    assert await asyncio.gather(*callers, late) == [1010, 1020, 1030, 40]
    assert rec.batches == [[1, 2, 3], [4, 101, 102, 103]]


async def test_errors_are_per_item_and_a_failed_flush_fails_its_batch_only() -> None:
    rec = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(rec.flush)
    results = await asyncio.gather(*(gc.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError)

    async def broken(items: Sequence[int]) -> list[int | Exception]:
        raise ConnectionError("database down")

    failing: GroupCommit[int, int] = GroupCommit(broken)
    with pytest.raises(ConnectionError):
        await failing.submit(1)
    assert await gc.submit(5) == 50  # the other committer is unaffected


async def test_a_caller_that_goes_away_does_not_drop_its_item() -> None:
    rec = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(rec.flush, max_batch=2)
    rec.release.clear()
    gone = asyncio.ensure_future(gc.submit(7))
    await asyncio.sleep(0)
    gone.cancel()
    rec.release.set()
    assert await gc.submit(8) == 80
    assert [i for b in rec.batches for i in b] == [7, 8]  # 7 was still committed


async def test_batches_are_capped() -> None:
    rec = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(rec.flush, max_batch=2)
    assert await asyncio.gather(*(gc.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert [len(b) for b in rec.batches] == [2, 2, 1]
