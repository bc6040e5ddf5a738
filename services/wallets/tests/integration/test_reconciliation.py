"""Reconcile, Get/ListReconciliations and StreamReconciliations over real gRPC (SQLite and
Postgres), with the paper venue and with a venue double that reports chosen balances."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import grpc

from tradeplane.runtime.errors import Unavailable
from tradeplane.wallets.domain.reconciliation import VenueBalance
from tradeplane.wallets.domain.wallets import Wallet
from tradeplane.wallets.service_layer.ports import VenueSnapshot
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import RunningWallets, start_wallets, stop_wallets, wallets_settings
from .test_wallets_grpc import create_wallet, expect_error, transfer


class ScriptedVenue:
    """A venue double (stands in for the Coinbase adapter to come): reports `balances`
    ({wallet: {currency: total}}), or raises Unavailable when `down`."""

    def __init__(self) -> None:
        self.balances: dict[str, dict[str, str]] = {}
        self.down = False
        self.calls = 0

    def handles(self, wallet: Wallet) -> bool:
        return True

    async def fetch(self, wallets: Sequence[Wallet], *, force_refresh: bool) -> VenueSnapshot:
        self.calls += 1
        if self.down:
            raise Unavailable("venue unreachable and nothing cached")
        now = datetime.now(UTC)
        return VenueSnapshot(
            tuple(
                VenueBalance(w.wallet_id, c, Decimal(v), Decimal(0), now)
                for w in wallets
                for c, v in self.balances.get(w.wallet_id, {}).items()
            ),
            calls=1,
        )


async def test_paper_reconciliation_matches(wallets: RunningWallets) -> None:
    await create_wallet(wallets, "r1")
    await transfer(wallets, "r1-in", pb.TRANSFER_KIND_DEPOSIT, "r1", "12.5")
    reply = await wallets.stub.Reconcile(pb.ReconcileRequest(all=True))
    run = reply.run
    assert run.status == pb.RECONCILIATION_STATUS_MATCHED
    assert run.trigger == pb.RECONCILIATION_TRIGGER_MANUAL
    assert list(run.wallet_ids) == ["paper", "r1"]
    assert run.checked_count == 2 and not run.discrepancies and run.venue_calls == 1
    assert run.HasField("end_time") and run.seq > 0
    got = await wallets.stub.GetReconciliation(pb.GetReconciliationRequest(run_id=run.run_id))
    assert got.run == run


async def test_discrepancies_are_recorded_and_listed(database_url: str) -> None:
    venue = ScriptedVenue()
    running = await start_wallets(wallets_settings(database_url), venues=[venue])
    try:
        stub = running.stub
        await create_wallet(running, "cb")
        await transfer(running, "cb-usd", pb.TRANSFER_KIND_DEPOSIT, "cb", "100")
        await transfer(running, "cb-btc", pb.TRANSFER_KIND_DEPOSIT, "cb", "1", "BTC")
        # USD off by half a cent (within the 0.01 tolerance), BTC short, ETH unknown to us.
        venue.balances = {
            "cb": {"USD": "100.005", "BTC": "0.9", "ETH": "2"},
            "paper": {"USD": "100000"},
        }
        run = (await stub.Reconcile(pb.ReconcileRequest(wallet_ids=["cb"]))).run
        assert run.status == pb.RECONCILIATION_STATUS_DISCREPANCIES
        assert run.checked_count == 3
        found = {
            (d.currency, d.ledger_balance, d.venue_balance, d.difference, d.tolerance)
            for d in run.discrepancies
        }
        assert found == {
            ("BTC", "1", "0.9", "-0.1", "0.00000001"),
            ("ETH", "0", "2", "2", "0.00000001"),
        }
        matched = (await stub.Reconcile(pb.ReconcileRequest(wallet_ids=["paper"]))).run
        assert matched.status == pb.RECONCILIATION_STATUS_MATCHED
        venue.down = True
        failed = (await stub.Reconcile(pb.ReconcileRequest(all=True))).run
        assert failed.status == pb.RECONCILIATION_STATUS_FAILED
        assert "unreachable" in failed.error

        listed = await stub.ListReconciliations(pb.ListReconciliationsRequest())
        assert [r.run_id for r in listed.runs] == [failed.run_id, matched.run_id, run.run_id]
        assert listed.runs[2] == run  # stored with its discrepancies
        by_wallet = await stub.ListReconciliations(pb.ListReconciliationsRequest(wallet_id="cb"))
        assert [r.run_id for r in by_wallet.runs] == [failed.run_id, run.run_id]
        by_status = await stub.ListReconciliations(
            pb.ListReconciliationsRequest(statuses=[pb.RECONCILIATION_STATUS_MATCHED])
        )
        assert [r.run_id for r in by_status.runs] == [matched.run_id]
        first = await stub.ListReconciliations(pb.ListReconciliationsRequest(page_size=2))
        rest = await stub.ListReconciliations(
            pb.ListReconciliationsRequest(page_size=2, page_token=first.next_page_token)
        )
        assert [r.run_id for r in [*first.runs, *rest.runs]] == [r.run_id for r in listed.runs]
        assert rest.next_page_token == ""
    finally:
        await stop_wallets(running)


async def test_reconcile_bad_input(wallets: RunningWallets) -> None:
    stub = wallets.stub
    await expect_error(
        stub.Reconcile(pb.ReconcileRequest()), grpc.StatusCode.INVALID_ARGUMENT, "wallet_ids"
    )
    await expect_error(
        stub.Reconcile(pb.ReconcileRequest(wallet_ids=["paper", "x/y"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "wallet_ids[1]",
    )
    await expect_error(
        stub.Reconcile(pb.ReconcileRequest(wallet_ids=["ghost"])), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        stub.GetReconciliation(pb.GetReconciliationRequest(run_id="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.GetReconciliation(pb.GetReconciliationRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "run_id",
    )
    await expect_error(
        stub.ListReconciliations(pb.ListReconciliationsRequest(statuses=[42])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "statuses[0]",
    )


async def test_stream_replays_since_seq_then_goes_live(wallets: RunningWallets) -> None:
    stub = wallets.stub
    first = (await stub.Reconcile(pb.ReconcileRequest(all=True))).run
    stream = stub.StreamReconciliations(pb.StreamReconciliationsRequest(since_seq=0))
    received: list[pb.ReconciliationRun] = []

    async def read_until(count: int) -> None:
        async for message in stream:
            received.extend(message.runs)
            if len(received) >= count:
                return

    async with asyncio.timeout(10):
        await read_until(2)  # the first run's start and finish
        assert [(r.run_id, r.status) for r in received] == [
            (first.run_id, pb.RECONCILIATION_STATUS_RUNNING),
            (first.run_id, pb.RECONCILIATION_STATUS_MATCHED),
        ]
        assert received[1].seq == first.seq and received[0].seq < received[1].seq
        assert not received[0].HasField("end_time")
        second = (await stub.Reconcile(pb.ReconcileRequest(wallet_ids=["paper"]))).run
        await read_until(4)
    assert [(r.run_id, r.status) for r in received[2:]] == [
        (second.run_id, pb.RECONCILIATION_STATUS_RUNNING),
        (second.run_id, pb.RECONCILIATION_STATUS_MATCHED),
    ]
    stream.cancel()
    # Resuming after the first run's finish replays exactly the second run.
    resumed = stub.StreamReconciliations(pb.StreamReconciliationsRequest(since_seq=first.seq))
    async with asyncio.timeout(10):
        message = await resumed.read()
    assert [r.seq for r in message.runs] == [r.seq for r in received[2:]]
    resumed.cancel()


async def test_scheduled_runs(database_url: str) -> None:
    running = await start_wallets(
        wallets_settings(database_url, wallets_reconcile_interval_seconds=0.2)
    )
    try:
        async with asyncio.timeout(10):
            while True:
                listed = await running.stub.ListReconciliations(pb.ListReconciliationsRequest())
                done = [r for r in listed.runs if r.status != pb.RECONCILIATION_STATUS_RUNNING]
                if len(done) >= 2:
                    break
                await asyncio.sleep(0.1)
        assert all(r.trigger == pb.RECONCILIATION_TRIGGER_SCHEDULED for r in done)
        assert all(r.status == pb.RECONCILIATION_STATUS_MATCHED for r in done)
    finally:
        await stop_wallets(running)


async def test_stream_without_since_seq_sends_only_new_runs(wallets: RunningWallets) -> None:
    stub = wallets.stub
    await stub.Reconcile(pb.ReconcileRequest(all=True))
    stream = stub.StreamReconciliations(pb.StreamReconciliationsRequest())
    await asyncio.sleep(0.3)  # the stream has started and seen nothing new
    fresh = (await stub.Reconcile(pb.ReconcileRequest(all=True))).run
    async with asyncio.timeout(10):
        message = await stream.read()
    assert {r.run_id for r in message.runs} == {fresh.run_id}
    stream.cancel()


async def test_stream_ends_ok_on_shutdown(database_url: str) -> None:
    running = await start_wallets(wallets_settings(database_url))
    try:
        stream = running.stub.StreamReconciliations(pb.StreamReconciliationsRequest())
        await asyncio.sleep(0.3)
        await running.app.server.stop()
        async with asyncio.timeout(5):
            async for _ in stream:
                pass
        assert await stream.code() == grpc.StatusCode.OK
    finally:
        await stop_wallets(running)


async def test_stop_waits_for_cancelled_streams(database_url: str) -> None:
    """Streams the client cancels just before the server stops: stop() returns only once their
    handlers have ended, so none is left reading the database when the event loop closes."""
    running = await start_wallets(wallets_settings(database_url))
    try:
        await running.stub.Reconcile(pb.ReconcileRequest(all=True))
        streams = [
            running.stub.StreamReconciliations(pb.StreamReconciliationsRequest(since_seq=0))
            for _ in range(3)
        ]
        async with asyncio.timeout(10):
            for stream in streams:
                await stream.read()
        for stream in streams:
            stream.cancel()
    finally:
        await stop_wallets(running)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert left == []
