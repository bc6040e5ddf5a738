"""Idempotent submission: a canonical payload fingerprint decides "same order"."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tradeplane.execution.domain.orders import (
    BracketSpec,
    Order,
    OrderRequest,
    OrderSpec,
    match_existing,
    order_fingerprint,
    validate_order_request,
)
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import OrderType, Side, StopDirection, TimeInForce, Venue
from tradeplane.runtime.errors import AlreadyExists

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal


def spec(**kw: object) -> OrderSpec:
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        base_size=D("0.5"),
        limit_price=D("60000"),
    )
    return validate_order_request(
        replace(r, **kw),
        ProductRules.simple("BTC-USD"),
        NOW,  # type: ignore[arg-type]
        Venue.PAPER,
    )


def test_fingerprint_is_a_sha256_hex() -> None:
    fp = spec().fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == order_fingerprint(spec())


def test_equal_payloads_in_different_spellings_have_the_same_fingerprint() -> None:
    a = spec(base_size=D("0.5"), limit_price=D("60000"))
    b = spec(base_size=D("0.50000"), limit_price=D("6.0000E+4"))
    assert a.fingerprint() == b.fingerprint()
    # Unset time in force means the default: the same payload as the explicit default.
    assert spec().fingerprint() == spec(time_in_force=TimeInForce.GTC).fingerprint()
    # Unset venue means the account's venue.
    assert spec().fingerprint() == spec(venue=Venue.PAPER).fingerprint()
    # The same instant in another time zone is the same expiry.
    exp = NOW + timedelta(hours=1)
    other_tz = exp.astimezone(timezone(timedelta(hours=5)))
    assert (
        spec(time_in_force=TimeInForce.GTD, expire_time=exp).fingerprint()
        == spec(time_in_force=TimeInForce.GTD, expire_time=other_tz).fingerprint()
    )


BRACKET = BracketSpec(D("66000"), D("57000"))
CHANGES: list[tuple[str, dict[str, object]]] = [
    ("account", {"account_id": "other"}),
    ("product", {"product_id": "ETH-USD"}),
    ("side", {"side": Side.SELL}),
    ("type", {"type": OrderType.STOP_LIMIT, "stop_price": D("61000")}),
    ("time in force", {"time_in_force": TimeInForce.IOC}),
    ("expiry", {"time_in_force": TimeInForce.GTD, "expire_time": NOW + timedelta(hours=2)}),
    ("base size", {"base_size": D("0.6")}),
    ("limit price", {"limit_price": D("60000.01")}),
    ("post only", {"post_only": True}),
    ("venue", {"venue": Venue.COINBASE}),
    ("strategy", {"strategy_instance_id": "s-1"}),
    ("bracket", {"type": OrderType.BRACKET, "bracket": BRACKET}),
]


@pytest.mark.parametrize("change", [c for _, c in CHANGES], ids=[n for n, _ in CHANGES])
def test_every_defining_field_changes_the_fingerprint(change: dict[str, object]) -> None:
    base = spec()
    kw = dict(change)
    if kw.get("product_id") == "ETH-USD":
        changed = validate_order_request(
            replace(
                OrderRequest(
                    account_id="acct",
                    client_order_id="c-1",
                    product_id="ETH-USD",
                    side=Side.BUY,
                    type=OrderType.LIMIT,
                    base_size=D("0.5"),
                    limit_price=D("60000"),
                )
            ),
            ProductRules.simple("ETH-USD"),
            NOW,
            Venue.PAPER,
        )
    else:
        changed = spec(**kw)
    assert changed.fingerprint() != base.fingerprint()


def test_bracket_fields_and_stop_direction_change_the_fingerprint() -> None:
    b = spec(type=OrderType.BRACKET, bracket=BRACKET)
    for other in (
        BracketSpec(D("66000.01"), D("57000")),
        BracketSpec(D("66000"), D("56999")),
        BracketSpec(D("66000"), D("57000"), D("56900")),
    ):
        assert spec(type=OrderType.BRACKET, bracket=other).fingerprint() != b.fingerprint()
    up = spec(type=OrderType.STOP_LIMIT, stop_price=D("61000"))
    down = spec(type=OrderType.STOP_LIMIT, stop_price=D("61000"), stop_direction=StopDirection.DOWN)
    assert up.fingerprint() != down.fingerprint()


def test_match_existing() -> None:
    original = Order.new("o-1", spec(), NOW)
    assert match_existing(None, spec()) is None
    # Same payload (spelled differently): the existing order, whatever its state now.
    acked = original.acknowledge("v-1", NOW)
    assert match_existing(acked, spec(base_size=D("0.500"))) is acked
    with pytest.raises(AlreadyExists, match="'c-1' is already used by order o-1"):
        match_existing(original, spec(base_size=D("0.7")))


def test_match_existing_rejects_an_unrelated_order() -> None:
    with pytest.raises(ValueError):
        match_existing(Order.new("o-1", spec(), NOW), spec(client_order_id="c-2"))
