"""Fills as trade, settlement and fee entries, checked against hand-computed balances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.runtime.errors import AlreadyExists, InvalidArgument
from tradeplane.wallets.domain.fills import (
    Fill,
    Side,
    fill_entries,
    fill_idempotency_keys,
)
from tradeplane.wallets.domain.ledger import EntryKind
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal


def fill(trade_id: str, side: Side, size: str, price: str, fee: str, **kw: object) -> Fill:
    fields: dict[str, object] = {
        "fill_id": f"f-{trade_id}",
        "venue_trade_id": trade_id,
        "order_id": "o-1",
        "account_id": "acct-w1",
        "venue": Venue.PAPER,
        "product_id": "BTC-USD",
        "side": side,
        "size": D(size),
        "price": D(price),
        "fee": D(fee),
        "time": T0 + timedelta(minutes=1),
    }
    return Fill(**(fields | kw))  # type: ignore[arg-type]


def nonzero(balances: dict[tuple[str, str], Decimal]) -> dict[tuple[str, str], Decimal]:
    return {k: v for k, v in balances.items() if v != 0}


def test_buy_then_sell_with_fees(book) -> None:
    book.transfer(TransferRequest("dep", TransferKind.DEPOSIT, "w1", "USD", D("50000")))

    buy = book.fill(fill("t-1", Side.BUY, "0.5", "60000.00", "30.00"))
    assert [e.kind for e in buy] == [EntryKind.TRADE, EntryKind.SETTLEMENT, EntryKind.FEE]
    assert all(e.fill_id == "f-t-1" and e.order_id == "o-1" for e in buy)
    assert all(e.effective_time == T0 + timedelta(minutes=1) for e in buy)
    # 50000 - 0.5 * 60000 - 30 = 19970 USD; clearing flat once settled.
    assert nonzero(book.accounts()) == {
        ("wallet/w1/available", "BTC"): D("0.5"),
        ("wallet/w1/available", "USD"): D("19970"),
        ("counterparty/paper", "BTC"): D("-0.5"),
        ("counterparty/paper", "USD"): D("30000"),
        ("fees/paper", "USD"): D("30"),
        ("external/deposits", "USD"): D("-50000"),
    }

    book.fill(fill("t-2", Side.SELL, "0.2", "61000.50", "12.2001"))
    # notional 0.2 * 61000.50 = 12200.10; USD: 19970 + 12200.10 - 12.2001 = 32157.8999
    assert nonzero(book.accounts()) == {
        ("wallet/w1/available", "BTC"): D("0.3"),
        ("wallet/w1/available", "USD"): D("32157.8999"),
        ("counterparty/paper", "BTC"): D("-0.3"),
        ("counterparty/paper", "USD"): D("17799.90"),
        ("fees/paper", "USD"): D("42.2001"),
        ("external/deposits", "USD"): D("-50000"),
    }
    assert book.totals() == {"USD": 0, "BTC": 0}
    balances = book.wallet_balances()
    assert balances[("w1", "USD")].total == D("32157.8999")
    assert balances[("w1", "BTC")].available == D("0.3")


def test_trade_entry_goes_through_clearing_and_settlement_empties_it(catalog, w1) -> None:
    trade, settlement, fee = fill_entries(
        fill("t-1", Side.BUY, "0.5", "60000", "30"), wallet=w1, currencies=catalog, now=T0
    )
    legs = {(p.account.code, p.currency): p.amount for p in trade.postings}
    assert legs == {
        ("counterparty/paper", "BTC"): D("-0.5"),
        ("clearing/paper", "BTC"): D("0.5"),
        ("clearing/paper", "USD"): D("-30000"),
        ("counterparty/paper", "USD"): D("30000"),
    }
    clearing_after = {
        c: legs[("clearing/paper", c)]
        + sum(
            p.amount
            for p in settlement.postings
            if p.account.code == "clearing/paper" and p.currency == c
        )
        for c in ("BTC", "USD")
    }
    assert clearing_after == {"BTC": 0, "USD": 0}
    assert {(p.account.code, p.amount) for p in fee.postings} == {
        ("fees/paper", D("30")),
        ("wallet/w1/available", D("-30")),
    }
    assert [e.idempotency_key for e in (trade, settlement, fee)] == [
        "fill:paper:t-1:trade",
        "fill:paper:t-1:settlement",
        "fill:paper:t-1:fee",
    ]
    assert set(fill_idempotency_keys(fill("t-1", Side.BUY, "1", "1", "0"))) == {
        e.idempotency_key for e in (trade, settlement, fee)
    }


def test_zero_fee_gives_no_fee_entry(catalog, w1) -> None:
    entries = fill_entries(
        fill("t-1", Side.SELL, "1", "100", "0"), wallet=w1, currencies=catalog, now=T0
    )
    assert [e.kind for e in entries] == [EntryKind.TRADE, EntryKind.SETTLEMENT]


def test_notional_and_fee_are_rounded_half_even_to_the_quote_precision(catalog, w1) -> None:
    # 0.12345678 ETH * 0.05123 BTC = 0.0063246908394 BTC -> 0.00632469 (BTC keeps 8 places)
    f = fill("t-9", Side.BUY, "0.12345678", "0.05123", "0.0000000149", product_id="ETH-BTC")
    _, settlement, fee = fill_entries(f, wallet=w1, currencies=catalog, now=T0)
    legs = {(p.account.code, p.currency): p.amount for p in settlement.postings}
    assert legs[("wallet/w1/available", "BTC")] == D("-0.00632469")
    assert legs[("wallet/w1/available", "ETH")] == D("0.12345678")
    assert fee.postings[0].amount == D("0.00000001")  # 0.0000000149 BTC rounded


def test_fee_in_the_base_currency(book) -> None:
    book.fill(fill("t-1", Side.BUY, "1", "100", "0.001", fee_currency="BTC"))
    assert book.available("w1", "BTC") == D("0.999")
    assert book.account("fees/paper", "BTC") == D("0.001")
    assert book.available("w1", "USD") == D("-100")  # fills are venue facts, posted regardless


def test_a_fill_cannot_be_posted_twice(book) -> None:
    f = fill("t-1", Side.BUY, "0.5", "60000", "30")
    first = book.fill(f)
    snapshot = book.accounts()
    again = book.fill(f, now=T0 + timedelta(hours=1))  # redelivered later
    assert again == first
    assert book.accounts() == snapshot
    assert len(book.entries) == 3
    # A different fill claiming the same venue trade id is refused.
    with pytest.raises(AlreadyExists, match="fill:paper:t-1:trade"):
        book.fill(fill("t-1", Side.BUY, "0.5", "60001", "30"))
    # The same trade id on another venue is another trade, with other keys.
    coinbase_wallet = Wallet(
        "cb", "cb", WalletKind.VENUE_ACCOUNT, Venue.COINBASE, T0, account_id="acct-w1"
    )
    coinbase = fill("t-1", Side.BUY, "0.5", "60000", "30", venue=Venue.COINBASE)
    keys = [
        e.idempotency_key
        for e in fill_entries(coinbase, wallet=coinbase_wallet, currencies=book.currencies, now=T0)
    ]
    assert keys == [
        "fill:coinbase:t-1:trade",
        "fill:coinbase:t-1:settlement",
        "fill:coinbase:t-1:fee",
    ]


def test_fill_must_match_the_wallet(catalog, w1, w2, watched) -> None:
    f = fill("t-1", Side.BUY, "1", "100", "0")
    with pytest.raises(InvalidArgument) as err:
        fill_entries(f, wallet=w2, currencies=catalog, now=T0)
    assert err.value.field == "fill.account_id"
    with pytest.raises(InvalidArgument) as err:
        fill_entries(
            fill("t-1", Side.BUY, "1", "100", "0", venue=Venue.COINBASE),
            wallet=w1,
            currencies=catalog,
            now=T0,
        )
    assert err.value.field == "fill.venue"
    with pytest.raises(InvalidArgument) as err:
        fill_entries(f, wallet=watched, currencies=catalog, now=T0)
    assert err.value.field == "fill.venue"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": "0"}, "fill.size"),
        ({"price": "-1"}, "fill.price"),
        ({"fee": "-0.01"}, "fill.fee"),
        ({"product_id": "BTCUSD"}, "fill.product_id"),
        ({"venue_trade_id": ""}, "fill.venue_trade_id"),
        ({"venue": Venue.SOLANA}, "fill.venue"),
        ({"time": datetime(2026, 1, 1)}, "fill.time"),
    ],
)
def test_fill_fields_are_validated(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        fill("t-1", Side.BUY, **({"size": "1", "price": "100", "fee": "0"} | change))  # type: ignore[arg-type]
    assert err.value.field == field


def test_size_beyond_the_base_precision_is_refused(catalog, w1) -> None:
    with pytest.raises(InvalidArgument) as err:
        fill_entries(
            fill("t-1", Side.BUY, "0.000000001", "100", "0"), wallet=w1, currencies=catalog, now=T0
        )
    assert err.value.field == "fill.size"
    with pytest.raises(InvalidArgument) as err:
        fill_entries(
            fill("t-1", Side.BUY, "1", "100", "0", product_id="BTC-XYZ"),
            wallet=w1,
            currencies=catalog,
            now=T0,
        )
    assert err.value.field == "fill.product_id"
