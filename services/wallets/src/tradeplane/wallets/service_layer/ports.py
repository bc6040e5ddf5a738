"""What the use cases need from the outside world (implemented in adapters/)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tradeplane.wallets.domain.accounts import Account
from tradeplane.wallets.domain.balances import WalletBalance
from tradeplane.wallets.domain.fills import Fill
from tradeplane.wallets.domain.ledger import EntryKind, JournalEntry
from tradeplane.wallets.domain.reconciliation import VenueBalance
from tradeplane.wallets.domain.wallets import Venue, Wallet


@dataclass(frozen=True, slots=True)
class BalanceQuery:
    """Ledger balances per (wallet, currency). `wallet_ids` None = every wallet."""

    wallet_ids: Collection[str] | None = None
    currencies: Collection[str] = ()
    as_of: datetime | None = None
    include_zero: bool = True
    exclude_kinds: Collection[EntryKind] = ()
    after: tuple[str, str] | None = None  # keyset: (wallet_id, currency) of the last row seen
    limit: int | None = None
    # A contiguous page of wallets (first, last id) of `venue` (None = any): a range is one
    # index scan and two parameters, where an IN list of 1,000 ids costs more than the query.
    wallet_range: tuple[str, str] | None = None
    venue: Venue | None = None


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """ListLedgerEntries filters; `after` is the keyset (effective_time, row id)."""

    limit: int
    wallet_id: str = ""
    currency: str = ""
    kinds: Collection[EntryKind] = ()
    start: datetime | None = None
    end: datetime | None = None
    as_of: datetime | None = None
    fill_id: str = ""
    after: tuple[datetime, int] | None = None


@dataclass(frozen=True, slots=True)
class WalletListing:
    """ListWallets' read model: a wallet's stored fields and its ledger balances already as
    decimal text, (currency, available, hold, total) sorted by currency. No domain objects:
    a page of 1,000 wallets x 5 currencies must cost milliseconds, not Decimal arithmetic."""

    wallet_id: str
    display_name: str
    kind: str
    venue: str
    account_id: str
    address: str
    chain: str
    read_only: bool
    create_seconds: int
    create_nanos: int
    balances: tuple[tuple[str, str, str, str], ...]


class LedgerSession(Protocol):
    """One transaction on the ledger."""

    async def insert_wallet(self, wallet: Wallet) -> None: ...
    async def get_wallet(self, wallet_id: str, *, lock: bool = False) -> Wallet | None: ...
    async def wallets_by_ids(self, wallet_ids: Collection[str]) -> dict[str, Wallet]: ...
    async def wallet_for_account(self, venue: Venue, account_id: str) -> Wallet | None: ...
    async def list_wallets(
        self, *, venue: Venue | None, after: str | None, limit: int | None
    ) -> list[Wallet]: ...
    async def wallet_listing(
        self, *, venue: Venue | None, after: str | None, limit: int
    ) -> list[WalletListing]: ...
    async def balances(self, q: BalanceQuery) -> list[WalletBalance]: ...
    async def account_balance(self, account: Account, currency: str) -> Decimal: ...
    async def entries_by_keys(self, keys: Collection[str]) -> dict[str, JournalEntry]: ...
    async def insert_entries(self, entries: Sequence[JournalEntry]) -> None: ...
    async def list_entries(self, q: EntryQuery) -> list[tuple[int, JournalEntry]]: ...
    async def get_cursor(self, consumer: str) -> int | None: ...
    async def set_cursor(self, consumer: str, seq: int, now: datetime) -> None: ...


class LedgerStore(Protocol):
    def read(self) -> AbstractAsyncContextManager[LedgerSession]: ...
    def write(self) -> AbstractAsyncContextManager[LedgerSession]: ...


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """Balances a venue reported for some wallets; `calls` = venue calls actually made."""

    balances: tuple[VenueBalance, ...]
    calls: int


class VenueBalances(Protocol):
    """Where reconciliation gets the venue's view of a wallet's balances.

    Implementations: the paper venue (adapters.paper_venue); later Coinbase (accounts API,
    paged, through the Redis cache: TTL, single-flight, stale-on-error with `stale=True`) and
    read-only on-chain addresses (Solana / EVM JSON-RPC). Raise errors.Unavailable when the
    venue cannot be reached and nothing is cached; the run is then recorded as FAILED.
    """

    def handles(self, wallet: Wallet) -> bool: ...

    async def fetch(self, wallets: Sequence[Wallet], *, force_refresh: bool) -> VenueSnapshot: ...


@dataclass(frozen=True, slots=True)
class FillBatch:
    """One StreamEvents message reduced to what wallets needs: its fills and the seq of its
    last event (the cursor to store once they are posted)."""

    last_seq: int
    fills: tuple[Fill, ...]
    reset: bool = False
    rejected: int = 0  # fill events that could not be parsed (logged, skipped)
    # W3C trace context (traceparent...) of each fill's event, for the ledger-posting span
    trace_contexts: tuple[Mapping[str, str], ...] = ()


class KeyConflict(Exception):
    """Raised by LedgerSession.insert_entries when an idempotency key was taken concurrently
    (the transaction is then rolled back; the use case retries and sees the existing entry)."""
