"""Caching: one Cache protocol, an in-process implementation and a Redis one.

cache = create_cache(settings)            # RedisCache when REDIS_URL is set, else in-process
body = await cache.get_or_load(f"balances:{account}", 30, fetch_balances)  # one call per key
"""

from __future__ import annotations

from typing import Protocol

from tradeplane.runtime.cache.base import (
    CACHE_FALLBACKS,
    CACHE_LOADS,
    CACHE_REQUESTS,
    Cache,
    CacheUnavailable,
    Loader,
)
from tradeplane.runtime.cache.failopen import FailOpenCache
from tradeplane.runtime.cache.memory import InMemoryCache
from tradeplane.runtime.cache.redis_cache import RedisCache


class CacheSettings(Protocol):
    """The part of ServiceSettings create_cache reads."""

    @property
    def service_name(self) -> str: ...
    @property
    def redis_url(self) -> str | None: ...


def create_cache(settings: CacheSettings, *, name: str = "default") -> Cache:
    """RedisCache (keys prefixed `tradeplane:<service>:<name>:`) when settings.redis_url is set,
    failing open to an in-process cache while Redis is down (FailOpenCache); else an
    InMemoryCache. `name` labels the metrics and separates caches of one service."""
    if settings.redis_url:
        prefix = f"tradeplane:{settings.service_name}:{name}:"
        shared = RedisCache(settings.redis_url, prefix=prefix, name=name)
        return FailOpenCache(shared, InMemoryCache(name=name), name=name)
    return InMemoryCache(name=name)


__all__ = [
    "CACHE_FALLBACKS",
    "CACHE_LOADS",
    "CACHE_REQUESTS",
    "Cache",
    "CacheSettings",
    "CacheUnavailable",
    "FailOpenCache",
    "InMemoryCache",
    "Loader",
    "RedisCache",
    "create_cache",
]
