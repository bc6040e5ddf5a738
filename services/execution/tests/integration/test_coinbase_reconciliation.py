"""The execution service on the coinbase venue (in this process, real gRPC, SQLite and
Postgres) against the fake Coinbase: fills through the user channel, lost response then
client retry -> one venue order, and reconciliation of what changed at the venue while the
service was not looking (fail-closed: an unresolvable mismatch keeps trading NOT_SERVING)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.execution.service_layer.venue_reconciliation import TRADING_HEALTH_NAME
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .coinbase_support import CoinbaseKeys, coinbase_keys, coinbase_overrides, fake_coinbase
from .conftest import RunningExecution, execution_settings, start_execution, stop_execution
from .test_execution_grpc import eventually, get, last_price, limit, market_buy

__all__ = ["coinbase_keys", "fake_coinbase"]  # fixtures

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def cb(
    market: MarketApp, execution_db: str, fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> AsyncIterator[RunningExecution]:
    settings = execution_settings(
        execution_db,
        market.server.grpc_port,
        **coinbase_overrides(fake_coinbase, coinbase_keys, execution_coinbase_max_attempts=2),
    )
    running = await start_execution(settings)
    price = await last_price(running)
    fake_coinbase.orders.prices["BTC-USD"] = price
    channel = running.app.venue.user_channel  # type: ignore[union-attr]
    await fake_coinbase.wait_for(lambda: channel.connected)
    try:
        yield running
    finally:
        await stop_execution(running)


async def trading_health(ex: RunningExecution) -> int:
    stub = health_pb2_grpc.HealthStub(ex.channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=TRADING_HEALTH_NAME))
    return int(answer.status)


async def test_market_order_fills_through_the_user_channel(
    cb: RunningExecution, fake_coinbase: FakeCoinbase
) -> None:
    assert await trading_health(cb) == health_pb2.HealthCheckResponse.SERVING
    order = (await cb.stub.SubmitOrder(market_buy("cb-m1", size="0.002"))).order
    done = await eventually(
        lambda: get(cb, order.order_id), lambda o: o.status == pb.ORDER_STATUS_FILLED
    )
    placed = fake_coinbase.orders.orders_for(order.order_id)
    assert [p.order_id for p in placed] == [done.venue_order_id]
    fills = (await cb.stub.ListFills(pb.ListFillsRequest(order_id=order.order_id))).fills
    assert [f.venue_trade_id for f in fills] == [placed[0].fills[0]["trade_id"]]
    # Replayed user-channel state and a reconciliation find nothing new.
    fake_coinbase.orders.replay_user_updates()
    report = await cb.app.reconciler.run_once()  # type: ignore[union-attr]
    assert report.ok and report.fills_applied == 0
    fills = (await cb.stub.ListFills(pb.ListFillsRequest(order_id=order.order_id))).fills
    assert len(fills) == 1
    venues = (await cb.stub.ListVenues(pb.ListVenuesRequest())).venues
    assert [(v.venue, v.health) for v in venues] == [
        (common_pb2.VENUE_COINBASE, pb.VENUE_HEALTH_OK)
    ]


async def test_lost_response_then_client_retry_places_one_venue_order(
    cb: RunningExecution, fake_coinbase: FakeCoinbase
) -> None:
    fake = fake_coinbase.orders
    price = await last_price(cb)
    far = (price / 2).quantize(Decimal("0.01"))
    fake.lose_responses, fake.lost_hold_seconds = 2, 1.5  # both attempts of the venue lost
    request = limit("cb-lost-1", common_pb2.SIDE_BUY, far)
    first = (await cb.stub.SubmitOrder(request)).order
    assert first.status == pb.ORDER_STATUS_NEW  # committed; the venue's answer was lost
    retry = (await cb.stub.SubmitOrder(request)).order  # the client retries
    assert retry.order_id == first.order_id
    assert len(fake.orders_for(first.order_id)) == 1
    reconciler = cb.app.reconciler
    assert reconciler is not None
    reconciler.resend_after = timedelta(0)
    report = await reconciler.run_once()  # sends the unacknowledged intent again
    assert report.ok and report.resent == 1
    acked = await get(cb, first.order_id)
    placed = fake.orders_for(first.order_id)
    assert acked.status == pb.ORDER_STATUS_OPEN
    assert [p.order_id for p in placed] == [acked.venue_order_id]
    assert fake.creates_processed == 1
    assert fake.calls["create"] == 3
    other = limit("cb-lost-1", common_pb2.SIDE_BUY, far - 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cb.stub.SubmitOrder(other)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert len(fake.orders_for(first.order_id)) == 1


async def test_reconciliation_repairs_changes_made_while_not_looking(
    cb: RunningExecution, fake_coinbase: FakeCoinbase
) -> None:
    fake = fake_coinbase.orders
    price = await last_price(cb)
    far = (price / 2).quantize(Decimal("0.01"))
    ids = []
    for n in range(4):
        o = (await cb.stub.SubmitOrder(limit(f"cb-rec-{n}", common_pb2.SIDE_BUY, far))).order
        assert o.status == pb.ORDER_STATUS_OPEN
        ids.append((o.order_id, o.venue_order_id))
    (canceled, _), (partial, _), (filled, _), (hidden, _) = ids
    # Changes the user channel never reports (publish=False): as if we were down.
    fake.cancel_outside(ids[0][1], publish=False)
    fake.fill(ids[1][1], "0.0004", publish=False)
    fake.cancel_outside(ids[1][1], publish=False)
    fake.fill(ids[2][1], "0.001", publish=False)
    fake.hide(ids[3][1], 1)  # one "not found", then found again
    outside = fake.place_outside("BTC-USD", "SELL", "0.002", str(far * 3), publish=False)

    report = await cb.app.reconciler.run_once()  # type: ignore[union-attr]
    assert report.ok, report
    assert (report.finished, report.adopted) == (2, 1)
    assert (await get(cb, canceled)).status == pb.ORDER_STATUS_CANCELED
    got = await get(cb, partial)
    assert (got.status, Decimal(got.filled_size)) == (pb.ORDER_STATUS_CANCELED, Decimal("0.0004"))
    assert (await get(cb, filled)).status == pb.ORDER_STATUS_FILLED
    assert (await get(cb, hidden)).status == pb.ORDER_STATUS_OPEN  # never a false cancel
    adopted = [
        o
        for o in (await cb.stub.ListOrders(pb.ListOrdersRequest())).orders
        if o.venue_order_id == outside.order_id
    ]
    assert len(adopted) == 1 and adopted[0].external
    assert adopted[0].status == pb.ORDER_STATUS_OPEN
    again = await cb.app.reconciler.run_once()  # type: ignore[union-attr]
    assert again.ok and (again.adopted, again.fills_applied, again.finished) == (0, 0, 0)

    # An order the venue keeps not finding: trading stops (fail-closed), nothing cancelled.
    fake.hide(ids[3][1], 1000)
    report = await cb.app.reconciler.run_once()  # type: ignore[union-attr]
    assert [m.order_id for m in report.mismatches] == [hidden]
    assert await trading_health(cb) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cb.stub.SubmitOrder(limit("cb-rec-blocked", common_pb2.SIDE_BUY, far))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    venues = (await cb.stub.ListVenues(pb.ListVenuesRequest())).venues
    assert venues[0].health == pb.VENUE_HEALTH_UNRECONCILED
    assert hidden in venues[0].unresolved_mismatches[0]
    assert (await get(cb, hidden)).status == pb.ORDER_STATUS_OPEN
    # Found again: trading resumes.
    fake.hide(ids[3][1], -1000)
    report = await cb.app.reconciler.run_once()  # type: ignore[union-attr]
    assert report.ok
    assert await trading_health(cb) == health_pb2.HealthCheckResponse.SERVING
    ok = (await cb.stub.SubmitOrder(limit("cb-rec-after", common_pb2.SIDE_BUY, far))).order
    assert ok.status == pb.ORDER_STATUS_OPEN


async def test_changes_while_the_service_is_down_are_reconciled_on_start(
    market: MarketApp,
    execution_db: str,
    fake_coinbase: FakeCoinbase,
    coinbase_keys: CoinbaseKeys,
) -> None:
    settings = execution_settings(
        execution_db,
        market.server.grpc_port,
        **coinbase_overrides(fake_coinbase, coinbase_keys),
    )
    fake = fake_coinbase.orders
    running = await start_execution(settings)
    try:
        far = ((await last_price(running)) / 2).quantize(Decimal("0.01"))
        placed = [
            (await running.stub.SubmitOrder(limit(f"down-{n}", common_pb2.SIDE_BUY, far))).order
            for n in range(3)
        ]
    finally:
        await stop_execution(running)
    # While it is down: one canceled, one partly filled, one filled in two trades.
    fake.cancel_outside(placed[0].venue_order_id)
    fake.fill(placed[1].venue_order_id, "0.0003")
    fake.fill(placed[2].venue_order_id, "0.0006")
    fake.fill(placed[2].venue_order_id, "0.0004")
    fake.hide(placed[1].venue_order_id, 1)  # and a brief "not found" right at start

    running = await start_execution(settings)
    try:
        assert await trading_health(running) == health_pb2.HealthCheckResponse.SERVING
        got = [await get(running, o.order_id) for o in placed]
        assert [g.status for g in got] == [
            pb.ORDER_STATUS_CANCELED,
            pb.ORDER_STATUS_PARTIALLY_FILLED,
            pb.ORDER_STATUS_FILLED,
        ]
        assert [Decimal(g.filled_size) for g in got] == [0, Decimal("0.0003"), Decimal("0.001")]
        fills = (await running.stub.ListFills(pb.ListFillsRequest())).fills
        assert len(fills) == len({f.venue_trade_id for f in fills}) == 3
        assert sum(len(fake.orders_for(o.order_id)) for o in placed) == 3
    finally:
        await stop_execution(running)
