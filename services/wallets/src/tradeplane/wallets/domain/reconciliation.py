"""Reconciliation: the ledger's wallet totals (available + hold) against the venue's, per
(wallet, currency), with a tolerance per currency.

Every compared pair becomes a Discrepancy record (with `within_tolerance`), including
currencies that only one side knows (the other side counts as zero). A run is MATCHED when all
are within tolerance, DISCREPANCIES otherwise; `discrepancies` lists the ones beyond tolerance
(what trading.wallets.v1.ReconciliationRun.discrepancies carries), `checked_count` all of them.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradeplane.wallets.domain.balances import WalletBalance
from tradeplane.wallets.domain.currencies import ledger_context
from tradeplane.wallets.domain.wallets import require_aware


class ReconciliationStatus(StrEnum):
    RUNNING = "running"
    MATCHED = "matched"
    DISCREPANCIES = "discrepancies"
    FAILED = "failed"


class ReconciliationTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class Presence(StrEnum):
    """Which side reported the (wallet, currency)."""

    BOTH = "both"
    LEDGER_ONLY = "ledger_only"
    VENUE_ONLY = "venue_only"


@dataclass(frozen=True, slots=True)
class VenueBalance:
    """A balance as the venue reports it (trading.wallets.v1.Balance with source VENUE)."""

    wallet_id: str
    currency: str
    available: Decimal
    hold: Decimal
    as_of: datetime
    stale: bool = False  # served from cache because the venue is unreachable

    @property
    def total(self) -> Decimal:
        with ledger_context():
            return self.available + self.hold


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One comparison (names follow trading.wallets.v1.Discrepancy).
    difference = venue_balance - ledger_balance."""

    wallet_id: str
    currency: str
    ledger_balance: Decimal
    venue_balance: Decimal
    difference: Decimal
    tolerance: Decimal
    within_tolerance: bool
    presence: Presence = Presence.BOTH
    venue_stale: bool = False


def compare_balances(
    ledger: Iterable[WalletBalance],
    venue: Iterable[VenueBalance],
    *,
    tolerances: Mapping[str, Decimal],
    default_tolerance: Decimal = Decimal(0),
    wallet_ids: Collection[str] | None = None,
) -> tuple[Discrepancy, ...]:
    """Compare per (wallet, currency), sorted by wallet then currency. Balances of wallets not
    in `wallet_ids` (when given) are ignored; a venue reporting a currency twice (e.g. a
    wallet and a vault) is summed."""

    def wanted(wallet_id: str) -> bool:
        return wallet_ids is None or wallet_id in wallet_ids

    with ledger_context():
        ledger_totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for b in ledger:
            if wanted(b.wallet_id):
                ledger_totals[(b.wallet_id, b.currency)] += b.total
        venue_totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        stale: set[tuple[str, str]] = set()
        for v in venue:
            if wanted(v.wallet_id):
                venue_totals[(v.wallet_id, v.currency)] += v.total
                if v.stale:
                    stale.add((v.wallet_id, v.currency))

        results = []
        for key in sorted(ledger_totals.keys() | venue_totals.keys()):
            in_ledger, in_venue = key in ledger_totals, key in venue_totals
            ledger_balance = ledger_totals.get(key, Decimal(0))
            venue_balance = venue_totals.get(key, Decimal(0))
            difference = venue_balance - ledger_balance
            tolerance = tolerances.get(key[1], default_tolerance)
            results.append(
                Discrepancy(
                    wallet_id=key[0],
                    currency=key[1],
                    ledger_balance=ledger_balance,
                    venue_balance=venue_balance,
                    difference=difference,
                    tolerance=tolerance,
                    within_tolerance=abs(difference) <= tolerance,
                    presence=(
                        Presence.BOTH
                        if in_ledger and in_venue
                        else Presence.LEDGER_ONLY
                        if in_ledger
                        else Presence.VENUE_ONLY
                    ),
                    venue_stale=key in stale,
                )
            )
    return tuple(results)


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    """One run (names follow trading.wallets.v1.ReconciliationRun; `seq` is assigned by the
    stream that publishes it). Immutable: `finish`/`fail` return the next state."""

    run_id: str
    trigger: ReconciliationTrigger
    wallet_ids: tuple[str, ...]
    start_time: datetime
    status: ReconciliationStatus = ReconciliationStatus.RUNNING
    end_time: datetime | None = None
    comparisons: tuple[Discrepancy, ...] = ()
    venue_calls: int = 0
    error: str = ""
    venue_stale: bool = False  # some venue balance came from a stale cache

    def __post_init__(self) -> None:
        require_aware(self.start_time, "start_time")

    @classmethod
    def start(
        cls,
        run_id: str,
        *,
        trigger: ReconciliationTrigger,
        wallet_ids: Iterable[str],
        start_time: datetime,
    ) -> ReconciliationRun:
        return cls(run_id, trigger, tuple(sorted(set(wallet_ids))), start_time)

    @property
    def discrepancies(self) -> tuple[Discrepancy, ...]:
        """The comparisons beyond tolerance."""
        return tuple(d for d in self.comparisons if not d.within_tolerance)

    @property
    def checked_count(self) -> int:
        return len(self.comparisons)

    @property
    def finished(self) -> bool:
        return self.status is not ReconciliationStatus.RUNNING

    def _ensure_running(self) -> None:
        if self.finished:
            raise ValueError(f"reconciliation run {self.run_id} is already {self.status}")

    def finish(
        self,
        comparisons: Iterable[Discrepancy],
        *,
        end_time: datetime,
        venue_calls: int = 0,
        venue_stale: bool = False,
    ) -> ReconciliationRun:
        self._ensure_running()
        done = tuple(comparisons)
        status = (
            ReconciliationStatus.MATCHED
            if all(d.within_tolerance for d in done)
            else ReconciliationStatus.DISCREPANCIES
        )
        return dataclasses.replace(
            self,
            status=status,
            end_time=require_aware(end_time, "end_time"),
            comparisons=done,
            venue_calls=venue_calls,
            venue_stale=venue_stale or any(d.venue_stale for d in done),
        )

    def fail(self, error: str, *, end_time: datetime, venue_calls: int = 0) -> ReconciliationRun:
        self._ensure_running()
        return dataclasses.replace(
            self,
            status=ReconciliationStatus.FAILED,
            end_time=require_aware(end_time, "end_time"),
            venue_calls=venue_calls,
            error=error,
        )


def reconcile(
    run: ReconciliationRun,
    *,
    ledger: Iterable[WalletBalance],
    venue: Iterable[VenueBalance],
    tolerances: Mapping[str, Decimal],
    end_time: datetime,
    default_tolerance: Decimal = Decimal(0),
    venue_calls: int = 0,
) -> ReconciliationRun:
    """Compare the run's wallets and return the finished run."""
    venue = list(venue)
    wanted = set(run.wallet_ids)
    stale = any(v.stale for v in venue if v.wallet_id in wanted)
    comparisons = compare_balances(
        ledger,
        venue,
        tolerances=tolerances,
        default_tolerance=default_tolerance,
        wallet_ids=set(run.wallet_ids),
    )
    return run.finish(comparisons, end_time=end_time, venue_calls=venue_calls, venue_stale=stale)
