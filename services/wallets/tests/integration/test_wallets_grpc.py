"""WalletsService over real gRPC, backed by SQLite and Postgres: wallets, balances (as of, in a
constant number of queries), transfers (idempotency, overdraft, bad input), ledger entries."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import event

from trading.common.v1 import common_pb2
from trading.wallets.v1 import wallets_pb2 as pb

from .conftest import T0, RunningWallets


def ts(moment: Any) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(moment)
    return t


async def expect_error(call: Any, code: grpc.StatusCode, field: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    details = info.value.details() or ""
    if field:
        assert details.startswith(f"{field}:"), details
    return details


async def create_wallet(w: RunningWallets, wallet_id: str, account_id: str = "") -> pb.Wallet:
    reply = await w.stub.CreateWallet(
        pb.CreateWalletRequest(
            wallet=pb.Wallet(
                wallet_id=wallet_id,
                display_name=f"wallet {wallet_id}",
                kind=pb.WALLET_KIND_VENUE_ACCOUNT,
                venue=common_pb2.VENUE_PAPER,
                account_id=account_id or f"acct-{wallet_id}",
            )
        )
    )
    return reply.wallet


async def transfer(
    w: RunningWallets,
    key: str,
    kind: int,
    wallet_id: str,
    amount: str,
    currency: str = "USD",
    **extra: Any,
) -> pb.LedgerEntry:
    reply = await w.stub.RecordTransfer(
        pb.RecordTransferRequest(
            idempotency_key=key,
            kind=kind,
            wallet_id=wallet_id,
            currency=currency,
            amount=amount,
            **extra,
        )
    )
    return reply.entry


def balances_of(wallet: pb.Wallet) -> dict[str, str]:
    return {b.currency: b.total for b in wallet.balances}


async def test_serving_with_the_default_paper_wallet(wallets: RunningWallets) -> None:
    health = health_pb2_grpc.HealthStub(wallets.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    paper = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="paper"))).wallet
    assert paper.kind == pb.WALLET_KIND_VENUE_ACCOUNT and paper.venue == common_pb2.VENUE_PAPER
    assert paper.account_id == "paper-main"
    assert balances_of(paper) == {"USD": "100000"}


async def test_default_wallet_provisioning_is_idempotent(database_url: str) -> None:
    from .conftest import start_wallets, stop_wallets, wallets_settings

    for _ in range(2):
        running = await start_wallets(wallets_settings(database_url))
        try:
            reply = await running.stub.ListWallets(pb.ListWalletsRequest())
        finally:
            await stop_wallets(running)
    assert [w.wallet_id for w in reply.wallets] == ["paper"]
    assert balances_of(reply.wallets[0]) == {"USD": "100000"}


async def test_list_wallets_uses_a_constant_number_of_queries(wallets: RunningWallets) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def list_all() -> tuple[list[pb.Wallet], int]:
        statements.clear()
        event.listen(wallets.app.engine.sync_engine, "before_cursor_execute", count)
        try:
            reply = await wallets.stub.ListWallets(pb.ListWalletsRequest(page_size=1000))
        finally:
            event.remove(wallets.app.engine.sync_engine, "before_cursor_execute", count)
        return list(reply.wallets), len(statements)

    one, queries_for_one = await list_all()
    assert len(one) == 1
    for i in range(49):
        await create_wallet(wallets, f"w{i:02d}")
        await transfer(wallets, f"usd-{i}", pb.TRANSFER_KIND_DEPOSIT, f"w{i:02d}", f"{i + 1}")
        await transfer(wallets, f"btc-{i}", pb.TRANSFER_KIND_DEPOSIT, f"w{i:02d}", "0.5", "BTC")
    fifty, queries_for_fifty = await list_all()
    assert len(fifty) == 50
    assert queries_for_fifty == queries_for_one <= 3, statements
    by_id = {w.wallet_id: w for w in fifty}
    assert balances_of(by_id["w07"]) == {"BTC": "0.5", "USD": "8"}
    # Paging walks every wallet exactly once.
    seen, token = [], ""
    while True:
        page = await wallets.stub.ListWallets(pb.ListWalletsRequest(page_size=7, page_token=token))
        seen += [w.wallet_id for w in page.wallets]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(by_id)


async def test_transfers_are_idempotent_and_checked(wallets: RunningWallets) -> None:
    await create_wallet(wallets, "a")
    await create_wallet(wallets, "b")
    deposit = await transfer(wallets, "dep-1", pb.TRANSFER_KIND_DEPOSIT, "a", "100.50")
    assert deposit.kind == pb.ENTRY_KIND_DEPOSIT
    assert {(p.account, p.amount) for p in deposit.postings} == {
        ("wallet/a/available", "100.5"),
        ("external/deposits", "-100.5"),
    }
    # Same key, same payload (1.5 == 1.50): the existing entry, nothing posted twice.
    again = await transfer(wallets, "dep-1", pb.TRANSFER_KIND_DEPOSIT, "a", "100.5")
    assert again.entry_id == deposit.entry_id and again.record_time == deposit.record_time
    details = await expect_error(
        transfer(wallets, "dep-1", pb.TRANSFER_KIND_DEPOSIT, "a", "99"),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "dep-1" in details
    moved = await transfer(
        wallets, "move-1", pb.TRANSFER_KIND_INTERNAL, "a", "40", to_wallet_id="b"
    )
    assert moved.kind == pb.ENTRY_KIND_INTERNAL_TRANSFER
    await transfer(wallets, "wd-1", pb.TRANSFER_KIND_WITHDRAWAL, "a", "60.5")
    details = await expect_error(
        transfer(wallets, "wd-2", pb.TRANSFER_KIND_WITHDRAWAL, "a", "0.01"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "insufficient funds" in details and "short by 0.01 USD" in details
    # A retry of the successful withdrawal still replays although the balance is now 0.
    replay = await transfer(wallets, "wd-1", pb.TRANSFER_KIND_WITHDRAWAL, "a", "60.5")
    assert replay.kind == pb.ENTRY_KIND_WITHDRAWAL
    a = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="a"))).wallet
    b = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="b"))).wallet
    assert balances_of(a) == {"USD": "0"} and balances_of(b) == {"USD": "40"}
    await expect_error(
        transfer(wallets, "move-2", pb.TRANSFER_KIND_INTERNAL, "b", "50", to_wallet_id="a"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


BAD_TRANSFERS: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
    ({"idempotency_key": ""}, grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
    ({"idempotency_key": "k" * 129}, grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
    ({"kind": pb.TRANSFER_KIND_UNSPECIFIED}, grpc.StatusCode.INVALID_ARGUMENT, "kind"),
    ({"amount": "abc"}, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
    ({"amount": "-5"}, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
    ({"amount": "0"}, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
    ({"amount": "1.123456789"}, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
    ({"currency": "usd"}, grpc.StatusCode.INVALID_ARGUMENT, "currency"),
    ({"currency": "XYZ"}, grpc.StatusCode.INVALID_ARGUMENT, "currency"),
    ({"wallet_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "wallet_id"),
    ({"wallet_id": "a/b"}, grpc.StatusCode.INVALID_ARGUMENT, "wallet_id"),
    ({"to_wallet_id": "paper"}, grpc.StatusCode.INVALID_ARGUMENT, "to_wallet_id"),
    ({"wallet_id": "nope"}, grpc.StatusCode.NOT_FOUND, ""),
    (
        {"kind": pb.TRANSFER_KIND_INTERNAL, "to_wallet_id": "paper"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "to_wallet_id",
    ),
    (
        {"kind": pb.TRANSFER_KIND_INTERNAL, "to_wallet_id": "nope"},
        grpc.StatusCode.NOT_FOUND,
        "",
    ),
]


async def test_record_transfer_bad_input_names_the_field(wallets: RunningWallets) -> None:
    for request_fields, code, field in BAD_TRANSFERS:
        fields: dict[str, Any] = {
            "idempotency_key": "bad-1",
            "kind": pb.TRANSFER_KIND_DEPOSIT,
            "wallet_id": "paper",
            "currency": "USD",
            "amount": "1",
        }
        fields.update(request_fields)
        await expect_error(
            wallets.stub.RecordTransfer(pb.RecordTransferRequest(**fields)), code, field
        )


async def test_balances_as_of_and_filters(wallets: RunningWallets) -> None:
    await create_wallet(wallets, "hist")
    for i, amount in enumerate(["10", "20", "30"]):
        await transfer(
            wallets,
            f"h-{i}",
            pb.TRANSFER_KIND_DEPOSIT,
            "hist",
            amount,
            effective_time=ts(T0 + timedelta(days=i)),
        )
    await transfer(
        wallets, "h-btc", pb.TRANSFER_KIND_DEPOSIT, "hist", "1", "BTC", effective_time=ts(T0)
    )

    async def usd(as_of: Any = None) -> list[tuple[str, str]]:
        request = pb.ListBalancesRequest(wallet_ids=["hist"], currencies=["USD"])
        if as_of is not None:
            request.as_of.CopyFrom(ts(as_of))
        reply = await wallets.stub.ListBalances(request)
        return [(b.currency, b.total) for b in reply.balances]

    assert await usd(T0 - timedelta(seconds=1)) == []
    assert await usd(T0) == [("USD", "10")]
    assert await usd(T0 + timedelta(days=1, hours=1)) == [("USD", "30")]
    assert await usd() == [("USD", "60")]
    reply = await wallets.stub.ListBalances(
        pb.ListBalancesRequest(wallet_ids=["hist"], as_of=ts(T0 + timedelta(hours=1)))
    )
    assert [(b.currency, b.total, b.available, b.hold) for b in reply.balances] == [
        ("BTC", "1", "1", "0"),
        ("USD", "10", "10", "0"),
    ]
    assert reply.balances[0].source == pb.BALANCE_SOURCE_LEDGER
    assert reply.balances[0].as_of == ts(T0 + timedelta(hours=1))
    # Everything, paged one balance at a time.
    seen, token = [], ""
    while True:
        page = await wallets.stub.ListBalances(
            pb.ListBalancesRequest(page_size=1, page_token=token)
        )
        seen += [(b.wallet_id, b.currency) for b in page.balances]
        token = page.next_page_token
        if not token:
            break
    assert seen == [("hist", "BTC"), ("hist", "USD"), ("paper", "USD")]
    # Zero balances are left out unless asked for.
    await transfer(wallets, "h-out", pb.TRANSFER_KIND_WITHDRAWAL, "hist", "1", "BTC")
    nonzero = await wallets.stub.ListBalances(pb.ListBalancesRequest(wallet_ids=["hist"]))
    assert [b.currency for b in nonzero.balances] == ["USD"]
    everything = await wallets.stub.ListBalances(
        pb.ListBalancesRequest(wallet_ids=["hist"], include_zero=True)
    )
    assert [(b.currency, b.total) for b in everything.balances] == [("BTC", "0"), ("USD", "60")]


async def test_list_balances_bad_input(wallets: RunningWallets) -> None:
    stub = wallets.stub
    await expect_error(
        stub.ListBalances(pb.ListBalancesRequest(currencies=["usd"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "currencies[0]",
    )
    await expect_error(
        stub.ListBalances(pb.ListBalancesRequest(page_size=5000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size",
    )
    await expect_error(
        stub.ListBalances(pb.ListBalancesRequest(page_token="%%%")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )
    await expect_error(
        stub.ListBalances(pb.ListBalancesRequest(source=pb.BALANCE_SOURCE_VENUE, as_of=ts(T0))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "as_of",
    )
    await expect_error(
        stub.ListBalances(pb.ListBalancesRequest(wallet_ids=["missing"])),
        grpc.StatusCode.NOT_FOUND,
    )
    venue = await stub.ListBalances(pb.ListBalancesRequest(source=pb.BALANCE_SOURCE_VENUE))
    assert [(b.wallet_id, b.currency, b.total, b.source) for b in venue.balances] == [
        ("paper", "USD", "100000", pb.BALANCE_SOURCE_VENUE)
    ]


async def test_ledger_entries_filter_and_page_in_sql(wallets: RunningWallets) -> None:
    await create_wallet(wallets, "e1")
    for i in range(5):
        await transfer(
            wallets,
            f"e-{i}",
            pb.TRANSFER_KIND_DEPOSIT,
            "e1",
            "1",
            "BTC" if i % 2 else "USD",
            effective_time=ts(T0 + timedelta(minutes=i)),
        )
    await transfer(
        wallets,
        "e-w",
        pb.TRANSFER_KIND_WITHDRAWAL,
        "e1",
        "1",
        "USD",
        effective_time=ts(T0 + timedelta(minutes=10)),
    )

    async def keys(**fields: Any) -> list[str]:
        out, token = [], ""
        while True:
            reply = await wallets.stub.ListLedgerEntries(
                pb.ListLedgerEntriesRequest(page_size=2, page_token=token, **fields)
            )
            out += [e.idempotency_key for e in reply.entries]
            token = reply.next_page_token
            if not token:
                return out

    assert await keys(wallet_id="e1") == ["e-w", "e-4", "e-3", "e-2", "e-1", "e-0"]
    assert await keys(wallet_id="e1", currency="BTC") == ["e-3", "e-1"]
    assert await keys(wallet_id="e1", kinds=[pb.ENTRY_KIND_WITHDRAWAL]) == ["e-w"]
    window = common_pb2.TimeRange(
        start=ts(T0 + timedelta(minutes=1)), end=ts(T0 + timedelta(minutes=3))
    )
    assert await keys(wallet_id="e1", time_range=window) == ["e-2", "e-1"]
    assert await keys(fill_id="none") == []
    everything = await keys()
    # The ledger as known when e-0 was recorded: only the entries recorded by then.
    listed = await wallets.stub.ListLedgerEntries(pb.ListLedgerEntriesRequest())
    e0 = next(e for e in listed.entries if e.idempotency_key == "e-0")
    assert await keys(as_of=e0.record_time) == ["initial-deposit:paper:USD", "e-0"]
    assert everything[0] == "initial-deposit:paper:USD" and len(everything) == 7  # newest
    await expect_error(
        wallets.stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(kinds=[99])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "kinds[0]",
    )
    await expect_error(
        wallets.stub.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(time_range=common_pb2.TimeRange(start=ts(T0), end=ts(T0)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "time_range.end",
    )


async def test_concurrent_withdrawals_cannot_overdraw(wallets: RunningWallets) -> None:
    """20 concurrent withdrawals of 10 from a balance of 100: exactly 10 succeed."""
    await create_wallet(wallets, "race")
    await transfer(wallets, "race-in", pb.TRANSFER_KIND_DEPOSIT, "race", "100")
    results = await asyncio.gather(
        *(
            transfer(wallets, f"race-{i}", pb.TRANSFER_KIND_WITHDRAWAL, "race", "10")
            for i in range(20)
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, pb.LedgerEntry)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 10 and len(refused) == 10, results
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    race = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="race"))).wallet
    assert balances_of(race) == {"USD": "0"}


async def test_concurrent_retries_of_one_key_post_once(wallets: RunningWallets) -> None:
    await create_wallet(wallets, "dup")
    results = await asyncio.gather(
        *(transfer(wallets, "same-key", pb.TRANSFER_KIND_DEPOSIT, "dup", "5") for _ in range(8))
    )
    assert len({r.entry_id for r in results}) == 1
    dup = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="dup"))).wallet
    assert balances_of(dup) == {"USD": "5"}


async def test_create_wallet(wallets: RunningWallets) -> None:
    created = await wallets.stub.CreateWallet(
        pb.CreateWalletRequest(
            wallet=pb.Wallet(
                display_name="cold storage",
                kind=pb.WALLET_KIND_ONCHAIN_ADDRESS,
                venue=common_pb2.VENUE_SOLANA,
                address="9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
                chain="solana-mainnet",
                read_only=True,
            )
        )
    )
    wallet = created.wallet
    assert wallet.wallet_id.startswith("w-") and wallet.read_only
    got = (await wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id=wallet.wallet_id))).wallet
    assert got.address == wallet.address and got.create_time == wallet.create_time
    # Read-only wallets take no transfers.
    await expect_error(
        transfer(wallets, "ro-1", pb.TRANSFER_KIND_DEPOSIT, wallet.wallet_id, "1"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        wallets.stub.CreateWallet(pb.CreateWalletRequest(wallet=got)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    await expect_error(
        create_wallet(wallets, "other", account_id="paper-main"),  # the paper wallet's account
        grpc.StatusCode.ALREADY_EXISTS,
    )
    bad = [
        (pb.Wallet(display_name="x", venue=common_pb2.VENUE_PAPER), "wallet.kind"),
        (
            pb.Wallet(display_name="x", kind=pb.WALLET_KIND_VENUE_ACCOUNT, account_id="a"),
            "wallet.venue",
        ),
        (
            pb.Wallet(kind=pb.WALLET_KIND_VENUE_ACCOUNT, venue=common_pb2.VENUE_PAPER),
            "wallet.display_name",
        ),
        (
            pb.Wallet(
                display_name="x", kind=pb.WALLET_KIND_VENUE_ACCOUNT, venue=common_pb2.VENUE_PAPER
            ),
            "wallet.account_id",
        ),
        (
            pb.Wallet(
                display_name="x",
                kind=pb.WALLET_KIND_ONCHAIN_ADDRESS,
                venue=common_pb2.VENUE_EVM,
                address="0xabc",
                chain="eip155:1",
            ),
            "wallet.read_only",
        ),
        (
            pb.Wallet(
                wallet_id="bad/id",
                display_name="x",
                kind=pb.WALLET_KIND_VENUE_ACCOUNT,
                venue=common_pb2.VENUE_PAPER,
                account_id="z",
            ),
            "wallet.wallet_id",
        ),
    ]
    for message, field in bad:
        await expect_error(
            wallets.stub.CreateWallet(pb.CreateWalletRequest(wallet=message)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    await expect_error(
        wallets.stub.GetWallet(pb.GetWalletRequest(wallet_id="missing")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        wallets.stub.GetWallet(pb.GetWalletRequest()), grpc.StatusCode.INVALID_ARGUMENT, "wallet_id"
    )


def test_decimal_sum_is_exact() -> None:
    """The SQLite aggregate never goes through floats (0.1 + 0.2 is exactly 0.3)."""
    from tradeplane.wallets.adapters.sqlite import DecimalSum

    agg = DecimalSum()
    for v in ["0.1", "0.2", "-0.3", "0.000000000000000001", None]:
        agg.step(v)
    assert agg.finalize() == "0.000000000000000001"
    assert Decimal("0.1") + Decimal("0.2") == Decimal("0.3")


async def test_list_wallets_venue_filter_keeps_balances_apart(wallets: RunningWallets) -> None:
    for wallet_id, venue in [
        ("v1", common_pb2.VENUE_PAPER),
        ("v2", common_pb2.VENUE_COINBASE),
        ("v3", common_pb2.VENUE_PAPER),
    ]:
        await wallets.stub.CreateWallet(
            pb.CreateWalletRequest(
                wallet=pb.Wallet(
                    wallet_id=wallet_id,
                    display_name=wallet_id,
                    kind=pb.WALLET_KIND_VENUE_ACCOUNT,
                    venue=venue,
                    account_id=f"acct-{wallet_id}",
                )
            )
        )
        await transfer(wallets, f"in-{wallet_id}", pb.TRANSFER_KIND_DEPOSIT, wallet_id, "3")
    paper = await wallets.stub.ListWallets(pb.ListWalletsRequest(venue=common_pb2.VENUE_PAPER))
    assert [(w.wallet_id, balances_of(w)) for w in paper.wallets] == [
        ("paper", {"USD": "100000"}),
        ("v1", {"USD": "3"}),
        ("v3", {"USD": "3"}),
    ]
    coinbase = await wallets.stub.ListWallets(
        pb.ListWalletsRequest(venue=common_pb2.VENUE_COINBASE)
    )
    assert [(w.wallet_id, balances_of(w)) for w in coinbase.wallets] == [("v2", {"USD": "3"})]
    # No venue source for Coinbase yet: venue balances are refused, reconciliation FAILED.
    await expect_error(
        wallets.stub.ListBalances(
            pb.ListBalancesRequest(wallet_ids=["v2"], source=pb.BALANCE_SOURCE_VENUE)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    run = (await wallets.stub.Reconcile(pb.ReconcileRequest(wallet_ids=["v2"]))).run
    assert run.status == pb.RECONCILIATION_STATUS_FAILED and "v2" in run.error
