"""The Coinbase venue reports the fills behind one cumulative user-channel update (read
back from one REST fill listing) together, through ``on_fills`` - not one call each."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from tradeplane.execution.domain.values import OrderStatus, OrderType, TimeInForce
from tradeplane.execution.service_layer.ports import VenueFill
from tradeplane.testing.fakes.coinbase import FakeCoinbase

from .coinbase_support import CoinbaseKeys, coinbase_keys, fake_coinbase
from .test_coinbase_venue import order, venue_for

__all__ = ["coinbase_keys", "fake_coinbase"]  # fixtures
pytestmark = pytest.mark.asyncio(loop_scope="module")  # the fake's loop


class Reports:
    def __init__(self) -> None:
        self.calls: list[list[VenueFill]] = []
        self.done: list[tuple[str, OrderStatus, str]] = []

    async def on_fill(self, report: VenueFill) -> None:
        self.calls.append([report])

    async def on_fills(self, reports: Sequence[VenueFill]) -> None:
        self.calls.append(list(reports))

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        self.done.append((order_id, status, reason))


async def test_a_cumulative_jump_reports_its_fills_in_one_call(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys
) -> None:
    venue, _ = venue_for(fake_coinbase, coinbase_keys, ws=True)
    reports = Reports()
    venue.bind(reports)
    await venue.start()
    try:
        channel = venue.user_channel
        assert channel is not None
        await fake_coinbase.wait_for(lambda: channel.connected)
        o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
        venue_order_id = await venue.submit(o)
        # Three fills, one update (the cumulative size after all of them), the last fill
        # completing the order.
        trade_ids = fake_coinbase.orders.fill_many(
            [(venue_order_id, size, None) for size in ("0.002", "0.003", "0.005")]
        )
        await fake_coinbase.wait_for(lambda: len(reports.done) == 1)
        assert [[f.venue_trade_id for f in call] for call in reports.calls] == [trade_ids]
        assert {f.order_id for f in reports.calls[0]} == {o.order_id}
        assert reports.done == [(o.order_id, OrderStatus.FILLED, "")]
        # The same state again (a replay): nothing new is reported.
        fake_coinbase.orders.replay_user_updates()
        await fake_coinbase.drop_connections()
        await fake_coinbase.wait_for(lambda: channel.connections >= 2)
        assert len(reports.calls) == 1
    finally:
        await venue.stop()
