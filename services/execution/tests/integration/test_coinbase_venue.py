"""The Coinbase venue adapter against the local fake Coinbase (HTTPS with a test CA, JWTs
checked): every spot order configuration, idempotent retries on 429 / 5xx / lost answers,
refusals, cancel, edit, get/list/fills, and the user channel's cumulative updates."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from tradeplane.coinbase.rest import CoinbaseHttpError
from tradeplane.execution.adapters.venues.coinbase.config import CoinbaseVenueConfig
from tradeplane.execution.adapters.venues.coinbase.venue import CoinbaseVenue
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.values import (
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.commands import new_id
from tradeplane.execution.service_layer.ports import VenueFill, VenueRejected
from tradeplane.testing.fakes.coinbase import FakeCoinbase

from .coinbase_support import CoinbaseKeys, coinbase_keys, fake_coinbase

__all__ = ["coinbase_keys", "fake_coinbase"]  # fixtures

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=1)


def order(type_: OrderType, tif: TimeInForce, **kw: Any) -> Order:
    values: dict[str, Any] = {
        "account_id": "main",
        "client_order_id": new_id(),
        "product_id": "BTC-USD",
        "side": Side.BUY,
        "type": type_,
        "time_in_force": tif,
        "venue": Venue.COINBASE,
        "base_size": Decimal("0.01"),
    }
    values.update(kw)
    return Order.new(new_id(), OrderSpec(**values), NOW)


class Reports:
    def __init__(self) -> None:
        self.fills: list[VenueFill] = []
        self.done: list[tuple[str, OrderStatus, str]] = []

    async def on_fill(self, fill: VenueFill) -> None:
        self.fills.append(fill)

    async def on_fills(self, fills: Sequence[VenueFill]) -> None:
        self.fills.extend(fills)

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        self.done.append((order_id, status, reason))


def venue_for(
    fake: FakeCoinbase, keys: CoinbaseKeys, *, ws: bool = False, **kw: Any
) -> tuple[CoinbaseVenue, Reports]:
    values: dict[str, Any] = {
        "api_key": keys.api_key,
        "api_secret": keys.api_secret,
        "rest_url": fake.rest_url,
        "ws_url": fake.ws_url if ws else "",
        "ca_file": keys.ca_file,
        "timeout_seconds": 0.5,
        "max_attempts": 4,
        "backoff_min_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "heartbeat_timeout_seconds": 2.0,
    }
    values.update(kw)
    venue = CoinbaseVenue(CoinbaseVenueConfig(**values))
    reports = Reports()
    venue.bind(reports)
    return venue, reports


CASES = [
    (order(OrderType.MARKET, TimeInForce.IOC), "market_market_ioc"),
    (
        order(OrderType.MARKET, TimeInForce.IOC, base_size=None, quote_size=Decimal("10")),
        "market_market_ioc",
    ),
    (
        order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"), post_only=True),
        "limit_limit_gtc",
    ),
    (
        order(OrderType.LIMIT, TimeInForce.GTD, limit_price=Decimal("50"), expire_time=LATER),
        "limit_limit_gtd",
    ),
    (order(OrderType.LIMIT, TimeInForce.FOK, limit_price=Decimal("101")), "limit_limit_fok"),
    (order(OrderType.LIMIT, TimeInForce.IOC, limit_price=Decimal("101")), "sor_limit_ioc"),
    (
        order(
            OrderType.STOP_LIMIT,
            TimeInForce.GTC,
            limit_price=Decimal("120"),
            stop_price=Decimal("119"),
            stop_direction=StopDirection.UP,
        ),
        "stop_limit_stop_limit_gtc",
    ),
    (
        order(
            OrderType.STOP_LIMIT,
            TimeInForce.GTD,
            limit_price=Decimal("80"),
            stop_price=Decimal("81"),
            stop_direction=StopDirection.DOWN,
            side=Side.SELL,
            expire_time=LATER,
        ),
        "stop_limit_stop_limit_gtd",
    ),
    (
        order(
            OrderType.BRACKET,
            TimeInForce.GTC,
            side=Side.SELL,
            bracket=BracketSpec(Decimal("120"), Decimal("90"), exit_only=True),
        ),
        "trigger_bracket_gtc",
    ),
    (
        order(
            OrderType.BRACKET,
            TimeInForce.GTD,
            side=Side.SELL,
            expire_time=LATER,
            bracket=BracketSpec(Decimal("120"), Decimal("90"), exit_only=True),
        ),
        "trigger_bracket_gtd",
    ),
    (
        order(
            OrderType.BRACKET,
            TimeInForce.GTC,
            limit_price=Decimal("95"),
            bracket=BracketSpec(Decimal("120"), Decimal("90")),
        ),
        "limit_limit_gtc",
    ),
]


@pytest.mark.parametrize(("o", "kind"), CASES, ids=[c[1] + f"-{i}" for i, c in enumerate(CASES)])
async def test_every_spot_configuration_is_placed(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys, o: Order, kind: str
) -> None:
    venue, _ = venue_for(fake_coinbase, coinbase_keys)
    try:
        venue_order_id = await venue.submit(o)
        placed = fake_coinbase.orders.orders[venue_order_id]
        assert placed.client_order_id == o.order_id  # never empty, our order id
        assert placed.kind == kind
        state = await venue.get_order(venue_order_id)
        assert state is not None
        assert state.type in (o.spec.type, OrderType.LIMIT)  # an entry bracket is its entry
        assert state.side is o.spec.side
        if o.spec.type is not OrderType.BRACKET or o.spec.bracket.exit_only:  # type: ignore[union-attr]
            assert state.time_in_force is o.spec.time_in_force
        if o.spec.type is OrderType.BRACKET and not o.spec.bracket.exit_only:  # type: ignore[union-attr]
            assert "trigger_bracket_gtc" in fake_coinbase.orders.attached[venue_order_id]
        if o.spec.type is OrderType.MARKET or o.spec.time_in_force in (
            TimeInForce.IOC,
            TimeInForce.FOK,
        ):
            assert state.status is OrderStatus.FILLED  # traded at once at the fake
            trades = await venue.order_trades(venue_order_id)
            assert sum(t.size for t in trades) == state.filled_size > 0
        else:
            assert state.status is OrderStatus.OPEN
        assert fake_coinbase.orders.empty_client_ids == 0
    finally:
        await venue.stop()


async def test_a_refusal_is_venue_rejected_and_post_only_is_honoured(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    venue, _ = venue_for(fake_coinbase, coinbase_keys)
    fake_coinbase.orders.prices["BTC-USD"] = Decimal("100")
    crossing = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("101"), post_only=True)
    try:
        with pytest.raises(VenueRejected, match="POST_ONLY"):
            await venue.submit(crossing)
    finally:
        await venue.stop()


async def test_a_bad_signature_is_refused_and_not_taken_for_a_rejection(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    venue, _ = venue_for(fake_coinbase, coinbase_keys, api_secret=SecretStr(pem))
    before = fake_coinbase.auth_failures
    o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
    try:
        with pytest.raises(CoinbaseHttpError) as caught:
            await venue.submit(o)  # the intent stays NEW; it is not REJECTED
        assert caught.value.status == 401
        assert fake_coinbase.auth_failures == before + 1
        assert fake_coinbase.orders.orders_for(o.order_id) == []
    finally:
        await venue.stop()


@pytest.mark.parametrize(
    "fault",
    ["429", "503", "lost-response", "500-after-processing", "duplicate-failure"],
)
async def test_retries_reuse_the_client_order_id_and_place_one_order(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys, fault: str
) -> None:
    fake = fake_coinbase.orders
    venue, _ = venue_for(fake_coinbase, coinbase_keys)
    if fault == "429":
        fake.rate_limit_next, fake.retry_after = 2, 0.1
    elif fault == "503":
        fake.fail_next = [503, 502]
    elif fault == "lost-response":
        fake.lose_responses, fake.lost_hold_seconds = 1, 1.5
    elif fault == "500-after-processing":
        fake.fail_after_processing = 1
    else:  # the retry is told "duplicate": the venue finds its order, not a rejection
        fake.fail_after_processing, fake.duplicate_as_failure = 1, True
    o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
    calls = fake.calls["create"]
    try:
        venue_order_id = await venue.submit(o)
        placed = fake.orders_for(o.order_id)
        assert [p.order_id for p in placed] == [venue_order_id]
        expected_calls = {
            "429": 3,
            "503": 3,
            "lost-response": 2,
            "500-after-processing": 2,
            "duplicate-failure": 2,
        }
        assert fake.calls["create"] - calls == expected_calls[fault]
        # A resubmission (e.g. after a crash) lands on the same order too.
        assert await venue.submit(o) == venue_order_id
        assert len(fake.orders_for(o.order_id)) == 1
    finally:
        fake.duplicate_as_failure = False
        await venue.stop()


async def test_cancel_edit_and_fills_through_the_user_channel(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    venue, reports = venue_for(fake_coinbase, coinbase_keys, ws=True)
    await venue.start()
    try:
        channel = venue.user_channel
        assert channel is not None
        await fake_coinbase.wait_for(lambda: channel.connected)
        o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
        venue_order_id = await venue.submit(o)
        await venue.edit(
            Order(**{**_fields(o), "venue_order_id": venue_order_id}),
            Decimal("51"),
            Decimal("0.01"),
        )
        assert fake_coinbase.orders.orders[venue_order_id].body["limit_price"] == "51"
        fake_coinbase.orders.fill(venue_order_id, "0.004")
        await fake_coinbase.wait_for(lambda: len(reports.fills) == 1)
        # Cumulative state repeated (a replay, a reconnect snapshot): no new fill.
        fake_coinbase.orders.replay_user_updates()
        await fake_coinbase.drop_connections()
        await fake_coinbase.wait_for(lambda: channel.connections >= 2)
        fake_coinbase.orders.fill(venue_order_id, "0.006")
        await fake_coinbase.wait_for(lambda: len(reports.done) == 1)
        assert [f.size for f in reports.fills] == [Decimal("0.004"), Decimal("0.006")]
        assert len({f.venue_trade_id for f in reports.fills}) == 2
        assert reports.done == [(o.order_id, OrderStatus.FILLED, "")]

        second = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
        second_id = await venue.submit(second)
        acked = Order(**{**_fields(second), "venue_order_id": second_id})
        assert await venue.cancel(acked) is True
        assert fake_coinbase.orders.orders[second_id].status == "CANCELLED"
        # Cancelling again: the venue refuses; its state says canceled, so still True.
        assert await venue.cancel(acked) is True
    finally:
        await venue.stop()


def _fields(o: Order) -> dict[str, Any]:
    return {name: getattr(o, name) for name in Order.__dataclass_fields__}


async def test_user_channel_survives_silence(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    venue, _ = venue_for(fake_coinbase, coinbase_keys, ws=True, heartbeat_timeout_seconds=0.5)
    await venue.start()
    try:
        channel = venue.user_channel
        assert channel is not None
        await fake_coinbase.wait_for(lambda: channel.connected)
        fake_coinbase.silent = True
        await fake_coinbase.wait_for(lambda: not channel.connected, within=5)
        fake_coinbase.silent = False
        await fake_coinbase.wait_for(lambda: channel.connected and channel.connections >= 2)
        await asyncio.sleep(0)
    finally:
        fake_coinbase.silent = False
        await venue.stop()


async def test_a_cancel_before_the_ack_cancels_on_arrival(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    venue, reports = venue_for(fake_coinbase, coinbase_keys, ws=True, timeout_seconds=3.0)
    await venue.start()
    fake = fake_coinbase.orders
    try:
        channel = venue.user_channel
        assert channel is not None
        await fake_coinbase.wait_for(lambda: channel.connected)
        o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
        fake.create_delay = 0.5
        fake.create_pending.clear()
        sending = asyncio.ensure_future(venue.submit(o))
        await asyncio.wait_for(fake.create_pending.wait(), 5)
        assert await venue.cancel(o) is False  # no venue id yet: confirmed by a report
        venue_order_id = await sending
        assert fake.orders[venue_order_id].status == "CANCELLED"
        await fake_coinbase.wait_for(lambda: bool(reports.done))
        assert reports.done == [(o.order_id, OrderStatus.CANCELED, "User requested cancel")]
    finally:
        fake.create_delay = 0.0
        await venue.stop()
