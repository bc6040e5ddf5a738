"""Each risk rule refuses an order through real gRPC: FAILED_PRECONDITION, a block row with
the rule and its numbers, one trade_blocked event - and nothing else changes (no order, no
other event, same portfolio). Every test uses its own account and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution
from .test_execution_grpc import last_price

pytestmark = pytest.mark.asyncio(loop_scope="module")

CENT = Decimal("0.01")
Setup = Callable[[RunningExecution, str, Decimal], Awaitable[None]]


def order(
    account: str,
    coid: str,
    side: int,
    price: Decimal,
    size: str = "0.001",
    product: str = "BTC-USD",
) -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        account_id=account,
        client_order_id=coid,
        product_id=product,
        side=side,  # type: ignore[arg-type]
        type=pb.ORDER_TYPE_LIMIT,
        base_size=size,
        limit_price=str(price.quantize(CENT)),
    )


async def set_limits(ex: RunningExecution, account: str, **limits: object) -> None:
    await ex.stub.SetRiskLimits(
        pb.SetRiskLimitsRequest(limits=pb.RiskLimits(account_id=account, **limits))  # type: ignore[arg-type]
    )


async def filled_by_hand(
    ex: RunningExecution, account: str, coid: str, side: int, resting: Decimal, at: Decimal
) -> None:
    """An order that rests far from the market, then fills (as reported by the venue) at
    ``at``."""
    placed = (await ex.stub.SubmitOrder(order(account, coid, side, resting, size="0.1"))).order
    await ex.app.venue.cancel_quietly(placed.order_id)
    tick = ex.app.market.last_tick("BTC-USD")
    assert tick is not None
    await ex.app.commands.on_fill(
        VenueFill(
            order_id=placed.order_id,
            venue_trade_id=f"{coid}-t1",
            price=at.quantize(CENT),
            size=Decimal("0.1"),
            fee=Decimal("0.01"),
            fee_currency="USD",
            liquidity=Liquidity.MAKER,
            time=tick.time,
        )
    )


async def lose_money(ex: RunningExecution, account: str, price: Decimal) -> None:
    """A losing round trip: buy 0.1 at half the price, sell it at a quarter."""
    await filled_by_hand(ex, account, "loss-buy", common_pb2.SIDE_BUY, price / 2, price / 2)
    await filled_by_hand(ex, account, "loss-sell", common_pb2.SIDE_SELL, price * 2, price / 4)


async def settled_seq(ex: RunningExecution) -> int:
    """The last outbox seq once every committed event is numbered (Postgres numbers them
    just after commit)."""
    sequencer = ex.app.store._sequencer
    for _ in range(200):
        if sequencer is None or not await sequencer._pending():
            break
        await asyncio.sleep(0.02)
    return (await ex.app.store.event_bounds())[1]


async def events_after(ex: RunningExecution, since: int, account: str) -> list[pb.Event]:
    """The account's events after ``since``: read until the stream stays quiet for 0.5 s."""
    call = ex.stub.StreamEvents(pb.StreamEventsRequest(since_seq=since, account_ids=[account]))
    events: list[pb.Event] = []
    try:
        while True:
            try:
                async with asyncio.timeout(0.5 if events else 10):
                    response = await call.read()
            except TimeoutError:
                break
            if response is grpc.aio.EOF:
                break
            events.extend(response.events)
    finally:
        call.cancel()
    return events


async def state_of(ex: RunningExecution, account: str) -> tuple[object, ...]:
    orders = (await ex.stub.ListOrders(pb.ListOrdersRequest(account_id=account))).orders
    positions = (await ex.stub.ListPositions(pb.ListPositionsRequest(account_id=account))).positions
    portfolio = (await ex.stub.GetPortfolio(pb.GetPortfolioRequest(account_id=account))).portfolio
    return (
        sorted((o.order_id, o.status, o.filled_size) for o in orders),
        sorted((p.product_id, p.quantity) for p in positions),
        sorted((c.currency, c.amount) for c in portfolio.cash),
    )


async def assert_refused(
    ex: RunningExecution, account: str, request: pb.SubmitOrderRequest, rule: int
) -> pb.Block:
    before = await state_of(ex, account)
    since = await settled_seq(ex)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ex.stub.SubmitOrder(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    name = pb.RiskRule.Name(rule).removeprefix("RISK_RULE_")
    assert name in (err.value.details() or "")

    blocks = (
        await ex.stub.ListBlocks(pb.ListBlocksRequest(account_id=account, rule=rule))  # type: ignore[arg-type]
    ).blocks
    assert [b.client_order_id for b in blocks] == [request.client_order_id]
    block = blocks[0]
    assert block.rule == rule and block.reason and block.limit
    assert block.product_id == request.product_id and block.base_size == request.base_size

    events = await events_after(ex, since, account)
    assert [e.WhichOneof("payload") for e in events] == ["trade_blocked"]
    assert events[0].trade_blocked.block_id == block.block_id
    assert await state_of(ex, account) == before  # nothing else changed
    return block


async def test_max_order_notional(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await set_limits(execution, "rr-notional", max_order_notional="10")
    block = await assert_refused(
        execution,
        "rr-notional",
        order("rr-notional", "n-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_MAX_ORDER_NOTIONAL,
    )
    assert block.limit == "10" and Decimal(block.actual) > 10


async def test_max_position(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await set_limits(execution, "rr-pos", max_position="0.0005")
    block = await assert_refused(
        execution,
        "rr-pos",
        order("rr-pos", "p-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_MAX_POSITION,
    )
    assert Decimal(block.limit) == Decimal("0.0005")
    assert Decimal(block.actual) == Decimal("0.001")


async def test_max_gross_exposure(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await set_limits(execution, "rr-gross", max_gross_exposure="5")
    block = await assert_refused(
        execution,
        "rr-gross",
        order("rr-gross", "g-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_MAX_GROSS_EXPOSURE,
    )
    assert block.limit == "5" and Decimal(block.actual) > 5


async def test_price_band(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await set_limits(execution, "rr-band", price_band="0.05")
    block = await assert_refused(
        execution,
        "rr-band",
        order("rr-band", "b-1", common_pb2.SIDE_BUY, price / 2),
        pb.RISK_RULE_PRICE_BAND,
    )
    assert block.limit == "0.05" and Decimal(block.actual) > Decimal("0.05")


async def test_product_allow_list(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await set_limits(execution, "rr-allow", allowed_product_ids=["ETH-USD"])
    block = await assert_refused(
        execution,
        "rr-allow",
        order("rr-allow", "a-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_PRODUCT_NOT_ALLOWED,
    )
    assert block.limit == "ETH-USD" and block.actual == "BTC-USD"


async def test_daily_loss(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await lose_money(execution, "rr-daily", price)
    await set_limits(execution, "rr-daily", daily_loss_limit="100")
    block = await assert_refused(
        execution,
        "rr-daily",
        order("rr-daily", "d-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_DAILY_LOSS,
    )
    assert block.limit == "100" and Decimal(block.actual) >= 100


async def test_drawdown_breaker(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await lose_money(execution, "rr-dd", price)
    await set_limits(execution, "rr-dd", max_drawdown="0.01")
    block = await assert_refused(
        execution,
        "rr-dd",
        order("rr-dd", "dd-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_DRAWDOWN,
    )
    assert block.limit == "0.01" and Decimal(block.actual) > Decimal("0.01")


async def test_loss_streak_cooldown(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await lose_money(execution, "rr-cool", price)
    await set_limits(
        execution, "rr-cool", loss_streak_limit=1, loss_cooldown=Duration(seconds=3600)
    )
    block = await assert_refused(
        execution,
        "rr-cool",
        order("rr-cool", "c-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_LOSS_COOLDOWN,
    )
    assert block.limit == "1" and block.actual


async def test_reducing_refuses_an_order_that_grows_the_position(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    await execution.stub.SetTradingState(
        pb.SetTradingStateRequest(
            account_id="rr-reduce", state=pb.TRADING_STATE_REDUCING, reason="test"
        )
    )
    block = await assert_refused(
        execution,
        "rr-reduce",
        order("rr-reduce", "r-1", common_pb2.SIDE_BUY, price * Decimal("0.9")),
        pb.RISK_RULE_REDUCE_ONLY,
    )
    assert Decimal(block.limit) == 0 and block.actual


async def test_halted_refuses_everything(execution: RunningExecution) -> None:
    price = await last_price(execution)
    await execution.stub.HaltTrading(pb.HaltTradingRequest(account_id="rr-halt", reason="test"))
    block = await assert_refused(
        execution,
        "rr-halt",
        order("rr-halt", "h-1", common_pb2.SIDE_SELL, price * Decimal("1.1")),
        pb.RISK_RULE_TRADING_HALTED,
    )
    assert block.limit == "HALTED" and block.actual == "account"
