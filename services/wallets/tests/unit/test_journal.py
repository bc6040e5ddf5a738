"""Journal entries: per-currency zero sum, precision, immutability, fingerprints, reversals."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tradeplane.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.currencies import default_catalog
from tradeplane.wallets.domain.ledger import (
    EntryKind,
    InsufficientFunds,
    JournalEntry,
    Posting,
    ensure_no_overdraft,
    fingerprint,
    replay_or_conflict,
    reversal_entry,
)
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest
from tradeplane.wallets.domain.wallets import Venue

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal
W1 = accounts.available("w1")
CLEARING = accounts.clearing(Venue.PAPER)
MARKET = accounts.counterparty(Venue.PAPER)


def entry(*postings: Posting, key: str = "k1", kind: EntryKind = EntryKind.TRADE) -> JournalEntry:
    return JournalEntry.create(
        kind=kind,
        idempotency_key=key,
        postings=postings,
        effective_time=T0,
        record_time=T0,
        currencies=default_catalog(),
    )


def test_multi_currency_entry_balanced_per_currency_is_accepted() -> None:
    e = entry(
        Posting(W1, "BTC", D("0.5")),
        Posting(MARKET, "BTC", D("-0.5")),
        Posting(MARKET, "USD", D("30000")),
        Posting(W1, "USD", D("-30000")),
    )
    assert e.sums_by_currency() == {"BTC": 0, "USD": 0}
    assert e.currencies == {"BTC", "USD"}
    assert e.wallet_ids == {"w1"}


def test_entry_that_nets_to_zero_overall_but_not_per_currency_is_refused() -> None:
    # +1 BTC against -1 USD sums to zero as numbers, but money of one currency appeared and
    # money of another vanished.
    with pytest.raises(InvalidArgument) as err:
        entry(Posting(W1, "BTC", D("1")), Posting(MARKET, "USD", D("-1")))
    assert err.value.field == "postings"
    assert "1 BTC" in err.value.message and "-1 USD" in err.value.message


def test_one_unbalanced_currency_among_balanced_ones_is_named() -> None:
    with pytest.raises(InvalidArgument, match=r"sum to 0\.00000001 BTC"):
        entry(
            Posting(W1, "USD", D("10")),
            Posting(MARKET, "USD", D("-10")),
            Posting(W1, "BTC", D("0.10000001")),
            Posting(MARKET, "BTC", D("-0.1")),
        )


def test_fewer_than_two_postings_and_zero_amounts_are_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        entry(Posting(W1, "USD", D("0")))
    assert err.value.field == "postings"
    with pytest.raises(InvalidArgument) as err:
        entry(
            Posting(W1, "USD", D("5")),
            Posting(MARKET, "USD", D("-5")),
            Posting(CLEARING, "USD", D("0")),
        )
    assert err.value.field == "postings[2].amount"
    assert "non-zero" in err.value.message


def test_amounts_must_fit_the_currency_precision() -> None:
    with pytest.raises(InvalidArgument) as err:
        entry(Posting(W1, "USDC", D("0.0000001")), Posting(MARKET, "USDC", D("-0.0000001")))
    assert err.value.field == "postings[0].amount"
    assert "6 decimal places" in err.value.message
    # ETH keeps 18 places: one wei is fine.
    entry(Posting(W1, "ETH", D("1E-18")), Posting(MARKET, "ETH", D("-1E-18")))
    with pytest.raises(InvalidArgument) as err:
        entry(Posting(W1, "XYZ", D("1")), Posting(MARKET, "XYZ", D("-1")))
    assert err.value.field == "postings[0].currency"


def test_entries_are_immutable() -> None:
    e = entry(Posting(W1, "USD", D("5")), Posting(MARKET, "USD", D("-5")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.description = "edited"  # type: ignore[misc]
    assert isinstance(e.postings, tuple)


def test_naive_times_and_bad_keys_are_refused() -> None:
    postings = (Posting(W1, "USD", D("5")), Posting(MARKET, "USD", D("-5")))
    with pytest.raises(InvalidArgument) as err:
        JournalEntry.create(
            kind=EntryKind.DEPOSIT,
            idempotency_key="k",
            postings=postings,
            effective_time=datetime(2026, 1, 1),
            record_time=T0,
            currencies=default_catalog(),
        )
    assert err.value.field == "effective_time"
    with pytest.raises(InvalidArgument) as err:
        entry(*postings, key="x" * 129)
    assert err.value.field == "idempotency_key"


def test_fingerprint_is_canonical() -> None:
    paris = timezone(timedelta(hours=1))
    a = fingerprint({"amount": D("1.50"), "at": T0, "kind": TransferKind.DEPOSIT})
    b = fingerprint({"kind": TransferKind.DEPOSIT, "at": T0.astimezone(paris), "amount": D("1.5")})
    assert a == b
    assert a != fingerprint({"amount": D("1.51"), "at": T0, "kind": TransferKind.DEPOSIT})


def test_transfer_fingerprint_binds_the_payload_not_the_time_of_the_call() -> None:
    def req(**kw: object) -> TransferRequest:
        fields: dict[str, object] = {
            "idempotency_key": "dep-1",
            "kind": TransferKind.DEPOSIT,
            "wallet_id": "w1",
            "currency": "USD",
            "amount": D("100"),
        }
        return TransferRequest(**(fields | kw))  # type: ignore[arg-type]

    assert req().fingerprint == req(amount=D("100.00")).fingerprint
    assert req().fingerprint != req(amount=D("101")).fingerprint
    assert req().fingerprint != req(description="other").fingerprint
    assert req().fingerprint != req(effective_time=T0).fingerprint
    assert req().fingerprint != req(kind=TransferKind.WITHDRAWAL).fingerprint


def test_replay_or_conflict() -> None:
    e = entry(Posting(W1, "USD", D("5")), Posting(MARKET, "USD", D("-5")))
    assert replay_or_conflict(None, "k1", e.fingerprint) is None
    assert replay_or_conflict(e, "k1", e.fingerprint) is e
    with pytest.raises(AlreadyExists, match="k1"):
        replay_or_conflict(e, "k1", "another fingerprint")


def test_same_content_gives_same_fingerprint_and_entry_id() -> None:
    one = entry(Posting(W1, "USD", D("5")), Posting(MARKET, "USD", D("-5")))
    again = entry(Posting(MARKET, "USD", D("-5.00")), Posting(W1, "USD", D("5")))
    assert one.fingerprint == again.fingerprint
    assert one.entry_id == again.entry_id  # derived from the key
    other = entry(Posting(W1, "USD", D("6")), Posting(MARKET, "USD", D("-6")))
    assert other.fingerprint != one.fingerprint


def test_reversal_negates_every_posting_and_points_at_the_original() -> None:
    original = entry(
        Posting(W1, "BTC", D("0.5")),
        Posting(MARKET, "BTC", D("-0.5")),
        Posting(MARKET, "USD", D("30000")),
        Posting(W1, "USD", D("-30000")),
    )
    later = T0 + timedelta(hours=1)
    rev = reversal_entry(original, now=later)
    assert rev.kind is EntryKind.ADJUSTMENT
    assert rev.corrects_entry_id == original.entry_id
    assert rev.effective_time == later and rev.record_time == later
    assert rev.idempotency_key == f"reversal:{original.entry_id}"
    assert [p.amount for p in rev.postings] == [D("-0.5"), D("0.5"), D("-30000"), D("30000")]
    # Retrying the reversal later builds the same request fingerprint: a replay, not a conflict.
    assert reversal_entry(original, now=later + timedelta(minutes=5)).fingerprint == rev.fingerprint


def test_reversal_restores_balances_and_history_stays_visible(book) -> None:
    deposit = book.transfer(
        TransferRequest("dep", TransferKind.DEPOSIT, "w1", "USD", D("1000"), effective_time=T0)
    )
    before = book.accounts()
    mistaken = book.transfer(
        TransferRequest(
            "dep-2",
            TransferKind.DEPOSIT,
            "w1",
            "USD",
            D("250"),
            effective_time=T0 + timedelta(minutes=1),
        )
    )
    assert book.available("w1", "USD") == D("1250")
    book.post(reversal_entry(mistaken, now=T0 + timedelta(hours=1)))
    nonzero = lambda balances: {k: v for k, v in balances.items() if v != 0}  # noqa: E731
    assert nonzero(book.accounts()) == nonzero(before)  # every account back where it was
    assert book.available("w1", "USD") == D("1000")
    # As of before the reversal the mistaken deposit is still visible.
    assert book.accounts(as_of=T0 + timedelta(minutes=30))[("wallet/w1/available", "USD")] == D(
        "1250"
    )
    # Reversing twice is a replay (same default key and payload): nothing changes.
    book.post(reversal_entry(mistaken, now=T0 + timedelta(hours=2)))
    assert book.available("w1", "USD") == D("1000")
    assert len(book.entries) == 3
    assert deposit.entry_id != mistaken.entry_id


def test_overdraft_check_names_account_balance_and_shortfall(book) -> None:
    deposit = book.transfer(TransferRequest("dep", TransferKind.DEPOSIT, "w1", "USD", D("100")))
    book.transfer(TransferRequest("wd", TransferKind.WITHDRAWAL, "w1", "USD", D("60")))
    reversal = reversal_entry(deposit, now=T0)
    with pytest.raises(InsufficientFunds) as err:
        ensure_no_overdraft(reversal, book.accounts())
    assert isinstance(err.value, FailedPrecondition)
    assert (err.value.balance, err.value.required, err.value.shortfall) == (
        D("40"),
        D("100"),
        D("60"),
    )
    assert "wallet/w1/available" in err.value.message
    assert "balance 40 USD" in err.value.message and "short by 60 USD" in err.value.message
    # Inflows never trip it, nor do accounts that are not constrained.
    ensure_no_overdraft(deposit, {})
