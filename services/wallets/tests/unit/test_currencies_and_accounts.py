"""Currencies (precision, parsing, formatting), wallets and the chart of accounts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.accounts import Account, AccountKind
from tradeplane.wallets.domain.currencies import (
    Currency,
    CurrencyCatalog,
    decimal_places,
    default_catalog,
    format_amount,
    parse_amount,
    split_product,
)
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "places"),
    [("1", 0), ("1.50", 1), ("100", 0), ("1E+2", 0), ("0.00000001", 8), ("0.000", 0), ("-2.25", 2)],
)
def test_decimal_places_ignores_trailing_zeros(text: str, places: int) -> None:
    assert decimal_places(Decimal(text)) == places


def test_currency_check_names_the_field_and_the_precision() -> None:
    btc = Currency("BTC", 8)
    assert btc.check(Decimal("0.12345678"), "amount") == Decimal("0.12345678")
    assert btc.check(Decimal("1.500000000"), "amount") == Decimal("1.5")  # zeros are free
    with pytest.raises(InvalidArgument) as err:
        btc.check(Decimal("0.000000001"), "amount")
    assert err.value.field == "amount"
    assert "8 decimal places" in err.value.message
    with pytest.raises(InvalidArgument, match="too large"):
        btc.check(Decimal(10) ** 20, "amount")
    with pytest.raises(InvalidArgument, match="finite"):
        btc.check(Decimal("NaN"), "amount")


def test_currency_round_is_half_even() -> None:
    usd = Currency("USD", 2)
    assert usd.round(Decimal("1.005")) == Decimal("1.00")
    assert usd.round(Decimal("1.015")) == Decimal("1.02")
    assert usd.quantum == Decimal("0.01")


def test_format_and_parse_amounts() -> None:
    assert format_amount(Decimal("1.500")) == "1.5"
    assert format_amount(Decimal("1E+2")) == "100"
    assert format_amount(Decimal("0.00000001")) == "0.00000001"
    assert format_amount(Decimal("-0.0")) == "0"
    assert format_amount(Decimal("12345678901234567890.123456789012345678")) == (
        "12345678901234567890.123456789012345678"
    )
    assert parse_amount(" 2.50 ", "amount") == Decimal("2.5")
    with pytest.raises(InvalidArgument) as err:
        parse_amount("two", "amount")
    assert err.value.field == "amount"
    with pytest.raises(InvalidArgument):
        parse_amount("Infinity", "amount")


def test_split_product() -> None:
    assert split_product("ETH-BTC") == ("ETH", "BTC")
    for bad in ("BTCUSD", "BTC-", "BTC-USD-X", "btc-usd", "USD-USD"):
        with pytest.raises(InvalidArgument):
            split_product(bad)


def test_catalog_refuses_unknown_currencies_unless_a_default_precision_is_set() -> None:
    catalog = default_catalog()
    assert catalog.get("ETH").precision == 18
    with pytest.raises(InvalidArgument) as err:
        catalog.get("XYZ", "postings[0].currency")
    assert err.value.field == "postings[0].currency"
    lenient = CurrencyCatalog([], default_precision=18, default_tolerance=Decimal("0.001"))
    assert lenient.get("BONK") == Currency("BONK", 18, Decimal("0.001"))
    with pytest.raises(InvalidArgument):
        lenient.get("not a code")


def test_account_codes_round_trip() -> None:
    for account in (
        accounts.available("w1"),
        accounts.hold("w-2:x"),
        accounts.clearing(Venue.COINBASE),
        accounts.counterparty(Venue.PAPER),
        accounts.fees(Venue.COINBASE),
        accounts.EXTERNAL_DEPOSITS,
        accounts.EXTERNAL_WITHDRAWALS,
        accounts.EXTERNAL_ADJUSTMENTS,
    ):
        assert Account.parse(account.code) == account
    assert accounts.available("w1").code == "wallet/w1/available"
    assert accounts.available("w1").wallet_id == "w1"
    assert accounts.available("w1").constrained
    assert accounts.fees(Venue.COINBASE).code == "fees/coinbase"
    assert accounts.fees(Venue.COINBASE).wallet_id is None
    assert not accounts.clearing(Venue.PAPER).constrained
    assert Account.parse("wallet/w1/hold").kind is AccountKind.HOLD


@pytest.mark.parametrize(
    "code", ["wallet/w1", "wallet/w1/other", "fees/nyse", "external/mars", "clearing", "x/y/z"]
)
def test_bad_account_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidArgument):
        Account.parse(code)


def test_wallet_shapes_are_validated() -> None:
    with pytest.raises(InvalidArgument) as err:
        Wallet("w1", "x", WalletKind.VENUE_ACCOUNT, Venue.PAPER, T0)
    assert err.value.field == "wallet.account_id"
    with pytest.raises(InvalidArgument) as err:
        Wallet("w/1", "x", WalletKind.VENUE_ACCOUNT, Venue.PAPER, T0, account_id="a")
    assert err.value.field == "wallet.wallet_id"
    with pytest.raises(InvalidArgument) as err:
        Wallet(
            "e1", "x", WalletKind.ONCHAIN_ADDRESS, Venue.EVM, T0, address="0xabc", chain="eip155:1"
        )
    assert err.value.field == "wallet.read_only"
    with pytest.raises(InvalidArgument) as err:
        Wallet("e1", "x", WalletKind.ONCHAIN_ADDRESS, Venue.COINBASE, T0, address="0x", chain="c")
    assert err.value.field == "wallet.venue"
    with pytest.raises(InvalidArgument) as err:
        Wallet(
            "w1", "x", WalletKind.VENUE_ACCOUNT, Venue.PAPER, datetime(2026, 1, 1), account_id="a"
        )
    assert err.value.field == "wallet.create_time"
