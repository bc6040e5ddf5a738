"""The write use cases: submit, cancel, venue reports (ack, fill, done), risk limits and
trading state. Each change is applied with its events in one unit of work; an order intent
is committed (with ``order_submitted``) before anything is sent to the venue."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from tradeplane.execution.adapters.sql_store import SqlStore, SqlTx
from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import (
    Order,
    OrderRequest,
    match_existing,
    validate_order_request,
)
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
from tradeplane.execution.domain.values import OrderStatus, Venue
from tradeplane.execution.service_layer import metrics
from tradeplane.execution.service_layer.ports import (
    ExecutionVenue,
    MarketData,
    VenueFill,
    VenueRejected,
)
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
        self._defaults = defaults
        self._rates = rates
        self._now = clock

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
        product = self._market.product(request.product_id) if request.product_id else None
        spec = validate_order_request(request, product, now, self._venue.venue)
        if spec.venue is not self._venue.venue:
            raise InvalidArgument(
                "venue",
                f"{spec.venue.value} is not configured (this service trades on "
                f"{self._venue.venue.value})",
            )

        refusal: RiskBlock | None = None
        order: Order | None = None
        async with self._store.transaction() as tx:
            account = await self._lock_account(tx, spec.account_id)
            # Idempotency, checked under the account lock so a concurrent retry cannot slip in.
            existing = match_existing(
                await tx.order_by_client_id(spec.account_id, spec.client_order_id), spec
            )
            if existing is not None:
                return existing
            limits = await tx.risk_limits(spec.account_id)
            states = await tx.trading_states(spec.account_id)
            positions = await tx.positions(spec.account_id)
            open_buy, open_sell = await tx.open_sizes(spec.account_id, spec.product_id)
            portfolio = account.portfolio(positions)
            for p in positions:
                price = self._market.last_price(p.product_id)
                if price is not None:
                    portfolio.mark(p.product_id, price, now)
            snapshot = portfolio.revalue(now, self._rates(account.valuation_currency))
            quote = product.quote_currency if product is not None else ""
            quote_rate = (
                Decimal(1)
                if quote == account.valuation_currency
                else self._rates(account.valuation_currency).get(quote, Decimal(1))
            )
            ctx = RiskContext.from_portfolio(
                portfolio,
                snapshot,
                spec.product_id,
                global_state=_state(states, GLOBAL),
                account_state=_state(states, spec.account_id),
                last_trade_price=self._market.last_price(spec.product_id),
                open_buy_size=open_buy,
                open_sell_size=open_sell,
                quote_rate=quote_rate,
            )
            verdict = check_order(spec, limits, ctx)
            decision_id = ""
            if decision is not None:
                decision_id = decision.decision_id
            if isinstance(verdict, RiskBlock):
                refusal = verdict
                block = Block.record(new_id(), spec, verdict, now, decision_id=decision_id)
                await tx.insert_block(block)
                tx.add_event(ev.TradeBlocked(block), now)
            else:
                order = Order.new(new_id(), spec, now, decision_id=decision_id)
                await tx.insert_order(order)
                tx.add_event(ev.OrderSubmitted(order), now)
                if decision is not None:
                    decision = decision.with_order(order.order_id)
                    await tx.insert_decision(decision)
                    tx.add_event(ev.DecisionRecorded(decision), now)
        if refusal is not None:
            metrics.TRADE_BLOCKED.labels(refusal.rule.value).inc()
            raise OrderBlocked(refusal)
        assert order is not None
        metrics.ORDERS_SUBMITTED.labels(spec.venue.value, spec.type.value).inc()
        began = time.perf_counter()
        sent = await self.send_to_venue(order)
        metrics.SUBMIT_TO_ACK.labels(spec.venue.value).observe(time.perf_counter() - began)
        return sent

    async def send_to_venue(self, order: Order) -> Order:
        """Send a committed intent to the venue and record the answer. A venue that cannot be
        reached leaves the order NEW: it is sent again on the next start (idempotent)."""
        try:
            venue_order_id = await self._venue.submit(order)
        except VenueRejected as exc:
            return await self._finish(order.order_id, OrderStatus.REJECTED, exc.reason) or order
        except Exception:
            log.exception(
                "venue submit failed; order stays NEW", extra={"order_id": order.order_id}
            )
            return order
        return await self._acknowledge(order.order_id, venue_order_id) or order

    async def _acknowledge(self, order_id: str, venue_order_id: str) -> Order | None:
        now = self._now()
        async with self._store.transaction() as tx:
            order = await tx.order(order_id)
            if order is None:
                return None
            if order.status.is_final:
                if order.venue_order_id:
                    return order
                acked = replace(order, venue_order_id=venue_order_id)
            else:
                acked = order.acknowledge(venue_order_id, now)
            if acked != order:
                await tx.update_order(acked)
                tx.add_event(ev.OrderUpdated(acked), now)
        if acked.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            # Cancelled (e.g. by the kill switch) while it was on its way to the venue: make
            # sure it does not keep working there.
            await self._venue.cancel(acked)
        return acked

    # -- venue reports -------------------------------------------------------------------------

    async def on_fill(self, report: VenueFill) -> None:
        """Apply a fill exactly once: the unique (venue, trade id) row decides."""
        now = self._now()
        async with self._store.transaction() as tx:
            order = await tx.order(report.order_id)
            if order is None:
                log.error("fill for an unknown order", extra={"order_id": report.order_id})
                return
            spec = order.spec
            fill = Fill(
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
            # The unique (venue, venue_trade_id) row decides first: a duplicate changes nothing.
            if not await tx.insert_fill(fill):
                metrics.FILLS_DUPLICATE.labels(spec.venue.value).inc()
                return
            applied = order.apply_fill(fill)
            if applied.duplicate:
                return
            await tx.update_order(applied.order)
            account = await self._lock_account(tx, spec.account_id)
            positions = await tx.positions(spec.account_id, lock=True)
            portfolio = account.portfolio(positions)
            effect = portfolio.apply_fill(fill)
            position = effect.position
            price = self._market.last_price(spec.product_id)
            if price is not None:
                position = portfolio.mark(spec.product_id, price, now) or position
            await tx.save_position(position)
            for p in list(portfolio.positions.values()):
                mark = self._market.last_price(p.product_id)
                if mark is not None and p.product_id != spec.product_id:
                    portfolio.mark(p.product_id, mark, now)
            open_orders = await tx.working_order_count(spec.account_id)
            snapshot = portfolio.revalue(
                now, self._rates(account.valuation_currency), open_order_count=open_orders
            )
            await tx.save_account(
                replace(
                    account,
                    cash=portfolio.cash,
                    peak_equity=portfolio.peak_equity,
                    daily_pnl=portfolio.daily_pnl,
                    loss_streak=portfolio.loss_streak,
                )
            )
            tx.add_event(ev.OrderUpdated(applied.order), now)
            tx.add_event(ev.FillRecorded(fill), now)
            tx.add_event(ev.PositionUpdated(position), now)
            tx.add_event(ev.PortfolioUpdated(snapshot), now)
        metrics.FILLS.labels(
            spec.venue.value, report.liquidity.value if report.liquidity else "UNKNOWN"
        ).inc()
        if applied.order.status.is_final:
            metrics.ORDERS_FINISHED.labels(spec.venue.value, applied.order.status.value).inc()

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        await self._finish(order_id, status, reason)

    async def _finish(self, order_id: str, status: OrderStatus, reason: str) -> Order | None:
        now = self._now()
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
        metrics.ORDERS_FINISHED.labels(done.spec.venue.value, done.status.value).inc()
        return done

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


def _state(states: dict[str, TradingStateChange], scope: str) -> TradingState:
    change = states.get(scope)
    return TradingState.ACTIVE if change is None else change.state
