"""Balances folded from journal entries, optionally as of a time.

The repository computes the same thing with one GROUP BY in SQL; these pure folds are the
reference it is tested against. "As of t" means entries whose effective_time is at or before t
(trading.wallets.v1.ListBalancesRequest.as_of).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tradeplane.wallets.domain.accounts import AccountKind
from tradeplane.wallets.domain.currencies import ledger_context
from tradeplane.wallets.domain.ledger import JournalEntry, Posting


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """One wallet's ledger balance in one currency (trading.wallets.v1.Balance, LEDGER)."""

    wallet_id: str
    currency: str
    available: Decimal
    hold: Decimal

    @property
    def total(self) -> Decimal:
        with ledger_context():
            return self.available + self.hold


def effective_postings(
    entries: Iterable[JournalEntry], as_of: datetime | None = None
) -> Iterable[Posting]:
    for entry in entries:
        if as_of is None or entry.effective_time <= as_of:
            yield from entry.postings


def account_balances(
    entries: Iterable[JournalEntry], *, as_of: datetime | None = None
) -> dict[tuple[str, str], Decimal]:
    """(account code, currency) -> balance. Accounts touched but netting to zero stay in."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with ledger_context():
        for p in effective_postings(entries, as_of):
            sums[(p.account.code, p.currency)] += p.amount
    return dict(sums)


def wallet_balances(
    entries: Iterable[JournalEntry], *, as_of: datetime | None = None
) -> dict[tuple[str, str], WalletBalance]:
    """(wallet id, currency) -> WalletBalance(available, hold)."""
    available: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    held: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with ledger_context():
        for p in effective_postings(entries, as_of):
            wallet_id = p.account.wallet_id
            if wallet_id is None:
                continue
            target = available if p.account.kind is AccountKind.AVAILABLE else held
            target[(wallet_id, p.currency)] += p.amount
    keys = sorted(available.keys() | held.keys())
    return {
        k: WalletBalance(k[0], k[1], available.get(k, Decimal(0)), held.get(k, Decimal(0)))
        for k in keys
    }


def currency_totals(
    entries: Iterable[JournalEntry], *, as_of: datetime | None = None
) -> dict[str, Decimal]:
    """currency -> sum over every account. Zero for every currency in a sound ledger."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    with ledger_context():
        for p in effective_postings(entries, as_of):
            sums[p.currency] += p.amount
    return dict(sums)
