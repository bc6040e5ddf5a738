"""run_to_completion: the work is never interrupted by its caller's cancellations (however many
arrive), and the caller still ends with its cancellation once the work is done."""

from __future__ import annotations

import asyncio

import pytest

from tradeplane.wallets.service_layer.shielding import run_to_completion


async def test_result_and_error_pass_through() -> None:
    async def value() -> int:
        return 7

    async def boom() -> int:
        raise ValueError("boom")

    assert await run_to_completion(value()) == 7
    with pytest.raises(ValueError, match="boom"):
        await run_to_completion(boom())


async def test_work_survives_repeated_cancellation_and_caller_ends_cancelled() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def write() -> str:
        await release.wait()
        finished.append("committed")
        return "done"

    caller = asyncio.create_task(run_to_completion(write()))
    await asyncio.sleep(0)
    for _ in range(3):  # e.g. client cancel, server stop, event loop teardown
        caller.cancel()
        await asyncio.sleep(0)
    assert not caller.done() and finished == []
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["committed"]


async def test_caller_ends_when_the_work_itself_is_cancelled() -> None:
    # At event loop teardown every task is cancelled, the work's too: the caller must end.
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    caller = asyncio.create_task(run_to_completion(stuck()))
    await started.wait()
    work = next(t for t in asyncio.all_tasks() if t.get_coro().__name__ == "stuck")
    caller.cancel()
    await asyncio.sleep(0)
    work.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await caller
