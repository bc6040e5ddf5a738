"""Fan-out of sequenced messages to many subscribers, with replay and bounded queues.

One hub per stream kind (ticks, candles). Messages are published under a key (a product id,
or product + interval); the hub numbers them per key (1, 2, 3, ...) and keeps the last
`replay_size` of each key in a ring buffer so a client can resume with `since_seq`.

Each subscriber has its own bounded queue. Publishing never waits: when a subscriber's queue
is full, that subscriber is dropped ("fell behind") and its queue released, so a slow client
can neither grow memory nor slow the others. A reader takes everything queued at once
(`next_batch`), so batches grow with the rate and shrink to single messages when it is low.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DROP_REASON_FELL_BEHIND = "fell_behind"


@dataclass(frozen=True, slots=True)
class Sequenced(Generic[T]):
    key: str
    seq: int
    item: T


@dataclass(slots=True)
class Batch(Generic[T]):
    items: list[Sequenced[T]] = field(default_factory=list)
    # Keys whose resume cursor was older than the replay buffer: the client missed messages.
    resets: list[str] = field(default_factory=list)


class FellBehind(Exception):
    """The subscriber's queue overflowed; it was dropped and must resubscribe."""

    def __init__(self, queue_size: int) -> None:
        super().__init__(f"subscriber fell behind (more than {queue_size} queued messages)")
        self.queue_size = queue_size


class Subscription(Generic[T]):
    """One reader's view of the hub. Created by StreamHub.subscribe; close() when done."""

    def __init__(self, hub: StreamHub[T], keys: tuple[str, ...], limit: int) -> None:
        self._hub = hub
        self.keys = keys
        self._limit = limit
        self._queue: deque[Sequenced[T]] = deque()
        self._resets: list[str] = []
        self._wakeup = asyncio.Event()
        self._fell_behind = False
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def active(self) -> bool:
        return not (self._closed or self._fell_behind)

    def _offer(self, message: Sequenced[T]) -> bool:
        """Queue a message; False (and drop the queue) when it is full."""
        if len(self._queue) >= self._limit:
            self._fell_behind = True
            self._queue.clear()
            self._wakeup.set()
            return False
        self._queue.append(message)
        self._wakeup.set()
        return True

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    async def next_batch(self, max_items: int = 1000) -> Batch[T] | None:
        """Wait for messages and return all queued (up to max_items), oldest first.

        Returns None when the subscription is closed (hub shutdown or close()); raises
        FellBehind when the subscriber was dropped for being too slow.
        """
        while True:
            if self._fell_behind:
                raise FellBehind(self._limit)
            if self._queue or self._resets:
                batch: Batch[T] = Batch(resets=self._resets)
                self._resets = []
                n = min(max_items, len(self._queue))
                popleft = self._queue.popleft
                batch.items = [popleft() for _ in range(n)]
                if not self._queue:
                    self._wakeup.clear()
                return batch
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        if not self._closed:
            self._close()
            self._hub._remove(self)


class StreamHub(Generic[T]):
    def __init__(
        self,
        name: str,
        *,
        replay_size: int,
        queue_size: int,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        if replay_size < 1 or queue_size < 1:
            raise ValueError("replay_size and queue_size must be positive")
        self.name = name
        self.replay_size = replay_size
        self.queue_size = queue_size
        self._on_drop = on_drop
        self._buffers: dict[str, deque[Sequenced[T]]] = {}
        self._last_seq: dict[str, int] = {}
        self._subscribers: dict[str, set[Subscription[T]]] = {}
        self._all: set[Subscription[T]] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    def last_seq(self, key: str) -> int:
        return self._last_seq.get(key, 0)

    def last(self, key: str) -> Sequenced[T] | None:
        buffer = self._buffers.get(key)
        return buffer[-1] if buffer else None

    def publish(self, key: str, item: T) -> Sequenced[T]:
        seq = self._last_seq.get(key, 0) + 1
        self._last_seq[key] = seq
        message = Sequenced(key, seq, item)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = deque(maxlen=self.replay_size)
        buffer.append(message)
        subscribers = self._subscribers.get(key)
        if subscribers:
            dropped = [s for s in subscribers if not s._offer(message)]
            for subscription in dropped:
                self._remove(subscription)
                if self._on_drop is not None:
                    self._on_drop(DROP_REASON_FELL_BEHIND)
        return message

    def publish_many(self, key: str, items: Iterable[T]) -> list[Sequenced[T]]:
        return [self.publish(key, item) for item in items]

    def subscribe(
        self, keys: Iterable[str], since_seq: Mapping[str, int] | None = None
    ) -> Subscription[T]:
        """Subscribe to `keys`. For a key in `since_seq` (the last seq the client saw), the
        buffered messages after it are queued first; when the buffer no longer reaches back
        that far (or the cursor is ahead of the hub, e.g. after a restart) the key is reported
        as reset instead and live messages follow."""
        keys = tuple(dict.fromkeys(keys))
        since_seq = since_seq or {}
        replay: list[Sequenced[T]] = []
        resets: list[str] = []
        for key in keys:
            if key not in since_seq:
                continue
            since, last = since_seq[key], self.last_seq(key)
            if since == last:
                continue
            buffer = self._buffers.get(key)
            first = buffer[0].seq if buffer else last + 1
            if since > last or since + 1 < first:
                resets.append(key)
            else:
                replay.extend(itertools.islice(buffer or (), since + 1 - first, None))
        # Replayed messages come from the bounded buffer, so allow them on top of the queue.
        subscription = Subscription(self, keys, self.queue_size + len(replay))
        subscription._queue.extend(replay)
        subscription._resets = resets
        if replay or resets:
            subscription._wakeup.set()
        if self._closed:
            subscription._close()
            return subscription
        for key in keys:
            self._subscribers.setdefault(key, set()).add(subscription)
        self._all.add(subscription)
        return subscription

    def _remove(self, subscription: Subscription[T]) -> None:
        for key in subscription.keys:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
        self._all.discard(subscription)

    def close_all(self) -> None:
        """Shutdown: every reader's next_batch returns None once its queue is drained."""
        self._closed = True
        for subscription in list(self._all):
            subscription._close()
        self._subscribers.clear()
        self._all.clear()
