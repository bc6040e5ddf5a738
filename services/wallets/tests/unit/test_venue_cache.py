"""VenueCache over the in-process cache (the embedded default): TTL, single flight, forced
refresh, stale copies, rate-limit blocks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tradeplane.runtime.cache import InMemoryCache
from tradeplane.runtime.errors import Unavailable
from tradeplane.wallets.adapters.venue_cache import RateLimited, VenueCache, VenueError


class Venue:
    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = None
        self.value = 1

    async def load(self) -> Any:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        return {"n": self.value}


async def test_ttl_single_flight_and_forced_refresh() -> None:
    cache, venue = VenueCache(InMemoryCache(), "x"), Venue()
    got = await asyncio.gather(*(cache.get("e", "k", 60, venue.load) for _ in range(50)))
    assert venue.calls == 1 and sum(g.calls for g in got) == 1
    assert all(g.value == {"n": 1} and not g.stale for g in got)
    venue.value = 2
    assert (await cache.get("e", "k", 60, venue.load)).value == {"n": 1}  # within the TTL
    forced = await asyncio.gather(
        *(cache.get("e", "k", 60, venue.load, force_refresh=True) for _ in range(10))
    )
    assert venue.calls == 2 and all(f.value == {"n": 2} for f in forced)
    assert (await cache.get("e", "k", 60, venue.load)).value == {"n": 2}  # stored as fresh


async def test_stale_copy_when_the_venue_fails_and_unavailable_without_one() -> None:
    cache, venue = VenueCache(InMemoryCache(), "x"), Venue()
    venue.fail = VenueError("HTTP 503")
    with pytest.raises(Unavailable, match="nothing cached"):
        await cache.get("e", "k", 0.05, venue.load)
    venue.fail = None
    await cache.get("e", "k", 0.05, venue.load)
    await asyncio.sleep(0.06)
    venue.fail = VenueError("HTTP 503")
    got = await cache.get("e", "k", 0.05, venue.load)
    assert got.stale and got.value == {"n": 1} and got.calls == 1
    only = await cache.get("e", "k", 0.05, venue.load, stale_only=True)
    assert only.stale and only.calls == 0 and venue.calls == 3


async def test_rate_limit_blocks_calls_for_retry_after() -> None:
    cache, venue = VenueCache(InMemoryCache(), "x"), Venue()
    await cache.get("e", "k", 0.01, venue.load)
    await asyncio.sleep(0.02)
    venue.fail = RateLimited(0.2)
    assert (await cache.get("e", "k", 0.01, venue.load)).stale
    venue.fail = None
    for _ in range(3):  # blocked: stale copies, no call
        assert (await cache.get("e", "k", 0.01, venue.load)).stale
    assert venue.calls == 2
    await asyncio.sleep(0.25)
    got = await cache.get("e", "k", 0.01, venue.load)
    assert not got.stale and venue.calls == 3
