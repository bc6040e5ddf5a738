"""Reconciliation with the venue, on start and periodically (issue 4).

Compares the venue's view (open orders, recent fills, the state of each working order) with
the local one and repairs what it can, always through the normal use cases (exactly-once
fills, validated transitions, events in the same transaction):
- fills the venue has and we do not: applied (deduplicated by venue trade id);
- a local working order the venue finished (FILLED, CANCELED, EXPIRED, REJECTED): its fills
  first, then the final status;
- a local working order the venue does not know ("not found"): asked again after
  `confirm_delay`; never taken as canceled. Still unknown -> an unresolved mismatch;
- an acknowledged order whose venue state contradicts ours (filled less there than here):
  an unresolved mismatch;
- an intent never acknowledged (NEW, older than `resend_after`): sent again (idempotent on
  its client order id), which also finds an order the venue placed before a crash;
- a venue order placed outside the platform: adopted, marked external, with its fills.
Unresolved mismatches keep trading NOT_SERVING (`trading_ok` False: SubmitOrder answers
UNAVAILABLE, the health service `TRADING_HEALTH_NAME` reports NOT_SERVING), are logged, counted
in `execution_venue_unreconciled_orders` and listed by ListVenues; each run tries them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from prometheus_client import Counter, Gauge

from tradeplane.execution.adapters.sql_store import SqlStore
from tradeplane.execution.adapters.venue_sync import VenueSyncStore
from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.ports import VenueFill, VenueReports

log = logging.getLogger(__name__)

TRADING_HEALTH_NAME = "tradeplane.execution.trading"
_EXTERNAL_NS = uuid.UUID("5d3c2c1e-6f0b-4d59-9d0a-3c1f6e0f7a11")

MISMATCHES = Gauge(
    "execution_venue_unreconciled_orders",
    "Unresolved differences between the venue and the local orders (trading is NOT_SERVING "
    "while above 0).",
    ["venue"],
)
RECONCILIATIONS = Counter(
    "execution_venue_reconciliations",
    "Venue reconciliation runs, by outcome.",
    ["venue", "outcome"],
)
REPAIRS = Counter(
    "execution_venue_repairs",
    "Differences reconciliation repaired, by kind (fill, done, adopted, resent).",
    ["venue", "kind"],
)


def external_order_id(venue_order_id: str) -> str:
    """The local id of an order adopted from the venue (stable: found again next run)."""
    return str(uuid.uuid5(_EXTERNAL_NS, venue_order_id))


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """A fill as the venue lists it, before it is matched to a local order."""

    venue_order_id: str
    venue_trade_id: str
    price: Decimal
    size: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    time: datetime

    def for_order(self, order_id: str) -> VenueFill:
        return VenueFill(
            order_id=order_id,
            venue_trade_id=self.venue_trade_id,
            price=self.price,
            size=self.size,
            fee=self.fee,
            fee_currency=self.fee_currency,
            liquidity=self.liquidity,
            time=self.time,
        )


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """An order as the venue reports it. ``status`` is already in our terms: the venue's
    OPEN with a filled size becomes PARTIALLY_FILLED (Coinbase has no such status)."""

    venue_order_id: str
    client_order_id: str
    product_id: str
    side: Side
    status: OrderStatus
    filled_size: Decimal
    type: OrderType
    time_in_force: TimeInForce
    create_time: datetime
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    expire_time: datetime | None = None
    post_only: bool = False
    bracket: BracketSpec | None = None
    reason: str = ""


def derive_status(venue_done: OrderStatus | None, filled: Decimal) -> OrderStatus:
    """Our status from the venue's (None = still working there) and its filled size."""
    if venue_done is not None:
        return venue_done
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


class ReconcilableVenue(Protocol):
    @property
    def venue(self) -> Venue: ...

    async def open_orders(self) -> list[VenueOrderState]: ...

    async def get_order(self, venue_order_id: str) -> VenueOrderState | None:
        """None when the venue says it does not know the order."""
        ...

    async def order_trades(self, venue_order_id: str) -> list[VenueTrade]: ...

    async def recent_trades(self, since: datetime) -> list[VenueTrade]: ...

    def track(self, order_id: str, venue_order_id: str) -> None:
        """Follow this order's updates (e.g. an adopted one)."""
        ...


@dataclass(frozen=True, slots=True)
class Mismatch:
    order_id: str
    venue_order_id: str
    problem: str


@dataclass
class ReconciliationReport:
    time: datetime
    checked_orders: int = 0
    fills_applied: int = 0
    finished: int = 0
    adopted: int = 0
    resent: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.error


class VenueReconciler:
    def __init__(
        self,
        store: SqlStore,
        sync: VenueSyncStore,
        venue: ReconcilableVenue,
        reports: VenueReports,
        send_to_venue: Callable[[Order], Awaitable[Order]],
        *,
        default_account_id: str,
        fills_lookback: timedelta = timedelta(hours=24),
        confirm_delay: float = 1.0,
        resend_after: timedelta = timedelta(seconds=10),
        on_health: Callable[[bool], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._sync = sync
        self._venue = venue
        self._reports = reports
        self._send = send_to_venue
        self._account = default_account_id
        self._lookback = fills_lookback
        self._confirm_delay = confirm_delay
        self.resend_after = resend_after
        self._on_health = on_health
        self._now = clock
        self._fills_since: datetime | None = None
        self._lock = asyncio.Lock()
        self.last: ReconciliationReport | None = None
        self.trading_ok = False  # until the first run succeeded
        self.running = False

    @property
    def mismatches(self) -> list[Mismatch]:
        return list(self.last.mismatches) if self.last is not None else []

    def _set_health(self, ok: bool) -> None:
        name = self._venue.venue.value
        MISMATCHES.labels(name).set(len(self.mismatches))
        if ok != self.trading_ok:
            log.log(
                logging.INFO if ok else logging.ERROR,
                "venue trading %s",
                "SERVING" if ok else "NOT_SERVING",
                extra={"venue": name, "mismatches": [m.problem for m in self.mismatches]},
            )
        self.trading_ok = ok
        if self._on_health is not None:
            self._on_health(ok)

    async def run_forever(self, interval: float) -> None:
        while True:
            # While trading is stopped (venue unreachable, a mismatch), look again sooner.
            ok = self.last is None or self.last.ok
            await asyncio.sleep(interval if ok else min(interval, 5.0))
            await self.run_once()

    async def run_once(self) -> ReconciliationReport:
        async with self._lock:
            report = ReconciliationReport(time=self._now())
            self.running = True
            try:
                await self._reconcile(report)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The venue is unreachable (or answered nonsense): nothing is concluded.
                report.error = f"{type(exc).__name__}: {exc}"
                log.warning("venue reconciliation failed", extra={"error": report.error})
            finally:
                self.running = False
            self.last = report
            with contextlib.suppress(Exception):  # the next run tries again
                await self._sync.save(
                    self._venue.venue.value,
                    self._fills_since,
                    report.time,
                    report.ok,
                    [f"{m.order_id or m.venue_order_id}: {m.problem}" for m in report.mismatches],
                )
            outcome = "ok" if report.ok else ("error" if report.error else "mismatch")
            RECONCILIATIONS.labels(self._venue.venue.value, outcome).inc()
            for m in report.mismatches:
                log.error(
                    "venue mismatch",
                    extra={
                        "order_id": m.order_id,
                        "venue_order_id": m.venue_order_id,
                        "problem": m.problem,
                    },
                )
            self._set_health(report.ok)
            return report

    # -- the run ----------------------------------------------------------------------------

    async def _reconcile(self, report: ReconciliationReport) -> None:
        started = self._now()
        if self._fills_since is None:
            self._fills_since = await self._sync.fills_since(self._venue.venue.value)
        since = self._fills_since or started - self._lookback
        open_orders = {o.venue_order_id: o for o in await self._venue.open_orders()}
        trades = await self._venue.recent_trades(since - timedelta(minutes=1))
        working = await self._store.working_orders()
        report.checked_orders = len(working)
        known_venue_ids: set[str] = set()
        converging: list[tuple[Order, VenueOrderState]] = []

        for order in working:
            if order.spec.venue is not self._venue.venue:
                continue
            if not order.venue_order_id:
                if started - order.create_time >= self.resend_after:
                    after = await self._send(order)  # idempotent on its client order id
                    report.resent += 1
                    REPAIRS.labels(self._venue.venue.value, "resent").inc()
                    if after.venue_order_id:
                        known_venue_ids.add(after.venue_order_id)
                continue
            known_venue_ids.add(order.venue_order_id)
            state = open_orders.get(order.venue_order_id)
            if state is None:
                state = await self._confirmed_state(order)
                if state is None:
                    report.mismatches.append(
                        Mismatch(
                            order.order_id,
                            order.venue_order_id,
                            "working here, unknown to the venue (asked twice)",
                        )
                    )
                    continue
            converging.append((order, state))
        await self._converge(converging, report)

        # Fills of orders that are no longer working here (late fills) or unknown here.
        by_order: dict[str, list[VenueTrade]] = {}
        late: list[VenueFill] = []
        adoptions: list[tuple[str, VenueOrderState]] = []
        for t in trades:
            by_order.setdefault(t.venue_order_id, []).append(t)
        for venue_order_id, order_trades in by_order.items():
            if venue_order_id in known_venue_ids:
                continue
            local = await self._local_for(venue_order_id, None)
            adopted: VenueOrderState | None = None
            if local is None:
                adopted = open_orders.get(venue_order_id) or await self._venue.get_order(
                    venue_order_id
                )
                if adopted is None:
                    report.mismatches.append(
                        Mismatch("", venue_order_id, "fills for an order the venue cannot show")
                    )
                    continue
                local = await self._adopt(adopted, report)
                adoptions.append((local.order_id, adopted))
            applied = await self._trade_ids(local.order_id)
            late += [
                t.for_order(local.order_id) for t in order_trades if t.venue_trade_id not in applied
            ]
            known_venue_ids.add(venue_order_id)
        await self._apply(late, report)
        # Adopted as working: their fills are in, now their final status (an outside order
        # partly filled then canceled while we were away is done, not working).
        converging = []
        for order_id, state in adoptions:
            adopted_order = await self._store.order(order_id)
            if adopted_order is not None and adopted_order.status.is_working:
                converging.append((adopted_order, state))
        await self._converge(converging, report)

        # Orders placed outside the platform.
        converging = []
        for venue_order_id, state in open_orders.items():
            if venue_order_id in known_venue_ids:
                continue
            local = await self._local_for(venue_order_id, state.client_order_id)
            if local is None:
                local = await self._adopt(state, report)
            if local.status.is_working:
                converging.append((local, state))
        await self._converge(converging, report)
        if not report.mismatches:
            self._fills_since = started  # else the same fills are looked at again

    async def _confirmed_state(self, order: Order) -> VenueOrderState | None:
        """The venue's state of an order missing from its open list; "not found" is asked
        again after a pause before it counts (a fresh order may not be listed yet)."""
        state = await self._venue.get_order(order.venue_order_id)
        if state is None:
            await asyncio.sleep(self._confirm_delay)
            state = await self._venue.get_order(order.venue_order_id)
        return state

    async def _converge(
        self, pairs: Sequence[tuple[Order, VenueOrderState]], report: ReconciliationReport
    ) -> None:
        """Bring each local order to its venue state: the fills missing here, of all the
        orders together (applied in batches, not one transaction each), then each order's
        final status after its fills."""
        missing: list[VenueFill] = []
        refresh: set[str] = set()
        for order, state in pairs:
            if state.filled_size > order.filled_size:
                applied = await self._trade_ids(order.order_id)
                for t in await self._venue.order_trades(state.venue_order_id):
                    if t.venue_trade_id not in applied:
                        missing.append(t.for_order(order.order_id))
                refresh.add(order.order_id)
        await self._apply(missing, report)
        for order, state in pairs:
            if order.order_id in refresh:
                after = await self._store.order(order.order_id)
                await self._settle(order if after is None else after, state, report)
            else:
                await self._settle(order, state, report)

    async def _apply(self, fills: Sequence[VenueFill], report: ReconciliationReport) -> None:
        if not fills:
            return
        await self._reports.on_fills(fills)
        report.fills_applied += len(fills)
        REPAIRS.labels(self._venue.venue.value, "fill").inc(len(fills))

    async def _settle(
        self, order: Order, state: VenueOrderState, report: ReconciliationReport
    ) -> None:
        """With the fills in: a filled size that still differs is a mismatch; else the
        venue's final status is applied, and the order followed."""
        if state.filled_size < order.filled_size:
            report.mismatches.append(
                Mismatch(
                    order.order_id,
                    state.venue_order_id,
                    f"filled {order.filled_size} here, {state.filled_size} at the venue",
                )
            )
            return
        if state.filled_size > order.filled_size:
            report.mismatches.append(
                Mismatch(
                    order.order_id,
                    state.venue_order_id,
                    f"the venue reports {state.filled_size} filled but lists fills for "
                    f"{order.filled_size}",
                )
            )
            return
        if state.status.is_final and order.status.is_working:
            await self._reports.on_order_done(
                order.order_id,
                state.status,
                state.reason or "reported by the venue on reconciliation",
            )
            report.finished += 1
            REPAIRS.labels(self._venue.venue.value, "done").inc()
        self._venue.track(order.order_id, state.venue_order_id)

    async def _trade_ids(self, order_id: str) -> set[str]:
        fills = await self._store.list_fills(
            account_id="",
            product_id="",
            order_id=order_id,
            start_us=None,
            end_us=None,
            limit=100_000,
            after=None,
        )
        return {f.venue_trade_id for f in fills}

    async def _local_for(self, venue_order_id: str, client_order_id: str | None) -> Order | None:
        known = await self._sync.order_id_for(self._venue.venue.value, venue_order_id)
        if known is not None:
            return await self._store.order(known)
        # Our orders go to the venue with client_order_id = our order id (ack not recorded).
        if client_order_id:
            order = await self._store.order(client_order_id)
            if order is not None and order.venue_order_id in ("", venue_order_id):
                return order
        return await self._store.order(external_order_id(venue_order_id))

    async def _adopt(self, state: VenueOrderState, report: ReconciliationReport) -> Order:
        """Record a venue order placed outside the platform, marked external."""
        now = self._now()
        order_id = external_order_id(state.venue_order_id)
        spec = OrderSpec(
            account_id=self._account,
            client_order_id=state.client_order_id or f"external-{state.venue_order_id}",
            product_id=state.product_id,
            side=state.side,
            type=state.type,
            time_in_force=state.time_in_force,
            venue=self._venue.venue,
            expire_time=state.expire_time,
            base_size=state.base_size,
            quote_size=state.quote_size,
            limit_price=state.limit_price,
            stop_price=state.stop_price,
            stop_direction=state.stop_direction,
            post_only=state.post_only,
            bracket=state.bracket,
        )
        async with self._store.transaction() as tx:
            existing = await tx.order(order_id)
            if existing is not None:
                return existing
            clash = await tx.order_by_client_id(spec.account_id, spec.client_order_id)
            if clash is not None:
                spec = replace(spec, client_order_id=f"external-{state.venue_order_id}")
            order = Order.new(order_id, spec, state.create_time, external=True)
            order = order.acknowledge(state.venue_order_id, now)
            await tx.insert_order(order)
            tx.add_event(ev.OrderSubmitted(order), now)
            tx.add_event(ev.OrderUpdated(order), now)
        report.adopted += 1
        REPAIRS.labels(self._venue.venue.value, "adopted").inc()
        log.warning(
            "adopted an order placed outside the platform",
            extra={"order_id": order_id, "venue_order_id": state.venue_order_id},
        )
        self._venue.track(order_id, state.venue_order_id)
        return order


def summarize(mismatches: Sequence[Mismatch]) -> str:
    return "; ".join(f"{m.order_id or m.venue_order_id}: {m.problem}" for m in mismatches)
