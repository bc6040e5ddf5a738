"""Deposits, withdrawals, internal moves and adjustments, with idempotent retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tradeplane.wallets.domain.currencies import Currency
from tradeplane.wallets.domain.ledger import EntryKind, InsufficientFunds
from tradeplane.wallets.domain.transfers import (
    TransferKind,
    TransferRequest,
    adjustment_entry,
    transfer_entry,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal
USD = Currency("USD", 8, D("0.01"))


def deposit(key: str, wallet: str, amount: str, currency: str = "USD") -> TransferRequest:
    return TransferRequest(key, TransferKind.DEPOSIT, wallet, currency, D(amount))


def withdrawal(key: str, wallet: str, amount: str, currency: str = "USD") -> TransferRequest:
    return TransferRequest(key, TransferKind.WITHDRAWAL, wallet, currency, D(amount))


def test_deposit_debits_the_wallet_and_credits_the_world(book) -> None:
    e = book.transfer(deposit("d1", "w1", "1500.25"))
    assert e.kind is EntryKind.DEPOSIT
    assert {(p.account.code, p.amount) for p in e.postings} == {
        ("wallet/w1/available", D("1500.25")),
        ("external/deposits", D("-1500.25")),
    }
    assert e.effective_time == T0 == e.record_time
    assert book.available("w1", "USD") == D("1500.25")


def test_withdrawal_above_available_is_refused_with_the_numbers(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    with pytest.raises(InsufficientFunds) as err:
        book.transfer(withdrawal("wd1", "w1", "150.5"))
    assert isinstance(err.value, FailedPrecondition)
    assert err.value.balance == D("100")
    assert err.value.required == D("150.5")
    assert err.value.shortfall == D("50.5")
    assert err.value.message == (
        "insufficient funds in wallet/w1/available: balance 100 USD, needs 150.5 USD "
        "(short by 50.5 USD)"
    )
    assert book.available("w1", "USD") == D("100")  # nothing posted
    assert "wd1" not in book.by_key


def test_withdrawal_of_exactly_the_balance_leaves_zero(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    e = book.transfer(withdrawal("wd1", "w1", "100.00"))
    assert {(p.account.code, p.amount) for p in e.postings} == {
        ("external/withdrawals", D("100.00")),
        ("wallet/w1/available", D("-100.00")),
    }
    assert book.available("w1", "USD") == 0


def test_withdrawal_from_an_empty_wallet_and_of_another_currency_is_refused(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    with pytest.raises(InsufficientFunds, match="balance 0 BTC"):
        book.transfer(withdrawal("wd1", "w1", "0.1", "BTC"))
    with pytest.raises(InsufficientFunds):
        book.transfer(withdrawal("wd2", "w2", "1"))


def test_internal_move_between_wallets(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    e = book.transfer(
        TransferRequest("mv1", TransferKind.INTERNAL, "w1", "USD", D("40"), to_wallet_id="w2")
    )
    assert e.kind is EntryKind.INTERNAL_TRANSFER
    assert book.available("w1", "USD") == D("60")
    assert book.available("w2", "USD") == D("40")
    with pytest.raises(InsufficientFunds):
        book.transfer(
            TransferRequest("mv2", TransferKind.INTERNAL, "w1", "USD", D("61"), to_wallet_id="w2")
        )


def test_request_fields_are_validated_by_name() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"amount": D("0")}, "amount"),
        ({"amount": D("-5")}, "amount"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"currency": "usd"}, "currency"),
        ({"wallet_id": "a/b"}, "wallet_id"),
        ({"to_wallet_id": "w2"}, "to_wallet_id"),  # only internal moves have a destination
        ({"kind": TransferKind.INTERNAL}, "to_wallet_id"),
        ({"kind": TransferKind.INTERNAL, "to_wallet_id": "w1"}, "to_wallet_id"),
        ({"effective_time": datetime(2026, 1, 1)}, "effective_time"),
    ]
    base: dict[str, object] = {
        "idempotency_key": "k",
        "kind": TransferKind.DEPOSIT,
        "wallet_id": "w1",
        "currency": "USD",
        "amount": D("1"),
    }
    for change, field in cases:
        with pytest.raises(InvalidArgument) as err:
            TransferRequest(**(base | change))  # type: ignore[arg-type]
        assert err.value.field == field, change


def test_amount_precision_is_checked_against_the_currency(book, w1) -> None:
    with pytest.raises(InvalidArgument) as err:
        book.transfer(deposit("d1", "w1", "0.000000001", "BTC"))
    assert err.value.field == "amount"
    with pytest.raises(InvalidArgument) as err:
        transfer_entry(deposit("d2", "w1", "1.001"), wallet=w1, currency=Currency("USD", 2), now=T0)
    assert "2 decimal places" in err.value.message


def test_read_only_wallets_take_no_transfers(book, watched) -> None:
    with pytest.raises(FailedPrecondition, match="read-only"):
        book.transfer(deposit("d1", watched.wallet_id, "1", "SOL"))


def test_same_key_same_payload_returns_the_existing_entry(book) -> None:
    first = book.transfer(deposit("d1", "w1", "100"), now=T0)
    again = book.transfer(deposit("d1", "w1", "100.000"), now=T0 + timedelta(minutes=3))
    assert again is first
    assert book.available("w1", "USD") == D("100")
    assert len(book.entries) == 1


def test_same_key_different_payload_is_already_exists(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    with pytest.raises(AlreadyExists, match="d1"):
        book.transfer(deposit("d1", "w1", "101"))
    with pytest.raises(AlreadyExists):
        book.transfer(withdrawal("d1", "w1", "100"))
    assert book.available("w1", "USD") == D("100")


def test_retry_of_a_withdrawal_after_the_balance_dropped_is_still_a_replay(book) -> None:
    book.transfer(deposit("d1", "w1", "100"))
    wd = book.transfer(withdrawal("wd1", "w1", "80"))
    # The balance (20) no longer covers 80, but the key says this already happened.
    assert book.transfer(withdrawal("wd1", "w1", "80")) is wd
    assert book.available("w1", "USD") == D("20")


def test_transfer_entry_needs_the_balance_for_outflows(w1) -> None:
    with pytest.raises(ValueError, match="available balance"):
        transfer_entry(withdrawal("wd", "w1", "1"), wallet=w1, currency=USD, now=T0)


def test_adjustment_on_a_read_only_wallet(book, watched, catalog) -> None:
    sol = catalog.get("SOL")
    e = adjustment_entry(
        wallet=watched,
        currency=sol,
        amount=D("12.5"),
        idempotency_key="chain:sol-1:slot-100",
        now=T0,
        description="on-chain balance observed",
    )
    book.post(e)
    assert e.kind is EntryKind.ADJUSTMENT
    assert book.available("sol-1", "SOL") == D("12.5")
    assert book.account("external/adjustments", "SOL") == D("-12.5")
    with pytest.raises(InvalidArgument):
        adjustment_entry(wallet=watched, currency=sol, amount=D(0), idempotency_key="z", now=T0)
