"""The cache port every service codes against, and its Prometheus counters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from prometheus_client import Counter

from tradeplane.runtime.errors import Unavailable

Loader = Callable[[], Awaitable[bytes]]

CACHE_REQUESTS = Counter(
    "tradeplane_cache_requests",
    "Cache lookups by cache name and result (hit or miss).",
    ["cache", "result"],
)
CACHE_FALLBACKS = Counter(
    "tradeplane_cache_fallbacks",
    "Cache operations served by the in-process stand-in while the shared cache was down.",
    ["cache"],
)
CACHE_LOADS = Counter(
    "tradeplane_cache_loads",
    "Loader calls made on a cache miss, by cache name and result (ok or error).",
    ["cache", "result"],
)


class CacheUnavailable(Unavailable):
    """The cache itself (e.g. Redis) did not answer; a loader's own errors are never this."""


@runtime_checkable
class Cache(Protocol):
    """A bytes cache with TTLs and single-flight loading.

    get_or_load: concurrent callers for one key share ONE loader call; the loaded value is stored
    with `ttl_seconds` (None = no expiry). A loader exception reaches every caller that waited on
    it and nothing is stored, so the next call loads again.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def get_or_load(self, key: str, ttl_seconds: float | None, loader: Loader) -> bytes: ...

    async def close(self) -> None: ...
