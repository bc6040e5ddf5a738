"""Redis cache (redis.asyncio + hiredis): key prefix, TTLs, single-flight across processes.

Keys: values live at `<prefix>v:<key>`, load locks at `<prefix>l:<key>`, so no user key can
collide with a lock.

Single-flight across processes: on a miss the caller tries `SET <lock> <token> NX PX lock_ttl`.
The winner loads and stores the value, then deletes its own lock (compare-and-delete). Losers
poll for the value with backoff; when the lock disappears without a value (the winner failed or
died and its lock expired) one of them takes the lock and loads; after `wait_seconds` a loser
stops waiting and loads itself, so nobody waits forever. Within one process, concurrent callers
for a key also share one in-process task, so only one coroutine polls Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from tradeplane.runtime.cache.base import CACHE_LOADS, CACHE_REQUESTS, CacheUnavailable, Loader
from tradeplane.runtime.tracing import instrument_redis

T = TypeVar("T")

# Deletes the lock only if we still own it (it may have expired and been taken by another).
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _px(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisCache:
    """A Cache shared by every process that uses the same Redis and key prefix."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tradeplane:",
        name: str = "default",
        socket_timeout_seconds: float = 2.0,
        lock_ttl_seconds: float = 10.0,
        wait_seconds: float | None = None,
        poll_interval_seconds: float = 0.01,
        max_poll_interval_seconds: float = 0.2,
    ) -> None:
        self._prefix = prefix
        self._name = name
        self._lock_ttl_seconds = lock_ttl_seconds
        self._wait_seconds = lock_ttl_seconds if wait_seconds is None else wait_seconds
        self._poll_interval = poll_interval_seconds
        self._max_poll_interval = max_poll_interval_seconds
        # Timeouts and one quick retry: a dead Redis must fail fast (errors.Unavailable), not
        # hang or back off for seconds. from_url does no I/O.
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=socket_timeout_seconds,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
            health_check_interval=30,
        )
        instrument_redis(self._redis)
        self._release_lock = self._redis.register_script(_RELEASE_LOCK)
        self._loads: dict[str, asyncio.Task[bytes]] = {}

    def _value_key(self, key: str) -> str:
        return f"{self._prefix}v:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self._prefix}l:{key}"

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"cache unavailable (redis): {type(exc).__name__}") from exc

    async def ping(self) -> None:
        """Raises CacheUnavailable (an errors.Unavailable) when Redis does not answer."""
        await self._call(self._redis.ping())

    async def _get_value(self, value_key: str) -> bytes | None:
        value = await self._call(self._redis.get(value_key))
        # decode_responses is off, so this is bytes; the str branch only narrows the type.
        return value.encode() if isinstance(value, str) else value

    async def _lookup(self, key: str) -> bytes | None:
        value = await self._get_value(self._value_key(key))
        CACHE_REQUESTS.labels(self._name, "miss" if value is None else "hit").inc()
        return value

    async def get(self, key: str) -> bytes | None:
        return await self._lookup(key)

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else _px(ttl_seconds)
        await self._call(self._redis.set(self._value_key(key), value, px=px))

    async def delete(self, key: str) -> None:
        await self._call(self._redis.delete(self._value_key(key)))

    async def get_or_load(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        value = await self._lookup(key)
        if value is not None:
            return value
        task = self._loads.get(key)
        if task is None:
            task = asyncio.create_task(self._load_once(key, ttl_seconds, loader))
            self._loads[key] = task
            task.add_done_callback(lambda t: self._load_done(key, t))
        # shield: a caller that is cancelled does not cancel the load the others wait for.
        return await asyncio.shield(task)

    def _load_done(self, key: str, task: asyncio.Task[bytes]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have been cancelled

    async def _load_once(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        value_key, lock_key = self._value_key(key), self._lock_key(key)
        token = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        delay = self._poll_interval
        while True:
            acquired = await self._call(
                self._redis.set(lock_key, token, nx=True, px=_px(self._lock_ttl_seconds))
            )
            if acquired:
                try:
                    # Another winner may have stored it between our GET and our SET NX.
                    value = await self._get_value(value_key)
                    if value is not None:
                        return value
                    return await self._load_and_store(key, ttl_seconds, loader)
                finally:
                    await self._release(lock_key, token)
            value = await self._get_value(value_key)
            if value is not None:
                return value
            if loop.time() >= deadline:
                # The lock holder is alive but too slow: stop waiting and load ourselves.
                return await self._load_and_store(key, ttl_seconds, loader)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_poll_interval)

    async def _load_and_store(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        try:
            value = await loader()
        except BaseException:
            CACHE_LOADS.labels(self._name, "error").inc()
            raise
        CACHE_LOADS.labels(self._name, "ok").inc()
        await self.set(key, value, ttl_seconds)
        return value

    async def _release(self, lock_key: str, token: str) -> None:
        # Best effort: if Redis is gone the lock expires by itself after lock_ttl.
        with contextlib.suppress(RedisError, OSError):
            await self._release_lock(keys=[lock_key], args=[token])

    async def close(self) -> None:
        for task in list(self._loads.values()):
            task.cancel()
        await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisCache(name={self._name!r}, prefix={self._prefix!r})"

    # Debugging/tests: the raw client (e.g. to inspect TTLs).
    @property
    def client(self) -> redis.Redis:
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix
