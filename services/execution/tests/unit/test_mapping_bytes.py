"""The order/event -> protobuf mapping serialises byte for byte as the straightforward
implementation it replaced (kept below as the oracle: per-call enum name lookups,
Timestamp.FromDatetime, field-by-field sub-messages), for a varied set of values."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.decimals import format_decimal
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskRule
from tradeplane.execution.domain.trading_state import TradingState
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
from tradeplane.execution.entrypoints import mapping
from tradeplane.runtime import tracing
from tradeplane.runtime.errors import InvalidArgument
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

D = Decimal
T0 = datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)

# --- the oracle: the previous implementation ----------------------------------------------------


def old_enum_in(wrapper: Any, prefix: str, cls: type[StrEnum], value: int, field: str) -> Any:
    if value == 0:
        return None
    try:
        return cls(wrapper.Name(value).removeprefix(prefix))
    except ValueError:
        raise InvalidArgument(field, f"unknown or unsupported value {value}") from None


def old_enum_out(wrapper: Any, prefix: str, member: StrEnum | None) -> Any:
    return 0 if member is None else wrapper.Value(prefix + member.value)


def old_ts(t: datetime | None) -> Timestamp | None:
    if t is None:
        return None
    out = Timestamp()
    out.FromDatetime(t.astimezone(UTC))
    return out


def old_money(currency: str, amount: Decimal) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount=format_decimal(amount))


def old_order_out(o: Order) -> pb.Order:
    s = o.spec
    d = format_decimal
    out = pb.Order(
        order_id=o.order_id,
        client_order_id=s.client_order_id,
        account_id=s.account_id,
        venue=old_enum_out(common_pb2.Venue, "VENUE_", s.venue),
        venue_order_id=o.venue_order_id,
        product_id=s.product_id,
        side=old_enum_out(common_pb2.Side, "SIDE_", s.side),
        type=old_enum_out(pb.OrderType, "ORDER_TYPE_", s.type),
        time_in_force=old_enum_out(pb.TimeInForce, "TIME_IN_FORCE_", s.time_in_force),
        expire_time=old_ts(s.expire_time),
        base_size=d(s.base_size),
        quote_size=d(s.quote_size),
        limit_price=d(s.limit_price),
        stop_price=d(s.stop_price),
        stop_direction=old_enum_out(pb.StopDirection, "STOP_DIRECTION_", s.stop_direction),
        post_only=s.post_only,
        status=old_enum_out(pb.OrderStatus, "ORDER_STATUS_", o.status),
        filled_size=d(o.filled_size),
        average_fill_price=d(o.average_fill_price),
        status_reason=o.status_reason,
        parent_order_id=o.parent_order_id,
        bracket_leg=old_enum_out(pb.BracketLeg, "BRACKET_LEG_", o.bracket_leg),
        strategy_instance_id=s.strategy_instance_id,
        decision_id=o.decision_id,
        external=o.external,
        create_time=old_ts(o.create_time),
        update_time=old_ts(o.update_time),
    )
    if o.fee_currency:
        out.fees.CopyFrom(old_money(o.fee_currency, o.fees))
    if s.bracket is not None:
        b = s.bracket
        out.bracket.CopyFrom(
            pb.BracketSpec(
                take_profit_price=d(b.take_profit_price),
                stop_loss_trigger_price=d(b.stop_loss_trigger_price),
                stop_loss_limit_price=d(b.stop_loss_limit_price),
                exit_only=b.exit_only,
            )
        )
    return out


def old_fill_out(f: Fill) -> pb.Fill:
    d = format_decimal
    return pb.Fill(
        fill_id=f.fill_id,
        venue_trade_id=f.venue_trade_id,
        order_id=f.order_id,
        client_order_id=f.client_order_id,
        account_id=f.account_id,
        venue=old_enum_out(common_pb2.Venue, "VENUE_", f.venue),
        product_id=f.product_id,
        base_currency=f.base_currency,
        quote_currency=f.quote_currency,
        side=old_enum_out(common_pb2.Side, "SIDE_", f.side),
        price=d(f.price),
        size=d(f.size),
        fee=old_money(f.fee_currency, f.fee),
        liquidity=old_enum_out(pb.Liquidity, "LIQUIDITY_", f.liquidity),
        time=old_ts(f.time),
    )


def old_position_out(p: Position) -> pb.Position:
    d = format_decimal
    return pb.Position(
        account_id=p.account_id,
        venue=old_enum_out(common_pb2.Venue, "VENUE_", p.venue),
        product_id=p.product_id,
        quantity=d(p.quantity),
        average_entry_price=d(p.average_entry_price),
        mark_price=d(p.mark_price),
        notional=d(p.notional),
        realized_pnl=d(p.realized_pnl),
        unrealized_pnl=d(p.unrealized_pnl),
        fees_paid=d(p.fees_paid),
        open_time=old_ts(p.open_time),
        update_time=old_ts(p.update_time),
    )


def old_block_out(b: Block) -> pb.Block:
    d = format_decimal
    return pb.Block(
        block_id=b.block_id,
        account_id=b.account_id,
        client_order_id=b.client_order_id,
        product_id=b.product_id,
        side=old_enum_out(common_pb2.Side, "SIDE_", b.side),
        type=old_enum_out(pb.OrderType, "ORDER_TYPE_", b.type),
        base_size=d(b.base_size),
        price=d(b.price),
        rule=old_enum_out(pb.RiskRule, "RISK_RULE_", b.rule),
        reason=b.reason,
        limit=b.limit,
        actual=b.actual,
        strategy_instance_id=b.strategy_instance_id,
        decision_id=b.decision_id,
        time=old_ts(b.time),
    )


def old_encode_event(event: ev.ExecutionEvent) -> bytes:
    out = pb.Event(account_id=event.account_id, trace_context=tracing.carrier())
    if isinstance(event, ev.OrderSubmitted):
        out.order_submitted.CopyFrom(old_order_out(event.order))
    elif isinstance(event, ev.OrderUpdated):
        out.order_updated.CopyFrom(old_order_out(event.order))
    elif isinstance(event, ev.FillRecorded):
        out.fill.CopyFrom(old_fill_out(event.fill))
    elif isinstance(event, ev.PositionUpdated):
        out.position_update.CopyFrom(old_position_out(event.position))
    elif isinstance(event, ev.TradeBlocked):
        out.trade_blocked.CopyFrom(old_block_out(event.block))
    else:
        raise AssertionError(f"no oracle for {type(event).__name__}")
    return out.SerializeToString()


# --- varied values ------------------------------------------------------------------------------

DECIMALS: list[Decimal | None] = [
    None,
    D("0"),
    D("0.000"),
    D("-0"),
    D("1"),
    D("100.00"),
    D("0.0001"),
    D("1E-8"),
    D("1.5E+3"),
    D("-42.125"),
    D("12345678901234567890.123456789012345678"),  # more digits than the context's 28
    D("0.00000000000000000000000000000123456789"),
]

TIMES: list[datetime | None] = [
    None,
    T0,
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 10, 14, 30, 1, 5, tzinfo=timezone(timedelta(hours=2, minutes=30))),
    datetime(2026, 3, 10, 1, 2, 3, tzinfo=timezone(timedelta(hours=-7))),
    datetime(2026, 3, 10, 1, 2, 3, 7, tzinfo=timezone(timedelta(seconds=-1, microseconds=9))),
    datetime(2026, 3, 10, 12, 0),  # naive: astimezone reads it as local time
]


def _spec(**changes: Any) -> OrderSpec:
    base = OrderSpec(
        account_id="acct-1",
        client_order_id="client-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        venue=Venue.PAPER,
        base_size=D("0.0001"),
        limit_price=D("45000.00"),
    )
    return replace(base, **changes)


def _order(spec: OrderSpec, **changes: Any) -> Order:
    return replace(Order.new("0193a8e7-aaaa-7bbb-8ccc-1234567890ab", spec, T0), **changes)


def orders() -> Iterator[Order]:
    brackets = [
        None,
        BracketSpec(D("50000"), D("40000")),
        BracketSpec(D("50000.5"), D("40000.25"), D("39999.999"), exit_only=True),
        BracketSpec(None, None),
    ]
    for order_type, tif, status in itertools.product(OrderType, TimeInForce, OrderStatus):
        yield _order(_spec(type=order_type, time_in_force=tif), status=status)
    for side, venue, direction, leg in itertools.product(
        Side, Venue, [None, *StopDirection], [None, *BracketLeg]
    ):
        spec = _spec(side=side, venue=venue, stop_direction=direction, stop_price=D("44000"))
        yield _order(spec, bracket_leg=leg, external=leg is None)
    for i, (value, t) in enumerate(itertools.zip_longest(DECIMALS, TIMES)):
        spec = _spec(
            base_size=value,
            quote_size=DECIMALS[-1 - i % len(DECIMALS)],
            limit_price=value,
            stop_price=value,
            expire_time=t,
            bracket=brackets[i % len(brackets)],
            post_only=i % 2 == 0,
            strategy_instance_id="" if i % 3 else f"strategy-{i}",
        )
        yield _order(
            spec,
            create_time=t or T0,
            update_time=TIMES[-1 - i % len(TIMES)] or T0,
            filled_size=value or D(0),
            filled_quote=(value or D(0)) * D("45000.123"),
            fees=value or D(0),
            fee_currency="" if i % 2 else "USD",
            venue_order_id="" if i % 3 else f"venue-{i}",
            status_reason="" if i % 4 else "because ünïcode",
            parent_order_id="" if i % 5 else "parent",
            decision_id="" if i % 2 else "decision",
        )


def fills() -> Iterator[Fill]:
    for i, (liquidity, side) in enumerate(itertools.product([None, *Liquidity], Side)):
        for value, t in zip(DECIMALS[4:], TIMES[1:], strict=False):
            assert t is not None and value is not None
            yield Fill(
                fill_id=f"fill-{i}",
                venue_trade_id=f"trade-{i}",
                order_id="o",
                client_order_id="" if i % 2 else "c",
                account_id="acct-1",
                venue=[*Venue][i % len(Venue)],
                product_id="ETH-USD",
                side=side,
                price=abs(value),
                size=abs(value),
                fee=-value,
                fee_currency="USD" if i % 3 else "",
                time=t,
                liquidity=liquidity,
            )


def blocks() -> Iterator[Block]:
    for i, (rule, order_type) in enumerate(itertools.product(RiskRule, OrderType)):
        yield Block(
            block_id=f"b{i}",
            account_id="acct-1",
            client_order_id="c",
            product_id="BTC-USD",
            side=[*Side][i % 2],
            type=order_type,
            base_size=DECIMALS[i % len(DECIMALS)],
            price=DECIMALS[-1 - i % len(DECIMALS)],
            rule=rule,
            reason="too big",
            limit="10",
            actual="11",
            time=TIMES[1 + i % (len(TIMES) - 1)] or T0,
            strategy_instance_id="" if i % 2 else "s",
            decision_id="" if i % 3 else "d",
        )


def positions() -> Iterator[Position]:
    for i, (value, t) in enumerate(itertools.zip_longest(DECIMALS, TIMES)):
        yield Position(
            account_id="acct-1",
            product_id="BTC-USD",
            venue=[*Venue][i % len(Venue)],
            quantity=value or D(0),
            average_entry_price=abs(value or D(0)),
            mark_price=value,
            realized_pnl=value or D(0),
            fees_paid=abs(value or D(0)),
            open_time=t,
            update_time=TIMES[-1 - i % len(TIMES)],
        )


# --- the comparisons ----------------------------------------------------------------------------


def test_order_out_serialises_as_before() -> None:
    checked = 0
    for order in orders():
        assert mapping.order_out(order).SerializeToString() == (
            old_order_out(order).SerializeToString()
        ), order
        checked += 1
    assert checked > 150  # every type x time in force x status, sides, venues, legs, values


@pytest.mark.parametrize("make", [ev.OrderSubmitted, ev.OrderUpdated])
def test_order_events_encode_as_before_inside_and_outside_a_trace(make: Any) -> None:
    sample = list(orders())[::7]
    for order in sample:
        assert mapping.encode_event(make(order)) == old_encode_event(make(order))
    parent = tracing.context_from(
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    )
    with tracing.span("test.encode", parent=parent):
        assert tracing.carrier()  # the events carry a context here
        for order in sample:
            encoded = mapping.encode_event(make(order))
            assert encoded == old_encode_event(make(order))
            assert dict(pb.Event.FromString(encoded).trace_context) == tracing.carrier()


def test_fills_blocks_and_positions_encode_as_before() -> None:
    events: list[ev.ExecutionEvent] = [
        *(ev.FillRecorded(f) for f in fills()),
        *(ev.TradeBlocked(b) for b in blocks()),
        *(ev.PositionUpdated(p) for p in positions()),
    ]
    for event in events:
        assert mapping.encode_event(event) == old_encode_event(event), event
    assert len(events) > 50


@pytest.mark.parametrize("t", TIMES, ids=str)
def test_ts_equals_from_datetime(t: datetime | None) -> None:
    assert mapping.ts(t) == old_ts(t)


@pytest.mark.parametrize(
    "t",
    [
        datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))),  # before year 1 in UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))),  # after 9999 in UTC
    ],
    ids=str,
)
def test_ts_out_of_range_fails_as_before(t: datetime) -> None:
    with pytest.raises(Exception) as old:
        old_ts(t)
    with pytest.raises(type(old.value)) as new:
        mapping.ts(t)
    assert str(new.value) == str(old.value)


ENUMS: list[tuple[Any, str, type[StrEnum]]] = [
    (common_pb2.Side, "SIDE_", Side),
    (common_pb2.Venue, "VENUE_", Venue),
    (pb.OrderType, "ORDER_TYPE_", OrderType),
    (pb.TimeInForce, "TIME_IN_FORCE_", TimeInForce),
    (pb.StopDirection, "STOP_DIRECTION_", StopDirection),
    (pb.OrderStatus, "ORDER_STATUS_", OrderStatus),
    (pb.BracketLeg, "BRACKET_LEG_", BracketLeg),
    (pb.Liquidity, "LIQUIDITY_", Liquidity),
    (pb.RiskRule, "RISK_RULE_", RiskRule),
    (pb.TradingState, "TRADING_STATE_", TradingState),
]


@pytest.mark.parametrize(("wrapper", "prefix", "cls"), ENUMS, ids=lambda x: str(x))
def test_enum_in_maps_every_number_as_before(wrapper: Any, prefix: str, cls: Any) -> None:
    # Every proto number (wallet-only venues have no domain member) and some that are none.
    for value in [*wrapper.values(), -1, max(wrapper.values()) + 1, 1000]:
        try:
            expected = old_enum_in(wrapper, prefix, cls, value, "field")
        except InvalidArgument as exc:
            with pytest.raises(InvalidArgument) as got:
                mapping.enum_in(wrapper, prefix, cls, value, "field")
            assert str(got.value) == str(exc)
        else:
            assert mapping.enum_in(wrapper, prefix, cls, value, "field") is expected


def test_enum_out_of_every_member_is_as_before() -> None:
    assert mapping.side_out(Side.SELL) == old_enum_out(common_pb2.Side, "SIDE_", Side.SELL)
    assert mapping.state_out(None) == 0
    for state in TradingState:
        assert mapping.state_out(state) == old_enum_out(pb.TradingState, "TRADING_STATE_", state)
    for venue in Venue:
        assert mapping.venue_out(venue) == old_enum_out(common_pb2.Venue, "VENUE_", venue)
