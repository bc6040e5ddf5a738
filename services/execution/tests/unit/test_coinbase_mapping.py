"""The Coinbase JSON mapping: statuses (no partially-filled status at Coinbase), fills,
times with nanoseconds, and the create body never carrying an empty client_order_id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeplane.execution.adapters.venues.coinbase import orders as cb
from tradeplane.execution.domain.orders import Order, OrderSpec
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)


def coinbase_order(status: str, filled: str, **extra: object) -> dict[str, object]:
    return {
        "order_id": "v-1",
        "client_order_id": "c-1",
        "product_id": "BTC-USD",
        "side": "BUY",
        "status": status,
        "filled_size": filled,
        "created_time": "2026-11-29T07:00:00.123456789Z",
        "order_configuration": {
            "limit_limit_gtd": {
                "base_size": "0.01",
                "limit_price": "100.5",
                "end_time": "2026-11-30T00:00:00Z",
                "post_only": True,
            }
        },
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "filled", "ours"),
    [
        ("OPEN", "0", OrderStatus.OPEN),
        ("OPEN", "0.004", OrderStatus.PARTIALLY_FILLED),
        ("PENDING", "0", OrderStatus.OPEN),
        ("CANCEL_QUEUED", "0.001", OrderStatus.PARTIALLY_FILLED),
        ("FILLED", "0.01", OrderStatus.FILLED),
        ("CANCELLED", "0.004", OrderStatus.CANCELED),
        ("EXPIRED", "0", OrderStatus.EXPIRED),
        ("FAILED", "0", OrderStatus.REJECTED),
        ("FAILED", "0.002", OrderStatus.CANCELED),  # it traded: not a rejection
    ],
)
def test_status_is_derived_from_filled_size(status: str, filled: str, ours: OrderStatus) -> None:
    state = cb.order_state(coinbase_order(status, filled))
    assert state.status is ours
    assert state.filled_size == Decimal(filled)
    assert (state.type, state.time_in_force, state.post_only) == (
        OrderType.LIMIT,
        TimeInForce.GTD,
        True,
    )
    assert state.expire_time == datetime(2026, 11, 30, tzinfo=UTC)
    assert state.create_time == datetime(2026, 11, 29, 7, 0, 0, 123456, tzinfo=UTC)


def test_unknown_status_and_missing_fields_are_shape_errors() -> None:
    with pytest.raises(cb.CoinbaseShapeError):
        cb.order_state(coinbase_order("SOMETHING_NEW", "0"))
    with pytest.raises(cb.CoinbaseShapeError):
        cb.order_state({"status": "OPEN"})


def test_fill_in_quote_is_converted_to_base() -> None:
    t = cb.trade(
        {
            "trade_id": "t1",
            "order_id": "v-1",
            "trade_time": "2026-11-29T07:00:01Z",
            "price": "200",
            "size": "10",
            "commission": "0.06",
            "product_id": "ETH-EUR",
            "liquidity_indicator": "MAKER",
            "size_in_quote": True,
        }
    )
    assert (t.size, t.fee, t.fee_currency, t.liquidity) == (
        Decimal("0.05"),
        Decimal("0.06"),
        "EUR",
        Liquidity.MAKER,
    )


def test_user_update_gives_cumulative_state() -> None:
    assert cb.user_update(
        {"order_id": "v", "client_order_id": "c", "cumulative_quantity": "0.3", "status": "OPEN"}
    ) == ("v", "c", Decimal("0.3"), None, "")
    assert (
        cb.user_update(
            {"order_id": "v", "cumulative_quantity": "0", "status": "FAILED", "reject_reason": "x"}
        )[3]
        is OrderStatus.REJECTED
    )


def test_create_body_uses_the_order_id_as_client_order_id() -> None:
    spec = OrderSpec(
        account_id="a",
        client_order_id="mine",
        product_id="BTC-USD",
        side=Side.SELL,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        venue=Venue.COINBASE,
        quote_size=Decimal("25.50"),
    )
    order = Order.new("order-1", spec, datetime.now(UTC))
    assert cb.create_body(order) == {
        "client_order_id": "order-1",
        "product_id": "BTC-USD",
        "side": "SELL",
        "order_configuration": {"market_market_ioc": {"quote_size": "25.5"}},
    }
    with pytest.raises(ValueError, match="without id"):
        cb.create_body(Order.new("", spec, datetime.now(UTC)))
