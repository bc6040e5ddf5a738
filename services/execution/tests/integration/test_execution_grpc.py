"""ExecutionService over real gRPC, with a real market service feeding the paper venue,
against SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

import grpc
import pytest

from tradeplane.execution.domain.orders import Order, OrderSpec
from tradeplane.execution.domain.values import OrderType, Side, TimeInForce, Venue
from tradeplane.execution.service_layer.commands import new_id, utcnow
from tradeplane.market.entrypoints.bootstrap import MarketApp
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution, execution_settings, start_execution, stop_execution

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")
ACCOUNT = "paper-main"


async def eventually(
    fetch: Callable[[], Awaitable[T]], ok: Callable[[T], bool], seconds: float = 10.0
) -> T:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await fetch()
        if ok(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {seconds}s; last value: {value}")
        await asyncio.sleep(0.05)


def market_buy(coid: str, size: str = "0.001", **kw: object) -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        client_order_id=coid,
        product_id="BTC-USD",
        side=common_pb2.SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        base_size=size,
        **kw,  # type: ignore[arg-type]
    )


def limit(coid: str, side: int, price: Decimal, size: str = "0.001") -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        client_order_id=coid,
        product_id="BTC-USD",
        side=side,  # type: ignore[arg-type]
        type=pb.ORDER_TYPE_LIMIT,
        base_size=size,
        limit_price=str(price),
    )


async def get(ex: RunningExecution, order_id: str) -> pb.Order:
    return (await ex.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order


async def last_price(ex: RunningExecution) -> Decimal:
    tick = await eventually(
        lambda: asyncio.sleep(0, ex.app.market.last_tick("BTC-USD")), lambda t: t is not None
    )
    assert tick is not None
    return tick.price


async def read_events(
    ex: RunningExecution, since: int | None, count: int, **kw: object
) -> tuple[list[pb.Event], bool]:
    request = pb.StreamEventsRequest(**kw)  # type: ignore[arg-type]
    if since is not None:
        request.since_seq = since
    call = ex.stub.StreamEvents(request)
    events: list[pb.Event] = []
    reset = False
    try:
        async with asyncio.timeout(10):
            async for response in call:
                reset = reset or response.reset
                events.extend(response.events)
                if len(events) >= count:
                    break
    finally:
        call.cancel()
    return events, reset


async def test_market_order_fills_with_taker_fee(execution: RunningExecution) -> None:
    await last_price(execution)
    submitted = (await execution.stub.SubmitOrder(market_buy("m-1"))).order
    assert submitted.client_order_id == "m-1" and submitted.account_id == ACCOUNT
    order = await eventually(
        lambda: get(execution, submitted.order_id),
        lambda o: o.status in (pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED),
    )
    fills = (await execution.stub.ListFills(pb.ListFillsRequest(order_id=order.order_id))).fills
    assert fills, "a market order fills at once"
    total = sum(Decimal(f.size) for f in fills)
    assert Decimal(order.filled_size) == total
    for f in fills:
        assert f.liquidity == pb.LIQUIDITY_TAKER
        expected = (Decimal(f.price) * Decimal(f.size) * Decimal("0.002")).quantize(Decimal("1e-8"))
        assert Decimal(f.fee.amount) == expected and f.fee.currency == "USD"
    if total == Decimal("0.001"):
        assert order.status == pb.ORDER_STATUS_FILLED
    else:  # the top of book was thinner than the order: IOC cancelled the rest
        assert order.status == pb.ORDER_STATUS_CANCELED and "remainder" in order.status_reason
    positions = (await execution.stub.ListPositions(pb.ListPositionsRequest())).positions
    assert [(p.product_id, Decimal(p.quantity)) for p in positions] == [("BTC-USD", total)]
    portfolio = (await execution.stub.GetPortfolio(pb.GetPortfolioRequest())).portfolio
    cash = {m.currency: Decimal(m.amount) for m in portfolio.cash}
    paid = sum(Decimal(f.price) * Decimal(f.size) + Decimal(f.fee.amount) for f in fills)
    assert cash["USD"] == Decimal("100000") - paid
    assert Decimal(portfolio.fees_paid) == sum(Decimal(f.fee.amount) for f in fills)


async def test_limit_orders_rest_then_fill_as_maker_when_price_crosses(
    execution: RunningExecution,
) -> None:
    await last_price(execution)
    # One just below the bid, one just above the ask: neither crosses on arrival, and the
    # random walk soon prints through one of them. A tick landing between reading the quote
    # and the orders' arrival can make one marketable (it then fills as taker): place the
    # pair again, with the new quote, until both rest.
    for attempt in range(10):
        tick = execution.app.market.last_tick("BTC-USD")
        assert tick is not None
        buy = (
            await execution.stub.SubmitOrder(
                limit(f"l-buy-{attempt}", common_pb2.SIDE_BUY, tick.best_bid - Decimal("0.01"))
            )
        ).order
        sell = (
            await execution.stub.SubmitOrder(
                limit(f"l-sell-{attempt}", common_pb2.SIDE_SELL, tick.best_ask + Decimal("0.01"))
            )
        ).order
        if buy.status == pb.ORDER_STATUS_OPEN and sell.status == pb.ORDER_STATUS_OPEN:
            break
        for order in (buy, sell):
            if order.status == pb.ORDER_STATUS_OPEN:
                await execution.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id))
    assert buy.status == pb.ORDER_STATUS_OPEN and sell.status == pb.ORDER_STATUS_OPEN
    assert buy.venue_order_id.startswith("paper-")

    async def statuses() -> list[pb.Order]:
        return [await get(execution, buy.order_id), await get(execution, sell.order_id)]

    orders = await eventually(
        statuses,
        lambda os: any(
            o.status in (pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_PARTIALLY_FILLED) for o in os
        ),
        seconds=30,
    )
    filled = next(o for o in orders if Decimal(o.filled_size) > 0)
    fills = (await execution.stub.ListFills(pb.ListFillsRequest(order_id=filled.order_id))).fills
    assert all(f.liquidity == pb.LIQUIDITY_MAKER for f in fills)
    assert all(Decimal(f.price) == Decimal(filled.limit_price) for f in fills)
    fee = sum(Decimal(f.fee.amount) for f in fills)
    notional = sum(Decimal(f.price) * Decimal(f.size) for f in fills)
    assert fee == pytest.approx(notional * Decimal("0.001"), abs=Decimal("1e-7"))


async def test_idempotent_resubmit_and_already_exists(execution: RunningExecution) -> None:
    price = await last_price(execution)
    request = limit("idem-1", common_pb2.SIDE_BUY, (price / 2).quantize(Decimal("0.01")))
    first = (await execution.stub.SubmitOrder(request)).order
    again = (await execution.stub.SubmitOrder(request)).order
    assert again.order_id == first.order_id
    listed = (await execution.stub.ListOrders(pb.ListOrdersRequest(account_id=ACCOUNT))).orders
    assert [o.order_id for o in listed].count(first.order_id) == 1
    assert sum(o.client_order_id == "idem-1" for o in listed) == 1
    other = limit("idem-1", common_pb2.SIDE_BUY, (price / 3).quantize(Decimal("0.01")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(other)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idem-1" in (err.value.details() or "")


async def test_risk_refusal_is_blocked_listed_and_published(execution: RunningExecution) -> None:
    await last_price(execution)
    limits = (
        await execution.stub.SetRiskLimits(
            pb.SetRiskLimitsRequest(limits=pb.RiskLimits(max_order_notional="10"))
        )
    ).limits
    assert limits.account_id == ACCOUNT and limits.max_order_notional == "10"
    got = (await execution.stub.GetRiskLimits(pb.GetRiskLimitsRequest())).limits
    assert got.max_order_notional == "10" and got.updated_by
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(market_buy("too-big"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert "MAX_ORDER_NOTIONAL" in details and "10" in details
    blocks = (
        await execution.stub.ListBlocks(
            pb.ListBlocksRequest(product_id="BTC-USD", rule=pb.RISK_RULE_MAX_ORDER_NOTIONAL)
        )
    ).blocks
    assert [b.client_order_id for b in blocks] == ["too-big"]
    assert blocks[0].limit == "10" and Decimal(blocks[0].actual) > 10
    none = (
        await execution.stub.ListBlocks(pb.ListBlocksRequest(rule=pb.RISK_RULE_DRAWDOWN))
    ).blocks
    assert none == []
    assert not (await execution.stub.ListOrders(pb.ListOrdersRequest())).orders
    events, _ = await read_events(execution, 0, 1, event_types=[pb.EVENT_TYPE_TRADE_BLOCKED])
    assert events[0].WhichOneof("payload") == "trade_blocked"
    assert events[0].trade_blocked.block_id == blocks[0].block_id


async def test_kill_switch_cancels_open_orders_and_blocks_new_ones(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    rest = (
        await execution.stub.SubmitOrder(
            limit("k-1", common_pb2.SIDE_BUY, (price / 2).quantize(Decimal("0.01")))
        )
    ).order
    assert rest.status == pb.ORDER_STATUS_OPEN
    change = (
        await execution.stub.HaltTrading(pb.HaltTradingRequest(account_id=ACCOUNT, reason="test"))
    ).change
    assert change.state == pb.TRADING_STATE_HALTED and change.canceled_order_count == 1
    assert (await get(execution, rest.order_id)).status == pb.ORDER_STATUS_CANCELED
    assert execution.app.venue.working_count == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(market_buy("k-2"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "TRADING_HALTED" in (err.value.details() or "")
    state = await execution.stub.GetTradingState(pb.GetTradingStateRequest(account_id=ACCOUNT))
    assert state.effective_state == pb.TRADING_STATE_HALTED
    assert state.global_state == pb.TRADING_STATE_ACTIVE
    resumed = await execution.stub.SetTradingState(
        pb.SetTradingStateRequest(account_id=ACCOUNT, state=pb.TRADING_STATE_ACTIVE)
    )
    assert resumed.change.previous_state == pb.TRADING_STATE_HALTED
    ok = (await execution.stub.SubmitOrder(market_buy("k-3"))).order
    assert ok.order_id


async def test_stream_events_resume_returns_exactly_the_missed_events(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    await execution.stub.SubmitOrder(limit("s-1", common_pb2.SIDE_BUY, far))
    first, _ = await read_events(execution, 0, 2)
    assert [e.seq for e in first] == [1, 2]
    assert first[0].WhichOneof("payload") == "order_submitted"
    cursor = first[-1].seq
    # While "disconnected": more changes.
    await execution.stub.SubmitOrder(limit("s-2", common_pb2.SIDE_BUY, far))
    await execution.stub.CancelOrder(pb.CancelOrderRequest(client_order_id="s-2"))
    everything, _ = await read_events(execution, 0, 5)  # 2 x (submitted, acked), cancelled
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))  # gapless
    missed, reset = await read_events(execution, cursor, len(everything) - cursor)
    assert not reset
    assert [e.SerializeToString() for e in missed] == [
        e.SerializeToString() for e in everything[cursor:]
    ]
    # Live: a stream opened without a cursor sees only what happens next.
    live = asyncio.ensure_future(read_events(execution, None, 1))
    await asyncio.sleep(0.3)
    await execution.stub.SubmitOrder(limit("s-3", common_pb2.SIDE_BUY, far))
    live_events, _ = await live
    assert live_events[0].seq == everything[-1].seq + 1
    assert live_events[0].order_submitted.client_order_id == "s-3"


async def test_events_of_a_shared_batch_carry_their_own_callers_trace(
    execution: RunningExecution,
) -> None:
    """Concurrent submits share their transactions (group commit), yet each order's events
    carry the trace of the call that placed it (a consumer continues that trace)."""
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    _, before = await execution.app.store.event_bounds()
    traces = {f"tr-{i}": f"{i + 1:032x}" for i in range(8)}

    async def submit(coid: str, trace_id: str) -> None:
        parent = f"00-{trace_id}-{1:016x}-01"
        await execution.stub.SubmitOrder(
            limit(coid, common_pb2.SIDE_BUY, far), metadata=(("traceparent", parent),)
        )

    await asyncio.gather(*(submit(c, t) for c, t in traces.items()))
    events, _ = await read_events(execution, before, 2 * len(traces))  # submitted, acked
    seen: dict[str, set[str]] = {}
    for e in events:
        order = e.order_submitted if e.HasField("order_submitted") else e.order_updated
        seen.setdefault(order.client_order_id, set()).add(e.trace_context["traceparent"])
    assert seen.keys() == traces.keys()
    for coid, parents in seen.items():
        assert {p.split("-")[1] for p in parents} == {traces[coid]}, coid


async def test_restart_keeps_open_orders_and_sends_unacknowledged_intents(
    market: MarketApp, execution_db: str
) -> None:
    settings = execution_settings(execution_db, market.server.grpc_port)
    first = await start_execution(settings)
    price = await last_price(first)
    rest = (
        await first.stub.SubmitOrder(
            limit("r-1", common_pb2.SIDE_BUY, (price / 2).quantize(Decimal("0.01")))
        )
    ).order
    # An intent committed but never sent (as if killed between commit and venue ack).
    spec = OrderSpec(
        account_id=ACCOUNT,
        client_order_id="r-2",
        product_id="BTC-USD",
        side=Side.BUY,
        type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        venue=Venue.PAPER,
        base_size=Decimal("0.0001"),
    )
    intent = Order.new(new_id(), spec, utcnow())
    async with first.app.store.transaction() as tx:
        await tx.insert_order(intent)
    await stop_execution(first)

    second = await start_execution(settings)
    try:
        assert second.app.venue.working_count >= 1
        assert (await get(second, rest.order_id)).status == pb.ORDER_STATUS_OPEN
        sent = await eventually(
            lambda: get(second, intent.order_id),
            lambda o: o.status in (pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED),
        )
        assert sent.venue_order_id == f"paper-{intent.order_id}"
        fills = (await second.stub.ListFills(pb.ListFillsRequest(order_id=sent.order_id))).fills
        assert sum(Decimal(f.size) for f in fills) == Decimal(sent.filled_size) > 0
        cancelled = (
            await second.stub.CancelOrder(pb.CancelOrderRequest(order_id=rest.order_id))
        ).order
        assert cancelled.status == pb.ORDER_STATUS_CANCELED
    finally:
        await stop_execution(second)


async def test_decision_record_is_stored_with_the_order(execution: RunningExecution) -> None:
    price = await last_price(execution)
    request = limit("d-1", common_pb2.SIDE_BUY, (price / 2).quantize(Decimal("0.01")))
    request.decision.strategy = "sma_crossover"
    request.decision.reason = "fast SMA crossed above slow SMA"
    request.decision.inputs.update({"fast": 10, "slow": 30})
    request.decision.trace_id = "0af7651916cd43dd8448eb211c80319c"
    order = (await execution.stub.SubmitOrder(request)).order
    assert order.decision_id
    listed = (
        await execution.stub.ListDecisions(pb.ListDecisionsRequest(strategy="sma_crossover"))
    ).decisions
    assert [d.decision_id for d in listed] == [order.decision_id]
    assert list(listed[0].order_ids) == [order.order_id]
    got = await execution.stub.GetDecision(pb.GetDecisionRequest(decision_id=order.decision_id))
    assert got.decision.inputs["slow"] == 30 and [o.order_id for o in got.orders] == [
        order.order_id
    ]


BAD_ORDERS = [
    (pb.SubmitOrderRequest(product_id="BTC-USD"), "client_order_id"),
    (market_buy("bad-1", size="abc"), "base_size"),
    (market_buy("bad-2", size="-1"), "base_size"),
    (pb.SubmitOrderRequest(client_order_id="bad-3", product_id="NOPE-USD"), "product_id"),
    (
        pb.SubmitOrderRequest(
            client_order_id="bad-4",
            product_id="BTC-USD",
            side=common_pb2.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            base_size="0.001",
        ),
        "limit_price",
    ),
    (market_buy("bad-5", time_in_force=pb.TIME_IN_FORCE_GTC), "time_in_force"),
    (
        pb.SubmitOrderRequest(
            client_order_id="bad-6",
            product_id="BTC-USD",
            type=pb.ORDER_TYPE_MARKET,
            base_size="0.001",
        ),
        "side",
    ),
]


async def test_bad_order_inputs_name_the_field(execution: RunningExecution) -> None:
    await last_price(execution)
    for request, field in BAD_ORDERS:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await execution.stub.SubmitOrder(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (err.value.details() or "").startswith(field), err.value.details()


async def test_other_bad_inputs_name_the_field(execution: RunningExecution) -> None:
    cases = [
        (execution.stub.GetOrder(pb.GetOrderRequest()), "order_id"),
        (
            execution.stub.SetRiskLimits(
                pb.SetRiskLimitsRequest(limits=pb.RiskLimits(price_band="-0.1"))
            ),
            "price_band",
        ),
        (
            execution.stub.SetRiskLimits(
                pb.SetRiskLimitsRequest(limits=pb.RiskLimits(max_position="x"))
            ),
            "limits.max_position",
        ),
        (execution.stub.ListOrders(pb.ListOrdersRequest(page_size=5000)), "page_size"),
        (execution.stub.ListBlocks(pb.ListBlocksRequest(page_token="!!")), "page_token"),
        (execution.stub.HaltTrading(pb.HaltTradingRequest()), "target"),
        (
            execution.stub.SetTradingState(pb.SetTradingStateRequest(account_id=ACCOUNT)),
            "state",
        ),
    ]
    for call, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (err.value.details() or "").startswith(field), err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as nf:
        await execution.stub.GetOrder(pb.GetOrderRequest(order_id="missing"))
    assert nf.value.code() == grpc.StatusCode.NOT_FOUND
    # Live strategies are implemented (tests/integration/test_strategies_grpc.py).
    assert list((await execution.stub.ListStrategies(pb.ListStrategiesRequest())).instances) == []


async def test_list_orders_pages_and_filters_in_sql(execution: RunningExecution) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    ids = []
    for i in range(5):
        ids.append((await execution.stub.SubmitOrder(limit(f"p-{i}", 1, far))).order.order_id)
    await execution.stub.CancelOrder(pb.CancelOrderRequest(order_id=ids[0]))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await execution.stub.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token))
        seen += [o.order_id for o in page.orders]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids)) and pages == 3  # newest first, no empty last page
    open_only = await execution.stub.ListOrders(
        pb.ListOrdersRequest(statuses=[pb.ORDER_STATUS_OPEN], product_id="BTC-USD")
    )
    assert [o.order_id for o in open_only.orders] == list(reversed(ids[1:]))
    first = await execution.stub.ListOrders(pb.ListOrdersRequest(page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.ListOrders(
            pb.ListOrdersRequest(page_size=2, page_token=first.next_page_token, product_id="X")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not (await execution.stub.ListOrders(pb.ListOrdersRequest(account_id="other"))).orders


async def test_blocks_filter_by_time_range_and_global_halt_covers_every_account(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    other = limit("g-1", 1, far)
    other.account_id = "desk-2"
    other_order = (await execution.stub.SubmitOrder(other)).order
    mine = (await execution.stub.SubmitOrder(limit("g-2", 1, far))).order
    halted = await execution.stub.HaltTrading(
        pb.HaltTradingRequest(all_accounts=True, reason="global")
    )
    assert halted.change.account_id == "" and halted.change.canceled_order_count == 2
    for order_id in (other_order.order_id, mine.order_id):
        assert (await get(execution, order_id)).status == pb.ORDER_STATUS_CANCELED
    blocked = limit("g-3", 1, far)
    blocked.account_id = "desk-2"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(blocked)
    assert "global" in (err.value.details() or "")
    blocks = (await execution.stub.ListBlocks(pb.ListBlocksRequest(account_id="desk-2"))).blocks
    assert [b.rule for b in blocks] == [pb.RISK_RULE_TRADING_HALTED]
    before = pb.ListBlocksRequest()
    before.time_range.end.CopyFrom(blocks[0].time)  # end is exclusive
    assert not (await execution.stub.ListBlocks(before)).blocks
    around = pb.ListBlocksRequest()
    around.time_range.start.CopyFrom(blocks[0].time)
    assert len((await execution.stub.ListBlocks(around)).blocks) == 1
    accounts = (await execution.stub.ListAccounts(pb.ListAccountsRequest())).accounts
    assert sorted(a.account_id for a in accounts) == ["desk-2", ACCOUNT]
    await execution.stub.SetTradingState(
        pb.SetTradingStateRequest(all_accounts=True, state=pb.TRADING_STATE_ACTIVE)
    )
    assert (await execution.stub.SubmitOrder(blocked)).order.status == pb.ORDER_STATUS_OPEN


async def test_reducing_state_accepts_only_orders_that_shrink_the_position(
    execution: RunningExecution,
) -> None:
    await last_price(execution)
    await execution.stub.SetTradingState(
        pb.SetTradingStateRequest(account_id=ACCOUNT, state=pb.TRADING_STATE_REDUCING)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(market_buy("red-1"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "REDUCE_ONLY" in (err.value.details() or "")
