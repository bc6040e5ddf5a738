"""Transfers (RecordTransfer) and adjustments as journal entries.

  deposit     wallet/<w>/available  +x    external/deposits     -x
  withdrawal  external/withdrawals  +x    wallet/<w>/available  -x   (refused above available)
  internal    wallet/<to>/available +x    wallet/<w>/available  -x   (refused above available)
  adjustment  wallet/<w>/available  ±x    external/adjustments  ∓x   (also on read-only wallets)

Service-layer order: build the TransferRequest (validates the fields), look up the key and call
`replay_or_conflict(existing, key, request.fingerprint)`; only for a new key read the source
wallet's available balance and call `transfer_entry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.wallets.domain import accounts
from tradeplane.wallets.domain.currencies import Currency, CurrencyCatalog, check_currency_code
from tradeplane.wallets.domain.ledger import (
    EntryKind,
    JournalEntry,
    Posting,
    check_idempotency_key,
    ensure_no_overdraft,
    fingerprint,
)
from tradeplane.wallets.domain.wallets import Wallet, check_wallet_id, require_aware


class TransferKind(StrEnum):
    """Mirrors trading.wallets.v1.TransferKind."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    INTERNAL = "internal"

    @property
    def entry_kind(self) -> EntryKind:
        return {
            TransferKind.DEPOSIT: EntryKind.DEPOSIT,
            TransferKind.WITHDRAWAL: EntryKind.WITHDRAWAL,
            TransferKind.INTERNAL: EntryKind.INTERNAL_TRANSFER,
        }[self]


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """What RecordTransfer asks for (field names follow RecordTransferRequest); the
    idempotency key is bound to exactly these fields. `effective_time` None means "now" and
    stays None in the fingerprint, so a retry later still matches."""

    idempotency_key: str
    kind: TransferKind
    wallet_id: str
    currency: str
    amount: Decimal
    to_wallet_id: str = ""
    effective_time: datetime | None = None
    description: str = ""
    external_ref: str = ""

    def __post_init__(self) -> None:
        check_idempotency_key(self.idempotency_key)
        check_wallet_id(self.wallet_id, "wallet_id")
        check_currency_code(self.currency, "currency")
        if not self.amount.is_finite() or self.amount <= 0:
            raise InvalidArgument("amount", "must be a positive decimal")
        if self.kind is TransferKind.INTERNAL:
            check_wallet_id(self.to_wallet_id, "to_wallet_id")
            if self.to_wallet_id == self.wallet_id:
                raise InvalidArgument("to_wallet_id", "must differ from wallet_id")
        elif self.to_wallet_id:
            raise InvalidArgument("to_wallet_id", "only internal moves have a destination")
        if self.effective_time is not None:
            require_aware(self.effective_time, "effective_time")

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            {
                "transfer": self.kind,
                "wallet_id": self.wallet_id,
                "to_wallet_id": self.to_wallet_id,
                "currency": self.currency,
                "amount": self.amount,
                "effective_time": self.effective_time,
                "description": self.description,
                "external_ref": self.external_ref,
            }
        )


def transfer_entry(
    request: TransferRequest,
    *,
    wallet: Wallet,
    currency: Currency,
    now: datetime,
    available: Decimal | None = None,
    to_wallet: Wallet | None = None,
    entry_id: str | None = None,
) -> JournalEntry:
    """The entry for a transfer.

    `available` is the source wallet's available balance in `currency` (required for
    withdrawals and internal moves); more than that raises InsufficientFunds
    (FailedPrecondition) naming the balance, the amount and the shortfall.
    """
    if wallet.wallet_id != request.wallet_id or currency.code != request.currency:
        raise ValueError("wallet/currency do not match the request")
    wallet.ensure_writable()
    amount = currency.check(request.amount, "amount")
    source = accounts.available(wallet.wallet_id)
    if request.kind is TransferKind.DEPOSIT:
        postings = [
            Posting(source, currency.code, amount),
            Posting(accounts.EXTERNAL_DEPOSITS, currency.code, -amount),
        ]
    else:
        if request.kind is TransferKind.WITHDRAWAL:
            destination = accounts.EXTERNAL_WITHDRAWALS
        else:
            if to_wallet is None or to_wallet.wallet_id != request.to_wallet_id:
                raise ValueError("an internal move needs the destination wallet")
            to_wallet.ensure_writable()
            destination = accounts.available(to_wallet.wallet_id)
        postings = [
            Posting(destination, currency.code, amount),
            Posting(source, currency.code, -amount),
        ]
        if available is None:
            raise ValueError("withdrawals and internal moves need the available balance")
    entry = JournalEntry.create(
        kind=request.kind.entry_kind,
        idempotency_key=request.idempotency_key,
        postings=postings,
        effective_time=request.effective_time or now,
        record_time=require_aware(now, "now"),
        currencies=CurrencyCatalog([currency]),
        request_fingerprint=request.fingerprint,
        entry_id=entry_id,
        description=request.description,
        external_ref=request.external_ref,
    )
    if available is not None:
        ensure_no_overdraft(entry, {(source.code, currency.code): available})
    return entry


def adjustment_entry(
    *,
    wallet: Wallet,
    currency: Currency,
    amount: Decimal,
    idempotency_key: str,
    now: datetime,
    effective_time: datetime | None = None,
    description: str = "",
    external_ref: str = "",
    entry_id: str | None = None,
) -> JournalEntry:
    """A correction of a wallet's available balance by a signed `amount` against
    external/adjustments (e.g. after reconciliation, or an on-chain balance change). Allowed
    on read-only wallets; the caller decides whether to run `ensure_no_overdraft`."""
    amount = currency.check(amount, "amount")
    if amount == 0:
        raise InvalidArgument("amount", "must be non-zero")
    payload = {
        "adjust": wallet.wallet_id,
        "currency": currency.code,
        "amount": amount,
        "effective_time": effective_time,
        "description": description,
        "external_ref": external_ref,
    }
    return JournalEntry.create(
        kind=EntryKind.ADJUSTMENT,
        idempotency_key=idempotency_key,
        postings=[
            Posting(accounts.available(wallet.wallet_id), currency.code, amount),
            Posting(accounts.EXTERNAL_ADJUSTMENTS, currency.code, -amount),
        ],
        effective_time=effective_time or now,
        record_time=require_aware(now, "now"),
        currencies=CurrencyCatalog([currency]),
        request_fingerprint=fingerprint(payload),
        entry_id=entry_id,
        description=description,
        external_ref=external_ref,
    )
