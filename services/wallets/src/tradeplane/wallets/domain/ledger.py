"""The double-entry journal: postings, immutable entries, idempotency and corrections.

Every JournalEntry instance is balanced (its postings sum to zero per currency) because the
constructor checks it; entries are frozen and never edited — a correction is a new entry
(see `reversal_entry`). Each entry carries an idempotency key and the fingerprint of the
payload that produced it, so a retry with the same key and payload returns the existing entry
and a different payload under the same key is refused (`replay_or_conflict`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum

from tradeplane.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tradeplane.wallets.domain.accounts import Account
from tradeplane.wallets.domain.currencies import (
    AMOUNT_LIMIT,
    CurrencyCatalog,
    check_currency_code,
    format_amount,
    ledger_context,
)
from tradeplane.wallets.domain.wallets import require_aware

MAX_KEY_LENGTH = 128
_ENTRY_ID_NAMESPACE = uuid.UUID("6f1d6a52-2c55-4a43-9a59-0d0c6a7e3b1e")


class EntryKind(StrEnum):
    """Mirrors trading.wallets.v1.EntryKind."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    INTERNAL_TRANSFER = "internal_transfer"
    TRADE = "trade"
    FEE = "fee"
    SETTLEMENT = "settlement"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg: a signed amount (positive = debit) of one currency on one account."""

    account: Account
    currency: str
    amount: Decimal

    @property
    def wallet_id(self) -> str | None:
        return self.account.wallet_id

    def negated(self) -> Posting:
        return Posting(self.account, self.currency, -self.amount)


def entry_id_for(idempotency_key: str) -> str:
    """Deterministic entry id from the key, so building an entry twice gives the same id."""
    return str(uuid.uuid5(_ENTRY_ID_NAMESPACE, idempotency_key))


def check_idempotency_key(key: str, field: str = "idempotency_key") -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidArgument(field, f"must be 1-{MAX_KEY_LENGTH} characters")
    return key


def _canonical(value: object) -> object:
    """JSON-ready form in which equal payloads are equal text (1.50 == 1.5, any timezone)."""
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Account):
        return value.code
    if isinstance(value, Posting):
        return [value.account.code, value.currency, format_amount(value.amount)]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def fingerprint(payload: Mapping[str, object]) -> str:
    """SHA-256 of the canonical JSON of a request payload."""
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sum_by_currency(postings: Iterable[Posting]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    with ledger_context():
        for p in postings:
            sums[p.currency] += p.amount
    return dict(sums)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An immutable, balanced journal entry. Field names follow trading.wallets.v1.LedgerEntry
    (effective_time = when it happened economically; record_time = when it was recorded)."""

    entry_id: str
    idempotency_key: str
    kind: EntryKind
    postings: tuple[Posting, ...]
    effective_time: datetime
    record_time: datetime
    fingerprint: str
    description: str = ""
    fill_id: str = ""
    order_id: str = ""
    external_ref: str = ""
    corrects_entry_id: str = ""

    def __post_init__(self) -> None:
        if not self.entry_id:
            raise InvalidArgument("entry_id", "required")
        check_idempotency_key(self.idempotency_key)
        require_aware(self.effective_time, "effective_time")
        require_aware(self.record_time, "record_time")
        if not self.fingerprint:
            raise InvalidArgument("fingerprint", "required")
        if self.corrects_entry_id and self.kind is not EntryKind.ADJUSTMENT:
            raise InvalidArgument("corrects_entry_id", "only adjustment entries correct others")
        if len(self.postings) < 2:
            raise InvalidArgument("postings", "an entry needs at least two postings")
        for i, p in enumerate(self.postings):
            check_currency_code(p.currency, f"postings[{i}].currency")
            if not p.amount.is_finite():
                raise InvalidArgument(f"postings[{i}].amount", "must be a finite decimal")
            if p.amount == 0:
                raise InvalidArgument(f"postings[{i}].amount", "must be non-zero")
            if abs(p.amount) >= AMOUNT_LIMIT:
                raise InvalidArgument(f"postings[{i}].amount", "is too large")
        unbalanced = {c: s for c, s in _sum_by_currency(self.postings).items() if s != 0}
        if unbalanced:
            detail = ", ".join(f"{format_amount(s)} {c}" for c, s in sorted(unbalanced.items()))
            raise InvalidArgument(
                "postings", f"postings must sum to zero per currency; they sum to {detail}"
            )

    @classmethod
    def create(
        cls,
        *,
        kind: EntryKind,
        idempotency_key: str,
        postings: Sequence[Posting],
        effective_time: datetime,
        record_time: datetime,
        currencies: CurrencyCatalog,
        request_fingerprint: str | None = None,
        entry_id: str | None = None,
        description: str = "",
        fill_id: str = "",
        order_id: str = "",
        external_ref: str = "",
        corrects_entry_id: str = "",
    ) -> JournalEntry:
        """A new entry with every amount checked against its currency's precision.

        `request_fingerprint` is the fingerprint of the request the idempotency key is bound
        to; by default that of the entry's own content (kind, postings, times, references).
        """
        for i, p in enumerate(postings):
            currencies.get(p.currency, f"postings[{i}].currency").check(
                p.amount, f"postings[{i}].amount"
            )
        if request_fingerprint is None:
            request_fingerprint = fingerprint(
                {
                    "kind": kind,
                    "postings": sorted(
                        [p.account.code, p.currency, format_amount(p.amount)] for p in postings
                    ),
                    "effective_time": effective_time,
                    "description": description,
                    "fill_id": fill_id,
                    "order_id": order_id,
                    "external_ref": external_ref,
                    "corrects_entry_id": corrects_entry_id,
                }
            )
        key = check_idempotency_key(idempotency_key)
        return cls(
            entry_id=entry_id or entry_id_for(key),
            idempotency_key=key,
            kind=kind,
            postings=tuple(postings),
            effective_time=effective_time,
            record_time=record_time,
            fingerprint=request_fingerprint,
            description=description,
            fill_id=fill_id,
            order_id=order_id,
            external_ref=external_ref,
            corrects_entry_id=corrects_entry_id,
        )

    def sums_by_currency(self) -> dict[str, Decimal]:
        """Always all zero (the constructor guarantees it); handy in tests and checks."""
        return _sum_by_currency(self.postings)

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(p.currency for p in self.postings)

    @property
    def wallet_ids(self) -> frozenset[str]:
        return frozenset(p.wallet_id for p in self.postings if p.wallet_id is not None)


def replay_or_conflict(
    existing: JournalEntry | None, idempotency_key: str, request_fingerprint: str
) -> JournalEntry | None:
    """Idempotency rule, checked BEFORE any balance check so a retry of a successful
    withdrawal returns its entry even though the balance has since dropped:

    no entry under the key -> None (go ahead); same fingerprint -> the existing entry;
    different fingerprint -> AlreadyExists.
    """
    if existing is None:
        return None
    if existing.fingerprint == request_fingerprint:
        return existing
    raise AlreadyExists(
        f"idempotency key {idempotency_key!r} was already used for a different request "
        f"(entry {existing.entry_id})"
    )


def reversal_entry(
    original: JournalEntry,
    *,
    now: datetime,
    effective_time: datetime | None = None,
    idempotency_key: str | None = None,
    description: str | None = None,
    entry_id: str | None = None,
) -> JournalEntry:
    """The correction that undoes `original`: every posting negated, kind ADJUSTMENT,
    `corrects_entry_id` set. Dated `now` unless told otherwise, so balances as of earlier
    times still show the original. The default key makes reversing an entry twice a replay.
    """
    key = check_idempotency_key(idempotency_key or f"reversal:{original.entry_id}")
    payload = {
        "reverses": original.entry_id,
        "effective_time": effective_time,  # None when defaulted: retries must match
        "description": description,
    }
    return JournalEntry(
        entry_id=entry_id or entry_id_for(key),
        idempotency_key=key,
        kind=EntryKind.ADJUSTMENT,
        postings=tuple(p.negated() for p in original.postings),
        effective_time=require_aware(effective_time or now, "effective_time"),
        record_time=require_aware(now, "now"),
        fingerprint=fingerprint(payload),
        description=description if description is not None else f"reversal of {original.entry_id}",
        fill_id=original.fill_id,
        order_id=original.order_id,
        external_ref=original.external_ref,
        corrects_entry_id=original.entry_id,
    )


class InsufficientFunds(FailedPrecondition):
    """An entry would drive a constrained (wallet) account below zero."""

    def __init__(
        self, account: Account, currency: str, balance: Decimal, required: Decimal
    ) -> None:
        self.account = account
        self.currency = currency
        self.balance = balance
        self.required = required
        with ledger_context():
            self.shortfall = required - balance
        super().__init__(
            f"insufficient funds in {account.code}: balance {format_amount(balance)} "
            f"{currency}, needs {format_amount(required)} {currency} "
            f"(short by {format_amount(self.shortfall)} {currency})"
        )


def ensure_no_overdraft(entry: JournalEntry, balances: Mapping[tuple[str, str], Decimal]) -> None:
    """Raise InsufficientFunds if posting `entry` would leave a constrained account negative.

    `balances` maps (account code, currency) to the current balance; missing means zero.
    """
    with ledger_context():
        outflow: dict[tuple[Account, str], Decimal] = defaultdict(Decimal)
        for p in entry.postings:
            if p.account.constrained:
                outflow[(p.account, p.currency)] -= p.amount
        for (account, currency), required in sorted(outflow.items()):
            balance = balances.get((account.code, currency), Decimal(0))
            if required > 0 and balance - required < 0:
                raise InsufficientFunds(account, currency, balance, required)
