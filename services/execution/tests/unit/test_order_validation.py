"""Order request validation: every refusal names its field; accepted requests are normalised."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.decimals import format_decimal, is_multiple, parse_decimal
from tradeplane.execution.domain.orders import (
    BracketSpec,
    OrderRequest,
    validate_order_request,
)
from tradeplane.execution.domain.products import ProductRules, split_product_id
from tradeplane.execution.domain.values import (
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.runtime.errors import InvalidArgument

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
BTC = ProductRules.simple("BTC-USD", "0.0001", "0.01", min_size="0.001", max_size="100")
D = Decimal


def req(**kw: object) -> OrderRequest:
    base: dict[str, object] = {
        "account_id": "acct",
        "client_order_id": "c-1",
        "product_id": "BTC-USD",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "base_size": D("0.5"),
        "limit_price": D("60000"),
    }
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


def bracket(
    tp: str | None = "66000",
    trig: str | None = "57000",
    sl: str | None = None,
    exit_only: bool = False,
) -> BracketSpec:
    return BracketSpec(
        take_profit_price=None if tp is None else D(tp),
        stop_loss_trigger_price=None if trig is None else D(trig),
        stop_loss_limit_price=None if sl is None else D(sl),
        exit_only=exit_only,
    )


def validate(r: OrderRequest, product: ProductRules | None = BTC):
    return validate_order_request(r, product, NOW, Venue.PAPER)


def field_of(r: OrderRequest, product: ProductRules | None = BTC) -> str:
    with pytest.raises(InvalidArgument) as info:
        validate(r, product)
    return info.value.field


# (request, the field the error must name)
INVALID = [
    ("missing client order id", req(client_order_id=""), "client_order_id"),
    ("client order id too long", req(client_order_id="x" * 129), "client_order_id"),
    ("client order id control char", req(client_order_id="a\nb"), "client_order_id"),
    ("client order id edge space", req(client_order_id=" a"), "client_order_id"),
    ("missing account", req(account_id=""), "account_id"),
    ("missing product", req(product_id=""), "product_id"),
    ("missing side", req(side=None), "side"),
    ("missing type", req(type=None), "type"),
    ("no size", req(base_size=None), "base_size"),
    ("both sizes", req(type=OrderType.MARKET, limit_price=None, quote_size=D("100")), "quote_size"),
    ("quote size on a limit", req(base_size=None, quote_size=D("100")), "quote_size"),
    ("zero base size", req(base_size=D("0")), "base_size"),
    ("negative base size", req(base_size=D("-1")), "base_size"),
    ("base size off increment", req(base_size=D("0.00015")), "base_size"),
    ("base size below minimum", req(base_size=D("0.0005")), "base_size"),
    ("base size above maximum", req(base_size=D("100.0001")), "base_size"),
    (
        "zero quote size",
        req(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("0")),
        "quote_size",
    ),
    (
        "quote size off increment",
        req(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("10.001")),
        "quote_size",
    ),
    ("limit without price", req(limit_price=None), "limit_price"),
    (
        "stop-limit without limit price",
        req(type=OrderType.STOP_LIMIT, limit_price=None, stop_price=D("61000")),
        "limit_price",
    ),
    ("market with limit price", req(type=OrderType.MARKET), "limit_price"),
    ("negative limit price", req(limit_price=D("-5")), "limit_price"),
    ("limit price off increment", req(limit_price=D("60000.001")), "limit_price"),
    ("stop-limit without stop", req(type=OrderType.STOP_LIMIT), "stop_price"),
    ("stop off increment", req(type=OrderType.STOP_LIMIT, stop_price=D("1.001")), "stop_price"),
    ("zero stop", req(type=OrderType.STOP_LIMIT, stop_price=D("0")), "stop_price"),
    ("stop on a limit", req(stop_price=D("61000")), "stop_price"),
    ("stop direction on a limit", req(stop_direction=StopDirection.UP), "stop_direction"),
    (
        "market GTC",
        req(type=OrderType.MARKET, limit_price=None, time_in_force=TimeInForce.GTC),
        "time_in_force",
    ),
    (
        "stop-limit IOC",
        req(type=OrderType.STOP_LIMIT, stop_price=D("61000"), time_in_force=TimeInForce.IOC),
        "time_in_force",
    ),
    (
        "bracket FOK",
        req(type=OrderType.BRACKET, bracket=bracket(), time_in_force=TimeInForce.FOK),
        "time_in_force",
    ),
    ("GTD without expiry", req(time_in_force=TimeInForce.GTD), "expire_time"),
    (
        "GTD in the past",
        req(time_in_force=TimeInForce.GTD, expire_time=NOW - timedelta(seconds=1)),
        "expire_time",
    ),
    ("GTD now", req(time_in_force=TimeInForce.GTD, expire_time=NOW), "expire_time"),
    (
        "GTD naive",
        req(time_in_force=TimeInForce.GTD, expire_time=datetime(2030, 1, 1)),
        "expire_time",
    ),
    ("expiry without GTD", req(expire_time=NOW + timedelta(hours=1)), "expire_time"),
    ("post-only market", req(type=OrderType.MARKET, limit_price=None, post_only=True), "post_only"),
    ("post-only IOC", req(post_only=True, time_in_force=TimeInForce.IOC), "post_only"),
    ("post-only FOK", req(post_only=True, time_in_force=TimeInForce.FOK), "post_only"),
    (
        "post-only stop-limit",
        req(type=OrderType.STOP_LIMIT, stop_price=D("61000"), post_only=True),
        "post_only",
    ),
    ("bracket spec on a limit", req(bracket=bracket()), "bracket"),
    ("bracket without spec", req(type=OrderType.BRACKET), "bracket"),
    (
        "bracket without take profit",
        req(type=OrderType.BRACKET, bracket=bracket(tp=None)),
        "bracket.take_profit_price",
    ),
    (
        "bracket without trigger",
        req(type=OrderType.BRACKET, bracket=bracket(trig=None)),
        "bracket.stop_loss_trigger_price",
    ),
    (
        "bracket take profit off increment",
        req(type=OrderType.BRACKET, bracket=bracket(tp="66000.005")),
        "bracket.take_profit_price",
    ),
    (
        "bracket trigger negative",
        req(type=OrderType.BRACKET, bracket=bracket(trig="-1")),
        "bracket.stop_loss_trigger_price",
    ),
    (
        "bracket stop limit off increment",
        req(type=OrderType.BRACKET, bracket=bracket(sl="56000.001")),
        "bracket.stop_loss_limit_price",
    ),
    (
        "buy bracket take profit below entry",
        req(type=OrderType.BRACKET, bracket=bracket(tp="59000", trig="57000")),
        "bracket.take_profit_price",
    ),
    (
        "buy bracket stop above entry",
        req(type=OrderType.BRACKET, bracket=bracket(tp="66000", trig="61000")),
        "bracket.stop_loss_trigger_price",
    ),
    (
        "buy bracket take profit below stop (market entry)",
        req(type=OrderType.BRACKET, limit_price=None, bracket=bracket(tp="57000", trig="58000")),
        "bracket.take_profit_price",
    ),
    (
        "buy bracket stop limit above trigger",
        req(type=OrderType.BRACKET, bracket=bracket(sl="57000.01")),
        "bracket.stop_loss_limit_price",
    ),
    (
        "sell bracket take profit above entry",
        req(type=OrderType.BRACKET, side=Side.SELL, bracket=bracket(tp="61000", trig="63000")),
        "bracket.take_profit_price",
    ),
    (
        "sell bracket stop below entry",
        req(type=OrderType.BRACKET, side=Side.SELL, bracket=bracket(tp="55000", trig="59000")),
        "bracket.stop_loss_trigger_price",
    ),
    (
        "sell bracket stop limit below trigger",
        req(
            type=OrderType.BRACKET,
            side=Side.SELL,
            bracket=bracket(tp="55000", trig="63000", sl="62999"),
        ),
        "bracket.stop_loss_limit_price",
    ),
    (
        "exit-only sell (closes long) with tp below stop",
        req(
            type=OrderType.BRACKET,
            side=Side.SELL,
            limit_price=None,
            bracket=bracket(tp="57000", trig="66000", exit_only=True),
        ),
        "bracket.take_profit_price",
    ),
    (
        "exit-only with an entry price",
        req(
            type=OrderType.BRACKET,
            side=Side.SELL,
            bracket=bracket(tp="66000", trig="57000", exit_only=True),
        ),
        "limit_price",
    ),
    (
        "bracket sized in quote",
        req(
            type=OrderType.BRACKET,
            limit_price=None,
            base_size=None,
            quote_size=D("100"),
            bracket=bracket(),
        ),
        "quote_size",
    ),
]


@pytest.mark.parametrize(
    ("request_", "field"), [(r, f) for _, r, f in INVALID], ids=[name for name, _, _ in INVALID]
)
def test_invalid_requests_name_their_field(request_: OrderRequest, field: str) -> None:
    assert field_of(request_) == field


def test_unknown_product_names_product_id() -> None:
    assert field_of(req(), product=None) == "product_id"


def test_error_message_carries_field_and_reason() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate(req(base_size=D("0.00015")))
    assert info.value.status_message() == (
        "base_size: 0.00015 is not a multiple of the increment 0.0001"
    )


def test_limit_order_defaults_to_gtc_and_account_venue() -> None:
    spec = validate(req())
    assert spec.time_in_force is TimeInForce.GTC
    assert spec.venue is Venue.PAPER
    assert spec.stop_direction is None


def test_market_order_defaults_to_ioc_and_may_be_quote_sized() -> None:
    spec = validate(
        req(type=OrderType.MARKET, limit_price=None, base_size=None, quote_size=D("250.50"))
    )
    assert spec.time_in_force is TimeInForce.IOC
    assert spec.quote_size == D("250.50") and spec.base_size is None


def test_explicit_venue_is_kept() -> None:
    assert validate(req(venue=Venue.COINBASE)).venue is Venue.COINBASE


@pytest.mark.parametrize(
    ("side", "direction"), [(Side.BUY, StopDirection.UP), (Side.SELL, StopDirection.DOWN)]
)
def test_stop_direction_defaults_from_side(side: Side, direction: StopDirection) -> None:
    spec = validate(req(type=OrderType.STOP_LIMIT, side=side, stop_price=D("61000")))
    assert spec.stop_direction is direction
    explicit = validate(
        req(
            type=OrderType.STOP_LIMIT,
            side=side,
            stop_price=D("61000"),
            stop_direction=StopDirection.DOWN,
        )
    )
    assert explicit.stop_direction is StopDirection.DOWN


@pytest.mark.parametrize(
    "tif", [TimeInForce.GTC, TimeInForce.GTD, TimeInForce.IOC, TimeInForce.FOK]
)
def test_limit_accepts_every_time_in_force(tif: TimeInForce) -> None:
    expire = NOW + timedelta(hours=1) if tif is TimeInForce.GTD else None
    assert validate(req(time_in_force=tif, expire_time=expire)).time_in_force is tif


def test_post_only_limit_gtd_is_valid() -> None:
    spec = validate(
        req(post_only=True, time_in_force=TimeInForce.GTD, expire_time=NOW + timedelta(minutes=5))
    )
    assert spec.post_only and spec.expire_time == NOW + timedelta(minutes=5)


def test_valid_brackets() -> None:
    buy = validate(req(type=OrderType.BRACKET, bracket=bracket(sl="56900")))
    assert buy.bracket is not None and buy.position_side is Side.BUY
    market_entry = validate(req(type=OrderType.BRACKET, limit_price=None, bracket=bracket()))
    assert market_entry.limit_price is None
    sell = validate(
        req(
            type=OrderType.BRACKET,
            side=Side.SELL,
            bracket=bracket(tp="55000", trig="63000", sl="63100"),
        )
    )
    assert sell.position_side is Side.SELL
    # Exit-only: side is the legs' side; SELL legs close a long (tp above the stop).
    exit_long = validate(
        req(
            type=OrderType.BRACKET,
            side=Side.SELL,
            limit_price=None,
            bracket=bracket(tp="66000", trig="57000", exit_only=True),
        )
    )
    assert exit_long.position_side is Side.BUY


def test_min_and_max_size_are_inclusive() -> None:
    assert validate(req(base_size=D("0.001"))).base_size == D("0.001")
    assert validate(req(base_size=D("100"))).base_size == D("100")


# --- decimal helpers ------------------------------------------------------------------------


def test_parse_decimal() -> None:
    assert parse_decimal("limit_price", "") is None
    assert parse_decimal("limit_price", "0.015") == D("0.015")
    for bad in ("abc", "1,5", "NaN", "Infinity", "-inf"):
        with pytest.raises(InvalidArgument) as info:
            parse_decimal("limit_price", bad)
        assert info.value.field == "limit_price"


def test_format_decimal() -> None:
    assert format_decimal(None) == ""
    assert format_decimal(D("0E-8")) == "0"
    assert format_decimal(D("1.500")) == "1.5"
    assert format_decimal(D("1E+2")) == "100"
    assert format_decimal(D("-0.00000001")) == "-0.00000001"


def test_is_multiple_and_split() -> None:
    assert is_multiple(D("0.03"), D("0.01")) and not is_multiple(D("0.035"), D("0.01"))
    assert split_product_id("ETH-BTC") == ("ETH", "BTC")
    with pytest.raises(ValueError):
        split_product_id("BTCUSD")


def test_validated_spec_equals_itself_after_replace() -> None:
    spec = validate(req())
    assert replace(spec) == spec
