"""Bracket orders: the exit legs are children on the closing side with the bracket's prices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.orders import (
    BracketSpec,
    Order,
    OrderRequest,
    bracket_exit_legs,
    validate_order_request,
)
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import (
    BracketLeg,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal


def bracket_order(side: Side = Side.BUY, **kw: object) -> Order:
    r = OrderRequest(
        account_id="acct",
        client_order_id="br-1",
        product_id="BTC-USD",
        side=side,
        type=OrderType.BRACKET,
        base_size=D("2"),
        limit_price=D("100"),
        bracket=BracketSpec(D("120"), D("90")),
        strategy_instance_id="s-1",
    )
    spec = validate_order_request(
        replace(r, **kw),
        ProductRules.simple("BTC-USD"),
        T0,  # type: ignore[arg-type]
        Venue.COINBASE,
    )
    return Order.new("o-1", spec, T0, decision_id="d-1")


def test_long_bracket_legs_sell_above_and_below() -> None:
    tp, sl = bracket_exit_legs(bracket_order(), D("1.5"), "o-tp", "o-sl", T0)
    assert (tp.order_id, tp.bracket_leg, tp.parent_order_id) == (
        "o-tp",
        BracketLeg.TAKE_PROFIT,
        "o-1",
    )
    assert (tp.spec.side, tp.spec.type, tp.spec.limit_price) == (
        Side.SELL,
        OrderType.LIMIT,
        D("120"),
    )
    assert tp.spec.stop_price is None and tp.spec.stop_direction is None
    assert (sl.bracket_leg, sl.spec.type, sl.spec.side) == (
        BracketLeg.STOP_LOSS,
        OrderType.STOP_LIMIT,
        Side.SELL,
    )
    assert (sl.spec.stop_price, sl.spec.limit_price) == (D("90"), None)  # market exit
    assert sl.spec.stop_direction is StopDirection.DOWN
    for leg in (tp, sl):
        assert leg.status is OrderStatus.NEW and leg.spec.base_size == D("1.5")
        assert leg.spec.venue is Venue.COINBASE and leg.decision_id == "d-1"
        assert leg.spec.strategy_instance_id == "s-1"
    assert (tp.spec.client_order_id, sl.spec.client_order_id) == ("br-1-tp", "br-1-sl")


def test_short_bracket_legs_buy_with_upward_stop_and_limit() -> None:
    parent = bracket_order(Side.SELL, bracket=BracketSpec(D("80"), D("110"), D("111")))
    tp, sl = bracket_exit_legs(parent, D("2"), "a", "b", T0)
    assert tp.spec.side is Side.BUY and tp.spec.limit_price == D("80")
    assert sl.spec.side is Side.BUY and sl.spec.stop_direction is StopDirection.UP
    assert (sl.spec.stop_price, sl.spec.limit_price) == (D("110"), D("111"))


def test_exit_only_legs_keep_the_order_side_and_gtd_expiry() -> None:
    exp = T0 + timedelta(days=1)
    parent = bracket_order(
        Side.SELL,
        limit_price=None,
        time_in_force=TimeInForce.GTD,
        expire_time=exp,
        bracket=BracketSpec(D("120"), D("90"), exit_only=True),
    )
    tp, sl = bracket_exit_legs(parent, D("2"), "a", "b", T0)
    assert tp.spec.side is Side.SELL and sl.spec.side is Side.SELL
    assert tp.spec.time_in_force is TimeInForce.GTD and sl.spec.expire_time == exp


def test_long_client_order_ids_stay_within_128_characters() -> None:
    tp, sl = bracket_exit_legs(bracket_order(client_order_id="x" * 128), D("1"), "a", "b", T0)
    assert len(tp.spec.client_order_id) == 128 and tp.spec.client_order_id.endswith("-tp")
    assert sl.spec.client_order_id != tp.spec.client_order_id


def test_legs_need_a_bracket_parent_and_positive_size() -> None:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("1"),
        limit_price=D("100"),
    )
    plain = Order.new(
        "o", validate_order_request(r, ProductRules.simple("BTC-USD"), T0, Venue.PAPER), T0
    )
    with pytest.raises(FailedPrecondition, match="not a bracket"):
        bracket_exit_legs(plain, D("1"), "a", "b", T0)
    with pytest.raises(InvalidArgument) as info:
        bracket_exit_legs(bracket_order(), D("0"), "a", "b", T0)
    assert info.value.field == "size"
