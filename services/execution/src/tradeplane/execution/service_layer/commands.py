"""The write use cases: submit, cancel, venue reports (ack, fill, done), risk limits and
trading state. Each change is applied with its events in one unit of work; an order intent
is committed (with ``order_submitted``) before anything is sent to the venue."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from tradeplane.execution.adapters.pg_writer import BatchInputs, KeptInputsRejected, PgTx
from tradeplane.execution.adapters.sql_store import SqlStore, SqlTx, WriteLane
from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import (
    Order,
    OrderRequest,
    OrderSpec,
    bracket_exit_legs,
    match_existing,
    validate_order_request,
)
from tradeplane.execution.domain.portfolio import Portfolio, PortfolioSnapshot
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.risk import (
    Block,
    OrderBlocked,
    RiskBlock,
    RiskContext,
    RiskLimits,
    check_order,
)
from tradeplane.execution.domain.trading_state import (
    GLOBAL,
    TradingState,
    TradingStateChange,
    change_trading_state,
)
from tradeplane.execution.domain.values import BracketLeg, OrderStatus, Side, Venue
from tradeplane.execution.service_layer import metrics
from tradeplane.execution.service_layer.group_commit import GroupCommit
from tradeplane.execution.service_layer.ports import (
    ExecutionVenue,
    MarketData,
    VenueFill,
    VenueRejected,
)
from tradeplane.runtime import tracing
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class AccountDefaults:
    """What a new (paper) account starts with."""

    default_account_id: str
    valuation_currency: str = "USD"
    starting_cash: Decimal = Decimal("100000")
    venue: Venue = Venue.PAPER


@dataclass(frozen=True, slots=True)
class _Intent:
    spec: OrderSpec
    product: ProductRules | None
    decision: Decision | None
    # The caller's context: its venue send runs in it (its trace), whoever flushes the batch.
    origin: contextvars.Context


@dataclass(frozen=True, slots=True)
class _NewOrder:
    order: Order


@dataclass(frozen=True, slots=True)
class _Ack:
    order_id: str
    venue_order_id: str
    origin: contextvars.Context
    # The order as sent (as its intent committed it): the ack applies to it without a read
    # when its row has not changed since (Postgres, ExecutionCommands._ack_unchanged).
    expected: Order | None = None


_Write = _Intent | _Ack
_Committed = _NewOrder | Order | RiskBlock | Exception | None
# What a write gets back from its batch: the venue-send task of a new order, the existing
# order (idempotent retry) or the acknowledged one, the risk block, None (ack of an unknown
# order).
_Outcome = asyncio.Task[Order] | Order | RiskBlock | None

# Largest batch of one group commit (bounds a transaction's size and lock time).
MAX_BATCH = 200
# Most accounts whose risk inputs are kept for their next batch (least recently used go).
MAX_KEPT_ACCOUNTS = 10_000
# Most venue fills applied in one transaction (on_fills), for the same reason.
MAX_FILL_BATCH = 200


@dataclass(frozen=True, slots=True)
class _AppliedFill:
    """A fill a committed transaction applied: the order before and after it, and the
    bracket legs it opened (sent, with the metrics and the OCO cancel, after the commit)."""

    before: Order
    after: Order
    legs: tuple[Order, ...]


class ExecutionCommands:
    def __init__(
        self,
        store: SqlStore,
        venue: ExecutionVenue,
        market: MarketData,
        defaults: AccountDefaults,
        *,
        rates: Callable[[str], dict[str, Decimal]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._venue = venue
        self._market = market
        # Why trading is closed now (e.g. an unresolved venue mismatch), or None (bootstrap).
        self.trading_gate: Callable[[], str | None] | None = None
        self._defaults = defaults
        self._rates = rates
        self._now = clock
        # Concurrent submits share transactions (group commit), and so do venue acks: in the
        # same group commit, so the acks of one batch's orders ride in the next batch's
        # round trip (one transaction, one commit for both; _commit_intents_and_acks).
        self._writes: GroupCommit[_Write, _Outcome] = GroupCommit(
            self._commit_writes, max_batch=MAX_BATCH
        )
        self._sending: set[asyncio.Task[Order]] = set()
        # Postgres: the risk inputs each account's last batch of intents committed; its next
        # batch decides on them and has them checked in its writes' round trip (one round
        # trip instead of two), and reads them again if they changed (migration 0008).
        self._kept: collections.OrderedDict[str, BatchInputs] = collections.OrderedDict()

    @property
    def default_account_id(self) -> str:
        return self._defaults.default_account_id

    def _new_account(self, account_id: str) -> Account:
        d = self._defaults
        return Account(
            account_id=account_id,
            venue=d.venue,
            display_name=account_id,
            valuation_currency=d.valuation_currency,
            create_time=self._now(),
            cash={d.valuation_currency: d.starting_cash},
        )

    async def _lock_account(self, tx: SqlTx, account_id: str) -> Account:
        account = await tx.lock_account(account_id)
        if account is None:
            await tx.ensure_account(self._new_account(account_id))
            account = await tx.lock_account(account_id)
            assert account is not None
        return account

    async def ensure_default_account(self) -> None:
        async with self._store.transaction() as tx:
            await self._lock_account(tx, self._defaults.default_account_id)

    # -- SubmitOrder ---------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest, decision: Decision | None) -> Order:
        now = self._now()
        request = replace(request, account_id=request.account_id or self.default_account_id)
        if not self._market.ready:
            raise Unavailable("market data is not connected yet; retry shortly")
        closed = self.trading_gate() if self.trading_gate is not None else None
        product = self._market.product(request.product_id) if request.product_id else None
        if closed:
            # A retry of an order already placed still gets its order (ALREADY_EXISTS with
            # another payload): a client resending across a restart is answered, not stalled
            # until reconciliation reopens trading. Only new orders wait.
            existing = await self._store.order_by_client_id(
                request.account_id, request.client_order_id
            )
            if existing is not None:
                spec = validate_order_request(request, product, now, self._venue.venue)
                found = match_existing(existing, spec)
                if found is not None:
                    return found
            raise Unavailable(f"trading is not serving: {closed}")
        spec = validate_order_request(request, product, now, self._venue.venue)
        if spec.venue is not self._venue.venue:
            raise InvalidArgument(
                "venue",
                f"{spec.venue.value} is not configured (this service trades on "
                f"{self._venue.venue.value})",
            )
        outcome = await self._writes.submit(
            _Intent(spec, product, decision, contextvars.copy_context())
        )
        if isinstance(outcome, RiskBlock):
            metrics.TRADE_BLOCKED.labels(outcome.rule.value).inc()
            raise OrderBlocked(outcome)
        if isinstance(outcome, Order):  # an idempotent retry: the existing order
            return outcome
        # The venue send runs in its own task: a caller that goes away (deadline, disconnect)
        # does not leave a committed intent unsent.
        assert outcome is not None  # None answers acks only
        metrics.ORDERS_SUBMITTED.labels(spec.venue.value, spec.type.value, spec.side.value).inc()
        return await asyncio.shield(outcome)

    async def _commit_writes(self, items: Sequence[_Write]) -> list[_Outcome | Exception]:
        """Commit a batch of intents and venue acks in one transaction. An intent is answered
        with its order's venue-send task (new), the existing order (idempotent retry), a
        RiskBlock or its own error; an ack with the acknowledged order (None: unknown)."""
        # One span per batch (no span per statement), in the trace of the batch's first caller.
        parent = items[0].origin.run(tracing.current_context)
        intents = sum(isinstance(i, _Intent) for i in items)
        with tracing.span(
            "execution.write_batch", parent=parent, intents=intents, acks=len(items) - intents
        ):
            return await self._commit_writes_traced(items)

    async def _commit_writes_traced(self, items: Sequence[_Write]) -> list[_Outcome | Exception]:
        try:
            committed = await self._commit_write_batch(items)
        except Exception:
            if len(items) == 1:
                raise
            # One bad item (e.g. a client id another replica just used) must not fail the
            # others: commit them one by one.
            committed = []
            for item in items:
                try:
                    committed += await self._commit_write_batch([item])
                except Exception as exc:
                    committed.append(exc)
        out: list[_Outcome | Exception] = []
        for item, result in zip(items, committed, strict=True):
            if isinstance(result, _NewOrder):
                task = asyncio.create_task(self._send_timed(result.order), context=item.origin)
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
                out.append(task)
            else:
                out.append(result)
        return out

    async def _commit_write_batch(self, items: Sequence[_Write]) -> list[_Committed]:
        now = self._now()
        if items and all(isinstance(i, _Ack) for i in items):
            return await self._ack_unchanged(cast(Sequence[_Ack], items), now)
        return await self._commit_intents_and_acks(items, now)

    async def _commit_intents_and_acks(
        self, items: Sequence[_Write], now: datetime
    ) -> list[_Committed]:
        """Intents, with any venue acks queued with them. When the intents' accounts have
        kept inputs, the batch decides on those in one round trip, the acks of orders still
        as their intents committed them riding along (one transaction, one commit); a change
        since sends the intents back to fresh reads (``_commit_locked``). The other acks, and
        all of them then, take their own path after."""
        acks = [(n, i) for n, i in enumerate(items) if isinstance(i, _Ack)]
        intents = [(n, i) for n, i in enumerate(items) if isinstance(i, _Intent)]
        results: list[_Committed] = [None] * len(items)
        specs = [i.spec for _, i in intents]
        account_ids = sorted({s.account_id for s in specs})
        kept = self._kept_inputs(account_ids, sorted({(s.account_id, s.product_id) for s in specs}))
        later = [n for n, _ in acks]  # the acks for _ack_unchanged
        done: Sequence[_Committed] | None = None
        if kept is not None:
            ready, rest = _ackable([a for _, a in acks], now)
            try:
                done, acked = await self._commit_intents(
                    [i for _, i in intents],
                    now,
                    kept,
                    [(e, a, acks[k][1].origin) for k, e, a in ready],
                )
            except KeptInputsRejected:
                self._forget(account_ids)
            else:
                later = [acks[k][0] for k in rest]
                for k, _, order in ready:
                    if order.order_id in acked:
                        results[acks[k][0]] = order
                        metrics.ORDER_UPDATES.labels(
                            order.spec.venue.value, order.status.value
                        ).inc()
                    else:
                        later.append(acks[k][0])
        if done is None:
            done = await self._commit_locked([i for _, i in intents], now)
        for (n, _), outcome in zip(intents, done, strict=True):
            results[n] = outcome
        if later:
            later.sort()
            answered = await self._ack_unchanged([cast(_Ack, items[n]) for n in later], now)
            for n, result in zip(later, answered, strict=True):
                results[n] = result
        return results

    async def _ack_unchanged(self, items: Sequence[_Ack], now: datetime) -> list[_Committed]:
        """Venue acks of orders still as their intent committed them (the common case): NEW
        -> OPEN in one statement, no read first (Postgres). The rest - an order a fill or a
        cancel changed meanwhile, an ack without its order, SQLite - take the locking path."""
        results: list[_Committed] = [None] * len(items)
        async with self._store.ack_statement() as tx:
            ready, slow = _ackable(items, now) if tx is not None else ([], list(range(len(items))))
            if tx is not None and ready:
                for n, _, acked in ready:
                    tx.add_event(ev.OrderUpdated(acked), now, items[n].origin)
                done = await tx.ack_unchanged([(e, a) for _, e, a in ready])
                for n, _, acked in ready:
                    if acked.order_id in done:
                        results[n] = acked
                        metrics.ORDER_UPDATES.labels(
                            acked.spec.venue.value, acked.status.value
                        ).inc()
                    else:
                        slow.append(n)
        if slow:
            slow.sort()
            locked = await self._commit_locked([items[n] for n in slow], now)
            for n, result in zip(slow, locked, strict=True):
                results[n] = result
        return results

    async def _commit_locked(self, items: Sequence[_Write], now: datetime) -> list[_Committed]:
        """One transaction: the acked orders locked first, then the intents' accounts - the
        order-then-account lock order of on_fill, so no deadlock - all read at once. The
        inputs of a batch of intents are kept for the accounts' next batch."""
        acks = [(n, i) for n, i in enumerate(items) if isinstance(i, _Ack)]
        intents = [(n, i) for n, i in enumerate(items) if isinstance(i, _Intent)]
        specs = [i.spec for _, i in intents]
        account_ids = sorted({s.account_id for s in specs})
        keys = [(s.account_id, s.client_order_id) for s in specs]
        pairs = sorted({(s.account_id, s.product_id) for s in specs})
        results: list[_Committed] = [None] * len(items)
        lane = WriteLane.INTENTS if intents else WriteLane.ACKS
        async with self._store.write_transaction(lane) as tx:
            inputs = await tx.batch_inputs([a.order_id for _, a in acks], account_ids, keys, pairs)
            missing = [a for a in account_ids if a not in inputs.accounts]
            if missing:
                # New accounts: created, then everything read again under all the locks.
                for account_id in missing:
                    await tx.ensure_account(self._new_account(account_id))
                inputs = await tx.batch_inputs(
                    [a.order_id for _, a in acks], account_ids, keys, pairs
                )
            if acks:
                acked = await self._apply_acks(tx, [i for _, i in acks], inputs.orders, now)
                for (n, _), result in zip(acks, acked, strict=True):
                    results[n] = result
            if intents:
                done = await self._apply_intents(tx, [i for _, i in intents], inputs, now)
                for (n, _), outcome in zip(intents, done, strict=True):
                    results[n] = outcome
        if intents and not acks:
            self._keep(inputs)
        return results

    async def _commit_intents(
        self,
        intents: Sequence[_Intent],
        now: datetime,
        kept: BatchInputs,
        acks: Sequence[tuple[Order, Order, contextvars.Context]] = (),
    ) -> tuple[list[_NewOrder | Order | RiskBlock | Exception], set[str]]:
        """A batch of intents decided on its accounts' kept risk inputs: one round trip
        (the acks of ``acks`` - the order as its intent committed it, acknowledged, the
        ack's context - the account locks, the check that the inputs are still those, the
        writes, COMMIT). Returns the intents' outcomes and the ids of the orders acked."""
        async with self._store.write_transaction(WriteLane.INTENTS) as tx:
            assert isinstance(tx, PgTx)
            for _, acked, origin in acks:
                tx.add_event(ev.OrderUpdated(acked), now, origin)
            if acks:
                tx.ack_first([(e, a) for e, a, _ in acks])
            tx.expect_risk_inputs(kept)  # what they were before this batch's orders
            done = await self._apply_intents(tx, intents, kept, now)
        self._keep(kept)
        return done, tx.acked

    def _forget(self, account_ids: Sequence[str]) -> None:
        """Drop kept inputs this process just changed (a fill, a cancel, a limit, a state):
        the next batch reads them instead of failing its check first. Changes elsewhere
        (another replica, an admin's SQL) are caught by the check."""
        for account_id in account_ids:
            self._kept.pop(account_id, None)

    def _kept_inputs(
        self, account_ids: Sequence[str], pairs: Sequence[tuple[str, str]]
    ) -> BatchInputs | None:
        """The accounts' kept risk inputs together (copies: a batch counts its orders in
        them), or None unless every account has them."""
        out = BatchInputs()
        for account_id in account_ids:
            entry = self._kept.get(account_id)
            if entry is None:
                return None
            if out.states.get(GLOBAL, entry.states[GLOBAL]) is not entry.states[GLOBAL]:
                return None  # kept at different times: one of them is out of date
            out.accounts[account_id] = entry.accounts[account_id]
            out.limits[account_id] = entry.limits[account_id]
            out.states.update(entry.states)
            out.positions[account_id] = list(entry.positions[account_id])
            out.open_sizes.update(entry.open_sizes)
            out.risk_rows[account_id] = entry.risk_rows[account_id]
        for pair in pairs:
            out.open_sizes.setdefault(pair, (ZERO, ZERO))  # no working order on it
        for account_id in account_ids:
            self._kept.move_to_end(account_id)
        return out

    def _keep(self, inputs: BatchInputs) -> None:
        """Keep each account's inputs as the batch committed them (its orders counted as
        working) for its next batch (Postgres: those with ``risk_rows``)."""
        for account_id, risk_rows in inputs.risk_rows.items():
            self._kept[account_id] = BatchInputs(
                accounts={account_id: inputs.accounts[account_id]},
                limits={account_id: inputs.limits[account_id]},
                states={GLOBAL: inputs.states[GLOBAL], account_id: inputs.states[account_id]},
                positions={account_id: list(inputs.positions[account_id])},
                open_sizes={k: v for k, v in inputs.open_sizes.items() if k[0] == account_id},
                risk_rows={account_id: risk_rows},
            )
            self._kept.move_to_end(account_id)
        while len(self._kept) > MAX_KEPT_ACCOUNTS:
            self._kept.popitem(last=False)

    async def _apply_intents(
        self, tx: SqlTx | PgTx, items: Sequence[_Intent], inputs: BatchInputs, now: datetime
    ) -> list[_NewOrder | Order | RiskBlock | Exception]:
        """The accounts are locked (so a concurrent retry of the same client order id on
        another replica waits and then sees the order) and the risk inputs read once; each
        item is checked in arrival order - an accepted order counts as working for the next."""
        results: list[_NewOrder | Order | RiskBlock | Exception] = []
        accounts, known, limits = inputs.accounts, inputs.known, inputs.limits
        states, positions, open_sizes = inputs.states, inputs.positions, inputs.open_sizes
        views: dict[str, tuple[Portfolio, PortfolioSnapshot]] = {}
        orders: list[Order] = []
        blocks: list[Block] = []
        decisions: list[Decision] = []
        for item in items:
            spec = item.spec
            key = (spec.account_id, spec.client_order_id)
            try:
                # Idempotency on (account, client order id), also within the batch.
                existing = match_existing(known.get(key), spec)
                if existing is not None:
                    results.append(existing)
                    continue
                account = accounts[spec.account_id]
                if spec.account_id not in views:
                    portfolio = account.portfolio(positions[spec.account_id])
                    for p in positions[spec.account_id]:
                        price = self._market.last_price(p.product_id)
                        if price is not None:
                            portfolio.mark(p.product_id, price, now)
                    rates = self._rates(account.valuation_currency)
                    views[spec.account_id] = (portfolio, portfolio.revalue(now, rates))
                portfolio, snapshot = views[spec.account_id]
                quote = item.product.quote_currency if item.product is not None else ""
                quote_rate = (
                    Decimal(1)
                    if quote == account.valuation_currency
                    else self._rates(account.valuation_currency).get(quote, Decimal(1))
                )
                open_buy, open_sell = open_sizes[(spec.account_id, spec.product_id)]
                ctx = RiskContext.from_portfolio(
                    portfolio,
                    snapshot,
                    spec.product_id,
                    global_state=states[GLOBAL],
                    account_state=states[spec.account_id],
                    last_trade_price=self._market.last_price(spec.product_id),
                    open_buy_size=open_buy,
                    open_sell_size=open_sell,
                    quote_rate=quote_rate,
                )
                verdict = check_order(spec, limits[spec.account_id], ctx)
            except Exception as exc:  # e.g. ALREADY_EXISTS: this item only
                results.append(exc)
                continue
            decision = item.decision
            decision_id = decision.decision_id if decision is not None else ""
            if isinstance(verdict, RiskBlock):
                block = Block.record(new_id(), spec, verdict, now, decision_id=decision_id)
                blocks.append(block)
                tx.add_event(ev.TradeBlocked(block), now, item.origin)
                results.append(verdict)
                continue
            order = Order.new(new_id(), spec, now, decision_id=decision_id)
            orders.append(order)
            known[key] = order
            if spec.base_size is not None:
                size = spec.base_size
                open_sizes[(spec.account_id, spec.product_id)] = (
                    (open_buy + size, open_sell)
                    if spec.side is Side.BUY
                    else (open_buy, open_sell + size)
                )
            tx.add_event(ev.OrderSubmitted(order), now, item.origin)
            if decision is not None:
                decision = decision.with_order(order.order_id)
                decisions.append(decision)
                tx.add_event(ev.DecisionRecorded(decision), now, item.origin)
            results.append(_NewOrder(order))
        await tx.insert_orders(orders)
        await tx.insert_blocks(blocks)
        await tx.insert_decisions(decisions)
        return results

    async def _send_timed(self, order: Order) -> Order:
        began = time.perf_counter()
        sent = await self.send_to_venue(order)
        metrics.SUBMIT_TO_ACK.labels(order.spec.venue.value).observe(time.perf_counter() - began)
        return sent

    async def send_to_venue(self, order: Order) -> Order:
        """Send a committed intent to the venue and record the answer. A venue that cannot be
        reached leaves the order NEW: it is sent again on the next start (idempotent)."""
        try:
            with (
                tracing.span(
                    "venue.submit",
                    kind=tracing.SpanKind.CLIENT,
                    venue=order.spec.venue.value,
                    order_id=order.order_id,
                ),
                metrics.VENUE_REQUEST_SECONDS.labels(order.spec.venue.value, "submit").time(),
            ):
                venue_order_id = await self._venue.submit(order)
        except VenueRejected as exc:
            return await self._finish(order.order_id, OrderStatus.REJECTED, exc.reason) or order
        except Exception:
            log.exception(
                "venue submit failed; order stays NEW", extra={"order_id": order.order_id}
            )
            return order
        acked = await self._writes.submit(
            _Ack(order.order_id, venue_order_id, contextvars.copy_context(), order)
        )
        if not isinstance(acked, Order):
            return order
        if acked.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            # Cancelled (e.g. by the kill switch) while it was on its way to the venue: make
            # sure it does not keep working there.
            with (
                tracing.span(
                    "venue.cancel",
                    kind=tracing.SpanKind.CLIENT,
                    venue=acked.spec.venue.value,
                    order_id=acked.order_id,
                ),
                metrics.VENUE_REQUEST_SECONDS.labels(acked.spec.venue.value, "cancel").time(),
            ):
                await self._venue.cancel(acked)
        return acked

    async def _apply_acks(
        self, tx: SqlTx | PgTx, items: Sequence[_Ack], orders: dict[str, Order], now: datetime
    ) -> list[Order | Exception | None]:
        """Record venue acknowledgements (NEW -> OPEN with the venue order id); ``orders``
        are the acknowledged orders, locked."""
        out: list[Order | Exception | None] = []
        changed: dict[str, Order] = {}
        for item in items:
            order_id, venue_order_id = item.order_id, item.venue_order_id
            order = orders.get(order_id)
            if order is None:
                out.append(None)
                continue
            if order.status.is_final:
                acked = (
                    order if order.venue_order_id else replace(order, venue_order_id=venue_order_id)
                )
            else:
                try:
                    acked = order.acknowledge(venue_order_id, now)
                except Exception as exc:  # e.g. a venue id mismatch: this item only
                    out.append(exc)
                    continue
            if acked != order:
                orders[order_id] = changed[order_id] = acked
                tx.add_event(ev.OrderUpdated(acked), now, item.origin)
                if acked.status is not order.status:
                    metrics.ORDER_UPDATES.labels(acked.spec.venue.value, acked.status.value).inc()
            out.append(acked)
        await tx.update_orders(list(changed.values()))
        return out

    # -- venue reports -------------------------------------------------------------------------

    @tracing.traced("execution.apply_fill")
    async def on_fill(self, report: VenueFill) -> None:
        """Apply a fill exactly once: the unique (venue, trade id) row decides."""
        await self._apply_fills([report])

    async def on_fills(self, reports: Sequence[VenueFill]) -> None:
        """Apply fills as ``on_fill`` one after the other would (same rows, events, metrics),
        up to MAX_FILL_BATCH in one transaction."""
        with tracing.span("execution.apply_fills", fills=len(reports)):
            await self._apply_fills(reports)

    async def _apply_fills(self, reports: Sequence[VenueFill]) -> None:
        """A batch that fails (e.g. one fill would overfill its order) is applied again one
        fill per transaction, so one bad fill does not hold back the others; the first error
        is raised once all the others are in."""
        errors: list[Exception] = []
        for start in range(0, len(reports), MAX_FILL_BATCH):
            chunk = reports[start : start + MAX_FILL_BATCH]
            try:
                applied, duplicates = await self._commit_fills(chunk)
            except Exception as exc:
                if len(chunk) == 1:
                    errors.append(exc)
                    continue
                applied, duplicates = [], []
                for report in chunk:
                    try:
                        one, dup = await self._commit_fills([report])
                    except Exception as exc:
                        errors.append(exc)
                        continue
                    applied += one
                    duplicates += dup
            for venue in duplicates:
                metrics.FILLS_DUPLICATE.labels(venue.value).inc()
            for done in applied:
                try:
                    await self._after_fill(done)
                except Exception as exc:  # the OCO cancel: the fills are committed anyway
                    errors.append(exc)
        if errors:
            raise errors[0]

    async def _commit_fills(
        self, reports: Sequence[VenueFill]
    ) -> tuple[list[_AppliedFill], list[Venue]]:
        """One transaction: the batch's orders locked first (order id order), then their
        accounts (account id order) - the lock order of the group commit - each account's
        portfolio read once and carried through its fills in report order. Returns the fills
        applied and the venue of each duplicate."""
        now = self._now()
        applied: list[_AppliedFill] = []
        duplicates: list[Venue] = []
        async with self._store.transaction() as tx:
            orders = await tx.lock_orders(list({r.order_id for r in reports}))
            fills: list[Fill] = []
            keys: set[tuple[Venue, str]] = set()
            for report in reports:
                order = orders.get(report.order_id)
                if order is None:
                    log.error("fill for an unknown order", extra={"order_id": report.order_id})
                    continue
                fill = _domain_fill(order, report)
                if (fill.venue, fill.venue_trade_id) in keys:  # twice in this batch
                    duplicates.append(fill.venue)
                    continue
                keys.add((fill.venue, fill.venue_trade_id))
                fills.append(fill)
            # The unique (venue, venue_trade_id) row decides first: a duplicate changes nothing.
            inserted = await tx.insert_fills(fills)
            duplicates += [f.venue for f in fills if f.fill_id not in inserted]
            fills = [f for f in fills if f.fill_id in inserted]
            if not fills:
                return applied, duplicates
            account_ids = sorted({f.account_id for f in fills})
            accounts = await tx.lock_accounts(account_ids)
            if len(accounts) < len(account_ids):
                for account_id in account_ids:
                    if account_id not in accounts:
                        await tx.ensure_account(self._new_account(account_id))
                accounts = await tx.lock_accounts(account_ids)
            positions = await tx.positions_of(account_ids, lock=True)
            # Kept current through the batch: a fill that ends its order, a leg it opens.
            working = await tx.working_order_counts(account_ids)
            portfolios = {a: accounts[a].portfolio(positions[a]) for a in account_ids}
            saved: dict[tuple[str, str], Position] = {}
            marked: set[str] = set()  # accounts whose other positions are marked already
            changed: dict[str, Order] = {}
            added: dict[str, int] = {}  # fills applied per order (its fill_count grows by so many)
            for fill in fills:
                before = orders[fill.order_id]
                result = before.apply_fill(fill)
                if result.duplicate:
                    continue
                after = orders[fill.order_id] = changed[fill.order_id] = result.order
                added[fill.order_id] = added.get(fill.order_id, 0) + 1
                working[fill.account_id] += after.status.is_working - before.status.is_working
                account, portfolio = accounts[fill.account_id], portfolios[fill.account_id]
                position = portfolio.apply_fill(fill).position
                price = self._market.last_price(fill.product_id)
                if price is not None:
                    position = portfolio.mark(fill.product_id, price, now) or position
                saved[(fill.account_id, fill.product_id)] = position
                if fill.account_id not in marked:
                    # Once per account: the marks do not move within the batch, and each
                    # position a later fill changes is marked with that fill.
                    marked.add(fill.account_id)
                    for p in list(portfolio.positions.values()):
                        mark = self._market.last_price(p.product_id)
                        if mark is not None and p.product_id != fill.product_id:
                            portfolio.mark(p.product_id, mark, now)
                snapshot = portfolio.revalue(
                    now,
                    self._rates(account.valuation_currency),
                    open_order_count=working[fill.account_id],
                )
                tx.add_event(ev.OrderUpdated(after), now)
                tx.add_event(ev.FillRecorded(fill), now)
                tx.add_event(ev.PositionUpdated(position), now)
                tx.add_event(ev.PortfolioUpdated(snapshot), now)
                legs = await self._open_bracket_legs(tx, before, after, now)
                working[fill.account_id] += sum(leg.status.is_working for leg in legs)
                applied.append(_AppliedFill(before, after, legs))
            # Each row written once, in its state after the batch's last fill that changed it.
            await tx.update_filled_orders([(o, added[o.order_id]) for o in changed.values()])
            await tx.save_positions(list(saved.values()))
            for account_id in account_ids:
                portfolio = portfolios[account_id]
                await tx.save_account(
                    replace(
                        accounts[account_id],
                        cash=portfolio.cash,
                        peak_equity=portfolio.peak_equity,
                        daily_pnl=portfolio.daily_pnl,
                        loss_streak=portfolio.loss_streak,
                    )
                )
        self._forget(account_ids)  # their positions changed: the next batch reads them
        return applied, duplicates

    async def _after_fill(self, done: _AppliedFill) -> None:
        spec = done.after.spec
        metrics.FILLS.labels(spec.venue.value, spec.product_id, spec.side.value).inc()
        if done.after.status is not done.before.status:
            metrics.ORDER_UPDATES.labels(spec.venue.value, done.after.status.value).inc()
        self._send_legs(done.legs)
        if done.after.bracket_leg in (BracketLeg.TAKE_PROFIT, BracketLeg.STOP_LOSS):
            await self._cancel_other_leg(done.after)

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        await self._finish(order_id, status, reason)

    async def _finish(self, order_id: str, status: OrderStatus, reason: str) -> Order | None:
        now = self._now()
        legs: tuple[Order, ...] = ()
        async with self._store.transaction() as tx:
            order = await tx.order(order_id)
            if order is None or order.status.is_final:
                return order
            if status is OrderStatus.FILLED:
                done = order.mark_filled(now)
            elif status is OrderStatus.REJECTED and order.filled_size > 0:
                done = order.cancel(now, reason)
            else:
                done = order.transition(status, now, reason)
            await tx.update_order(done)
            tx.add_event(ev.OrderUpdated(done), now)
            legs = await self._open_bracket_legs(tx, order, done, now)
        self._forget([done.spec.account_id])  # its working orders changed
        metrics.ORDER_UPDATES.labels(done.spec.venue.value, done.status.value).inc()
        self._send_legs(legs)
        return done

    # -- bracket orders (venues without native brackets: the paper venue) --------------------

    async def _open_bracket_legs(
        self, tx: SqlTx, before: Order, after: Order, now: datetime
    ) -> tuple[Order, ...]:
        """When a bracket's entry stops working with something filled, commit its take-profit
        and stop-loss legs (sized to the filled size) in the same transaction: they are
        intents like any order, sent once committed and recovered after a crash."""
        if (
            getattr(self._venue, "native_brackets", False)
            or after.bracket_leg is not BracketLeg.ENTRY
            or before.status.is_final
            or not after.status.is_final
            or after.filled_size <= 0
        ):
            return ()
        legs = bracket_exit_legs(after, after.filled_size, new_id(), new_id(), now)
        await tx.insert_orders(legs)
        for leg in legs:
            tx.add_event(ev.OrderSubmitted(leg), now)
        return legs

    def _send_legs(self, legs: Sequence[Order]) -> None:
        for leg in legs:
            task = asyncio.create_task(self.send_to_venue(leg))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _cancel_other_leg(self, filled: Order) -> None:
        """One-cancels-other: a fill of one exit leg cancels its sibling."""
        name = "take-profit" if filled.bracket_leg is BracketLeg.TAKE_PROFIT else "stop-loss"
        for leg in await self._store.child_orders(filled.parent_order_id):
            if leg.order_id != filled.order_id and leg.status.is_working:
                await self._cancel(leg, f"OCO: the {name} leg filled")

    # -- CancelOrder ---------------------------------------------------------------------------

    async def find_order(self, order_id: str, account_id: str, client_order_id: str) -> Order:
        if order_id:
            order = await self._store.order(order_id)
        elif client_order_id:
            order = await self._store.order_by_client_id(
                account_id or self.default_account_id, client_order_id
            )
        else:
            raise InvalidArgument("order_id", "give order_id or client_order_id")
        if order is None:
            raise NotFound(f"order {order_id or client_order_id!r} not found")
        return order

    async def cancel_order(self, order_id: str, account_id: str, client_order_id: str) -> Order:
        order = await self.find_order(order_id, account_id, client_order_id)
        if order.status.is_final:
            raise FailedPrecondition(
                f"order {order.order_id} is {order.status.value}; only working orders can be "
                "cancelled"
            )
        return await self._cancel(order, "cancelled by request")

    async def _cancel(self, order: Order, reason: str) -> Order:
        with (
            tracing.span(
                "venue.cancel",
                kind=tracing.SpanKind.CLIENT,
                venue=order.spec.venue.value,
                order_id=order.order_id,
            ),
            metrics.VENUE_REQUEST_SECONDS.labels(order.spec.venue.value, "cancel").time(),
        ):
            confirmed = await self._venue.cancel(order)
        if not confirmed:
            return order
        return await self._finish(order.order_id, OrderStatus.CANCELED, reason) or order

    # -- risk limits and trading state ----------------------------------------------------------

    async def set_risk_limits(self, limits: RiskLimits, changed_by: str) -> RiskLimits:
        now = self._now()
        async with self._store.transaction() as tx:
            await self._lock_account(tx, limits.account_id)
            await tx.save_risk_limits(limits, changed_by, now)
            tx.add_event(ev.RiskLimitsChanged(limits, changed_by, now), now)
        self._forget([limits.account_id])
        return limits

    async def set_trading_state(
        self, account_id: str, state: TradingState | None, reason: str, changed_by: str
    ) -> TradingStateChange:
        """Change the state of one account ("" = global). Entering HALTED cancels every open
        order in scope; the change (with the number cancelled) is published after that."""
        now = self._now()
        async with self._store.transaction() as tx:
            if account_id != GLOBAL:
                await self._lock_account(tx, account_id)
            states = await tx.trading_states(account_id, lock=True)
            change = change_trading_state(
                _state(states, account_id),
                state,
                account_id=account_id,
                reason=reason,
                changed_by=changed_by,
                time=now,
            )
            await tx.save_trading_state(change)
            if not change.state.cancels_open_orders:
                tx.add_event(ev.TradingStateChanged(change), now)
        self._forget(list(self._kept) if account_id == GLOBAL else [account_id])
        if not change.state.cancels_open_orders:
            return change
        # Halted: no new order passes the risk check from now on; cancel what is working.
        working = await self._store.working_orders(None if account_id == GLOBAL else account_id)
        canceled = 0
        for order in working:
            after = await self._cancel(
                order, f"trading halted: {reason}" if reason else "trading halted"
            )
            canceled += after.status is OrderStatus.CANCELED
        change = replace(change, canceled_order_count=canceled)
        async with self._store.transaction() as tx:
            await tx.save_trading_state(change)
            tx.add_event(ev.TradingStateChanged(change), now)
        return change

    # -- start-up recovery ------------------------------------------------------------------------

    async def recover(self) -> tuple[int, int]:
        """After a restart: hand acknowledged working orders back to the venue, and send the
        intents that were committed but never acknowledged (the venue's submit is idempotent
        on the order id, so one that did reach it is not placed twice)."""
        working = await self._store.working_orders()
        acked = [o for o in working if o.status is not OrderStatus.NEW and o.venue_order_id]
        await self._venue.resume(acked)
        pending = [o for o in working if o not in acked]
        for order in pending:
            await self.send_to_venue(order)
        return len(acked), len(pending)


def _ackable(
    items: Sequence[_Ack], now: datetime
) -> tuple[list[tuple[int, Order, Order]], list[int]]:
    """The acks that can take the one-statement path - (index, the order as its intent
    committed it, acknowledged) - and the indexes of the others (an order no longer NEW as
    sent, an ack without it, a venue id it refuses): the locking path answers those."""
    ready: list[tuple[int, Order, Order]] = []
    others: list[int] = []
    for n, item in enumerate(items):
        expected = item.expected
        if expected is None or expected.status is not OrderStatus.NEW:
            others.append(n)
            continue
        try:
            ready.append((n, expected, expected.acknowledge(item.venue_order_id, now)))
        except Exception:  # the locking path answers it with its error
            others.append(n)
    return ready, others


def _state(states: dict[str, TradingStateChange], scope: str) -> TradingState:
    change = states.get(scope)
    return TradingState.ACTIVE if change is None else change.state


def _domain_fill(order: Order, report: VenueFill) -> Fill:
    spec = order.spec
    return Fill(
        fill_id=new_id(),
        venue_trade_id=report.venue_trade_id,
        order_id=order.order_id,
        client_order_id=spec.client_order_id,
        account_id=spec.account_id,
        venue=spec.venue,
        product_id=spec.product_id,
        side=spec.side,
        price=report.price,
        size=report.size,
        fee=report.fee,
        fee_currency=report.fee_currency,
        time=report.time,
        liquidity=report.liquidity,
    )
