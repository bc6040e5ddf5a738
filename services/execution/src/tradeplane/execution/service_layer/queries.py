"""The read use cases: orders, fills, positions, portfolio, blocks, decisions, limits and
states. Filters and paging happen in SQL (keyset pages, newest first)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradeplane.execution.adapters.sql_store import DecisionTotals, Page, SqlStore
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.portfolio import PortfolioSnapshot
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits
from tradeplane.execution.domain.trading_state import (
    GLOBAL,
    TradingState,
    TradingStateChange,
    effective_state,
)
from tradeplane.execution.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.execution.service_layer.ports import MarketData
from tradeplane.runtime.errors import InvalidArgument, NotFound


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start_us: int | None = None
    end_us: int | None = None


@dataclass(frozen=True, slots=True)
class StateView:
    global_state: TradingState
    account_state: TradingState | None
    effective: TradingState
    last_global: TradingStateChange | None
    last_account: TradingStateChange | None


def _page(token: str, filters: Any) -> Page | None:
    payload = decode_token(token, filters)
    if payload is None:
        return None
    try:
        return Page(int(payload["t"]), str(payload["id"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument("page_token", "malformed page token") from None


def _next(
    items: Sequence[Any],
    limit: int,
    time_us: Callable[[Any], int],
    ident: Callable[[Any], str],
    filters: Any,
) -> str:
    if len(items) <= limit:
        return ""
    items = items[:limit]
    last = items[-1]
    return encode_token({"t": time_us(last), "id": ident(last)}, filters)


def _us(t: datetime) -> int:
    from tradeplane.execution.adapters.rows import to_us

    return to_us(t)


class ExecutionQueries:
    def __init__(
        self,
        store: SqlStore,
        market: MarketData,
        default_account_id: str,
        rates: Callable[[str], dict[str, Decimal]],
    ) -> None:
        self._store = store
        self._market = market
        self._default = default_account_id
        self._rates = rates

    async def list_orders(
        self,
        *,
        account_id: str,
        product_id: str,
        statuses: Sequence[str],
        strategy_instance_id: str,
        venue: str,
        window: TimeWindow,
        size: int,
        token: str,
    ) -> tuple[list[Order], str]:
        limit = page_size(size)
        filters = [
            "orders",
            account_id,
            product_id,
            sorted(statuses),
            strategy_instance_id,
            venue,
            window.start_us,
            window.end_us,
        ]
        items = await self._store.list_orders(
            account_id=account_id,
            product_id=product_id,
            statuses=statuses,
            strategy_instance_id=strategy_instance_id,
            venue=venue,
            start_us=window.start_us,
            end_us=window.end_us,
            limit=limit + 1,
            after=_page(token, filters),
        )
        return items[:limit], _next(
            items, limit, lambda o: _us(o.create_time), lambda o: o.order_id, filters
        )

    async def list_fills(
        self,
        *,
        account_id: str,
        product_id: str,
        order_id: str,
        window: TimeWindow,
        size: int,
        token: str,
    ) -> tuple[list[Fill], str]:
        limit = page_size(size)
        filters = ["fills", account_id, product_id, order_id, window.start_us, window.end_us]
        items = await self._store.list_fills(
            account_id=account_id,
            product_id=product_id,
            order_id=order_id,
            start_us=window.start_us,
            end_us=window.end_us,
            limit=limit + 1,
            after=_page(token, filters),
        )
        return items[:limit], _next(
            items, limit, lambda f: _us(f.time), lambda f: f.fill_id, filters
        )

    async def list_positions(
        self, *, account_id: str, product_id: str, include_closed: bool, size: int, token: str
    ) -> tuple[list[Position], str]:
        limit = page_size(size)
        filters = ["positions", account_id, product_id, include_closed]
        payload = decode_token(token, filters)
        after = None
        if payload is not None:
            try:
                after = (str(payload["a"]), str(payload["p"]))
            except KeyError:
                raise InvalidArgument("page_token", "malformed page token") from None
        items = await self._store.list_positions(
            account_id=account_id,
            product_id=product_id,
            include_closed=include_closed,
            limit=limit + 1,
            after=after,
        )
        more = len(items) > limit
        items = [self._marked(p) for p in items[:limit]]
        token_out = ""
        if more:
            token_out = encode_token(
                {"a": items[-1].account_id, "p": items[-1].product_id}, filters
            )
        return items, token_out

    def _marked(self, p: Position) -> Position:
        tick = self._market.last_tick(p.product_id)
        return (
            p if tick is None else p.marked(tick.price, max(tick.time, p.update_time or tick.time))
        )

    async def account(self, account_id: str) -> Account:
        account = await self._store.account(account_id or self._default)
        if account is None:
            raise NotFound(f"account {account_id!r} not found")
        return account

    async def portfolio(
        self, account_id: str, now: datetime
    ) -> tuple[PortfolioSnapshot, TradingState]:
        account = await self.account(account_id)
        positions = [self._marked(p) for p in await self._store.positions(account.account_id)]
        portfolio = account.portfolio(positions)
        open_orders = await self._store.working_order_count(account.account_id)
        snapshot = portfolio.revalue(
            now, self._rates(account.valuation_currency), open_order_count=open_orders
        )
        state = await self.trading_state(account.account_id)
        return snapshot, state.effective

    async def list_blocks(
        self,
        *,
        account_id: str,
        product_id: str,
        rule: str,
        window: TimeWindow,
        size: int,
        token: str,
    ) -> tuple[list[Block], str]:
        limit = page_size(size)
        filters = ["blocks", account_id, product_id, rule, window.start_us, window.end_us]
        items = await self._store.list_blocks(
            account_id=account_id,
            product_id=product_id,
            rule=rule,
            start_us=window.start_us,
            end_us=window.end_us,
            limit=limit + 1,
            after=_page(token, filters),
        )
        return items[:limit], _next(
            items, limit, lambda b: _us(b.time), lambda b: b.block_id, filters
        )

    async def summarize_decisions(
        self, account_id: str, window: TimeWindow
    ) -> list[DecisionTotals]:
        return await self._store.summarize_decisions(
            account_id=account_id, start_us=window.start_us, end_us=window.end_us
        )

    async def list_decisions(
        self,
        *,
        strategy: str,
        account_id: str,
        product_id: str,
        trace_id: str,
        window: TimeWindow,
        size: int,
        token: str,
    ) -> tuple[list[Decision], str]:
        limit = page_size(size)
        filters = [
            "decisions",
            strategy,
            account_id,
            product_id,
            trace_id,
            window.start_us,
            window.end_us,
        ]
        items = await self._store.list_decisions(
            strategy=strategy,
            account_id=account_id,
            product_id=product_id,
            trace_id=trace_id,
            start_us=window.start_us,
            end_us=window.end_us,
            limit=limit + 1,
            after=_page(token, filters),
        )
        return items[:limit], _next(
            items, limit, lambda d: _us(d.create_time), lambda d: d.decision_id, filters
        )

    async def decision(self, decision_id: str) -> tuple[Decision, list[Order]]:
        if not decision_id:
            raise InvalidArgument("decision_id", "required")
        decision = await self._store.decision(decision_id)
        if decision is None:
            raise NotFound(f"decision {decision_id!r} not found")
        orders = (await self._store.orders_of_decisions([decision_id])).get(decision_id, [])
        return Decision(
            **{**_fields(decision), "order_ids": tuple(o.order_id for o in orders)}
        ), orders

    async def risk_limits(self, account_id: str) -> tuple[RiskLimits, str, datetime | None]:
        account = await self.account(account_id)
        return await self._store.risk_limits(account.account_id)

    async def trading_state(self, account_id: str) -> StateView:
        states = await self._store.trading_states(account_id)
        g = states.get(GLOBAL)
        a = states.get(account_id) if account_id else None
        global_state = g.state if g else TradingState.ACTIVE
        account_state = (a.state if a else TradingState.ACTIVE) if account_id else None
        eff = effective_state(global_state, account_state or TradingState.ACTIVE)
        return StateView(global_state, account_state, eff, g, a)

    async def accounts(self, size: int, token: str) -> tuple[list[Account], str]:
        limit = page_size(size)
        filters = ["accounts"]
        payload = decode_token(token, filters)
        after = None if payload is None else str(payload.get("a", ""))
        items = await self._store.accounts(limit + 1, after)
        more = len(items) > limit
        items = items[:limit]
        out = ""
        if more:
            out = encode_token({"a": items[-1].account_id}, filters)
        return items, out

    async def account_states(self, account_ids: Sequence[str]) -> dict[str, TradingState]:
        return await self._store.account_states(account_ids)


def _fields(d: Decision) -> dict[str, Any]:
    return {name: getattr(d, name) for name in Decision.__dataclass_fields__}
