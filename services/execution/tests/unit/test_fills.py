"""Fill application: exactly once per venue trade id, never past the order's size."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import Order, OrderRequest, validate_order_request
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import Liquidity, OrderStatus, OrderType, Side, Venue
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal


def order(**kw: object) -> Order:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("1"),
        limit_price=D("100"),
    )
    spec = validate_order_request(
        replace(r, **kw),
        ProductRules.simple("BTC-USD"),
        T0,  # type: ignore[arg-type]
        Venue.PAPER,
    )
    return Order.new("o-1", spec, T0).acknowledge("v-1", T0)


def fill(
    trade_id: str,
    size: str,
    price: str = "100",
    fee: str = "0.1",
    *,
    seconds: int = 1,
    **kw: object,
) -> Fill:
    base: dict[str, object] = dict(
        fill_id=f"f-{trade_id}",
        venue_trade_id=trade_id,
        order_id="o-1",
        client_order_id="c-1",
        account_id="acct",
        venue=Venue.PAPER,
        product_id="BTC-USD",
        side=Side.BUY,
        price=D(price),
        size=D(size),
        fee=D(fee),
        fee_currency="USD",
        time=T0 + timedelta(seconds=seconds),
        liquidity=Liquidity.MAKER,
    )
    base.update(kw)
    return Fill(**base)  # type: ignore[arg-type]


def test_partial_then_complete() -> None:
    o = order()
    a = o.apply_fill(fill("t1", "0.25", "100", "0.05"))
    assert a.applied and not a.duplicate
    o = a.order
    assert o.status is OrderStatus.PARTIALLY_FILLED
    assert (o.filled_size, o.remaining_size, o.fees) == (D("0.25"), D("0.75"), D("0.05"))
    o = o.apply_fill(fill("t2", "0.25", "104", "0.05", seconds=2)).order
    assert o.status is OrderStatus.PARTIALLY_FILLED
    o = o.apply_fill(fill("t3", "0.5", "101", "0.1", seconds=3)).order
    assert o.status is OrderStatus.FILLED and o.remaining_size == 0
    # VWAP = (25 + 26 + 50.5) / 1
    assert o.average_fill_price == D("101.5")
    assert o.fees == D("0.2") and o.fee_currency == "USD"
    assert o.fill_trade_ids == {"t1", "t2", "t3"}
    assert o.update_time == T0 + timedelta(seconds=3)


def test_duplicate_trade_id_is_ignored_and_reported() -> None:
    o = order().apply_fill(fill("t1", "0.4")).order
    again = o.apply_fill(fill("t1", "0.4"))
    assert again.duplicate and not again.applied
    assert again.order is o
    # Even a replay with different numbers is the same trade: ignored, not double-counted.
    assert o.apply_fill(fill("t1", "0.6", "99")).order.filled_size == D("0.4")


def test_duplicate_of_the_completing_fill_is_still_a_duplicate() -> None:
    done = order().apply_fill(fill("t1", "1")).order
    assert done.status is OrderStatus.FILLED
    assert done.apply_fill(fill("t1", "1")).duplicate


def test_overfill_is_refused_and_changes_nothing() -> None:
    o = order().apply_fill(fill("t1", "0.7")).order
    with pytest.raises(FailedPrecondition, match=r"would overfill order o-1: 1\.1 > 1"):
        o.apply_fill(fill("t2", "0.4"))
    assert o.filled_size == D("0.7") and o.fill_trade_ids == {"t1"}
    # The exact remainder is fine.
    assert o.apply_fill(fill("t2", "0.3")).order.status is OrderStatus.FILLED


def test_fill_on_new_order_acknowledges_it() -> None:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("1"),
        limit_price=D("100"),
    )
    spec = validate_order_request(r, ProductRules.simple("BTC-USD"), T0, Venue.PAPER)
    new = Order.new("o-1", spec, T0)
    assert new.apply_fill(fill("t1", "0.5")).order.status is OrderStatus.PARTIALLY_FILLED
    assert new.apply_fill(fill("t1", "1")).order.status is OrderStatus.FILLED


@pytest.mark.parametrize("final", ["cancel", "expire"])
def test_late_fill_on_canceled_or_expired_order_is_applied_status_kept(final: str) -> None:
    o = order().apply_fill(fill("t1", "0.4")).order
    o = o.cancel(T0) if final == "cancel" else o.expire(T0)
    late = o.apply_fill(fill("t2", "0.2", seconds=5)).order
    assert late.status is o.status and late.filled_size == D("0.6")
    with pytest.raises(FailedPrecondition, match="overfill"):
        late.apply_fill(fill("t3", "0.5"))


def test_fill_on_rejected_order_is_refused() -> None:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("1"),
        limit_price=D("100"),
    )
    spec = validate_order_request(r, ProductRules.simple("BTC-USD"), T0, Venue.PAPER)
    rejected = Order.new("o-1", spec, T0).reject(T0, "no funds")
    with pytest.raises(FailedPrecondition, match="rejected"):
        rejected.apply_fill(fill("t1", "0.1"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"order_id": "o-2"}, "is for order o-2"),
        ({"side": Side.SELL}, "does not match"),
        ({"product_id": "ETH-USD"}, "does not match"),
    ],
)
def test_mismatched_fill_is_refused(change: dict[str, object], match: str) -> None:
    with pytest.raises(FailedPrecondition, match=match):
        order().apply_fill(fill("t1", "0.1", **change))


def test_fee_currency_must_stay_the_same() -> None:
    o = order().apply_fill(fill("t1", "0.1")).order
    with pytest.raises(FailedPrecondition, match="fee currency"):
        o.apply_fill(fill("t2", "0.1", fee_currency="BTC"))


def test_quote_sized_market_order() -> None:
    o = order(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("100"))
    assert o.remaining_size is None
    o = o.apply_fill(fill("t1", "0.4", "100")).order  # 40 of 100 quote
    assert o.status is OrderStatus.PARTIALLY_FILLED
    with pytest.raises(FailedPrecondition, match="notional 110 > 100"):
        o.apply_fill(fill("t2", "0.7", "100"))
    # Fees came out of the quote size: the venue calls it done at 99.5 notional.
    o = o.apply_fill(fill("t2", "0.5", "119")).order
    assert o.filled_quote == D("99.5") and o.status is OrderStatus.PARTIALLY_FILLED
    assert o.mark_filled(T0).status is OrderStatus.FILLED
    exact = order(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("100"))
    assert exact.apply_fill(fill("t1", "1", "100")).order.status is OrderStatus.FILLED


def test_quote_sized_order_without_fills_cannot_be_called_filled() -> None:
    o = order(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("100"))
    with pytest.raises(FailedPrecondition, match="FILLED needs"):
        o.mark_filled(T0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"venue_trade_id": ""}, "venue_trade_id"),
        ({"price": D("0")}, "price"),
        ({"price": D("NaN")}, "price"),
        ({"size": D("-1")}, "size"),
        ({"fee": D("Infinity")}, "fee"),
        ({"time": datetime(2026, 1, 1)}, "time"),
    ],
)
def test_invalid_fill_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        replace(fill("t1", "1"), **change)
    assert info.value.field == field


def test_fill_helpers_and_rebates() -> None:
    f = fill("t1", "0.5", "200", fee="-0.01")  # a maker rebate is a negative fee
    assert (f.base_currency, f.quote_currency, f.notional) == ("BTC", "USD", D("100.0"))
    assert f.dedup_key == (Venue.PAPER, "t1")
    assert order().apply_fill(f).order.fees == D("-0.01")
