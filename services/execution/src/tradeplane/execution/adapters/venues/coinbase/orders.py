"""Domain orders <-> the documented Coinbase Advanced Trade JSON.

Create (POST /api/v3/brokerage/orders):
    {"client_order_id", "product_id", "side": "BUY"|"SELL", "order_configuration": {<one>}}
with one of the spot configurations:
    market_market_ioc {quote_size | base_size}
    limit_limit_gtc {base_size, limit_price, post_only}
    limit_limit_gtd {base_size, limit_price, end_time, post_only}
    limit_limit_fok {base_size, limit_price}
    sor_limit_ioc {base_size, limit_price}
    stop_limit_stop_limit_gtc {base_size, limit_price, stop_price, stop_direction}
    stop_limit_stop_limit_gtd {... , end_time}
    trigger_bracket_gtc {base_size, limit_price, stop_trigger_price}
    trigger_bracket_gtd {... , end_time}
An entry bracket is its entry (limit or market) with the exit legs as
"attached_order_configuration": {"trigger_bracket_gtc": {limit_price, stop_trigger_price}}.
Numbers are decimal strings. Statuses: PENDING, QUEUED, OPEN, FILLED, CANCELLED,
CANCEL_QUEUED, EXPIRED, FAILED; there is no partially-filled status (derived from
filled_size).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeplane.execution.domain.decimals import format_decimal
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)
from tradeplane.execution.service_layer.venue_reconciliation import (
    VenueOrderState,
    VenueTrade,
    derive_status,
)


class CoinbaseShapeError(ValueError):
    """A Coinbase answer without the documented shape."""


# Coinbase status -> ours when the order is done there; None = still working.
DONE_STATUS: dict[str, OrderStatus | None] = {
    "PENDING": None,
    "QUEUED": None,
    "OPEN": None,
    "CANCEL_QUEUED": None,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
}


def _s(value: Decimal | None) -> str:
    assert value is not None
    return format_decimal(value)


def _time(t: datetime | None) -> str:
    assert t is not None
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def order_configuration(spec: OrderSpec) -> dict[str, Any]:
    """The `order_configuration` (and `attached_order_configuration`) of a create request."""
    tif, t = spec.time_in_force, spec.type
    gtd = tif is TimeInForce.GTD
    if t is OrderType.MARKET:
        size = (
            {"quote_size": _s(spec.quote_size)}
            if spec.quote_size is not None
            else {"base_size": _s(spec.base_size)}
        )
        return {"order_configuration": {"market_market_ioc": size}}
    if t is OrderType.LIMIT:
        body: dict[str, Any] = {
            "base_size": _s(spec.base_size),
            "limit_price": _s(spec.limit_price),
        }
        if tif is TimeInForce.FOK:
            return {"order_configuration": {"limit_limit_fok": body}}
        if tif is TimeInForce.IOC:
            return {"order_configuration": {"sor_limit_ioc": body}}
        body["post_only"] = spec.post_only
        if gtd:
            body["end_time"] = _time(spec.expire_time)
        return {"order_configuration": {"limit_limit_gtd" if gtd else "limit_limit_gtc": body}}
    if t is OrderType.STOP_LIMIT:
        direction = spec.stop_direction or StopDirection.UP
        body = {
            "base_size": _s(spec.base_size),
            "limit_price": _s(spec.limit_price),
            "stop_price": _s(spec.stop_price),
            "stop_direction": f"STOP_DIRECTION_STOP_{direction.value}",
        }
        if gtd:
            body["end_time"] = _time(spec.expire_time)
        key = "stop_limit_stop_limit_gtd" if gtd else "stop_limit_stop_limit_gtc"
        return {"order_configuration": {key: body}}
    # BRACKET
    b = spec.bracket
    assert b is not None
    legs: dict[str, Any] = {
        "limit_price": _s(b.take_profit_price),
        "stop_trigger_price": _s(b.stop_loss_trigger_price),
    }
    if gtd:
        legs["end_time"] = _time(spec.expire_time)
    key = "trigger_bracket_gtd" if gtd else "trigger_bracket_gtc"
    if b.exit_only:
        return {"order_configuration": {key: {"base_size": _s(spec.base_size), **legs}}}
    if spec.limit_price is None:
        entry: dict[str, Any] = {"market_market_ioc": {"base_size": _s(spec.base_size)}}
    else:
        entry_body: dict[str, Any] = {
            "base_size": _s(spec.base_size),
            "limit_price": _s(spec.limit_price),
            "post_only": False,
        }
        if gtd:
            entry_body["end_time"] = _time(spec.expire_time)
        entry = {"limit_limit_gtd" if gtd else "limit_limit_gtc": entry_body}
    return {"order_configuration": entry, "attached_order_configuration": {key: legs}}


def create_body(order: Order) -> dict[str, Any]:
    """The create request. client_order_id is our order id: never empty, unique across
    accounts, and what makes a retry (same id) land on the same venue order."""
    if not order.order_id:
        raise ValueError("an order without id cannot be sent")
    spec = order.spec
    return {
        "client_order_id": order.order_id,
        "product_id": spec.product_id,
        "side": spec.side.value,
        **order_configuration(spec),
    }


# -- answers ---------------------------------------------------------------------------------


def dec(obj: dict[str, Any], key: str, default: Decimal | None = None) -> Decimal | None:
    value = obj.get(key)
    if value in (None, ""):
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise CoinbaseShapeError(f"{key!r} is not a number: {value!r}") from None


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise CoinbaseShapeError(f"bad time {value!r}")
    text = value.replace("Z", "+00:00")
    # Coinbase sends up to nanoseconds; Python takes microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CoinbaseShapeError(f"bad time {value!r}") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def quote_currency(product_id: str) -> str:
    return product_id.rsplit("-", 1)[-1]


def _spec_fields(config: dict[str, Any]) -> dict[str, Any]:
    """Order type, time in force, sizes and prices from an order_configuration."""
    if not config:
        return {"type": OrderType.LIMIT, "time_in_force": TimeInForce.GTC}
    key, body = next(iter(config.items()))
    body = body or {}
    out: dict[str, Any] = {
        "base_size": dec(body, "base_size"),
        "quote_size": dec(body, "quote_size"),
        "limit_price": dec(body, "limit_price"),
        "expire_time": parse_time(body["end_time"]) if body.get("end_time") else None,
        "post_only": bool(body.get("post_only", False)),
    }
    if key.startswith("market"):
        out.update(type=OrderType.MARKET, time_in_force=TimeInForce.IOC, limit_price=None)
    elif key.startswith("stop_limit"):
        direction = str(body.get("stop_direction", "")).rsplit("_", 1)[-1]
        out.update(
            type=OrderType.STOP_LIMIT,
            stop_price=dec(body, "stop_price"),
            stop_direction=StopDirection(direction) if direction in ("UP", "DOWN") else None,
        )
    elif key.startswith("trigger_bracket"):
        out.update(
            type=OrderType.BRACKET,
            limit_price=None,
            bracket=BracketSpec(
                take_profit_price=dec(body, "limit_price"),
                stop_loss_trigger_price=dec(body, "stop_trigger_price"),
                exit_only=True,
            ),
        )
    else:
        out["type"] = OrderType.LIMIT
    if key.endswith("_gtd"):
        out["time_in_force"] = TimeInForce.GTD
    elif key.endswith("_fok"):
        out["time_in_force"] = TimeInForce.FOK
    elif key.endswith("_ioc"):
        out["time_in_force"] = TimeInForce.IOC
    else:
        out["time_in_force"] = TimeInForce.GTC
    return out


def order_state(order: dict[str, Any]) -> VenueOrderState:
    """An order of GET orders/historical/{id} or .../batch."""
    try:
        status_text = str(order["status"])
        filled = dec(order, "filled_size", Decimal(0))
        assert filled is not None
        fields = _spec_fields(order.get("order_configuration") or {})
        done = DONE_STATUS.get(status_text)
        if status_text not in DONE_STATUS:
            raise CoinbaseShapeError(f"unknown order status {status_text!r}")
        if done is OrderStatus.REJECTED and filled > 0:
            done = OrderStatus.CANCELED  # a traded order was not rejected
        return VenueOrderState(
            venue_order_id=str(order["order_id"]),
            client_order_id=str(order.get("client_order_id") or ""),
            product_id=str(order["product_id"]),
            side=Side(str(order["side"]).upper()),
            status=derive_status(done, filled),
            filled_size=filled,
            create_time=parse_time(order.get("created_time")),
            reason=str(order.get("reject_reason") or order.get("cancel_message") or ""),
            **fields,
        )
    except (KeyError, ValueError) as exc:
        raise CoinbaseShapeError(f"order without the documented shape ({exc}): {order}") from None


def trade(fill: dict[str, Any]) -> VenueTrade:
    """A fill of GET orders/historical/fills."""
    try:
        price = dec(fill, "price")
        size = dec(fill, "size")
        assert price is not None and size is not None
        if fill.get("size_in_quote"):
            size = size / price
        liquidity = str(fill.get("liquidity_indicator", "")).upper()
        product_id = str(fill["product_id"])
        return VenueTrade(
            venue_order_id=str(fill["order_id"]),
            venue_trade_id=str(fill["trade_id"]),
            price=price,
            size=size,
            fee=dec(fill, "commission", Decimal(0)) or Decimal(0),
            fee_currency=quote_currency(product_id),
            liquidity=Liquidity.MAKER if liquidity == "MAKER" else Liquidity.TAKER,
            time=parse_time(fill.get("trade_time")),
        )
    except (KeyError, AssertionError, ValueError) as exc:
        raise CoinbaseShapeError(f"fill without the documented shape ({exc}): {fill}") from None


def user_update(order: dict[str, Any]) -> tuple[str, str, Decimal, OrderStatus | None, str]:
    """One order of a `user` channel event: (venue order id, client order id, cumulative
    filled size, done status or None, reason)."""
    try:
        cumulative = dec(order, "cumulative_quantity", Decimal(0)) or Decimal(0)
        status = str(order.get("status", ""))
        done = DONE_STATUS.get(status)
        if done is OrderStatus.REJECTED and cumulative > 0:
            done = OrderStatus.CANCELED
        reason = str(order.get("reject_reason") or order.get("cancel_reason") or "")
        return (
            str(order["order_id"]),
            str(order.get("client_order_id") or ""),
            cumulative,
            done,
            reason,
        )
    except KeyError as exc:
        raise CoinbaseShapeError(f"user-channel order without {exc}: {order}") from None
