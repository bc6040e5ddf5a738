"""The fill consumer against a fake execution service over a real gRPC socket: every fill is
posted exactly once through crashes (task cancelled mid-stream), service restarts, execution
going away and execution not running at start-up; the cursor commits with the entries."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tradeplane.wallets.adapters import orm
from tradeplane.wallets.domain.currencies import format_amount
from tradeplane.wallets.service_layer import metrics
from tradeplane.wallets.service_layer.fill_consumer import CONSUMER_NAME
from trading.execution.v1 import execution_pb2 as xpb
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import (
    FakeExecution,
    RunningWallets,
    eventually,
    fill_event,
    start_fake_execution,
    start_wallets,
    stop_wallets,
    wallets_settings,
)
from .test_wallets_grpc import balances_of


async def counts(running: RunningWallets) -> dict[str, int]:
    """Entries per kind, straight from the database."""
    query = select(orm.journal_entries.c.kind, func.count()).group_by(orm.journal_entries.c.kind)
    async with running.app.engine.connect() as conn:
        return {k: int(n) for k, n in await conn.execute(query)}


async def wait_for(running: RunningWallets, trades: int) -> None:
    async def posted() -> bool:
        return (await counts(running)).get("trade", 0) >= trades

    await eventually(posted)


def expected_usd(n: int) -> Decimal:
    """USD after fills 1..n (odd = buy, even = sell 0.001 BTC at 50000+seq+0.5, fee 0.05)."""
    total = Decimal(100000)
    for seq in range(1, n + 1):
        notional = (Decimal("0.001") * Decimal(f"{50000 + seq}.5")).quantize(Decimal("1E-8"))
        total += -notional if seq % 2 else notional
        total -= Decimal("0.05")
    return total


def events_with_noise(n: int) -> list[xpb.Event]:
    """n fills with seq 1..n, plus a non-fill event type interleaved every 7th seq."""
    events = []
    seq = 0
    for i in range(1, n + 1):
        seq += 1
        if seq % 7 == 0:
            events.append(xpb.Event(seq=seq, account_id="paper-main"))  # no payload we consume
            seq += 1
        e = fill_event(i)
        e.seq = seq
        events.append(e)
    return events


async def test_consumes_every_fill_once_through_crashes_and_restarts(database_url: str) -> None:
    n = 300
    execution = await start_fake_execution(
        FakeExecution(events_with_noise(n), batch=7, delay=0.002)
    )
    settings = wallets_settings(database_url, execution_addr=execution.target)
    rng = random.Random(5)
    running = await start_wallets(settings)
    try:
        for _ in range(6):  # crash the consumer task at random points mid-stream
            await asyncio.sleep(rng.uniform(0.01, 0.06))
            await running.app.stop_tasks()
            running.app.start_consumer()
        await stop_wallets(running)  # and a whole-service restart
        running = await start_wallets(settings)
        await wait_for(running, n)
        await asyncio.sleep(0.2)  # nothing more arrives
        assert await counts(running) == {"deposit": 1, "trade": n, "settlement": n, "fee": n}
        paper = (await running.stub.GetWallet(pb.GetWalletRequest(wallet_id="paper"))).wallet
        btc = Decimal("0.001") * (n - n // 2) - Decimal("0.001") * (n // 2)
        assert balances_of(paper) == {
            "BTC": str(btc.normalize()),
            "USD": format_amount(expected_usd(n)),
        }
        cursor = await running.app.ledger.cursor(CONSUMER_NAME)
        assert cursor == execution.servicer.events[-1].seq
        # Every reconnect resumed from a committed cursor and asked only for fills.
        requests = execution.servicer.requests
        assert len(requests) >= 2 and requests[0].since_seq == 0
        assert all(list(r.event_types) == [xpb.EVENT_TYPE_FILL] for r in requests)
        assert [r.since_seq for r in requests] == sorted(r.since_seq for r in requests)
        entries = await running.stub.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(fill_id="fill-3")
        )
        assert sorted(e.kind for e in entries.entries) == [
            pb.ENTRY_KIND_TRADE,
            pb.ENTRY_KIND_FEE,
            pb.ENTRY_KIND_SETTLEMENT,
        ]
    finally:
        await stop_wallets(running)
        await execution.close()


async def test_replayed_batches_post_nothing(database_url: str) -> None:
    """A cursor lost after its entries committed (e.g. restored backup of the cursor) only
    replays: the fills' idempotency keys recognise every fill."""
    execution = await start_fake_execution(FakeExecution([fill_event(i) for i in range(1, 21)]))
    settings = wallets_settings(database_url, execution_addr=execution.target)
    running = await start_wallets(settings)
    try:
        await wait_for(running, 20)
        await running.app.stop_tasks()
        async with running.app.engine.begin() as conn:
            await conn.execute(orm.consumer_cursors.update().values(seq=5))
        before = running.app.consumer.posted if running.app.consumer else 0
        running.app.start_consumer()

        async def caught_up() -> bool:
            return await running.app.ledger.cursor(CONSUMER_NAME) == 20

        await eventually(caught_up)
        assert running.app.consumer is not None and running.app.consumer.posted == before
        assert (await counts(running))["trade"] == 20
    finally:
        await stop_wallets(running)
        await execution.close()


async def test_waits_quietly_while_execution_is_down(database_url: str) -> None:
    """Execution not running at start-up: the service is SERVING, the consumer retries with
    backoff, and posts everything once execution appears; then execution goes away again."""
    from tradeplane.testing import free_port

    port = free_port()
    settings = wallets_settings(database_url, execution_addr=f"127.0.0.1:{port}")
    running = await start_wallets(settings)
    try:
        reply = await running.stub.ListWallets(pb.ListWalletsRequest())
        assert [w.wallet_id for w in reply.wallets] == ["paper"]
        await asyncio.sleep(0.3)
        assert running.app.consumer is not None and not running.app.consumer.connected
        assert metrics.FILL_CONSUMER_CONNECTED._value.get() == 0
        execution = await start_fake_execution(
            FakeExecution([fill_event(i) for i in range(1, 11)]), port=port
        )
        await wait_for(running, 10)
        assert running.app.consumer.connected
        assert metrics.FILL_CONSUMER_CONNECTED._value.get() == 1
        await execution.close()  # execution goes away: disconnected, still serving
        consumer = running.app.consumer

        async def disconnected() -> bool:
            return not consumer.connected

        await eventually(disconnected)
        assert metrics.FILL_CONSUMER_CONNECTED._value.get() == 0
        more = FakeExecution([fill_event(i) for i in range(1, 16)])
        execution = await start_fake_execution(more, port=port)
        await wait_for(running, 15)
        assert more.requests[0].since_seq == 10
        assert (await counts(running))["trade"] == 15
        await execution.close()
    finally:
        await stop_wallets(running)


@pytest.mark.parametrize("account", ["acct-7"])
async def test_fill_for_an_unknown_account_opens_a_wallet(database_url: str, account: str) -> None:
    events = [fill_event(1, account_id=account)]
    execution = await start_fake_execution(FakeExecution(events))
    running = await start_wallets(wallets_settings(database_url, execution_addr=execution.target))
    try:
        await wait_for(running, 1)
        wallet = await running.stub.GetWallet(pb.GetWalletRequest(wallet_id=f"paper-{account}"))
        assert wallet.wallet.account_id == account
        assert balances_of(wallet.wallet)["BTC"] == "0.001"
    finally:
        await stop_wallets(running)
        await execution.close()


async def test_live_fills_on_an_idle_stream(database_url: str) -> None:
    """Connected before execution has any event (the stream sends nothing yet): the metric says
    connected, and fills published later are posted as they come."""
    servicer = FakeExecution([])
    execution = await start_fake_execution(servicer)
    running = await start_wallets(wallets_settings(database_url, execution_addr=execution.target))
    try:
        consumer = running.app.consumer
        assert consumer is not None

        async def connected() -> bool:
            return consumer.connected

        await eventually(connected)
        assert metrics.FILL_CONSUMER_CONNECTED._value.get() == 1
        servicer.publish(fill_event(1), fill_event(2))
        await wait_for(running, 2)
        servicer.publish(fill_event(3))
        await wait_for(running, 3)
        assert await running.app.ledger.cursor(CONSUMER_NAME) == 3
    finally:
        await stop_wallets(running)
        await execution.close()


async def test_a_thousand_fills_through_random_kills(database_url: str) -> None:
    """Issue 5's figure: the consumer killed at random points during 1,000 fills (task
    cancelled, and the whole service restarted) ends with exactly 1,000 fills posted."""
    n = 1000
    servicer = FakeExecution([fill_event(i) for i in range(1, n + 1)], batch=25, delay=0.001)
    execution = await start_fake_execution(servicer)
    settings = wallets_settings(database_url, execution_addr=execution.target)
    rng = random.Random(1000)
    running = await start_wallets(settings)
    kills = 0
    try:
        while (await counts(running)).get("trade", 0) < n and kills < 12:
            await asyncio.sleep(rng.uniform(0.005, 0.08))
            kills += 1
            if kills % 4 == 0:
                await stop_wallets(running)
                running = await start_wallets(settings)
            else:
                await running.app.stop_tasks()
                running.app.start_consumer()
        await wait_for(running, n)
        await asyncio.sleep(0.2)
        assert await counts(running) == {"deposit": 1, "trade": n, "settlement": n, "fee": n}
        assert await running.app.ledger.cursor(CONSUMER_NAME) == n
        assert kills >= 3 and len(servicer.requests) >= 3
    finally:
        await stop_wallets(running)
        await execution.close()


async def test_reset_recovers_exactly_the_missing_fills_from_list_fills(
    database_url: str,
) -> None:
    """Wallets consumed fills 1..10 and was away while execution dropped events 1..40 from its
    outbox: the stream answers `reset`; the consumer re-posts from ListFills (paged), which
    posts exactly the missing 11..50; the stream's 41..50 then replay. Every fill once."""
    n = 50
    execution = await start_fake_execution(FakeExecution([fill_event(i) for i in range(1, 11)]))
    settings = wallets_settings(database_url, execution_addr=execution.target)
    running = await start_wallets(settings)
    try:
        await wait_for(running, 10)
        await stop_wallets(running)
        execution.servicer.events.extend(fill_event(i) for i in range(11, n + 1))
        execution.servicer.retained_from = 41
        execution.servicer.max_page_size = 20  # 50 fills: three ListFills pages
        recovered_before = metrics.FILLS_RECOVERED._value.get()
        replayed_before = metrics.FILLS_REPLAYED._value.get()

        running = await start_wallets(settings)
        await wait_for(running, n)

        async def caught_up() -> bool:  # the stream's 41..50 processed too
            return await running.app.ledger.cursor(CONSUMER_NAME) == n

        await eventually(caught_up)
        assert running.app.consumer is not None and running.app.consumer.posted == n - 10
        assert (await counts(running))["trade"] == n
        assert metrics.FILLS_RECOVERED._value.get() - recovered_before == 40  # 11..50
        # ListFills' 1..10 and the stream's 41..50 were already posted
        assert metrics.FILLS_REPLAYED._value.get() - replayed_before == 20
        pages = execution.servicer.list_fills_requests
        assert [r.page_token for r in pages] == ["", "20", "40"]
        wallet = (await running.stub.GetWallet(pb.GetWalletRequest(wallet_id="paper"))).wallet
        assert balances_of(wallet)["USD"] == format_amount(expected_usd(n))
    finally:
        await stop_wallets(running)
        await execution.close()
