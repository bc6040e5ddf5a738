"""The order state machine: every legal transition works, every illegal one is refused."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import (
    TRANSITIONS,
    Order,
    OrderRequest,
    OrderSpec,
    validate_order_request,
)
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import (
    BracketLeg,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
D = Decimal
S = OrderStatus

# The table from execution.proto's OrderStatus comment, written out independently.
LEGAL = {
    (S.NEW, S.OPEN),
    (S.NEW, S.REJECTED),
    (S.NEW, S.FILLED),
    (S.NEW, S.CANCELED),
    (S.NEW, S.EXPIRED),
    (S.OPEN, S.PARTIALLY_FILLED),
    (S.OPEN, S.FILLED),
    (S.OPEN, S.CANCELED),
    (S.OPEN, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
}


def spec(**kw: object) -> OrderSpec:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("1"),
        limit_price=D("100"),
    )
    return validate_order_request(
        replace(r, **kw),
        ProductRules.simple("BTC-USD"),
        T0,  # type: ignore[arg-type]
        Venue.PAPER,
    )


def fill(trade_id: str, size: str, price: str = "100", order_id: str = "o-1") -> Fill:
    return Fill(
        fill_id=f"f-{trade_id}",
        venue_trade_id=trade_id,
        order_id=order_id,
        client_order_id="c-1",
        account_id="acct",
        venue=Venue.PAPER,
        product_id="BTC-USD",
        side=Side.BUY,
        price=D(price),
        size=D(size),
        fee=D("0.1"),
        fee_currency="USD",
        time=T1,
    )


def order_in(status: OrderStatus) -> Order:
    """An order that reached ``status`` along a legal path, with fills consistent with it."""
    o = Order.new("o-1", spec(), T0)
    if status is S.NEW:
        return o
    if status is S.REJECTED:
        return o.reject(T1, "insufficient funds")
    o = o.acknowledge("v-1", T1)
    if status is S.OPEN:
        return o
    if status in (S.PARTIALLY_FILLED, S.CANCELED, S.EXPIRED):
        o = o.apply_fill(fill("t1", "0.4")).order
        if status is S.CANCELED:
            return o.cancel(T1)
        if status is S.EXPIRED:
            return o.expire(T1)
        return o
    assert status is S.FILLED
    return o.apply_fill(fill("t1", "1")).order


def with_fill_state_for(order: Order, to: OrderStatus) -> Order:
    """Give ``order`` a filled size that satisfies the target's fill guard."""
    if to is S.FILLED:
        return replace(order, filled_size=D("1"), filled_quote=D("100"))
    if to is S.PARTIALLY_FILLED:
        return replace(order, filled_size=D("0.5"), filled_quote=D("50"))
    if to is S.REJECTED:
        return replace(order, filled_size=D("0"), filled_quote=D("0"))
    return order


def test_table_matches_the_proto_contract() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("src", "dst"), sorted(LEGAL))
def test_legal_transition(src: OrderStatus, dst: OrderStatus) -> None:
    order = with_fill_state_for(order_in(src), dst)
    moved = order.transition(dst, T1 + timedelta(seconds=1), "why")
    assert moved.status is dst
    assert moved.update_time == T1 + timedelta(seconds=1)
    assert moved.status_reason == "why"
    assert order.status is src  # immutable: the original is unchanged


ILLEGAL = sorted(set(itertools.product(S, S)) - LEGAL)


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_illegal_transition_is_refused(src: OrderStatus, dst: OrderStatus) -> None:
    order = with_fill_state_for(order_in(src), dst)
    with pytest.raises(FailedPrecondition, match=f"illegal transition {src} -> {dst}"):
        order.transition(dst, T1)


def test_final_states() -> None:
    assert {s for s in S if s.is_final} == {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}
    assert {s for s in S if s.is_working} == {S.NEW, S.OPEN, S.PARTIALLY_FILLED}


# --- fill guards on status transitions ----------------------------------------------------


def test_filled_needs_the_whole_size() -> None:
    o = order_in(S.OPEN)
    with pytest.raises(FailedPrecondition, match="FILLED needs the whole size"):
        o.transition(S.FILLED, T1)
    partial = o.apply_fill(fill("t1", "0.5")).order
    with pytest.raises(FailedPrecondition, match=r"filled 0\.5 of 1"):
        partial.mark_filled(T1)


def test_partially_filled_needs_a_partial_fill() -> None:
    with pytest.raises(FailedPrecondition, match="PARTIALLY_FILLED needs a partial fill"):
        order_in(S.OPEN).transition(S.PARTIALLY_FILLED, T1)


def test_an_order_with_fills_cannot_be_rejected() -> None:
    o = replace(order_in(S.NEW), filled_size=D("0.1"), filled_quote=D("10"))
    with pytest.raises(FailedPrecondition, match="cannot be rejected"):
        o.reject(T1, "late reject")


# --- named transitions --------------------------------------------------------------------


def test_new_order_is_the_committed_intent() -> None:
    o = Order.new("o-1", spec(), T0, decision_id="d-1")
    assert o.status is S.NEW and o.create_time == o.update_time == T0
    assert o.filled_size == 0 and o.average_fill_price is None and o.venue_order_id == ""
    assert o.decision_id == "d-1" and o.bracket_leg is None and o.remaining_size == D("1")


def test_acknowledge_sets_venue_id_and_opens() -> None:
    o = Order.new("o-1", spec(), T0).acknowledge("v-9", T1)
    assert (o.status, o.venue_order_id, o.update_time) == (S.OPEN, "v-9", T1)


def test_acknowledge_requires_a_venue_id() -> None:
    with pytest.raises(InvalidArgument) as info:
        Order.new("o-1", spec(), T0).acknowledge("", T1)
    assert info.value.field == "venue_order_id"


def test_repeated_ack_is_a_noop_but_a_different_venue_id_is_refused() -> None:
    o = Order.new("o-1", spec(), T0).acknowledge("v-9", T1)
    assert o.acknowledge("v-9", T1 + timedelta(seconds=5)) is o
    with pytest.raises(FailedPrecondition, match="does not match"):
        o.acknowledge("v-other", T1)


def test_ack_after_a_fill_opened_the_order_records_the_venue_id() -> None:
    o = Order.new("o-1", spec(), T0).apply_fill(fill("t1", "0.3")).order
    assert o.status is S.PARTIALLY_FILLED and o.venue_order_id == ""
    acked = o.acknowledge("v-1", T1)
    assert acked.status is S.PARTIALLY_FILLED and acked.venue_order_id == "v-1"


@pytest.mark.parametrize("final", [S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED])
def test_ack_of_a_final_order_is_refused(final: OrderStatus) -> None:
    with pytest.raises(FailedPrecondition):
        order_in(final).acknowledge("v-1", T1)


def test_cancel_reject_expire_record_reason() -> None:
    assert order_in(S.NEW).cancel(T1, "user").status_reason == "user"
    assert order_in(S.NEW).reject(T1, "post-only would cross").status is S.REJECTED
    expired = order_in(S.PARTIALLY_FILLED).expire(T1)
    assert expired.status is S.EXPIRED and expired.filled_size == D("0.4")


def test_cancel_twice_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="CANCELED -> CANCELED"):
        order_in(S.CANCELED).cancel(T1)


def test_gtd_expiry_detection() -> None:
    exp = T0 + timedelta(hours=1)
    o = Order.new("o-1", spec(time_in_force=TimeInForce.GTD, expire_time=exp), T0)
    assert not o.is_expired_at(exp - timedelta(microseconds=1))
    assert o.is_expired_at(exp)
    assert not o.expire(exp).is_expired_at(exp + timedelta(hours=1))  # final: nothing to do
    assert not Order.new("o-2", spec(), T0).is_expired_at(T0 + timedelta(days=999))


def test_bracket_entry_is_marked_entry_leg() -> None:
    from tradeplane.execution.domain.orders import BracketSpec

    b = BracketSpec(D("120"), D("90"))
    entry = Order.new("o-1", spec(type=OrderType.BRACKET, bracket=b), T0)
    assert entry.bracket_leg is BracketLeg.ENTRY
    exit_only = Order.new(
        "o-2",
        spec(
            type=OrderType.BRACKET,
            side=Side.SELL,
            limit_price=None,
            bracket=BracketSpec(D("120"), D("90"), exit_only=True),
        ),
        T0,
    )
    assert exit_only.bracket_leg is None
