"""Balances as of a time, and reconciliation of ledger against venue balances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.balances import WalletBalance, wallet_balances
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry, Posting
from tradeplane.wallets.domain.reconciliation import (
    Presence,
    ReconciliationRun,
    ReconciliationStatus,
    ReconciliationTrigger,
    VenueBalance,
    compare_balances,
    reconcile,
)
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal
TOL = {"USD": D("0.01"), "BTC": D("0.00000001")}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_balances_as_of_include_entries_effective_at_or_before(book) -> None:
    book.transfer(
        TransferRequest("d1", TransferKind.DEPOSIT, "w1", "USD", D("100"), effective_time=at(0))
    )
    book.transfer(
        TransferRequest("d2", TransferKind.DEPOSIT, "w1", "USD", D("50"), effective_time=at(10))
    )
    book.transfer(
        TransferRequest("x1", TransferKind.WITHDRAWAL, "w1", "USD", D("30"), effective_time=at(20))
    )
    # Recorded out of order: a back-dated deposit at minute 5.
    book.transfer(
        TransferRequest("d0", TransferKind.DEPOSIT, "w1", "USD", D("7"), effective_time=at(5))
    )

    def usd(as_of: datetime | None) -> Decimal:
        return book.wallet_balances(as_of)[("w1", "USD")].total

    assert usd(at(0)) == D("100")
    assert usd(at(9)) == D("107")
    assert usd(at(10)) == D("157")  # inclusive
    assert usd(at(19)) == D("157")
    assert usd(at(20)) == D("127")
    assert usd(None) == D("127")
    assert book.wallet_balances(at(-1)) == {}


def test_hold_is_part_of_the_total_but_not_available(book, catalog) -> None:
    book.transfer(TransferRequest("d1", TransferKind.DEPOSIT, "w1", "BTC", D("1")))
    book.post(
        JournalEntry.create(
            kind=EntryKind.SETTLEMENT,
            idempotency_key="hold-1",
            postings=[
                Posting(accounts.hold("w1"), "BTC", D("0.25")),
                Posting(accounts.available("w1"), "BTC", D("-0.25")),
            ],
            effective_time=T0,
            record_time=T0,
            currencies=catalog,
        )
    )
    b = book.wallet_balances()[("w1", "BTC")]
    assert (b.available, b.hold, b.total) == (D("0.75"), D("0.25"), D("1"))


def test_wallet_balances_keep_zero_balances_and_skip_non_wallet_accounts(book) -> None:
    book.transfer(TransferRequest("d1", TransferKind.DEPOSIT, "w1", "USD", D("5")))
    book.transfer(TransferRequest("x1", TransferKind.WITHDRAWAL, "w1", "USD", D("5")))
    assert wallet_balances(book.entries) == {("w1", "USD"): WalletBalance("w1", "USD", D(0), D(0))}


def ledger(*rows: tuple[str, str, str]) -> list[WalletBalance]:
    return [WalletBalance(w, c, D(a), D(0)) for w, c, a in rows]


def venue(*rows: tuple[str, str, str], stale: bool = False) -> list[VenueBalance]:
    return [VenueBalance(w, c, D(a), D(0), T0, stale) for w, c, a in rows]


def test_matched_when_every_balance_is_within_tolerance() -> None:
    run = ReconciliationRun.start(
        "r1", trigger=ReconciliationTrigger.MANUAL, wallet_ids=["w1"], start_time=T0
    )
    assert run.status is ReconciliationStatus.RUNNING and not run.finished
    done = reconcile(
        run,
        ledger=ledger(("w1", "USD", "100.00"), ("w1", "BTC", "0.5")),
        venue=[
            VenueBalance("w1", "USD", D("99.995"), D("0"), T0),  # 0.005 off, tolerance 0.01
            VenueBalance("w1", "BTC", D("0.4"), D("0.1"), T0),  # total 0.5 (0.1 on hold)
        ],
        tolerances=TOL,
        end_time=at(1),
        venue_calls=1,
    )
    assert done.status is ReconciliationStatus.MATCHED
    assert done.discrepancies == ()
    assert done.checked_count == 2
    assert done.venue_calls == 1 and done.end_time == at(1)
    usd = next(d for d in done.comparisons if d.currency == "USD")
    assert (usd.ledger_balance, usd.venue_balance, usd.difference, usd.tolerance) == (
        D("100.00"),
        D("99.995"),
        D("-0.005"),
        D("0.01"),
    )
    assert usd.within_tolerance and usd.presence is Presence.BOTH


def test_discrepancies_beyond_tolerance_and_one_sided_currencies() -> None:
    run = ReconciliationRun.start(
        "r2", trigger=ReconciliationTrigger.SCHEDULED, wallet_ids=["w2", "w1"], start_time=T0
    )
    done = reconcile(
        run,
        ledger=ledger(("w1", "USD", "100"), ("w1", "ETH", "2"), ("w2", "BTC", "1")),
        venue=venue(("w1", "USD", "100.02"), ("w1", "SOL", "3"), ("w2", "BTC", "1")),
        tolerances=TOL,
        default_tolerance=D("0.000001"),
        end_time=at(1),
    )
    assert done.status is ReconciliationStatus.DISCREPANCIES
    assert done.wallet_ids == ("w1", "w2")
    assert [(d.wallet_id, d.currency) for d in done.comparisons] == [
        ("w1", "ETH"),
        ("w1", "SOL"),
        ("w1", "USD"),
        ("w2", "BTC"),
    ]
    by = {(d.wallet_id, d.currency): d for d in done.comparisons}
    eth, sol, usd, btc = by[("w1", "ETH")], by[("w1", "SOL")], by[("w1", "USD")], by[("w2", "BTC")]
    assert (eth.presence, eth.ledger_balance, eth.venue_balance, eth.difference) == (
        Presence.LEDGER_ONLY,
        D("2"),
        D("0"),
        D("-2"),
    )
    assert (sol.presence, sol.ledger_balance, sol.venue_balance, sol.difference) == (
        Presence.VENUE_ONLY,
        D("0"),
        D("3"),
        D("3"),
    )
    assert eth.tolerance == D("0.000001")  # no configured tolerance: the default
    assert (usd.difference, usd.within_tolerance) == (D("0.02"), False)
    assert btc.within_tolerance and btc.difference == 0
    assert {(d.wallet_id, d.currency) for d in done.discrepancies} == {
        ("w1", "ETH"),
        ("w1", "SOL"),
        ("w1", "USD"),
    }


def test_only_the_runs_wallets_are_compared_and_duplicates_are_summed() -> None:
    comparisons = compare_balances(
        ledger(("w1", "BTC", "1"), ("w9", "BTC", "5")),
        venue(("w1", "BTC", "0.4"), ("w1", "BTC", "0.6"), ("w9", "BTC", "0")),
        tolerances=TOL,
        wallet_ids={"w1"},
    )
    assert len(comparisons) == 1
    assert comparisons[0].venue_balance == D("1") and comparisons[0].within_tolerance


def test_stale_venue_balances_are_flagged() -> None:
    (d,) = compare_balances(
        ledger(("w1", "USD", "5")), venue(("w1", "USD", "5"), stale=True), tolerances=TOL
    )
    assert d.venue_stale and d.within_tolerance


def test_a_run_ends_once() -> None:
    run = ReconciliationRun.start(
        "r3", trigger=ReconciliationTrigger.MANUAL, wallet_ids=["w1"], start_time=T0
    )
    failed = run.fail("venue unreachable and nothing cached", end_time=at(1))
    assert failed.status is ReconciliationStatus.FAILED
    assert failed.error == "venue unreachable and nothing cached"
    with pytest.raises(ValueError, match="already failed"):
        failed.finish([], end_time=at(2))
    empty = run.finish([], end_time=at(1))
    assert empty.status is ReconciliationStatus.MATCHED and empty.checked_count == 0
