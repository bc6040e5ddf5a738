"""In-process cache: TTL, an LRU bound on the number of entries, single-flight loading."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from tradeplane.runtime.cache.base import CACHE_LOADS, CACHE_REQUESTS, Loader


class InMemoryCache:
    """A Cache living in this process (the embedded default). Not shared between processes."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        name: str = "default",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._name = name
        self._clock = clock
        # key -> (value, expires_at or None); order = least recently used first.
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._loads: dict[str, asyncio.Task[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _count(self, value: bytes | None) -> bytes | None:
        CACHE_REQUESTS.labels(self._name, "miss" if value is None else "hit").inc()
        return value

    async def get(self, key: str) -> bytes | None:
        return self._count(self._lookup(key))

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        expires_at = None if ttl_seconds is None else self._clock() + ttl_seconds
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get_or_load(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        value = self._count(self._lookup(key))
        if value is not None:
            return value
        task = self._loads.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, ttl_seconds, loader))
            self._loads[key] = task
            task.add_done_callback(lambda t: self._load_done(key, t))
        # shield: a caller that is cancelled does not cancel the load the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        try:
            value = await loader()
        except BaseException:
            CACHE_LOADS.labels(self._name, "error").inc()
            raise
        CACHE_LOADS.labels(self._name, "ok").inc()
        await self.set(key, value, ttl_seconds)
        return value

    def _load_done(self, key: str, task: asyncio.Task[bytes]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have been cancelled

    async def ping(self) -> None:
        """Always up (same interface as RedisCache.ping)."""

    async def close(self) -> None:
        for task in list(self._loads.values()):
            task.cancel()
        self._entries.clear()
