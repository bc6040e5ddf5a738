"""Venue acks: an order still as its intent committed it is acknowledged in one statement
without a read (Postgres); one that changed in between (here: filled before its ack) takes
the locking path and keeps what changed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tradeplane.execution.adapters.pg_writer import PgTx
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution
from .test_execution_grpc import last_price, limit

pytestmark = pytest.mark.asyncio(loop_scope="module")


def spy_on_unchanged_acks(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Record what ``PgTx.ack_unchanged`` (the real one) acknowledged."""
    seen: list[set[str]] = []
    real = PgTx.ack_unchanged

    async def spy(self: PgTx, pairs: Any) -> set[str]:
        acked = await real(self, pairs)
        seen.append(acked)
        return acked

    monkeypatch.setattr(PgTx, "ack_unchanged", spy)
    return seen


async def events_of(execution: RunningExecution, order_id: str, until: Any) -> list[pb.Event]:
    """The outbox events of one order, from the start, read until ``until(event)``."""
    found: list[pb.Event] = []
    call = execution.stub.StreamEvents(pb.StreamEventsRequest(since_seq=0))
    try:
        async with asyncio.timeout(10):
            async for response in call:
                for e in response.events:
                    kind = e.WhichOneof("payload")
                    if kind == "order_submitted" and e.order_submitted.order_id == order_id:
                        found.append(e)
                    elif kind == "order_updated" and e.order_updated.order_id == order_id:
                        found.append(e)
                        if until(e):
                            return found
    finally:
        call.cancel()
    return found


async def test_an_unchanged_order_is_acknowledged_in_one_statement(
    execution: RunningExecution, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy_on_unchanged_acks(monkeypatch)
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    order = (await execution.stub.SubmitOrder(limit("ack-1", common_pb2.SIDE_BUY, far))).order
    assert order.status == pb.ORDER_STATUS_OPEN
    assert order.venue_order_id == f"paper-{order.order_id}"
    postgres = execution.app.engine.dialect.name == "postgresql"
    assert seen == ([{order.order_id}] if postgres else [])  # SQLite: the locking path
    events = await events_of(execution, order.order_id, lambda e: True)
    assert [e.WhichOneof("payload") for e in events] == ["order_submitted", "order_updated"]
    assert events[1].order_updated.status == pb.ORDER_STATUS_OPEN
    assert events[1].order_updated.venue_order_id == order.venue_order_id


async def test_an_order_filled_before_its_ack_keeps_the_fill(
    execution: RunningExecution, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy_on_unchanged_acks(monkeypatch)
    app = execution.app
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    real_submit = app.venue.submit

    async def submit_then_fill(order: Order) -> str:
        venue_order_id = await real_submit(order)
        await app.venue.cancel_quietly(order.order_id)  # the book does not fill it itself
        tick = app.market.last_tick("BTC-USD")
        assert tick is not None
        # A fill reported before the venue's answer reaches us (it happens on Coinbase).
        await app.commands.on_fill(
            VenueFill(
                order_id=order.order_id,
                venue_trade_id=f"{venue_order_id}-early",
                price=far,
                size=Decimal("0.0004"),
                fee=Decimal("0.01"),
                fee_currency="USD",
                liquidity=Liquidity.MAKER,
                time=tick.time,
            )
        )
        return venue_order_id

    monkeypatch.setattr(app.venue, "submit", submit_then_fill)
    order = (
        await execution.stub.SubmitOrder(limit("ack-2", common_pb2.SIDE_BUY, far, size="0.001"))
    ).order
    assert order.status == pb.ORDER_STATUS_PARTIALLY_FILLED
    assert Decimal(order.filled_size) == Decimal("0.0004")
    assert order.venue_order_id == f"paper-{order.order_id}"
    # The one-statement ack found the row changed and left it to the locking path.
    assert all(order.order_id not in acked for acked in seen)
    got = (await execution.stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id))).order
    assert got.status == pb.ORDER_STATUS_PARTIALLY_FILLED
    assert got.venue_order_id == order.venue_order_id
    events = await events_of(
        execution, order.order_id, lambda e: e.order_updated.venue_order_id != ""
    )
    statuses = [e.order_updated.status for e in events if e.HasField("order_updated")]
    # The fill (PARTIALLY_FILLED, no venue id yet), then the ack adding the venue id only.
    assert statuses == [pb.ORDER_STATUS_PARTIALLY_FILLED, pb.ORDER_STATUS_PARTIALLY_FILLED]
    assert events[-1].order_updated.venue_order_id == order.venue_order_id
