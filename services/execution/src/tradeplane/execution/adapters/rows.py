"""Row <-> domain conversion for the execution tables (decimal strings, microsecond times)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import format_decimal
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.portfolio import DailyPnl, LossStreak
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits, RiskRule
from tradeplane.execution.domain.trading_state import TradingState, TradingStateChange
from tradeplane.execution.domain.values import (
    BracketLeg,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def opt_us(t: datetime | None) -> int | None:
    return None if t is None else to_us(t)


def opt_time(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def dec_text(d: Decimal | None) -> str | None:
    return None if d is None else format_decimal(d)


def opt_dec(text: str | None) -> Decimal | None:
    return None if text is None or text == "" else Decimal(text)


# --- orders -----------------------------------------------------------------------------------


def order_row(order: Order) -> dict[str, Any]:
    s = order.spec
    b = s.bracket
    return {
        "order_id": order.order_id,
        "account_id": s.account_id,
        "client_order_id": s.client_order_id,
        "fingerprint": s.fingerprint(),
        "venue": s.venue.value,
        "venue_order_id": order.venue_order_id,
        "product_id": s.product_id,
        "side": s.side.value,
        "type": s.type.value,
        "time_in_force": s.time_in_force.value,
        "expire_time_us": opt_us(s.expire_time),
        "base_size": dec_text(s.base_size),
        "quote_size": dec_text(s.quote_size),
        "limit_price": dec_text(s.limit_price),
        "stop_price": dec_text(s.stop_price),
        "stop_direction": s.stop_direction.value if s.stop_direction else None,
        "post_only": s.post_only,
        "bracket": None
        if b is None
        else json.dumps(
            {
                "take_profit_price": dec_text(b.take_profit_price),
                "stop_loss_trigger_price": dec_text(b.stop_loss_trigger_price),
                "stop_loss_limit_price": dec_text(b.stop_loss_limit_price),
                "exit_only": b.exit_only,
            }
        ),
        "status": order.status.value,
        "filled_size": format_decimal(order.filled_size),
        "filled_quote": format_decimal(order.filled_quote),
        "fees": format_decimal(order.fees),
        "fee_currency": order.fee_currency,
        "fill_count": len(order.fill_trade_ids),
        "status_reason": order.status_reason,
        "parent_order_id": order.parent_order_id,
        "bracket_leg": order.bracket_leg.value if order.bracket_leg else None,
        "strategy_instance_id": s.strategy_instance_id,
        "decision_id": order.decision_id,
        "external": order.external,
        "create_time_us": to_us(order.create_time),
        "update_time_us": to_us(order.update_time),
    }


# What an update of an order writes. ``fill_count`` is not among them: only the fill path
# changes it, by the number of fills it applied (SqlTx.update_filled_orders) - an order read
# for an update does not carry the trade ids of its past fills.
ORDER_MUTABLE = (
    "venue_order_id",
    "status",
    "filled_size",
    "filled_quote",
    "fees",
    "fee_currency",
    "status_reason",
    "update_time_us",
)


def order_mutable_row(order: Order) -> dict[str, Any]:
    """The ORDER_MUTABLE columns of ``order_row`` (an update needs no fingerprint)."""
    return {
        "venue_order_id": order.venue_order_id,
        "status": order.status.value,
        "filled_size": format_decimal(order.filled_size),
        "filled_quote": format_decimal(order.filled_quote),
        "fees": format_decimal(order.fees),
        "fee_currency": order.fee_currency,
        "status_reason": order.status_reason,
        "update_time_us": to_us(order.update_time),
    }


def row_order(r: Any, trade_ids: Iterable[str] = ()) -> Order:
    bracket = None
    if r.bracket:
        b = json.loads(r.bracket)
        bracket = BracketSpec(
            take_profit_price=opt_dec(b["take_profit_price"]),
            stop_loss_trigger_price=opt_dec(b["stop_loss_trigger_price"]),
            stop_loss_limit_price=opt_dec(b["stop_loss_limit_price"]),
            exit_only=bool(b["exit_only"]),
        )
    spec = OrderSpec(
        account_id=r.account_id,
        client_order_id=r.client_order_id,
        product_id=r.product_id,
        side=Side(r.side),
        type=OrderType(r.type),
        time_in_force=TimeInForce(r.time_in_force),
        venue=Venue(r.venue),
        expire_time=opt_time(r.expire_time_us),
        base_size=opt_dec(r.base_size),
        quote_size=opt_dec(r.quote_size),
        limit_price=opt_dec(r.limit_price),
        stop_price=opt_dec(r.stop_price),
        stop_direction=StopDirection(r.stop_direction) if r.stop_direction else None,
        post_only=bool(r.post_only),
        bracket=bracket,
        strategy_instance_id=r.strategy_instance_id,
    )
    return Order(
        order_id=r.order_id,
        spec=spec,
        status=OrderStatus(r.status),
        create_time=from_us(r.create_time_us),
        update_time=from_us(r.update_time_us),
        venue_order_id=r.venue_order_id,
        filled_size=Decimal(r.filled_size),
        filled_quote=Decimal(r.filled_quote),
        fees=Decimal(r.fees),
        fee_currency=r.fee_currency,
        status_reason=r.status_reason,
        parent_order_id=r.parent_order_id,
        bracket_leg=BracketLeg(r.bracket_leg) if r.bracket_leg else None,
        decision_id=r.decision_id,
        external=bool(r.external),
        fill_trade_ids=frozenset(trade_ids),
    )


# --- fills, positions, blocks ------------------------------------------------------------------


def fill_row(f: Fill) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "venue": f.venue.value,
        "venue_trade_id": f.venue_trade_id,
        "order_id": f.order_id,
        "client_order_id": f.client_order_id,
        "account_id": f.account_id,
        "product_id": f.product_id,
        "side": f.side.value,
        "price": format_decimal(f.price),
        "size": format_decimal(f.size),
        "fee": format_decimal(f.fee),
        "fee_currency": f.fee_currency,
        "liquidity": f.liquidity.value if f.liquidity else None,
        "time_us": to_us(f.time),
    }


def row_fill(r: Any) -> Fill:
    return Fill(
        fill_id=r.fill_id,
        venue_trade_id=r.venue_trade_id,
        order_id=r.order_id,
        client_order_id=r.client_order_id,
        account_id=r.account_id,
        venue=Venue(r.venue),
        product_id=r.product_id,
        side=Side(r.side),
        price=Decimal(r.price),
        size=Decimal(r.size),
        fee=Decimal(r.fee),
        fee_currency=r.fee_currency,
        time=from_us(r.time_us),
        liquidity=Liquidity(r.liquidity) if r.liquidity else None,
    )


def position_row(p: Position) -> dict[str, Any]:
    return {
        "account_id": p.account_id,
        "product_id": p.product_id,
        "venue": p.venue.value,
        "quantity": format_decimal(p.quantity),
        "average_entry_price": format_decimal(p.average_entry_price),
        "mark_price": dec_text(p.mark_price),
        "realized_pnl": format_decimal(p.realized_pnl),
        "fees_paid": format_decimal(p.fees_paid),
        "open_time_us": opt_us(p.open_time),
        "update_time_us": opt_us(p.update_time),
    }


def row_position(r: Any) -> Position:
    return Position(
        account_id=r.account_id,
        product_id=r.product_id,
        venue=Venue(r.venue),
        quantity=Decimal(r.quantity),
        average_entry_price=Decimal(r.average_entry_price),
        mark_price=opt_dec(r.mark_price),
        realized_pnl=Decimal(r.realized_pnl),
        fees_paid=Decimal(r.fees_paid),
        open_time=opt_time(r.open_time_us),
        update_time=opt_time(r.update_time_us),
    )


def block_row(b: Block) -> dict[str, Any]:
    return {
        "block_id": b.block_id,
        "account_id": b.account_id,
        "client_order_id": b.client_order_id,
        "product_id": b.product_id,
        "side": b.side.value,
        "type": b.type.value,
        "base_size": dec_text(b.base_size),
        "price": dec_text(b.price),
        "rule": b.rule.value,
        "reason": b.reason,
        "limit_value": b.limit,
        "actual": b.actual,
        "strategy_instance_id": b.strategy_instance_id,
        "decision_id": b.decision_id,
        "time_us": to_us(b.time),
    }


def row_block(r: Any) -> Block:
    return Block(
        block_id=r.block_id,
        account_id=r.account_id,
        client_order_id=r.client_order_id,
        product_id=r.product_id,
        side=Side(r.side),
        type=OrderType(r.type),
        base_size=opt_dec(r.base_size),
        price=opt_dec(r.price),
        rule=RiskRule(r.rule),
        reason=r.reason,
        limit=r.limit_value,
        actual=r.actual,
        time=from_us(r.time_us),
        strategy_instance_id=r.strategy_instance_id,
        decision_id=r.decision_id,
    )


# --- risk limits, trading state, decisions, accounts ----------------------------------------


def limits_json(lim: RiskLimits) -> str:
    return json.dumps(
        {
            "max_order_notional": dec_text(lim.max_order_notional),
            "max_position": dec_text(lim.max_position),
            "max_position_by_product": {
                k: format_decimal(v) for k, v in sorted(lim.max_position_by_product.items())
            },
            "max_gross_exposure": dec_text(lim.max_gross_exposure),
            "daily_loss_limit": dec_text(lim.daily_loss_limit),
            "price_band": dec_text(lim.price_band),
            "allowed_product_ids": sorted(lim.allowed_product_ids),
            "max_drawdown": dec_text(lim.max_drawdown),
            "loss_streak_limit": lim.loss_streak_limit,
            "loss_cooldown_us": lim.loss_cooldown // timedelta(microseconds=1),
        },
        sort_keys=True,
    )


def json_limits(account_id: str, text: str) -> RiskLimits:
    d = json.loads(text)
    return RiskLimits(
        account_id=account_id,
        max_order_notional=opt_dec(d["max_order_notional"]),
        max_position=opt_dec(d["max_position"]),
        max_position_by_product={k: Decimal(v) for k, v in d["max_position_by_product"].items()},
        max_gross_exposure=opt_dec(d["max_gross_exposure"]),
        daily_loss_limit=opt_dec(d["daily_loss_limit"]),
        price_band=opt_dec(d["price_band"]),
        allowed_product_ids=frozenset(d["allowed_product_ids"]),
        max_drawdown=opt_dec(d["max_drawdown"]),
        loss_streak_limit=int(d["loss_streak_limit"]),
        loss_cooldown=timedelta(microseconds=int(d["loss_cooldown_us"])),
    )


def state_row(c: TradingStateChange) -> dict[str, Any]:
    return {
        "scope_id": c.account_id,
        "state": c.state.value,
        "previous_state": c.previous_state.value,
        "reason": c.reason,
        "changed_by": c.changed_by,
        "canceled_order_count": c.canceled_order_count,
        "time_us": to_us(c.time),
    }


def row_state(r: Any) -> TradingStateChange:
    return TradingStateChange(
        account_id=r.scope_id,
        state=TradingState(r.state),
        previous_state=TradingState(r.previous_state),
        reason=r.reason,
        changed_by=r.changed_by,
        time=from_us(r.time_us),
        canceled_order_count=int(r.canceled_order_count),
    )


def decision_row(d: Decision) -> dict[str, Any]:
    return {
        "decision_id": d.decision_id,
        "strategy": d.strategy,
        "strategy_instance_id": d.strategy_instance_id,
        "account_id": d.account_id,
        "product_id": d.product_id,
        "trace_id": d.trace_id,
        "inputs": json.dumps(dict(d.inputs), sort_keys=True),
        "reason": d.reason,
        "model": d.model,
        "prompt_tokens": d.prompt_tokens,
        "completion_tokens": d.completion_tokens,
        "cost_amount": dec_text(d.cost_amount),
        "cost_currency": d.cost_currency,
        "create_time_us": to_us(d.create_time),
    }


def row_decision(r: Any, order_ids: Iterable[str] = ()) -> Decision:
    return Decision(
        decision_id=r.decision_id,
        strategy=r.strategy,
        strategy_instance_id=r.strategy_instance_id,
        account_id=r.account_id,
        product_id=r.product_id,
        trace_id=r.trace_id,
        inputs=json.loads(r.inputs),
        reason=r.reason,
        model=r.model,
        prompt_tokens=int(r.prompt_tokens),
        completion_tokens=int(r.completion_tokens),
        cost_amount=opt_dec(r.cost_amount),
        cost_currency=r.cost_currency,
        create_time=from_us(r.create_time_us),
        order_ids=tuple(order_ids),
    )


def row_account(r: Any) -> Account:
    return Account(
        account_id=r.account_id,
        venue=Venue(r.venue),
        display_name=r.display_name,
        valuation_currency=r.valuation_currency,
        create_time=from_us(r.create_time_us),
        cash=json_cash(r.cash),
        peak_equity=opt_dec(r.peak_equity),
        daily_pnl=daily_pnl(r.daily_pnl_day, r.daily_pnl_amount),
        loss_streak=loss_streak(r.loss_streak_count, r.loss_streak_last_us),
    )


def cash_json(cash: dict[str, Decimal]) -> str:
    return json.dumps({k: format_decimal(v) for k, v in sorted(cash.items())})


def json_cash(text: str) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in json.loads(text).items()}


def daily_pnl(day: str | None, amount: str) -> DailyPnl:
    return DailyPnl(None if day is None else date.fromisoformat(day), Decimal(amount))


def loss_streak(count: int, last_us: int | None) -> LossStreak:
    return LossStreak(int(count), opt_time(last_us))
