"""Redis down (issue 11, item 5): the wallets service reaches a real Redis through the fault
proxy. While Redis is unreachable, reconciliation keeps working with Coinbase calls made
from this process (its in-process cache stands in: at most one call per page per TTL, the
client's rate limit still applies) and nothing else fails; when Redis returns it is used
again and warm reconciles make no Coinbase call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.faultproxy import FaultProxy
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import RunningWallets, stop_wallets
from .test_venue_coinbase import coinbase_settings, reconcile, start_coinbase_wallets
from .test_venue_coinbase import fake as fake
from .test_wallets_grpc import transfer

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest_asyncio.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    parts = urlsplit(redis_url)
    assert parts.hostname is not None and parts.port is not None
    async with FaultProxy(parts.hostname, parts.port) as proxy:
        yield proxy, f"redis://{proxy.address}{parts.path}"


@pytest_asyncio.fixture
async def wallets_via_proxy(
    postgres_database_url: str, fake: FakeCoinbase, redis_proxy: tuple[FaultProxy, str]
) -> AsyncIterator[RunningWallets]:
    _, url = redis_proxy
    running = await start_coinbase_wallets(coinbase_settings(postgres_database_url, fake, url))
    try:
        yield running
    finally:
        await stop_wallets(running)


async def test_reconcile_survives_redis_outage_and_refills_the_cache(
    wallets_via_proxy: RunningWallets, fake: FakeCoinbase, redis_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, _ = redis_proxy
    w = wallets_via_proxy
    cold = await reconcile(w)
    assert fake.accounts.calls == 2 and cold.venue_calls == 2
    await reconcile(w)
    assert fake.accounts.calls == 2  # warm: from Redis

    proxy.refuse()
    proxy.reset_peer()  # Redis is gone for the service
    for _ in range(3):
        run = await reconcile(w)
        assert run.status == pb.RECONCILIATION_STATUS_DISCREPANCIES  # still compared (BTC)
        assert not run.venue_stale
    # Called directly (Redis had it cached), then the in-process cache served the others.
    assert fake.accounts.calls == 2 + 2
    # Nothing else fails meanwhile.
    assert (await w.stub.ListWallets(pb.ListWalletsRequest())).wallets
    await transfer(w, "during-outage", pb.TRANSFER_KIND_DEPOSIT, "cb", "1")

    proxy.clear()  # Redis is back: used again once the fail-open retry interval passed
    await asyncio.sleep(1.1)
    forced = await reconcile(w, force_refresh=True)  # refreshes Redis through the venue
    assert forced.venue_calls == 2 and fake.accounts.calls == 6
    await reconcile(w)
    assert fake.accounts.calls == 6, "warm reconcile after the outage called Coinbase"
