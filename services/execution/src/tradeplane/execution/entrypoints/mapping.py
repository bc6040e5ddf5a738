"""Proto <-> domain mapping for ExecutionService (conversion only, no logic).

Enum members are named like the proto values without their prefix, so every enum maps by
name (``OrderStatus.OPEN`` <-> ``ORDER_STATUS_OPEN``); ``*_UNSPECIFIED`` maps to None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import format_decimal, parse_decimal
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderRequest
from tradeplane.execution.domain.portfolio import PortfolioSnapshot
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
from tradeplane.execution.service_layer.queries import TimeWindow
from tradeplane.runtime import tracing
from tradeplane.runtime.errors import InvalidArgument
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

E = TypeVar("E", bound=StrEnum)


# Enum look-ups run several times per order: each (wrapper, prefix, class) is resolved into
# a dict once, on first use, instead of a name lookup in the descriptor per call.
_IN: dict[tuple[Any, str, type[StrEnum]], dict[int, Any]] = {}


def _in_table(wrapper: Any, prefix: str, cls: type[StrEnum]) -> dict[int, Any]:
    """number -> member for the wrapper's values whose unprefixed name is a member."""
    table = {}
    for number in wrapper.values():
        try:
            table[number] = cls(wrapper.Name(number).removeprefix(prefix))
        except ValueError:
            continue
    return table


def enum_in(wrapper: Any, prefix: str, cls: type[E], value: int, field: str) -> E | None:
    """A proto enum number -> domain member (None for 0); an unknown name is INVALID_ARGUMENT."""
    if value == 0:
        return None
    key = (wrapper, prefix, cls)
    table = _IN.get(key)
    if table is None:
        table = _IN[key] = _in_table(wrapper, prefix, cls)
    member: E | None = table.get(value)
    if member is None:
        raise InvalidArgument(field, f"unknown or unsupported value {value}")
    return member


def _out_table(wrapper: Any, prefix: str, cls: type[StrEnum]) -> dict[StrEnum | None, int]:
    """member -> number (None -> 0), for the members the wrapper has a value for."""
    names = set(wrapper.keys())
    table: dict[StrEnum | None, int] = {None: 0}
    for member in cls:
        if prefix + member.value in names:
            table[member] = wrapper.Value(prefix + member.value)
    return table


_SIDE = _out_table(common_pb2.Side, "SIDE_", Side)
_VENUE = _out_table(common_pb2.Venue, "VENUE_", Venue)
_ORDER_TYPE = _out_table(pb.OrderType, "ORDER_TYPE_", OrderType)
_TIME_IN_FORCE = _out_table(pb.TimeInForce, "TIME_IN_FORCE_", TimeInForce)
_STOP_DIRECTION = _out_table(pb.StopDirection, "STOP_DIRECTION_", StopDirection)
_ORDER_STATUS = _out_table(pb.OrderStatus, "ORDER_STATUS_", OrderStatus)
_BRACKET_LEG = _out_table(pb.BracketLeg, "BRACKET_LEG_", BracketLeg)
_LIQUIDITY = _out_table(pb.Liquidity, "LIQUIDITY_", Liquidity)
_RISK_RULE = _out_table(pb.RiskRule, "RISK_RULE_", RiskRule)
_TRADING_STATE = _out_table(pb.TradingState, "TRADING_STATE_", TradingState)


def enum_out(wrapper: Any, prefix: str, member: StrEnum | None) -> Any:
    return 0 if member is None else wrapper.Value(prefix + member.value)


def _out(table: dict[StrEnum | None, int], wrapper: Any, prefix: str, member: Any) -> Any:
    """`enum_out` through a table; a member the table lacks takes `enum_out`'s path (and
    its error)."""
    number = table.get(member)
    return enum_out(wrapper, prefix, member) if number is None else number


def side_in(value: int) -> Side | None:
    return enum_in(common_pb2.Side, "SIDE_", Side, value, "side")


def side_out(side: Side) -> Any:
    return _out(_SIDE, common_pb2.Side, "SIDE_", side)


def venue_in(value: int, field: str = "venue") -> Venue | None:
    return enum_in(common_pb2.Venue, "VENUE_", Venue, value, field)


def venue_out(venue: Venue) -> Any:
    return _out(_VENUE, common_pb2.Venue, "VENUE_", venue)


def status_in(value: int, field: str = "statuses") -> OrderStatus:
    status = enum_in(pb.OrderStatus, "ORDER_STATUS_", OrderStatus, value, field)
    if status is None:
        raise InvalidArgument(field, "ORDER_STATUS_UNSPECIFIED is not a status")
    return status


def state_in(value: int, field: str = "state") -> TradingState | None:
    return enum_in(pb.TradingState, "TRADING_STATE_", TradingState, value, field)


def state_out(state: TradingState | None) -> Any:
    return _out(_TRADING_STATE, pb.TradingState, "TRADING_STATE_", state)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799  # 0001-01-01 .. 9999-12-31


def ts(t: datetime | None) -> Timestamp | None:
    if t is None:
        return None
    try:
        since = t - _EPOCH  # the UTC instant, as FromDatetime(t.astimezone(UTC)) computes it
    except TypeError:
        since = None  # naive: astimezone takes it as local time
    if since is not None:
        seconds = since.days * 86_400 + since.seconds
        if _MIN_SECONDS <= seconds <= _MAX_SECONDS:
            return Timestamp(seconds=seconds, nanos=since.microseconds * 1000)
    out = Timestamp()  # out of range or naive: protobuf's own path, and its errors
    out.FromDatetime(t.astimezone(UTC))
    return out


def ts_in(message: Any, name: str, field: str) -> datetime | None:
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "timestamp out of range") from None


def window_in(message: Any, name: str = "time_range") -> TimeWindow:
    from tradeplane.execution.adapters.rows import to_us

    if not message.HasField(name):
        return TimeWindow()
    r = getattr(message, name)
    start = ts_in(r, "start", f"{name}.start")
    end = ts_in(r, "end", f"{name}.end")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"{name}.end", "must be after time_range.start")
    return TimeWindow(None if start is None else to_us(start), None if end is None else to_us(end))


def d(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)


def money(currency: str, amount: Decimal) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount=format_decimal(amount))


# --- requests ------------------------------------------------------------------------------------


def order_request(req: pb.SubmitOrderRequest) -> OrderRequest:
    bracket = None
    if req.HasField("bracket"):
        b = req.bracket
        bracket = BracketSpec(
            take_profit_price=parse_decimal("bracket.take_profit_price", b.take_profit_price),
            stop_loss_trigger_price=parse_decimal(
                "bracket.stop_loss_trigger_price", b.stop_loss_trigger_price
            ),
            stop_loss_limit_price=parse_decimal(
                "bracket.stop_loss_limit_price", b.stop_loss_limit_price
            ),
            exit_only=b.exit_only,
        )
    return OrderRequest(
        account_id=req.account_id,
        client_order_id=req.client_order_id,
        product_id=req.product_id,
        side=side_in(req.side),
        type=enum_in(pb.OrderType, "ORDER_TYPE_", OrderType, req.type, "type"),
        time_in_force=enum_in(
            pb.TimeInForce, "TIME_IN_FORCE_", TimeInForce, req.time_in_force, "time_in_force"
        ),
        expire_time=ts_in(req, "expire_time", "expire_time"),
        base_size=parse_decimal("base_size", req.base_size),
        quote_size=parse_decimal("quote_size", req.quote_size),
        limit_price=parse_decimal("limit_price", req.limit_price),
        stop_price=parse_decimal("stop_price", req.stop_price),
        stop_direction=enum_in(
            pb.StopDirection, "STOP_DIRECTION_", StopDirection, req.stop_direction, "stop_direction"
        ),
        post_only=req.post_only,
        bracket=bracket,
        venue=venue_in(req.venue),
        strategy_instance_id=req.strategy_instance_id,
    )


def decision_in(
    req: pb.SubmitOrderRequest, decision_id: str, account_id: str, now: datetime
) -> Decision | None:
    if not req.HasField("decision"):
        return None
    dr = req.decision
    cost_amount = None
    if dr.HasField("cost"):
        cost_amount = parse_decimal("decision.cost.amount", dr.cost.amount)
    return Decision(
        decision_id=decision_id,
        strategy=dr.strategy,
        account_id=account_id,
        product_id=req.product_id,
        create_time=now,
        reason=dr.reason,
        strategy_instance_id=dr.strategy_instance_id or req.strategy_instance_id,
        inputs=json_format.MessageToDict(dr.inputs) if dr.HasField("inputs") else {},
        model=dr.model,
        prompt_tokens=dr.prompt_tokens,
        completion_tokens=dr.completion_tokens,
        cost_amount=cost_amount,
        cost_currency=dr.cost.currency if dr.HasField("cost") else "",
        trace_id=dr.trace_id or tracing.current_trace_id() or "",  # default: this request's
    )


def risk_limits_in(limits: pb.RiskLimits, account_id: str) -> RiskLimits:
    cooldown = timedelta(0)
    if limits.HasField("loss_cooldown"):
        cooldown = limits.loss_cooldown.ToTimedelta()
    return RiskLimits(
        account_id=account_id,
        max_order_notional=parse_decimal("limits.max_order_notional", limits.max_order_notional),
        max_position=parse_decimal("limits.max_position", limits.max_position),
        max_position_by_product={
            k: _required_decimal(f"limits.max_position_by_product[{k}]", v)
            for k, v in limits.max_position_by_product.items()
        },
        max_gross_exposure=parse_decimal("limits.max_gross_exposure", limits.max_gross_exposure),
        daily_loss_limit=parse_decimal("limits.daily_loss_limit", limits.daily_loss_limit),
        price_band=parse_decimal("limits.price_band", limits.price_band),
        allowed_product_ids=frozenset(limits.allowed_product_ids),
        max_drawdown=parse_decimal("limits.max_drawdown", limits.max_drawdown),
        loss_streak_limit=limits.loss_streak_limit,
        loss_cooldown=cooldown,
    )


def _required_decimal(field: str, text: str) -> Decimal:
    value = parse_decimal(field, text)
    if value is None:
        raise InvalidArgument(field, "required")
    return value


# --- responses -----------------------------------------------------------------------------------


def order_out(o: Order) -> pb.Order:
    # One constructor call (sub-messages included): runs 2-4 times per order.
    s = o.spec
    b = s.bracket
    return pb.Order(
        order_id=o.order_id,
        client_order_id=s.client_order_id,
        account_id=s.account_id,
        venue=_out(_VENUE, common_pb2.Venue, "VENUE_", s.venue),
        venue_order_id=o.venue_order_id,
        product_id=s.product_id,
        side=_out(_SIDE, common_pb2.Side, "SIDE_", s.side),
        type=_out(_ORDER_TYPE, pb.OrderType, "ORDER_TYPE_", s.type),
        time_in_force=_out(_TIME_IN_FORCE, pb.TimeInForce, "TIME_IN_FORCE_", s.time_in_force),
        expire_time=ts(s.expire_time),
        base_size=d(s.base_size),
        quote_size=d(s.quote_size),
        limit_price=d(s.limit_price),
        stop_price=d(s.stop_price),
        stop_direction=_out(_STOP_DIRECTION, pb.StopDirection, "STOP_DIRECTION_", s.stop_direction),
        post_only=s.post_only,
        status=_out(_ORDER_STATUS, pb.OrderStatus, "ORDER_STATUS_", o.status),
        filled_size=d(o.filled_size),
        average_fill_price=d(o.average_fill_price),
        status_reason=o.status_reason,
        parent_order_id=o.parent_order_id,
        bracket_leg=_out(_BRACKET_LEG, pb.BracketLeg, "BRACKET_LEG_", o.bracket_leg),
        strategy_instance_id=s.strategy_instance_id,
        decision_id=o.decision_id,
        external=o.external,
        create_time=ts(o.create_time),
        update_time=ts(o.update_time),
        fees=money(o.fee_currency, o.fees) if o.fee_currency else None,
        bracket=None
        if b is None
        else pb.BracketSpec(
            take_profit_price=d(b.take_profit_price),
            stop_loss_trigger_price=d(b.stop_loss_trigger_price),
            stop_loss_limit_price=d(b.stop_loss_limit_price),
            exit_only=b.exit_only,
        ),
    )


def fill_out(f: Fill) -> pb.Fill:
    return pb.Fill(
        fill_id=f.fill_id,
        venue_trade_id=f.venue_trade_id,
        order_id=f.order_id,
        client_order_id=f.client_order_id,
        account_id=f.account_id,
        venue=venue_out(f.venue),
        product_id=f.product_id,
        base_currency=f.base_currency,
        quote_currency=f.quote_currency,
        side=side_out(f.side),
        price=d(f.price),
        size=d(f.size),
        fee=money(f.fee_currency, f.fee),
        liquidity=_out(_LIQUIDITY, pb.Liquidity, "LIQUIDITY_", f.liquidity),
        time=ts(f.time),
    )


def position_out(p: Position) -> pb.Position:
    return pb.Position(
        account_id=p.account_id,
        venue=venue_out(p.venue),
        product_id=p.product_id,
        quantity=d(p.quantity),
        average_entry_price=d(p.average_entry_price),
        mark_price=d(p.mark_price),
        notional=d(p.notional),
        realized_pnl=d(p.realized_pnl),
        unrealized_pnl=d(p.unrealized_pnl),
        fees_paid=d(p.fees_paid),
        open_time=ts(p.open_time),
        update_time=ts(p.update_time),
    )


def portfolio_out(s: PortfolioSnapshot, state: TradingState | None = None) -> pb.Portfolio:
    return pb.Portfolio(
        account_id=s.account_id,
        valuation_currency=s.valuation_currency,
        cash=[money(c, a) for c, a in s.cash],
        equity=d(s.equity),
        gross_exposure=d(s.gross_exposure),
        net_exposure=d(s.net_exposure),
        realized_pnl=d(s.realized_pnl),
        unrealized_pnl=d(s.unrealized_pnl),
        daily_realized_pnl=d(s.daily_realized_pnl),
        fees_paid=d(s.fees_paid),
        peak_equity=d(s.peak_equity),
        drawdown=d(s.drawdown),
        open_position_count=s.open_position_count,
        open_order_count=s.open_order_count,
        trading_state=state_out(state),
        as_of=ts(s.as_of),
    )


def block_out(b: Block) -> pb.Block:
    return pb.Block(
        block_id=b.block_id,
        account_id=b.account_id,
        client_order_id=b.client_order_id,
        product_id=b.product_id,
        side=side_out(b.side),
        type=_out(_ORDER_TYPE, pb.OrderType, "ORDER_TYPE_", b.type),
        base_size=d(b.base_size),
        price=d(b.price),
        rule=_out(_RISK_RULE, pb.RiskRule, "RISK_RULE_", b.rule),
        reason=b.reason,
        limit=b.limit,
        actual=b.actual,
        strategy_instance_id=b.strategy_instance_id,
        decision_id=b.decision_id,
        time=ts(b.time),
    )


def limits_out(
    lim: RiskLimits, updated_by: str = "", update_time: datetime | None = None
) -> pb.RiskLimits:
    out = pb.RiskLimits(
        account_id=lim.account_id,
        max_order_notional=d(lim.max_order_notional),
        max_position=d(lim.max_position),
        max_position_by_product={k: d(v) for k, v in lim.max_position_by_product.items()},
        max_gross_exposure=d(lim.max_gross_exposure),
        daily_loss_limit=d(lim.daily_loss_limit),
        price_band=d(lim.price_band),
        allowed_product_ids=sorted(lim.allowed_product_ids),
        max_drawdown=d(lim.max_drawdown),
        loss_streak_limit=lim.loss_streak_limit,
        update_time=ts(update_time),
        updated_by=updated_by,
    )
    if lim.loss_cooldown:
        cooldown = Duration()
        cooldown.FromTimedelta(lim.loss_cooldown)
        out.loss_cooldown.CopyFrom(cooldown)
    return out


def state_change_out(c: TradingStateChange | None) -> pb.TradingStateChange | None:
    if c is None:
        return None
    return pb.TradingStateChange(
        account_id=c.account_id,
        state=state_out(c.state),
        previous_state=state_out(c.previous_state),
        reason=c.reason,
        changed_by=c.changed_by,
        canceled_order_count=c.canceled_order_count,
        time=ts(c.time),
    )


def decision_out(dcs: Decision) -> pb.DecisionRecord:
    out = pb.DecisionRecord(
        decision_id=dcs.decision_id,
        strategy=dcs.strategy,
        strategy_instance_id=dcs.strategy_instance_id,
        reason=dcs.reason,
        model=dcs.model,
        prompt_tokens=dcs.prompt_tokens,
        completion_tokens=dcs.completion_tokens,
        trace_id=dcs.trace_id,
        account_id=dcs.account_id,
        product_id=dcs.product_id,
        order_ids=list(dcs.order_ids),
        create_time=ts(dcs.create_time),
    )
    if dcs.inputs:
        inputs = struct_pb2.Struct()
        inputs.update(dict(dcs.inputs))
        out.inputs.CopyFrom(inputs)
    if dcs.cost_amount is not None:
        out.cost.CopyFrom(money(dcs.cost_currency, dcs.cost_amount))
    return out


def account_out(a: Account, state: TradingState) -> pb.Account:
    return pb.Account(
        account_id=a.account_id,
        venue=venue_out(a.venue),
        display_name=a.display_name,
        valuation_currency=a.valuation_currency,
        trading_state=state_out(state),
    )


def event_type_in(value: int) -> str:
    if value == 0 or value not in pb.EventType.values():
        raise InvalidArgument("event_types", f"unknown event type {value}")
    name = pb.EventType.Name(pb.EventType.ValueType(value))
    if not name:
        raise InvalidArgument("event_types", f"unknown event type {value}")
    return name.removeprefix("EVENT_TYPE_")


def encode_event(event: ev.ExecutionEvent) -> bytes:
    """The outbox payload: an Event without seq and time (assigned by the outbox), carrying
    the trace context of the change so consumers continue its trace."""
    out = pb.Event(account_id=event.account_id)
    trace_context = out.trace_context
    for key, value in tracing.carrier().items():  # cheaper than the map's generic update()
        trace_context[key] = value
    if isinstance(event, ev.OrderSubmitted):
        out.order_submitted.CopyFrom(order_out(event.order))
    elif isinstance(event, ev.OrderUpdated):
        out.order_updated.CopyFrom(order_out(event.order))
    elif isinstance(event, ev.FillRecorded):
        out.fill.CopyFrom(fill_out(event.fill))
    elif isinstance(event, ev.PositionUpdated):
        out.position_update.CopyFrom(position_out(event.position))
    elif isinstance(event, ev.TradeBlocked):
        out.trade_blocked.CopyFrom(block_out(event.block))
    elif isinstance(event, ev.PortfolioUpdated):
        out.portfolio_update.CopyFrom(portfolio_out(event.portfolio))
    elif isinstance(event, ev.TradingStateChanged):
        change = state_change_out(event.change)
        assert change is not None
        out.trading_state_changed.CopyFrom(change)
    elif isinstance(event, ev.RiskLimitsChanged):
        out.risk_limits_changed.CopyFrom(limits_out(event.limits, event.changed_by, event.time))
    elif isinstance(event, ev.DecisionRecorded):
        out.decision_recorded.CopyFrom(decision_out(event.decision))
    return out.SerializeToString()


def decode_event(seq: int, time: datetime, payload: bytes) -> pb.Event:
    out = pb.Event.FromString(payload)
    out.seq = seq
    stamp = ts(time)
    assert stamp is not None
    out.time.CopyFrom(stamp)
    return out
