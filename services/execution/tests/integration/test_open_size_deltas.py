"""Postgres keeps the working orders' remaining size per (account, product, side) as deltas
appended by a trigger (migration 0007), folded now and then by the outbox sequencer: after
submits, partial and full fills, cancels and the kill switch, the deltas sum to exactly what
summing the orders gives, before and after a fold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution
from .test_execution_grpc import last_price, limit

pytestmark = pytest.mark.asyncio(loop_scope="module")

FROM_ORDERS = """
SELECT account_id, product_id, side, sum(base_size::numeric - filled_size::numeric)
  FROM orders
 WHERE status IN ('NEW', 'OPEN', 'PARTIALLY_FILLED') AND base_size IS NOT NULL
 GROUP BY 1, 2, 3 HAVING sum(base_size::numeric - filled_size::numeric) <> 0
"""
FROM_DELTAS = """
SELECT account_id, product_id, side, sum(delta) FROM open_size_deltas
 GROUP BY 1, 2, 3 HAVING sum(delta) <> 0
"""


async def sums(execution: RunningExecution, sql: str) -> dict[tuple[str, str, str], Decimal]:
    async with execution.app.engine.connect() as conn:
        return {(a, p, s): Decimal(v) for a, p, s, v in (await conn.execute(text(sql))).all()}


async def test_deltas_sum_to_the_working_orders(execution: RunningExecution) -> None:
    app = execution.app
    if app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite sums the orders themselves (one writer, embedded)")
    price = await last_price(execution)
    far_buy = (price / 2).quantize(Decimal("0.01"))
    far_sell = (price * 2).quantize(Decimal("0.01"))
    orders = []
    for n in range(6):
        side, at = (common_pb2.SIDE_BUY, far_buy) if n % 2 else (common_pb2.SIDE_SELL, far_sell)
        request = limit(f"osd-{n}", side, at, size=f"0.00{n + 1}")
        if n == 5:
            request.account_id = "osd-other"
        orders.append((await execution.stub.SubmitOrder(request)).order)
    assert await sums(execution, FROM_DELTAS) == await sums(execution, FROM_ORDERS) != {}

    tick = app.market.last_tick("BTC-USD")
    assert tick is not None

    async def fill(order: pb.Order, trade: str, size: str) -> None:
        await app.venue.cancel_quietly(order.order_id)  # fills are reported by hand
        await app.commands.on_fill(
            VenueFill(
                order_id=order.order_id,
                venue_trade_id=trade,
                price=Decimal(order.limit_price),
                size=Decimal(size),
                fee=Decimal("0.01"),
                fee_currency="USD",
                liquidity=Liquidity.MAKER,
                time=tick.time,
            )
        )

    await fill(orders[1], "osd-t1", "0.0005")  # partial
    await fill(orders[3], "osd-t2", "0.004")  # full
    await execution.stub.CancelOrder(pb.CancelOrderRequest(order_id=orders[0].order_id))
    assert await sums(execution, FROM_DELTAS) == await sums(execution, FROM_ORDERS)

    sequencer = app.store._sequencer
    assert sequencer is not None
    await sequencer.maintain()  # fold: one row per key, same sums
    folded = await sums(execution, FROM_DELTAS)
    assert folded == await sums(execution, FROM_ORDERS)
    async with app.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM open_size_deltas"))).scalar_one()
    assert rows == len(folded)

    # The kill switch cancels every working order: nothing is left open anywhere.
    await execution.stub.HaltTrading(pb.HaltTradingRequest(all_accounts=True, reason="test"))
    assert await sums(execution, FROM_DELTAS) == await sums(execution, FROM_ORDERS) == {}
