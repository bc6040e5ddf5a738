"""Venue calls through the shared cache (tradeplane.runtime.cache): TTL per endpoint, one
in-flight call per key across coroutines AND replicas (RedisCache's lock), stale-on-error,
rate limits shared by every replica, metrics per venue and endpoint.

Keys (under the cache's own prefix):
  <venue>:<endpoint>:<key>          the fresh value, expires after the endpoint's TTL
  <venue>:<endpoint>:<key>:stale    the same value kept `stale_ttl` for when the venue is down
  <venue>:<endpoint>:<key>:force    forced refreshes: concurrent ones share one call
  <venue>:<endpoint>:blocked        set for Retry-After seconds after a 429: nobody calls

A value is stored as JSON {"t": fetch time (epoch s), "v": the venue's JSON}.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from tradeplane.runtime.cache import Cache
from tradeplane.runtime.errors import DomainError, Unavailable

VENUE_CALLS = Counter(
    "wallets_venue_requests",
    "HTTP/JSON-RPC calls made to a venue or chain node, by venue, endpoint and result "
    "(ok, error, rate_limited).",
    ["venue", "endpoint", "result"],
)
VENUE_CACHE = Counter(
    "wallets_venue_cache_requests",
    "Venue data lookups, by venue, endpoint and result: hit (cached or shared in-flight "
    "call), miss (this request made the call), stale (venue down, stale copy served), "
    "error (venue down, nothing cached).",
    ["venue", "endpoint", "result"],
)

VENUE_REQUEST_SECONDS = Histogram(
    "wallets_venue_request_seconds",
    "Duration of the calls that reached a venue or chain node, by venue and endpoint.",
    ["venue", "endpoint"],
)

# Parsed venue answers kept in process (values are never mutated by their readers).
PARSED_ENTRIES = 512
# How long concurrent forced refreshes of one key share a single call.
FORCE_WINDOW_SECONDS = 1.0


class VenueError(Exception):
    """The venue answered badly or not at all (the caller may serve stale data)."""


class RateLimited(VenueError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:g}s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Cached:
    value: Any  # the venue's JSON
    fetched_at: datetime
    stale: bool
    calls: int  # venue calls this lookup made (0 or 1)


class VenueCache:
    def __init__(
        self,
        cache: Cache,
        venue: str,
        *,
        stale_ttl_seconds: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._venue = venue
        self._stale_ttl = stale_ttl_seconds
        self._clock = clock
        # Parsed values by their cached bytes: a warm hit costs a GET, not a JSON parse.
        self._parsed: OrderedDict[bytes, tuple[Any, datetime]] = OrderedDict()

    async def get(
        self,
        endpoint: str,
        key: str,
        ttl_seconds: float,
        load: Callable[[], Awaitable[Any]],
        *,
        force_refresh: bool = False,
        stale_only: bool = False,
    ) -> Cached:
        """The venue's answer for (endpoint, key): cached within `ttl_seconds`, else loaded
        once for everyone waiting; when the venue fails, the stale copy (flagged) or
        errors.Unavailable. `stale_only`: the venue just failed for this caller, so do not
        call it again (the next pages of a listing): the stale copy or Unavailable."""
        base = f"{self._venue}:{endpoint}:{key}"
        if stale_only:
            return await self._stale(endpoint, base, VenueError("venue failed earlier"), 0)
        blocked_key = f"{self._venue}:{endpoint}:blocked"
        made = 0

        async def loader() -> bytes:
            nonlocal made
            if await self._cache.get(blocked_key) is not None:
                VENUE_CALLS.labels(self._venue, endpoint, "rate_limited").inc()
                raise RateLimited(0)
            made += 1
            try:
                with VENUE_REQUEST_SECONDS.labels(self._venue, endpoint).time():
                    value = await load()
            except RateLimited as exc:
                VENUE_CALLS.labels(self._venue, endpoint, "rate_limited").inc()
                await self._cache.set(blocked_key, b"1", max(exc.retry_after, 0.001))
                raise
            except VenueError:
                VENUE_CALLS.labels(self._venue, endpoint, "error").inc()
                raise
            VENUE_CALLS.labels(self._venue, endpoint, "ok").inc()
            body = json.dumps({"t": self._clock(), "v": value}, separators=(",", ":")).encode()
            await self._cache.set(f"{base}:stale", body, self._stale_ttl)
            if force_refresh:
                await self._cache.set(base, body, ttl_seconds)
            return body

        try:
            if force_refresh:
                raw = await self._cache.get_or_load(f"{base}:force", FORCE_WINDOW_SECONDS, loader)
            else:
                raw = await self._cache.get_or_load(base, ttl_seconds, loader)
        except VenueError as exc:
            return await self._stale(endpoint, base, exc, made)
        except DomainError:
            VENUE_CACHE.labels(self._venue, endpoint, "error").inc()
            raise
        VENUE_CACHE.labels(self._venue, endpoint, "miss" if made else "hit").inc()
        return self._decode(raw, stale=False, calls=made)

    async def _stale(self, endpoint: str, base: str, error: VenueError, made: int) -> Cached:
        stale = await self._cache.get(f"{base}:stale")
        if stale is None:
            VENUE_CACHE.labels(self._venue, endpoint, "error").inc()
            raise Unavailable(
                f"{self._venue} {endpoint} unavailable and nothing cached: {error}"
            ) from error
        VENUE_CACHE.labels(self._venue, endpoint, "stale").inc()
        return self._decode(stale, stale=True, calls=made)

    def _decode(self, raw: bytes, *, stale: bool, calls: int) -> Cached:
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        hit = self._parsed.get(digest)
        if hit is None:
            body = json.loads(raw)
            hit = (body["v"], datetime.fromtimestamp(body["t"], UTC))
            self._parsed[digest] = hit
            if len(self._parsed) > PARSED_ENTRIES:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(digest)
        return Cached(hit[0], hit[1], stale, calls)
