"""Live strategy control over real gRPC (simulated market, SQLite and Postgres): validation,
definitions, start/list/stop, and resumption after a service restart."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tradeplane.execution.adapters.strategy_store import StrategyStore
from tradeplane.market.entrypoints.bootstrap import MarketApp
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution, execution_settings, start_execution, stop_execution

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _until_ready(running: RunningExecution) -> None:
    for _ in range(200):
        if running.app.market.ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("market data never became ready")


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code(), err.value.details() or ""


async def test_definitions_list_the_library_with_typed_params(
    execution: RunningExecution,
) -> None:
    resp = await execution.stub.ListStrategyDefinitions(pb.ListStrategyDefinitionsRequest())
    by_name = {d.name: d for d in resp.strategies}
    assert "sma_crossover" in by_name
    fast = {p.name: p for p in by_name["sma_crossover"].parameters}["fast_period"]
    assert fast.type == common_pb2.PARAMETER_TYPE_INT
    assert (fast.default_value, fast.min, fast.max) == ("10", "1", "10000")
    assert by_name["sma_crossover"].vectorised
    page = await execution.stub.ListStrategyDefinitions(
        pb.ListStrategyDefinitionsRequest(page_size=1)
    )
    assert len(page.strategies) == 1 and page.next_page_token
    rest = await execution.stub.ListStrategyDefinitions(
        pb.ListStrategyDefinitionsRequest(page_size=1000, page_token=page.next_page_token)
    )
    assert [d.name for d in page.strategies] + [d.name for d in rest.strategies] == sorted(by_name)


async def test_bad_start_requests_name_the_field_and_change_nothing(
    execution: RunningExecution,
) -> None:
    await _until_ready(execution)
    stub = execution.stub
    cases = [
        (pb.StartStrategyRequest(strategy="nope", product_ids=["BTC-USD"]), "strategy"),
        (
            pb.StartStrategyRequest(
                strategy="sma_crossover", params={"fast_period": "x"}, product_ids=["BTC-USD"]
            ),
            "params.fast_period",
        ),
        (
            pb.StartStrategyRequest(
                strategy="sma_crossover", params={"fast_perod": "3"}, product_ids=["BTC-USD"]
            ),
            "params.fast_perod",
        ),
        (
            pb.StartStrategyRequest(
                strategy="sma_crossover",
                params={"fast_period": "30", "slow_period": "10"},
                product_ids=["BTC-USD"],
            ),
            "params.fast_period",
        ),
        (pb.StartStrategyRequest(strategy="sma_crossover"), "product_ids"),
        (pb.StartStrategyRequest(strategy="sma_crossover", product_ids=["XXX-USD"]), "product_ids"),
        (
            pb.StartStrategyRequest(
                strategy="sma_crossover",
                product_ids=["BTC-USD"],
                venue=common_pb2.VENUE_COINBASE,
            ),
            "venue",
        ),
    ]
    for request, field in cases:
        code, details = await _code(stub.StartStrategy(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (request, details)
        assert field in details, (field, details)
    listed = await stub.ListStrategies(pb.ListStrategiesRequest())
    assert list(listed.instances) == []
    code, _ = await _code(stub.StopStrategy(pb.StopStrategyRequest(strategy_instance_id="x")))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_start_list_restart_resumes_and_stop(market: MarketApp, execution_db: str) -> None:
    settings = execution_settings(execution_db, market.server.grpc_port)
    first = await start_execution(settings)
    try:
        await _until_ready(first)
        started = await first.stub.StartStrategy(
            pb.StartStrategyRequest(
                strategy="sma_crossover",
                params={"fast_period": "3", "slow_period": "5"},
                product_ids=["BTC-USD", "ETH-USD"],
            )
        )
        inst = started.instance
        assert inst.state in (pb.STRATEGY_STATE_STARTING, pb.STRATEGY_STATE_RUNNING)
        assert dict(inst.params) == {
            "fast_period": "3",
            "slow_period": "5",
            "size_fraction": "1.0",
        }
        assert inst.account_id == "paper-main" and inst.venue == common_pb2.VENUE_PAPER
        second = await first.stub.StartStrategy(
            pb.StartStrategyRequest(strategy="ema_crossover", product_ids=["BTC-USD"])
        )
        page = await first.stub.ListStrategies(pb.ListStrategiesRequest(page_size=1))
        assert [i.strategy_instance_id for i in page.instances] == [
            second.instance.strategy_instance_id
        ]
        rest = await first.stub.ListStrategies(
            pb.ListStrategiesRequest(page_size=1, page_token=page.next_page_token)
        )
        assert [i.strategy_instance_id for i in rest.instances] == [inst.strategy_instance_id]
        await first.stub.StopStrategy(
            pb.StopStrategyRequest(
                strategy_instance_id=second.instance.strategy_instance_id, cancel_open_orders=True
            )
        )
    finally:
        await stop_execution(first)

    # A restart resumes the running instance (and not the stopped one).
    again = await start_execution(settings)
    try:
        await _until_ready(again)
        runner = again.app.strategies
        assert runner is not None
        assert set(runner._runs) == {inst.strategy_instance_id}
        running = await again.stub.ListStrategies(
            pb.ListStrategiesRequest(states=[pb.STRATEGY_STATE_STARTING, pb.STRATEGY_STATE_RUNNING])
        )
        assert [i.strategy_instance_id for i in running.instances] == [inst.strategy_instance_id]
        stopped = await again.stub.StopStrategy(
            pb.StopStrategyRequest(strategy_instance_id=inst.strategy_instance_id)
        )
        assert stopped.instance.state == pb.STRATEGY_STATE_STOPPED
        assert stopped.instance.HasField("stop_time")
        rec = await StrategyStore(again.app.engine).get(inst.strategy_instance_id)
        assert rec is not None and rec.state == "STOPPED"
        assert runner._runs == {}
    finally:
        await stop_execution(again)
