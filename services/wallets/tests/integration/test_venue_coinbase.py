"""Coinbase venue balances over real gRPC, through a real Redis, against FakeCoinbase (which
checks the CDP JWT and counts the accounts calls it answers): paging, TTL, single-flight across
concurrent requests and replicas, force_refresh, stale data when Coinbase is down, 429 +
Retry-After, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from prometheus_client import REGISTRY

from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.fakes.coinbase_keys import ec_key_pair
from trading.common.v1 import common_pb2
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import RunningWallets, start_wallets, stop_wallets, wallets_settings
from .test_wallets_grpc import transfer

KEY_NAME = "organizations/org-1/apiKeys/wallets"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeCoinbase]:
    private, public = ec_key_pair()
    async with FakeCoinbase(jwt_public_key=public, jwt_key_name=KEY_NAME) as server:
        server.private_key_pem = private  # type: ignore[attr-defined]
        # 3 accounts at 2 a page: every listing is 2 calls.
        server.accounts.set_balance("USD", "1000", hold="50")
        server.accounts.set_balance("BTC", "0.5")
        server.accounts.set_balance("ETH", "0")
        yield server


def coinbase_settings(db: str, fake: FakeCoinbase, redis_url: str, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "wallets_default_wallet": False,
        "wallets_coinbase_rest_url": fake.rest_url,
        "wallets_coinbase_page_limit": 2,
        "wallets_coinbase_accounts_ttl_seconds": 30,
        "coinbase_api_key": KEY_NAME,
        "coinbase_api_secret": fake.private_key_pem,  # type: ignore[attr-defined]
    }
    values.update(extra)
    return wallets_settings(db, **values)


async def start_coinbase_wallets(settings: Any, *, create: bool = True) -> RunningWallets:
    running = await start_wallets(settings)
    if create:
        await running.stub.CreateWallet(
            pb.CreateWalletRequest(
                wallet=pb.Wallet(
                    wallet_id="cb",
                    display_name="Coinbase",
                    kind=pb.WALLET_KIND_VENUE_ACCOUNT,
                    venue=common_pb2.VENUE_COINBASE,
                    account_id="cb-main",
                )
            )
        )
        # The ledger believes 1,050 USD (matches) and 0.4 BTC (venue says 0.5).
        await transfer(running, "usd", pb.TRANSFER_KIND_DEPOSIT, "cb", "1050")
        await transfer(running, "btc", pb.TRANSFER_KIND_DEPOSIT, "cb", "0.4", currency="BTC")
    return running


@pytest_asyncio.fixture
async def wallets_cb(
    postgres_database_url: str, fake: FakeCoinbase, redis_url: str
) -> AsyncIterator[RunningWallets]:
    # Postgres: 100 concurrent Reconciles each write their run twice (SQLite serialises them).
    running = await start_coinbase_wallets(
        coinbase_settings(postgres_database_url, fake, redis_url)
    )
    try:
        yield running
    finally:
        await stop_wallets(running)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def reconcile(w: RunningWallets, **kw: Any) -> pb.ReconciliationRun:
    return (await w.stub.Reconcile(pb.ReconcileRequest(all=True, **kw))).run


async def test_cold_then_warm_reconcile(wallets_cb: RunningWallets, fake: FakeCoinbase) -> None:
    calls_ok = metric(
        "wallets_venue_requests_total", venue="coinbase", endpoint="accounts", result="ok"
    )
    hits = metric(
        "wallets_venue_cache_requests_total", venue="coinbase", endpoint="accounts", result="hit"
    )
    cold = await reconcile(wallets_cb)
    assert fake.accounts.calls == 2 and cold.venue_calls == 2  # two pages
    assert fake.auth_failures == 0
    assert cold.status == pb.RECONCILIATION_STATUS_DISCREPANCIES
    (d,) = cold.discrepancies
    assert (d.currency, d.ledger_balance, d.venue_balance, d.difference) == (
        "BTC",
        "0.4",
        "0.5",
        "0.1",
    )
    assert not d.venue_stale and not cold.venue_stale
    assert cold.checked_count == 2  # USD matched; the empty ETH account is left out

    warm = await reconcile(wallets_cb)
    assert fake.accounts.calls == 2 and warm.venue_calls == 0  # within the TTL: no call
    assert [x.currency for x in warm.discrepancies] == ["BTC"]
    assert (
        metric("wallets_venue_requests_total", venue="coinbase", endpoint="accounts", result="ok")
        - calls_ok
        == 2
    )
    assert (
        metric(
            "wallets_venue_cache_requests_total",
            venue="coinbase",
            endpoint="accounts",
            result="hit",
        )
        - hits
        == 2
    )

    forced = await reconcile(wallets_cb, force_refresh=True)
    assert fake.accounts.calls == 4 and forced.venue_calls == 2

    venue = await wallets_cb.stub.ListBalances(
        pb.ListBalancesRequest(source=pb.BALANCE_SOURCE_VENUE, wallet_ids=["cb"])
    )
    assert {(b.currency, b.total, b.hold, b.stale) for b in venue.balances} == {
        ("USD", "1050", "50", False),
        ("BTC", "0.5", "0", False),
    }
    assert fake.accounts.calls == 4


async def test_100_concurrent_cold_reconciles_make_one_call_per_page(
    wallets_cb: RunningWallets, fake: FakeCoinbase
) -> None:
    fake.accounts.delay = 0.05  # the calls overlap
    runs = await asyncio.gather(*(reconcile(wallets_cb) for _ in range(100)))
    assert fake.accounts.calls == 2
    assert sum(r.venue_calls for r in runs) == 2
    assert all(r.status == pb.RECONCILIATION_STATUS_DISCREPANCIES for r in runs)


async def test_two_replicas_share_one_call_per_page(
    postgres_database_url: str, fake: FakeCoinbase, redis_url: str, wallets_cb: RunningWallets
) -> None:
    # A second replica on the same ledger and Redis; its own process-local state is empty.
    other = await start_coinbase_wallets(
        coinbase_settings(postgres_database_url, fake, redis_url), create=False
    )
    try:
        fake.accounts.delay = 0.1
        runs = await asyncio.gather(*(reconcile(r) for _ in range(10) for r in (wallets_cb, other)))
        assert fake.accounts.calls == 2
        assert sum(r.venue_calls for r in runs) == 2
    finally:
        await stop_wallets(other)


async def test_stale_data_is_served_and_flagged_when_coinbase_is_down(
    tmp_path: Path, fake: FakeCoinbase, redis_url: str
) -> None:
    settings = coinbase_settings(
        f"sqlite:///{tmp_path / 'w.db'}",
        fake,
        redis_url,
        wallets_coinbase_accounts_ttl_seconds=0.2,
    )
    running = await start_coinbase_wallets(settings)
    try:
        await reconcile(running)  # fills the cache (and its stale copy)
        fake.accounts.down = True
        await asyncio.sleep(0.3)  # past the TTL
        stale = await reconcile(running)
        assert stale.status == pb.RECONCILIATION_STATUS_DISCREPANCIES
        assert stale.venue_calls == 1  # page one was tried and failed; page two: stale copy
        (d,) = stale.discrepancies
        assert d.currency == "BTC" and d.venue_stale
        assert stale.venue_stale  # the run says so too, not only its discrepancies
        stored = await running.stub.GetReconciliation(
            pb.GetReconciliationRequest(run_id=stale.run_id)
        )
        assert stored.run.discrepancies[0].venue_stale
        venue = await running.stub.ListBalances(
            pb.ListBalancesRequest(source=pb.BALANCE_SOURCE_VENUE, wallet_ids=["cb"])
        )
        assert venue.balances and all(b.stale for b in venue.balances)
        assert (
            metric(
                "wallets_venue_cache_requests_total",
                venue="coinbase",
                endpoint="accounts",
                result="stale",
            )
            >= 2
        )
    finally:
        await stop_wallets(running)


async def test_down_with_nothing_cached_fails_the_run(
    wallets_cb: RunningWallets, fake: FakeCoinbase
) -> None:
    fake.accounts.down = True
    run = await reconcile(wallets_cb)
    assert run.status == pb.RECONCILIATION_STATUS_FAILED
    assert "unavailable" in run.error and "HTTP 503" in run.error


async def test_rate_limit_is_respected_across_requests(
    tmp_path: Path, fake: FakeCoinbase, redis_url: str
) -> None:
    settings = coinbase_settings(
        f"sqlite:///{tmp_path / 'w.db'}",
        fake,
        redis_url,
        wallets_coinbase_accounts_ttl_seconds=0.1,
    )
    running = await start_coinbase_wallets(settings)
    try:
        await reconcile(running)
        await asyncio.sleep(0.15)
        fake.accounts.rate_limited_for = 3
        fake.accounts.reset_counts()
        began = asyncio.get_running_loop().time()
        first = await reconcile(running)  # 429 on page one: stale data
        assert len(fake.accounts.requests) == 1 and first.discrepancies[0].venue_stale
        for _ in range(3):  # within Retry-After (and past the TTL): nobody calls Coinbase
            await asyncio.sleep(0.15)
            again = await reconcile(running)
            assert again.venue_calls == 0 and again.discrepancies[0].venue_stale
        assert asyncio.get_running_loop().time() - began < 3, "too slow to check the block"
        assert len(fake.accounts.requests) == 1
        await asyncio.sleep(3.1 - (asyncio.get_running_loop().time() - began))  # it passed
        after = await reconcile(running)
        assert after.venue_calls == 2 and not after.discrepancies[0].venue_stale
        assert (
            metric(
                "wallets_venue_requests_total",
                venue="coinbase",
                endpoint="accounts",
                result="rate_limited",
            )
            >= 4
        )
    finally:
        await stop_wallets(running)
