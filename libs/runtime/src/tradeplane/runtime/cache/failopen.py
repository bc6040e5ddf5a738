"""A shared cache that fails open: while it is down, an in-process cache stands in.

A Redis outage must not fail the calls that merely use a cache (a reconciliation, an
indicator query): they keep working with this process's own cache, whose loads are still
one per key within the process (so a venue sees at most one call per key per replica, not
one per request). The outage is logged once and counted; after `retry_seconds` the shared
cache is tried again, and once it answers it is used again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tradeplane.runtime.cache.base import CACHE_FALLBACKS, Cache, CacheUnavailable, Loader

log = logging.getLogger("tradeplane.runtime.cache")
T = TypeVar("T")


class FailOpenCache:
    def __init__(
        self,
        shared: Cache,
        local: Cache,
        *,
        name: str = "default",
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared, self._local = shared, local
        self._name = name
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until: float | None = None  # None: the shared cache is believed up

    @property
    def shared(self) -> Cache:
        return self._shared

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def _use_shared(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def _went_down(self, error: CacheUnavailable) -> None:
        if self._down_until is None:
            log.warning(
                "shared cache down, using the in-process cache until it answers",
                extra={"cache": self._name, "error": str(error)},
            )
        self._down_until = self._clock() + self._retry_seconds

    def _answered(self) -> None:
        if self._down_until is not None:
            log.info("shared cache answers again", extra={"cache": self._name})
            self._down_until = None

    async def _either(
        self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self._use_shared():
            try:
                result = await shared()
            except CacheUnavailable as error:
                self._went_down(error)
            else:
                self._answered()
                return result
        CACHE_FALLBACKS.labels(self._name).inc()
        return await local()

    async def get(self, key: str) -> bytes | None:
        return await self._either(lambda: self._shared.get(key), lambda: self._local.get(key))

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        await self._either(
            lambda: self._shared.set(key, value, ttl_seconds),
            lambda: self._local.set(key, value, ttl_seconds),
        )

    async def delete(self, key: str) -> None:
        await self._either(lambda: self._shared.delete(key), lambda: self._local.delete(key))

    async def get_or_load(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes:
        loaded: list[bytes] = []

        async def remembering() -> bytes:
            value = await loader()
            loaded.append(value)
            return value

        async def local() -> bytes:
            if loaded:  # loaded, then the shared store failed: keep it, do not load twice
                await self._local.set(key, loaded[0], ttl_seconds)
                return loaded[0]
            return await self._local.get_or_load(key, ttl_seconds, loader)

        return await self._either(
            lambda: self._shared.get_or_load(key, ttl_seconds, remembering), local
        )

    async def close(self) -> None:
        try:
            await self._shared.close()
        finally:
            await self._local.close()

    def __repr__(self) -> str:
        return f"FailOpenCache({self._shared!r})"
