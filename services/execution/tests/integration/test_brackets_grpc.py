"""Bracket orders on the paper venue, through gRPC: the exit legs become live once the entry
has filled, and a fill of one leg cancels the other (one-cancels-other).

Prices are chosen so that the random-walk market never reaches them (entry at half the
price, take-profit at twice, stop-loss at a quarter); the fills are then reported by hand,
as the venue would, which makes the test deterministic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution
from .test_execution_grpc import eventually, get, last_price

pytestmark = pytest.mark.asyncio(loop_scope="module")

CENT = Decimal("0.01")


def bracket(coid: str, price: Decimal, size: str = "0.01") -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        client_order_id=coid,
        product_id="BTC-USD",
        side=common_pb2.SIDE_BUY,
        type=pb.ORDER_TYPE_BRACKET,
        base_size=size,
        limit_price=str((price / 2).quantize(CENT)),
        bracket=pb.BracketSpec(
            take_profit_price=str((price * 2).quantize(CENT)),
            stop_loss_trigger_price=str((price / 4).quantize(CENT)),
        ),
    )


async def fill(ex: RunningExecution, order_id: str, trade: str, price: str, size: str) -> None:
    tick = ex.app.market.last_tick("BTC-USD")
    assert tick is not None
    await ex.app.commands.on_fill(
        VenueFill(
            order_id=order_id,
            venue_trade_id=trade,
            price=Decimal(price),
            size=Decimal(size),
            fee=Decimal("0.01"),
            fee_currency="USD",
            liquidity=Liquidity.MAKER,
            time=tick.time,
        )
    )


async def legs_of(ex: RunningExecution, parent: str) -> dict[int, pb.Order]:
    orders = (await ex.stub.ListOrders(pb.ListOrdersRequest())).orders
    return {o.bracket_leg: o for o in orders if o.parent_order_id == parent}


async def test_legs_go_live_after_the_entry_fills_and_one_fill_cancels_the_other(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    entry = (await execution.stub.SubmitOrder(bracket("br-1", price))).order
    assert entry.status == pb.ORDER_STATUS_OPEN
    assert entry.bracket_leg == pb.BRACKET_LEG_ENTRY
    assert await legs_of(execution, entry.order_id) == {}  # nothing before the entry fills

    await execution.app.venue.cancel_quietly(entry.order_id)  # we report its fills by hand
    await fill(execution, entry.order_id, "br-1-t1", entry.limit_price, "0.004")
    assert await legs_of(execution, entry.order_id) == {}  # partially filled: still waiting
    await fill(execution, entry.order_id, "br-1-t2", entry.limit_price, "0.006")
    assert (await get(execution, entry.order_id)).status == pb.ORDER_STATUS_FILLED

    legs = await eventually(
        lambda: legs_of(execution, entry.order_id),
        lambda ls: len(ls) == 2 and all(o.status == pb.ORDER_STATUS_OPEN for o in ls.values()),
    )
    tp, sl = legs[pb.BRACKET_LEG_TAKE_PROFIT], legs[pb.BRACKET_LEG_STOP_LOSS]
    assert (tp.side, sl.side) == (common_pb2.SIDE_SELL, common_pb2.SIDE_SELL)
    assert (tp.type, sl.type) == (pb.ORDER_TYPE_LIMIT, pb.ORDER_TYPE_STOP_LIMIT)
    assert Decimal(tp.base_size) == Decimal(sl.base_size) == Decimal("0.01")
    assert Decimal(tp.limit_price) == (price * 2).quantize(CENT)
    assert Decimal(sl.stop_price) == (price / 4).quantize(CENT)
    assert (tp.client_order_id, sl.client_order_id) == ("br-1-tp", "br-1-sl")
    book = execution.app.venue._book
    assert tp.order_id in book and sl.order_id in book  # both working at the venue

    # The take-profit fills: the stop-loss is cancelled, at the venue and in the database.
    await execution.app.venue.cancel_quietly(tp.order_id)
    await fill(execution, tp.order_id, "br-1-tp-t1", tp.limit_price, "0.01")
    assert (await get(execution, tp.order_id)).status == pb.ORDER_STATUS_FILLED
    after = await get(execution, sl.order_id)
    assert after.status == pb.ORDER_STATUS_CANCELED
    assert after.status_reason == "OCO: the take-profit leg filled"
    assert sl.order_id not in book
    positions = (await execution.stub.ListPositions(pb.ListPositionsRequest())).positions
    assert [Decimal(p.quantity) for p in positions] == []  # flat again


async def test_a_bracket_entry_cancelled_after_a_partial_fill_protects_what_filled(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    entry = (await execution.stub.SubmitOrder(bracket("br-2", price))).order
    await execution.app.venue.cancel_quietly(entry.order_id)
    await fill(execution, entry.order_id, "br-2-t1", entry.limit_price, "0.003")
    await execution.stub.CancelOrder(pb.CancelOrderRequest(order_id=entry.order_id))
    legs = await eventually(
        lambda: legs_of(execution, entry.order_id),
        lambda ls: len(ls) == 2 and all(o.status == pb.ORDER_STATUS_OPEN for o in ls.values()),
    )
    assert {Decimal(o.base_size) for o in legs.values()} == {Decimal("0.003")}

    # The stop-loss fills this time: the take-profit goes.
    sl = legs[pb.BRACKET_LEG_STOP_LOSS]
    await execution.app.venue.cancel_quietly(sl.order_id)
    await fill(execution, sl.order_id, "br-2-sl-t1", str((price / 4).quantize(CENT)), "0.003")
    tp = await get(execution, legs[pb.BRACKET_LEG_TAKE_PROFIT].order_id)
    assert tp.status == pb.ORDER_STATUS_CANCELED
    assert tp.status_reason == "OCO: the stop-loss leg filled"


async def test_an_exit_only_bracket_rests_as_one_order_and_exits_when_the_stop_is_crossed(
    execution: RunningExecution,
) -> None:
    """Exit-only (no entry): one order at the venue, no child legs; it closes a position at
    the take-profit, or - once a trade crosses the stop trigger - at the stop-loss (a market
    exit when that has no limit)."""
    price = await last_price(execution)
    bought = (
        await execution.stub.SubmitOrder(
            pb.SubmitOrderRequest(
                client_order_id="xo-long",
                product_id="BTC-USD",
                side=common_pb2.SIDE_BUY,
                type=pb.ORDER_TYPE_MARKET,
                base_size="0.02",
            )
        )
    ).order
    # A market order fills what the top of book holds; the rest is cancelled.
    bought = await eventually(
        lambda: get(execution, bought.order_id),
        lambda o: o.status in (pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED),
    )
    held = Decimal(bought.filled_size)
    size = (held / 2).quantize(Decimal("0.00000001"))
    assert size > 0

    def exit_only(coid: str, trigger: Decimal) -> pb.SubmitOrderRequest:
        return pb.SubmitOrderRequest(
            client_order_id=coid,
            product_id="BTC-USD",
            side=common_pb2.SIDE_SELL,
            type=pb.ORDER_TYPE_BRACKET,
            base_size=str(size),
            bracket=pb.BracketSpec(
                take_profit_price=str((price * 2).quantize(CENT)),
                stop_loss_trigger_price=str(trigger.quantize(CENT)),
                exit_only=True,
            ),
        )

    # Far from both prices: it rests, alone.
    resting = (await execution.stub.SubmitOrder(exit_only("xo-1", price / 4))).order
    assert resting.status == pb.ORDER_STATUS_OPEN
    assert resting.order_id in execution.app.venue._book
    assert await legs_of(execution, resting.order_id) == {}
    cancelled = (
        await execution.stub.CancelOrder(pb.CancelOrderRequest(order_id=resting.order_id))
    ).order
    assert cancelled.status == pb.ORDER_STATUS_CANCELED

    # The stop trigger (a sell stops when the price falls to it) is already crossed: the
    # order leaves at once as a market exit and the position shrinks by its size.
    crossed = (await execution.stub.SubmitOrder(exit_only("xo-2", price * Decimal("1.5")))).order
    done = await eventually(
        lambda: get(execution, crossed.order_id),
        lambda o: o.status in (pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED),
    )
    assert Decimal(done.filled_size) > 0
    assert await legs_of(execution, crossed.order_id) == {}
    positions = (await execution.stub.ListPositions(pb.ListPositionsRequest())).positions
    assert [Decimal(p.quantity) for p in positions] == [held - Decimal(done.filled_size)]
