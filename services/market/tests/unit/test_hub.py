"""StreamHub: sequence numbers, replay, resets, bounded queues, batching, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from tradeplane.market.domain.hub import FellBehind, StreamHub


def make_hub(replay: int = 10, queue: int = 100) -> StreamHub[str]:
    return StreamHub("test", replay_size=replay, queue_size=queue)


async def test_sequence_numbers_are_per_key_and_start_at_one() -> None:
    hub = make_hub()
    assert [hub.publish("a", "x").seq for _ in range(3)] == [1, 2, 3]
    assert hub.publish("b", "y").seq == 1
    assert hub.last_seq("a") == 3 and hub.last_seq("c") == 0


async def test_live_subscriber_gets_only_its_keys_in_one_batch() -> None:
    hub = make_hub()
    sub = hub.subscribe(["a"])
    for i in range(5):
        hub.publish("a", f"a{i}")
        hub.publish("b", f"b{i}")
    batch = await sub.next_batch()
    assert batch is not None
    assert [m.item for m in batch.items] == [f"a{i}" for i in range(5)]
    assert [m.seq for m in batch.items] == [1, 2, 3, 4, 5]


async def test_batches_are_capped_and_low_rate_gives_single_messages() -> None:
    hub = make_hub()
    sub = hub.subscribe(["a"])
    for i in range(7):
        hub.publish("a", str(i))
    first = await sub.next_batch(max_items=4)
    second = await sub.next_batch(max_items=4)
    assert first is not None and second is not None
    assert (len(first.items), len(second.items)) == (4, 3)
    waiter = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    hub.publish("a", "late")
    single = await asyncio.wait_for(waiter, 1)
    assert single is not None and [m.item for m in single.items] == ["late"]


async def test_resume_replays_missed_messages() -> None:
    hub = make_hub(replay=10)
    for i in range(8):
        hub.publish("a", str(i))
    sub = hub.subscribe(["a"], {"a": 5})
    hub.publish("a", "live")
    batch = await sub.next_batch()
    assert batch is not None and batch.resets == []
    assert [m.seq for m in batch.items] == [6, 7, 8, 9]


async def test_resume_at_the_head_replays_nothing() -> None:
    hub = make_hub()
    hub.publish("a", "x")
    sub = hub.subscribe(["a"], {"a": 1})
    assert sub.queued == 0


async def test_cursor_older_than_buffer_or_ahead_of_hub_gets_a_reset() -> None:
    hub = make_hub(replay=3)
    for i in range(10):
        hub.publish("a", str(i))
        hub.publish("b", str(i))
    sub = hub.subscribe(["a", "b"], {"a": 2, "b": 99})
    batch = await sub.next_batch()
    assert batch is not None
    assert sorted(batch.resets) == ["a", "b"]
    assert batch.items == []


async def test_slow_subscriber_is_dropped_without_affecting_others() -> None:
    dropped: list[str] = []
    hub = StreamHub[str]("test", replay_size=10, queue_size=5, on_drop=dropped.append)
    slow = hub.subscribe(["a"])
    fast = hub.subscribe(["a"])
    for i in range(20):
        hub.publish("a", str(i))
        batch = await fast.next_batch()
        assert batch is not None and batch.items[-1].seq == i + 1
    assert dropped == ["fell_behind"]
    assert slow.queued == 0  # its queue was released
    assert hub.subscriber_count == 1
    with pytest.raises(FellBehind):
        await slow.next_batch()


async def test_close_all_ends_readers() -> None:
    hub = make_hub()
    sub = hub.subscribe(["a"])
    waiter = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    hub.close_all()
    assert await asyncio.wait_for(waiter, 1) is None
    assert hub.subscriber_count == 0
    late = hub.subscribe(["a"])
    assert await late.next_batch() is None


async def test_closed_subscription_leaves_the_hub() -> None:
    hub = make_hub()
    sub = hub.subscribe(["a", "b"])
    sub.close()
    assert hub.subscriber_count == 0
    hub.publish("a", "x")
    assert sub.queued == 0
