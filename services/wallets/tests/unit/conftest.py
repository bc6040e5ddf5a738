"""Fixtures for the wallets domain tests: wallets, a currency catalog and `Book`, an in-memory
journal that applies the idempotency rule the way the service layer will."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.balances import (
    WalletBalance,
    account_balances,
    currency_totals,
    wallet_balances,
)
from tradeplane.wallets.domain.currencies import CurrencyCatalog, default_catalog
from tradeplane.wallets.domain.fills import Fill, fill_entries
from tradeplane.wallets.domain.ledger import JournalEntry, replay_or_conflict
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest, transfer_entry
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def venue_wallet(wallet_id: str, venue: Venue = Venue.PAPER, account_id: str = "") -> Wallet:
    return Wallet(
        wallet_id=wallet_id,
        display_name=f"wallet {wallet_id}",
        kind=WalletKind.VENUE_ACCOUNT,
        venue=venue,
        account_id=account_id or f"acct-{wallet_id}",
        create_time=T0,
    )


class Book:
    """Journal in a list; posting goes through replay_or_conflict like the real use cases."""

    def __init__(self, currencies: CurrencyCatalog, wallets: Mapping[str, Wallet]) -> None:
        self.currencies = currencies
        self.wallets = dict(wallets)
        self.entries: list[JournalEntry] = []
        self.by_key: dict[str, JournalEntry] = {}

    def post(self, entry: JournalEntry) -> JournalEntry:
        hit = replay_or_conflict(
            self.by_key.get(entry.idempotency_key), entry.idempotency_key, entry.fingerprint
        )
        if hit is not None:
            return hit
        self.entries.append(entry)
        self.by_key[entry.idempotency_key] = entry
        return entry

    def transfer(self, request: TransferRequest, now: datetime = T0) -> JournalEntry:
        hit = replay_or_conflict(
            self.by_key.get(request.idempotency_key), request.idempotency_key, request.fingerprint
        )
        if hit is not None:
            return hit
        needs_balance = request.kind is not TransferKind.DEPOSIT
        entry = transfer_entry(
            request,
            wallet=self.wallets[request.wallet_id],
            currency=self.currencies.get(request.currency),
            now=now,
            available=self.available(request.wallet_id, request.currency)
            if needs_balance
            else None,
            to_wallet=self.wallets.get(request.to_wallet_id),
        )
        return self.post(entry)

    def fill(self, fill: Fill, now: datetime = T0) -> tuple[JournalEntry, ...]:
        wallet = next(w for w in self.wallets.values() if w.account_id == fill.account_id)
        built = fill_entries(fill, wallet=wallet, currencies=self.currencies, now=now)
        return tuple(self.post(e) for e in built)

    def available(self, wallet_id: str, currency: str) -> Decimal:
        return self.account(accounts.available(wallet_id).code, currency)

    def account(self, code: str, currency: str) -> Decimal:
        return account_balances(self.entries).get((code, currency), Decimal(0))

    def accounts(self, as_of: datetime | None = None) -> dict[tuple[str, str], Decimal]:
        return account_balances(self.entries, as_of=as_of)

    def wallet_balances(
        self, as_of: datetime | None = None
    ) -> dict[tuple[str, str], WalletBalance]:
        return wallet_balances(self.entries, as_of=as_of)

    def totals(self) -> dict[str, Decimal]:
        return currency_totals(self.entries)


@pytest.fixture
def catalog() -> CurrencyCatalog:
    return default_catalog()


@pytest.fixture
def w1() -> Wallet:
    return venue_wallet("w1")


@pytest.fixture
def w2() -> Wallet:
    return venue_wallet("w2")


@pytest.fixture
def watched() -> Wallet:
    return Wallet(
        wallet_id="sol-1",
        display_name="cold storage",
        kind=WalletKind.ONCHAIN_ADDRESS,
        venue=Venue.SOLANA,
        address="9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
        chain="solana-mainnet",
        read_only=True,
        create_time=T0,
    )


@pytest.fixture
def new_book(
    catalog: CurrencyCatalog, w1: Wallet, w2: Wallet, watched: Wallet
) -> Callable[[], Book]:
    """A factory of empty books over w1, w2 (paper) and the read-only on-chain wallet."""
    return lambda: Book(catalog, {w.wallet_id: w for w in (w1, w2, watched)})


@pytest.fixture
def book(new_book: Callable[[], Book]) -> Book:
    return new_book()
