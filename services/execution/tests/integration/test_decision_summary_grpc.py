"""SummarizeDecisions over gRPC: totals per strategy or agent (decisions, orders, fills,
tokens, cost per currency), filtered by account and time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution
from .test_brackets_grpc import fill
from .test_execution_grpc import last_price
from .test_risk_rules_grpc import filled_by_hand

pytestmark = pytest.mark.asyncio(loop_scope="module")


def with_decision(
    coid: str, price: Decimal, strategy: str, account: str = "", **decision: object
) -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        account_id=account,
        client_order_id=coid,
        product_id="BTC-USD",
        side=common_pb2.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        base_size="0.001",
        limit_price=str((price / 2).quantize(Decimal("0.01"))),
        decision=pb.DecisionRecord(strategy=strategy, reason="test", **decision),  # type: ignore[arg-type]
    )


def at(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


async def test_totals_per_strategy(execution: RunningExecution) -> None:
    price = await last_price(execution)
    usd = common_pb2.Money(currency="USD", amount="0.0125")
    for i in range(3):
        await execution.stub.SubmitOrder(
            with_decision(
                f"ag-{i}", price, "agent-a", prompt_tokens=100, completion_tokens=10, cost=usd
            )
        )
    await execution.stub.SubmitOrder(
        with_decision(
            "ag-eur",
            price,
            "agent-a",
            prompt_tokens=1,
            cost=common_pb2.Money(currency="EUR", amount="1"),
        )
    )
    await execution.stub.SubmitOrder(with_decision("sma-1", price, "sma-cross", account="other"))
    # An order without a decision record (here filled) is in no summary.
    await filled_by_hand(
        execution, "paper-main", "plain", common_pb2.SIDE_BUY, price / 2, price / 2
    )

    summaries = (await execution.stub.SummarizeDecisions(pb.SummarizeDecisionsRequest())).summaries
    assert [s.strategy for s in summaries] == ["agent-a", "sma-cross"]
    a, sma = summaries
    assert (a.decision_count, a.order_count, a.fill_count) == (4, 4, 0)
    assert (a.prompt_tokens, a.completion_tokens) == (301, 30)
    assert [(c.currency, Decimal(c.amount)) for c in a.cost] == [
        ("EUR", Decimal("1")),
        ("USD", Decimal("0.0375")),
    ]
    assert a.last_decision_time.ToDatetime(UTC) > datetime.now(UTC) - timedelta(minutes=5)
    assert (sma.decision_count, sma.order_count, sma.prompt_tokens, list(sma.cost)) == (
        1,
        1,
        0,
        [],
    )

    only_other = (
        await execution.stub.SummarizeDecisions(pb.SummarizeDecisionsRequest(account_id="other"))
    ).summaries
    assert [s.strategy for s in only_other] == ["sma-cross"]
    future = common_pb2.TimeRange(start=at(datetime.now(UTC) + timedelta(hours=1)))
    none = (
        await execution.stub.SummarizeDecisions(pb.SummarizeDecisionsRequest(time_range=future))
    ).summaries
    assert list(none) == []


async def test_fills_of_decided_orders_are_counted(execution: RunningExecution) -> None:
    price = await last_price(execution)
    order = (
        await execution.stub.SubmitOrder(with_decision("f-1", price, "agent-f", prompt_tokens=5))
    ).order
    await execution.app.venue.cancel_quietly(order.order_id)
    await fill(execution, order.order_id, "f-1-t1", order.limit_price, "0.0004")
    await fill(execution, order.order_id, "f-1-t2", order.limit_price, "0.0006")
    (s,) = (await execution.stub.SummarizeDecisions(pb.SummarizeDecisionsRequest())).summaries
    assert (s.strategy, s.decision_count, s.order_count, s.fill_count) == ("agent-f", 1, 1, 2)
