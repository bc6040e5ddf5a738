"""Faults on the venue edge itself (issue 11, item 2): the Coinbase venue talks to the fake
Coinbase through the fault proxy, which loses the request, loses the response, or resets
the connection mid-answer; after the fault clears the venue's retries (same
client_order_id) leave exactly one venue order per intent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tradeplane.execution.domain.values import OrderType, TimeInForce
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.faultproxy import FaultProxy

from .coinbase_support import CoinbaseKeys, coinbase_keys, fake_coinbase
from .test_coinbase_venue import order, venue_for

__all__ = ["coinbase_keys", "fake_coinbase"]  # fixtures

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("fault", ["lost-request", "lost-response", "reset-mid-answer"])
async def test_one_venue_order_per_intent_whatever_the_edge_does(
    fake_coinbase: FakeCoinbase, coinbase_keys: CoinbaseKeys, fault: str
) -> None:
    port = int(fake_coinbase.rest_url.rsplit(":", 1)[1].split("/")[0])
    async with FaultProxy("127.0.0.1", port) as proxy:
        edge_url = fake_coinbase.rest_url.replace(f":{port}", f":{proxy.port}")
        venue, _ = venue_for(
            fake_coinbase,
            coinbase_keys,
            rest_url=edge_url,
            timeout_seconds=0.4,
            max_attempts=8,
            backoff_min_seconds=0.05,
            backoff_max_seconds=0.2,
        )
        fake = fake_coinbase.orders
        o = order(OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal("50"))
        try:
            # A call first, so a TLS connection is pooled: the faults then hit a request on it.
            await venue.get_order("warm-up")
            submit: asyncio.Task[str] | None = None
            if fault == "lost-request":
                proxy.blackhole(direction="up")
                submit = asyncio.create_task(venue.submit(o))
                await asyncio.sleep(0.6)
                assert fake.orders_for(o.order_id) == [], "a lost request placed an order"
            elif fault == "lost-response":
                proxy.blackhole(direction="down")
                submit = asyncio.create_task(venue.submit(o))
                await asyncio.sleep(0.6)
                assert len(fake.orders_for(o.order_id)) == 1  # placed; its answer was lost
            else:  # the connection is reset while the processed create's answer is held
                fake.create_delay = 0.3
                submit = asyncio.create_task(venue.submit(o))
                await asyncio.sleep(0.15)
                proxy.reset_peer()
                fake.create_delay = 0.0
                await asyncio.sleep(0.2)
                assert len(fake.orders_for(o.order_id)) == 1
            proxy.clear()
            proxy.reset_peer()  # connections that lost bytes cannot be trusted again
            venue_order_id = await asyncio.wait_for(submit, 10)
            placed = fake.orders_for(o.order_id)
            assert [p.order_id for p in placed] == [venue_order_id]
            assert proxy.connections_total >= 2  # it did reconnect and retry
        finally:
            await venue.stop()
