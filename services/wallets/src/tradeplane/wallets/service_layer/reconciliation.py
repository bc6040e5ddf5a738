"""Reconciliation use cases: Reconcile, Get/ListReconciliations, StreamReconciliations and the
schedule. Each run is stored when it starts and when it finishes; both updates go into a
durable, sequenced feed (the `seq` of StreamReconciliations), so a client resumes with
`since_seq` even across restarts and replicas.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tradeplane.runtime import tracing
from tradeplane.runtime.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from tradeplane.wallets.domain.reconciliation import (
    Discrepancy,
    ReconciliationRun,
    ReconciliationStatus,
    ReconciliationTrigger,
    VenueBalance,
    reconcile,
)
from tradeplane.wallets.domain.wallets import Wallet, check_wallet_id
from tradeplane.wallets.service_layer import metrics
from tradeplane.wallets.service_layer.ledger import Clock, WalletsLedger, utc_now
from tradeplane.wallets.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.wallets.service_layer.ports import VenueBalances, VenueSnapshot
from tradeplane.wallets.service_layer.shielding import run_to_completion

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored and published (trading.wallets.v1.ReconciliationRun): `discrepancies`
    holds only the comparisons beyond tolerance, `checked_count` all of them."""

    run_id: str
    seq: int
    status: ReconciliationStatus
    trigger: ReconciliationTrigger
    wallet_ids: tuple[str, ...]
    start_time: datetime
    end_time: datetime | None = None
    checked_count: int = 0
    discrepancies: tuple[Discrepancy, ...] = ()
    venue_calls: int = 0
    error: str = ""
    venue_stale: bool = False


@dataclass(frozen=True, slots=True)
class RunFilter:
    wallet_id: str = ""
    statuses: tuple[ReconciliationStatus, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    after: tuple[datetime, str] | None = None  # keyset: (start_time, run_id)
    limit: int = 50


class ReconciliationStore(Protocol):
    async def save(self, run: ReconciliationRun) -> int:
        """Insert or update the run and append an update to the feed; returns its seq."""
        ...

    async def get(self, run_id: str) -> RunRecord | None: ...
    async def list_runs(self, f: RunFilter) -> list[RunRecord]: ...
    async def updates_after(self, seq: int, limit: int) -> list[RunRecord]: ...
    async def last_seq(self) -> int: ...
    async def first_seq(self) -> int | None: ...


@dataclass
class _Signal:
    """Wakes stream readers when a run update was stored by this process (others poll)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)

    def fire(self) -> None:
        self.event.set()
        self.event = asyncio.Event()


class Reconciler:
    def __init__(
        self,
        ledger: WalletsLedger,
        store: ReconciliationStore,
        venues: Sequence[VenueBalances],
        *,
        tolerances: Mapping[str, Decimal],
        default_tolerance: Decimal = Decimal(0),
        clock: Clock = utc_now,
        poll_seconds: float = 1.0,
        max_concurrent: int = 4,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._venues = list(venues)
        self._tolerances = dict(tolerances)
        self._default_tolerance = default_tolerance
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._signal = _Signal()
        # A run holds database connections for its reads and writes: a burst of Reconcile
        # calls queues here instead of exhausting the pool (venue calls are shared anyway).
        self._gate = asyncio.Semaphore(max_concurrent)

    async def reconcile(
        self,
        wallet_ids: Sequence[str],
        *,
        all_wallets: bool,
        force_refresh: bool = False,
        trigger: ReconciliationTrigger = ReconciliationTrigger.MANUAL,
    ) -> RunRecord:
        if not all_wallets:
            if not wallet_ids:
                raise InvalidArgument("wallet_ids", "name at least one wallet or set `all`")
            for i, w in enumerate(wallet_ids):
                check_wallet_id(w, f"wallet_ids[{i}]")
        async with self._gate:
            return await self._reconcile(wallet_ids, all_wallets, force_refresh, trigger)

    async def _reconcile(
        self,
        wallet_ids: Sequence[str],
        all_wallets: bool,
        force_refresh: bool,
        trigger: ReconciliationTrigger,
    ) -> RunRecord:
        wallets = await self._ledger.wallets(None if all_wallets else wallet_ids)
        run = ReconciliationRun.start(
            str(uuid.uuid4()),
            trigger=trigger,
            wallet_ids=[w.wallet_id for w in wallets],
            start_time=self._clock(),
        )
        await self._save(run)
        try:
            snapshot = await self._fetch(wallets, force_refresh)
            ledger = await self._ledger.ledger_balances(run.wallet_ids)
            done = reconcile(
                run,
                ledger=ledger,
                venue=snapshot.balances,
                tolerances=self._tolerances,
                default_tolerance=self._default_tolerance,
                end_time=self._clock(),
                venue_calls=snapshot.calls,
            )
        except DomainError as exc:
            done = run.fail(exc.status_message(), end_time=self._clock())
        seq = await self._save(done)
        metrics.record_run(done, {w.wallet_id: w.venue.value for w in wallets})
        return record_from_run(done, seq)

    async def venue_balances(
        self, wallet_ids: Sequence[str] | None, *, force_refresh: bool = False
    ) -> VenueSnapshot:
        """What the venues report for these wallets (all when None), through their caches."""
        return await self._fetch(await self._ledger.wallets(wallet_ids), force_refresh)

    async def _fetch(self, wallets: Sequence[Wallet], force_refresh: bool) -> VenueSnapshot:
        groups: list[tuple[VenueBalances, list[Wallet]]] = [(v, []) for v in self._venues]
        unhandled = []
        for wallet in wallets:
            for venue, members in groups:
                if venue.handles(wallet):
                    members.append(wallet)
                    break
            else:
                unhandled.append(wallet.wallet_id)
        if unhandled:
            raise NoVenueSource(unhandled)
        balances: list[VenueBalance] = []
        calls = 0
        for venue, members in groups:
            if members:
                with tracing.span(
                    "venue.fetch_balances",
                    kind=tracing.SpanKind.CLIENT,
                    venue=type(venue).__name__,
                    wallets=len(members),
                ):
                    snap = await venue.fetch(members, force_refresh=force_refresh)
                balances.extend(snap.balances)
                calls += snap.calls
        return VenueSnapshot(tuple(balances), calls)

    async def _save(self, run: ReconciliationRun) -> int:
        seq = await run_to_completion(self._store.save(run))
        self._signal.fire()
        return seq

    async def get(self, run_id: str) -> RunRecord:
        if not run_id:
            raise InvalidArgument("run_id", "required")
        record = await self._store.get(run_id)
        if record is None:
            raise NotFound(f"reconciliation run {run_id} not found")
        return record

    async def list_runs(
        self, f: RunFilter, *, page_size_: int, page_token: str
    ) -> tuple[list[RunRecord], str]:
        limit = page_size(page_size_, default=50, maximum=500)
        if f.wallet_id:
            check_wallet_id(f.wallet_id)
        after = None
        if page_token:
            payload = decode_token(page_token)
            try:
                after = (datetime.fromisoformat(payload["t"]), str(payload["r"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument("page_token", "malformed page token") from None
        rows = await self._store.list_runs(
            RunFilter(f.wallet_id, f.statuses, f.start, f.end, after, limit + 1)
        )
        page = rows[:limit]
        token = ""
        if len(rows) > limit:
            token = encode_token({"t": page[-1].start_time.isoformat(), "r": page[-1].run_id})
        return page, token

    async def stream(
        self, since_seq: int | None, stop: asyncio.Event, *, batch: int = 100
    ) -> AsyncIterator[tuple[list[RunRecord], bool]]:
        """Run updates with seq > since_seq (None: only new ones), then live ones, until
        `stop` is set. The first item says whether since_seq was older than what is kept."""
        # Each read runs to completion (see shielding): a stream is typically cancelled while
        # it reads (client gone, server stopping), and interrupting the driver there is what
        # can leave a connection close hanging for ever.
        reset = False
        if since_seq is None:
            cursor = await run_to_completion(self._store.last_seq())
        else:
            first = await run_to_completion(self._store.first_seq())
            reset = first is not None and since_seq < first - 1
            cursor = since_seq
        first_message = True
        while not stop.is_set():
            wake = self._signal.event
            updates = await run_to_completion(self._store.updates_after(cursor, batch))
            if updates:
                cursor = updates[-1].seq
                yield updates, reset and first_message
                first_message = False
                continue
            if first_message and reset:
                yield [], True
                first_message = False
            await _wait_any((wake, stop), self._poll_seconds)

    async def run_schedule(self, interval_seconds: float) -> None:
        """Reconcile every wallet every `interval_seconds` (the task is cancelled at shutdown)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                run = await self.reconcile(
                    [], all_wallets=True, trigger=ReconciliationTrigger.SCHEDULED
                )
                log.info(
                    "scheduled reconciliation",
                    extra={"run_id": run.run_id, "status": run.status.value},
                )
            except Exception:
                log.exception("scheduled reconciliation failed")


async def _wait_any(events: Sequence[asyncio.Event], seconds: float) -> None:
    """Until one of `events` is set or `seconds` pass. The waiter tasks never outlive the
    call, also when the caller is cancelled."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class NoVenueSource(FailedPrecondition):
    def __init__(self, wallet_ids: Sequence[str]) -> None:
        super().__init__(
            "no venue balance source for wallet(s) "
            + ", ".join(wallet_ids)
            + " (configure its venue: COINBASE_API_KEY or a chain's JSON-RPC node)"
        )


def record_from_run(run: ReconciliationRun, seq: int) -> RunRecord:
    return RunRecord(
        run_id=run.run_id,
        seq=seq,
        status=run.status,
        trigger=run.trigger,
        wallet_ids=run.wallet_ids,
        start_time=run.start_time,
        end_time=run.end_time,
        checked_count=run.checked_count,
        discrepancies=run.discrepancies,
        venue_calls=run.venue_calls,
        error=run.error,
        venue_stale=run.venue_stale,
    )
