"""tradeplane.runtime.cache: the same tests against the in-process cache and a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from tradeplane.runtime.cache import (
    Cache,
    FailOpenCache,
    InMemoryCache,
    RedisCache,
    create_cache,
)
from tradeplane.runtime.errors import Unavailable
from tradeplane.testing import free_port
from tradeplane.testing.faultproxy import FaultProxy


class CountingLoader:
    """A loader that counts its calls and takes `delay` seconds, like a slow upstream call."""

    def __init__(self, value: bytes = b"loaded", delay: float = 0.1, error: bool = False) -> None:
        self.calls = 0
        self.value, self.delay, self.error = value, delay, error

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error:
            raise ValueError("upstream failed")
        return self.value


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    if request.param == "memory":
        instance: Cache = InMemoryCache(name=name)
    else:
        instance = RedisCache(request.getfixturevalue("redis_url"), prefix="t:", name=name)
    yield instance
    await instance.close()


async def test_get_returns_what_set_stored_and_none_for_a_missing_key(cache: Cache) -> None:
    assert await cache.get("missing") is None
    await cache.set("k", b"v1")
    assert await cache.get("k") == b"v1"
    await cache.set("k", b"v2")
    assert await cache.get("k") == b"v2"


async def test_delete_removes_the_key(cache: Cache) -> None:
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.delete("never-set")  # not an error


async def test_values_expire_after_their_ttl(cache: Cache) -> None:
    await cache.set("short", b"v", ttl_seconds=0.2)
    await cache.set("forever", b"v")
    assert await cache.get("short") == b"v"
    await asyncio.sleep(0.35)
    assert await cache.get("short") is None
    assert await cache.get("forever") == b"v"


async def test_get_or_load_stores_the_loaded_value_until_it_expires(cache: Cache) -> None:
    loader = CountingLoader(delay=0)
    assert await cache.get_or_load("k", 0.2, loader) == b"loaded"
    assert await cache.get_or_load("k", 0.2, loader) == b"loaded"
    assert loader.calls == 1
    assert await cache.get("k") == b"loaded"
    await asyncio.sleep(0.35)
    assert await cache.get_or_load("k", 0.2, loader) == b"loaded"
    assert loader.calls == 2


async def test_fifty_concurrent_callers_share_one_loader_call(cache: Cache) -> None:
    loader = CountingLoader(delay=0.1)
    results = await asyncio.gather(*(cache.get_or_load("hot", 30, loader) for _ in range(50)))
    assert results == [b"loaded"] * 50
    assert loader.calls == 1


async def test_a_loader_error_reaches_every_waiter_and_is_not_cached(cache: Cache) -> None:
    failing = CountingLoader(delay=0.05, error=True)
    results = await asyncio.gather(
        *(cache.get_or_load("k", 30, failing) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    assert failing.calls == 1
    assert await cache.get("k") is None
    working = CountingLoader(delay=0)
    assert await cache.get_or_load("k", 30, working) == b"loaded"
    assert working.calls == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_load(cache: Cache) -> None:
    loader = CountingLoader(delay=0.1)
    first = asyncio.create_task(cache.get_or_load("k", 30, loader))
    second = asyncio.create_task(cache.get_or_load("k", 30, loader))
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second == b"loaded"
    assert first.cancelled()
    assert loader.calls == 1


async def test_hits_and_misses_are_counted_per_cache_name() -> None:
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    cache = InMemoryCache(name=name)

    def sample(metric: str, result: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"cache": name, "result": result})

    await cache.get_or_load("k", 30, CountingLoader(delay=0))
    await cache.get_or_load("k", 30, CountingLoader(delay=0))
    assert sample("tradeplane_cache_requests_total", "miss") == 1
    assert sample("tradeplane_cache_requests_total", "hit") == 1
    assert sample("tradeplane_cache_loads_total", "ok") == 1


# --- in-process only -----------------------------------------------------------------------


async def test_memory_cache_evicts_the_least_recently_used_entry() -> None:
    cache = InMemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode())
    assert await cache.get("a") == b"a"  # a is now the most recently used
    await cache.set("d", b"d")
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]


# --- Redis only ----------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_keys_carry_the_prefix_and_a_millisecond_ttl(redis_url: str) -> None:
    cache = RedisCache(redis_url, prefix="svc:prices:")
    raw = redis.Redis.from_url(redis_url)
    try:
        await cache.set("BTC-USD", b"1", ttl_seconds=5)
        assert await raw.keys("*") == [b"svc:prices:v:BTC-USD"]
        assert 4000 < await raw.pttl("svc:prices:v:BTC-USD") <= 5000
    finally:
        await raw.aclose()
        await cache.close()


@pytest.mark.redis
async def test_two_redis_caches_share_one_loader_call_across_instances(redis_url: str) -> None:
    """Two RedisCache objects stand for two processes: the SET NX lock makes one load."""
    a, b = RedisCache(redis_url, prefix="shared:"), RedisCache(redis_url, prefix="shared:")
    loader = CountingLoader(delay=0.2)
    try:
        calls = [c.get_or_load("hot", 30, loader) for _ in range(25) for c in (a, b)]
        results = await asyncio.gather(*calls)
    finally:
        await a.close()
        await b.close()
    assert results == [b"loaded"] * 50
    assert loader.calls == 1


@pytest.mark.redis
async def test_a_waiter_loads_itself_once_a_dead_winners_lock_expires(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    # A winner that took the lock for 300 ms and died without storing a value.
    await raw.set("t:l:k", "dead-process", px=300)
    cache = RedisCache(redis_url, prefix="t:")
    loader = CountingLoader(delay=0)
    started = time.monotonic()
    try:
        assert await cache.get_or_load("k", 30, loader) == b"loaded"
    finally:
        await cache.close()
        await raw.aclose()
    elapsed = time.monotonic() - started
    assert loader.calls == 1
    assert 0.2 < elapsed < 2


@pytest.mark.redis
async def test_a_waiter_stops_waiting_for_a_slow_winner_after_the_bounded_wait(
    redis_url: str,
) -> None:
    raw = redis.Redis.from_url(redis_url)
    await raw.set("t:l:k", "slow-process", px=60_000)  # alive, holding the lock for a minute
    cache = RedisCache(redis_url, prefix="t:", wait_seconds=0.3)
    loader = CountingLoader(delay=0)
    started = time.monotonic()
    try:
        assert await cache.get_or_load("k", 30, loader) == b"loaded"
    finally:
        await cache.close()
        await raw.aclose()
    assert loader.calls == 1
    assert 0.25 < time.monotonic() - started < 2


@pytest.mark.redis
async def test_the_winner_releases_its_lock_after_loading_or_failing(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    cache = RedisCache(redis_url, prefix="t:")
    try:
        await cache.get_or_load("k", 30, CountingLoader(delay=0))
        assert await raw.exists("t:l:k") == 0
        with pytest.raises(ValueError):
            await cache.get_or_load("e", 30, CountingLoader(delay=0, error=True))
        assert await raw.exists("t:l:e") == 0
    finally:
        await cache.close()
        await raw.aclose()


async def test_redis_down_raises_unavailable_quickly_and_never_calls_the_loader() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_seconds=1)
    loader = CountingLoader(delay=0)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await cache.get("k")
        with pytest.raises(Unavailable):
            await cache.set("k", b"v", ttl_seconds=1)
        with pytest.raises(Unavailable):
            await cache.delete("k")
        with pytest.raises(Unavailable):
            await cache.get_or_load("k", 1, loader)
    finally:
        await cache.close()
    assert loader.calls == 0
    assert time.monotonic() - started < 3


async def test_redis_that_never_answers_raises_unavailable_after_the_socket_timeout() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", socket_timeout_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await cache.get("k")
    finally:
        await cache.close()
        server.close()
    assert time.monotonic() - started < 3


# --- create_cache --------------------------------------------------------------------------


async def test_create_cache_is_in_process_without_a_redis_url() -> None:
    cache = create_cache(SimpleNamespace(service_name="market", redis_url=None))
    assert isinstance(cache, InMemoryCache)


@pytest.mark.redis
async def test_create_cache_uses_redis_with_a_service_prefix(redis_url: str) -> None:
    cache = create_cache(SimpleNamespace(service_name="wallets", redis_url=redis_url), name="cb")
    try:
        assert isinstance(cache, FailOpenCache) and isinstance(cache.shared, RedisCache)
        assert cache.shared.prefix == "tradeplane:wallets:cb:"
        assert await cache.get_or_load("k", 5, CountingLoader(delay=0)) == b"loaded"
    finally:
        await cache.close()


@pytest.mark.redis
async def test_fail_open_cache_stands_in_while_redis_is_down(redis_url: str) -> None:
    """Redis behind the fault proxy: refused -> the in-process cache serves, one load per
    key; Redis back -> the shared cache is used again (after retry_seconds)."""
    parts = urlsplit(redis_url)
    assert parts.hostname is not None and parts.port is not None
    async with FaultProxy(parts.hostname, parts.port) as proxy:
        url = f"redis://{proxy.address}{parts.path}"
        cache = FailOpenCache(
            RedisCache(url, prefix="failopen:", socket_timeout_seconds=0.5),
            InMemoryCache(name="failopen"),
            name="failopen",
            retry_seconds=0.2,
        )
        loader = CountingLoader(delay=0)
        try:
            assert await cache.get_or_load("k", 30, loader) == b"loaded"
            assert loader.calls == 1 and not cache.degraded
            proxy.refuse()
            proxy.reset_peer()
            results = await asyncio.gather(*(cache.get_or_load("j", 30, loader) for _ in range(10)))
            assert results == [b"loaded"] * 10 and cache.degraded
            assert loader.calls == 2  # one load for "j" while down, shared by the 10 callers
            await cache.set("x", b"1", 30)
            assert await cache.get("x") == b"1"
            proxy.clear()
            await asyncio.sleep(0.3)
            assert await cache.get_or_load("k", 30, loader) == b"loaded"  # from Redis again
            assert loader.calls == 2 and not cache.degraded
        finally:
            await cache.close()
