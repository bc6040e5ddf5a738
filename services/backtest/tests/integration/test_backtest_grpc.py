"""BacktestService over real gRPC, with a real market service, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.backtest.adapters.market_client import MarketCandleSource
from tradeplane.backtest.domain import run_backtest
from tradeplane.backtest.service_layer.models import RunSpec
from tradeplane.backtest.service_layer.worker import engine_settings
from tradeplane.runtime.cache import InMemoryCache
from tradeplane.strategies import create_strategy
from trading.backtest.v1 import backtest_pb2 as pb
from trading.backtest.v1 import backtest_pb2_grpc

from .conftest import (
    Backtest,
    Market,
    backtest_settings,
    config,
    start_backtest,
    stop_backtest,
    wait_final,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _progress(
    stub: backtest_pb2_grpc.BacktestServiceStub, **kw: Any
) -> list[pb.ProgressUpdate]:
    stream = stub.StreamProgress(pb.StreamProgressRequest(**kw), timeout=60)
    return [message.update async for message in stream]


async def _engine_result(market: Market, cfg: pb.BacktestConfig, snapshot_every: int) -> Any:
    """The same run through the pure engine, on the same candles from the market."""
    from tradeplane.backtest.entrypoints.mapping import spec_from_config

    spec: RunSpec = spec_from_config(cfg)
    source = MarketCandleSource(market.target, InMemoryCache(name="test"), ttl_seconds=0)
    try:
        bars = await source.bars(spec.product_id, spec.interval, spec.start, spec.end)
    finally:
        await source.close()
    strategy = create_strategy(spec.strategy, spec.params)
    return run_backtest(strategy, bars, engine_settings(spec, snapshot_every))


async def test_run_end_to_end(backtest: Backtest, market: Market) -> None:
    stub = backtest.stub
    cfg = config(market, hours=6)
    began = time.perf_counter()
    queued = await stub.RunBacktest(pb.RunBacktestRequest(config=cfg))
    assert time.perf_counter() - began < 2.0  # returns at once; the worker runs it
    assert queued.backtest.status in (pb.RUN_STATUS_QUEUED, pb.RUN_STATUS_RUNNING)
    run_id = queued.backtest_id

    updates = await _progress(stub, backtest_id=run_id, since_seq=0)
    seqs = [u.seq for u in updates]
    assert seqs == list(range(1, len(seqs) + 1))
    assert updates[0].status == pb.RUN_STATUS_QUEUED
    final = updates[-1]
    assert final.status == pb.RUN_STATUS_COMPLETED, final.message
    assert final.progress == 1.0 and final.done == final.total > 300

    # Resuming after the last seq of a finished run replays nothing; unset: the latest.
    latest = await _progress(stub, backtest_id=run_id)
    assert [u.seq for u in latest] == [final.seq]

    got = (await stub.GetBacktest(pb.GetBacktestRequest(backtest_id=run_id))).backtest
    assert got.status == pb.RUN_STATUS_COMPLETED and got.vectorised
    stats = got.statistics
    assert stats.bar_count == final.total
    assert got.config.params["fast_period"] == "5"

    expected = await _engine_result(market, cfg, snapshot_every=50)
    assert stats.bar_count == len(expected.bars)
    assert float(stats.final_equity) == pytest.approx(float(expected.equity[-1]), abs=1e-9)
    assert stats.trade_count == expected.statistics.trade_count > 0

    # Trades, paged.
    trades: list[pb.Trade] = []
    token = ""
    while True:
        page = await stub.ListTrades(
            pb.ListTradesRequest(backtest_id=run_id, page_size=3, page_token=token)
        )
        trades.extend(page.trades)
        token = page.next_page_token
        if not token:
            break
    assert [t.trade_id for t in trades] == [t.trade_id for t in expected.trades]
    assert [float(t.pnl) for t in trades] == pytest.approx([t.pnl for t in expected.trades])

    orders = (await stub.ListOrders(pb.ListOrdersRequest(backtest_id=run_id))).orders
    assert [o.order_id for o in orders] == [o.order_id for o in expected.orders]

    # Equity: paged covers every bar; max_points downsamples with LTTB.
    equity = await stub.GetEquity(pb.GetEquityRequest(backtest_id=run_id, page_size=10_000))
    assert equity.total_points == len(expected.bars) == len(equity.points)
    assert [float(p.equity) for p in equity.points] == pytest.approx(list(expected.equity))
    small = await stub.GetEquity(pb.GetEquityRequest(backtest_id=run_id, max_points=50))
    assert small.downsampled and len(small.points) == 50
    assert small.total_points == len(expected.bars)
    assert small.points[0].time == equity.points[0].time
    assert small.points[-1].time == equity.points[-1].time

    # Playback candles: precomputed, with indicators and markers.
    candles = await stub.GetPlaybackCandles(
        pb.GetPlaybackCandlesRequest(backtest_id=run_id, page_size=100)
    )
    assert len(candles.candles) == 100 and candles.next_page_token
    keys = {(s.spec.name, s.spec.params["period"]) for s in candles.indicators}
    assert keys == {("sma", 5.0), ("sma", 20.0)}
    assert all(len(s.values) == 100 for s in candles.indicators)
    assert math.isnan(candles.indicators[0].values[0])
    last_time = candles.candles[-1].start.seconds
    assert all(m.time.seconds <= last_time for m in candles.markers)

    # Playback state at instants equals the engine's own state there.
    times = expected.bars.time
    for index in (0, 37, 49, 50, 51, 120, 333, len(times) - 1):
        instant = int(times[index]) + 30
        state = (
            await stub.GetPlaybackState(
                pb.GetPlaybackStateRequest(
                    backtest_id=run_id, timestamp=Timestamp(seconds=instant), recent_fills_limit=5
                )
            )
        ).state
        want = expected.playback.state_at_time(instant, 5)
        assert state.bar_index == want.bar_index == index
        assert float(state.cash) == pytest.approx(want.cash, abs=1e-9)
        assert float(state.equity) == pytest.approx(want.equity, abs=1e-9)
        assert float(state.realized_pnl) == pytest.approx(want.realized_pnl, abs=1e-9)
        quantity = float(state.positions[0].quantity) if state.positions else 0.0
        assert quantity == pytest.approx(want.quantity, abs=1e-12)
        assert [o.order_id for o in state.open_orders] == [o.order_id for o in want.open_orders]
        assert [(f.order_id, f.time.seconds) for f in state.recent_fills] == [
            (f.order_id, f.time) for f in want.recent_fills
        ]
    before = await stub.GetPlaybackState(
        pb.GetPlaybackStateRequest(backtest_id=run_id, timestamp=Timestamp(seconds=1))
    )
    assert before.state.bar_index == -1 and float(before.state.cash) == 10_000

    # Monte Carlo from the stored trades: a shuffle keeps the total return.
    shuffle = await stub.GetMonteCarloReport(
        pb.GetMonteCarloReportRequest(backtest_id=run_id, iterations=200, seed=3)
    )
    total = sum(t.pnl for t in expected.trades) / 10_000
    assert shuffle.iterations == 200
    assert shuffle.total_return.p5 == pytest.approx(total)
    assert shuffle.total_return.p95 == pytest.approx(total)
    assert shuffle.max_drawdown.worst >= shuffle.max_drawdown.p50 > 0
    bootstrap = pb.GetMonteCarloReportRequest(
        backtest_id=run_id, method=pb.MONTE_CARLO_METHOD_BOOTSTRAP, iterations=300, seed=5
    )
    first = await stub.GetMonteCarloReport(bootstrap)
    assert first == await stub.GetMonteCarloReport(bootstrap)
    assert first.total_return.p5 < first.total_return.p95

    # A/B against a run with other parameters.
    other = await stub.RunBacktest(
        pb.RunBacktestRequest(
            config=config(market, hours=6, params={"fast_period": "8", "slow_period": "30"})
        )
    )
    await wait_final(stub, other.backtest_id)
    compared = await stub.CompareBacktests(
        pb.CompareBacktestsRequest(
            backtest_a_id=run_id, backtest_b_id=other.backtest_id, max_points=100
        )
    )
    assert compared.backtest_a.statistics.bar_count == stats.bar_count
    assert len(compared.equity) == 100
    assert all(p.equity_a and p.equity_b for p in compared.equity)
    assert compared.only_in_a or compared.only_in_b

    listed = await stub.ListBacktests(pb.ListBacktestsRequest(page_size=1))
    assert listed.backtests[0].backtest_id == other.backtest_id and listed.next_page_token
    rest = await stub.ListBacktests(
        pb.ListBacktestsRequest(page_size=1, page_token=listed.next_page_token)
    )
    assert rest.backtests[0].backtest_id == run_id


async def test_event_path_playback_with_working_orders(backtest: Backtest, market: Market) -> None:
    """The grid strategy runs bar by bar with resting limit orders: playback shows them."""
    stub = backtest.stub
    cfg = config(
        market,
        hours=4,
        strategy="grid",
        params={"levels": "4", "spacing_pct": "0.05", "level_cash": "500"},
    )
    run = await stub.RunBacktest(pb.RunBacktestRequest(config=cfg))
    got = await wait_final(stub, run.backtest_id)
    assert got.status == pb.RUN_STATUS_COMPLETED, got.error
    assert not got.vectorised
    expected = await _engine_result(market, cfg, snapshot_every=50)
    times = expected.bars.time
    saw_open_orders = False
    for index in range(0, len(times), 23):
        state = (
            await stub.GetPlaybackState(
                pb.GetPlaybackStateRequest(
                    backtest_id=run.backtest_id, timestamp=Timestamp(seconds=int(times[index]))
                )
            )
        ).state
        want = expected.playback.state_at(index)
        assert float(state.cash) == pytest.approx(want.cash, abs=1e-9)
        assert [o.order_id for o in state.open_orders] == [o.order_id for o in want.open_orders]
        assert all(o.status == 2 for o in state.open_orders)  # ORDER_STATUS_OPEN then
        saw_open_orders |= bool(state.open_orders)
    assert saw_open_orders


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "nope"}, "config.strategy"),
        ({"strategy": ""}, "config.strategy"),
        ({"params": {"fast_period": "zero"}}, "params.fast_period"),
        ({"params": {"fast_period": "0"}}, "params.fast_period"),
        ({"params": {"typo": "1"}}, "params.typo"),
        ({"product_id": "DOGE-EUR"}, "config.product_id"),
        ({"product_id": ""}, "config.product_id"),
        ({"interval": 0}, "config.interval"),
        ({"initial_cash": "abc"}, "config.initial_cash"),
        ({"initial_cash": "-5"}, "config.initial_cash"),
        ({"initial_cash": ""}, "config.initial_cash"),
        ({"commission": pb.Commission(bps="x")}, "config.commission.bps"),
        ({"slippage_bps": "-1"}, "config.slippage_bps"),
    ],
)
async def test_bad_config_names_the_field(
    backtest: Backtest, market: Market, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await backtest.stub.RunBacktest(pb.RunBacktestRequest(config=config(market, **change)))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(field), info.value.details()


async def test_bad_requests(backtest: Backtest, market: Market) -> None:
    stub = backtest.stub
    cfg = config(market)
    cfg.time_range.end.seconds = cfg.time_range.start.seconds
    cases: list[tuple[Any, grpc.StatusCode, str]] = [
        (
            stub.RunBacktest(pb.RunBacktestRequest(config=cfg)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.time_range",
        ),
        (stub.RunBacktest(pb.RunBacktestRequest()), grpc.StatusCode.INVALID_ARGUMENT, "config"),
        (
            stub.GetBacktest(pb.GetBacktestRequest(backtest_id="missing")),
            grpc.StatusCode.NOT_FOUND,
            "",
        ),
        (
            stub.GetBacktest(pb.GetBacktestRequest()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "backtest_id",
        ),
        (
            stub.ListTrades(pb.ListTradesRequest(backtest_id="missing")),
            grpc.StatusCode.NOT_FOUND,
            "",
        ),
        (
            stub.ListBacktests(pb.ListBacktestsRequest(page_token="!!")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            stub.ListBacktests(pb.ListBacktestsRequest(page_size=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
        ),
        (
            stub.GetMonteCarloReport(pb.GetMonteCarloReportRequest(backtest_id="x", iterations=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "iterations",
        ),
        (
            stub.RunLookAheadCheck(pb.RunLookAheadCheckRequest()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config",
        ),
    ]
    for call, code, prefix in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() is code, info.value.details()
        assert (info.value.details() or "").startswith(prefix), info.value.details()


async def test_look_ahead_check(backtest: Backtest, market: Market) -> None:
    checked = await backtest.stub.RunLookAheadCheck(
        pb.RunLookAheadCheckRequest(config=config(market, hours=3), samples=12)
    )
    assert checked.passed and checked.samples_checked == 12 and not checked.violations
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await backtest.stub.RunLookAheadCheck(
            pb.RunLookAheadCheckRequest(config=config(market, strategy="nope"))
        )
    assert (info.value.details() or "").startswith("config.strategy")


async def test_list_strategies(backtest: Backtest) -> None:
    page = await backtest.stub.ListStrategies(pb.ListStrategiesRequest(page_size=2))
    assert [s.name for s in page.strategies] == ["bollinger_breakout", "dca"]
    rest = await backtest.stub.ListStrategies(
        pb.ListStrategiesRequest(page_token=page.next_page_token)
    )
    names = [s.name for s in rest.strategies]
    assert "sma_crossover" in names and not rest.next_page_token
    sma = next(s for s in rest.strategies if s.name == "sma_crossover")
    assert sma.vectorised and {p.name for p in sma.parameters} >= {"fast_period", "slow_period"}


async def test_cancel_queued_run(database_url: str, market: Market) -> None:
    """Without a worker the run stays queued; cancelling ends it and its progress stream."""
    service = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    try:
        stub = service.stub
        run = await stub.RunBacktest(pb.RunBacktestRequest(config=config(market)))
        assert run.backtest.status == pb.RUN_STATUS_QUEUED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListTrades(pb.ListTradesRequest(backtest_id=run.backtest_id))
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        canceled = await stub.CancelBacktest(pb.CancelBacktestRequest(backtest_id=run.backtest_id))
        assert canceled.backtest.status == pb.RUN_STATUS_CANCELED
        updates = await _progress(stub, backtest_id=run.backtest_id, since_seq=0)
        assert [u.status for u in updates] == [pb.RUN_STATUS_QUEUED, pb.RUN_STATUS_CANCELED]
    finally:
        await stop_backtest(service)


@pytest.mark.postgres
async def test_two_workers_never_run_the_same_job(
    postgres_database_url: str, market: Market
) -> None:
    api = await start_backtest(
        backtest_settings(postgres_database_url, market.target, backtest_embedded_worker=False)
    )
    workers = [
        await start_backtest(
            backtest_settings(postgres_database_url, market.target, backtest_poll_seconds=0.02),
            worker=True,
        )
        for _ in range(2)
    ]
    try:
        ids = []
        for fast in range(3, 13):
            run = await api.stub.RunBacktest(
                pb.RunBacktestRequest(
                    config=config(market, hours=2, params={"fast_period": str(fast)})
                )
            )
            ids.append(run.backtest_id)
        for backtest_id in ids:
            got = await wait_final(api.stub, backtest_id)
            assert got.status == pb.RUN_STATUS_COMPLETED, got.error
        ran = [set(w.app.worker.executed) for w in workers if w.app.worker is not None]
        assert ran[0].isdisjoint(ran[1])
        assert ran[0] | ran[1] == set(ids)
        # Each run was claimed exactly once.
        from sqlalchemy import select

        from tradeplane.backtest.adapters import orm

        async with api.app.engine.connect() as conn:
            attempts = (await conn.execute(select(orm.runs.c.attempts))).scalars().all()
        assert set(attempts) == {1}
        # A worker process answers health but not BacktestService.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await workers[0].stub.GetBacktest(pb.GetBacktestRequest(backtest_id=ids[0]))
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        for service in [api, *workers]:
            await stop_backtest(service)


def _grid_sweep(market: Market, **overrides: Any) -> pb.SweepConfig:
    values: dict[str, Any] = {
        "base": config(market, hours=3),
        "grid": pb.ParameterGrid(
            axes=[
                pb.ParameterAxis(name="fast_period", values=["3", "5", "8"]),
                pb.ParameterAxis(name="slow_period", start="20", stop="30", step="10"),
            ]
        ),
        "rank_by": pb.STATISTIC_TOTAL_RETURN,
    }
    values.update(overrides)
    return pb.SweepConfig(**values)


async def test_grid_sweep(backtest: Backtest, market: Market) -> None:
    stub = backtest.stub
    queued = await stub.RunSweep(pb.RunSweepRequest(config=_grid_sweep(market)))
    assert queued.sweep.total == 6 and queued.sweep.status == pb.RUN_STATUS_QUEUED
    updates = await _progress(stub, sweep_id=queued.sweep_id, since_seq=0)
    assert [u.seq for u in updates] == list(range(1, 8))
    assert [u.done for u in updates] == list(range(7))
    assert updates[-1].status == pb.RUN_STATUS_COMPLETED and updates[-1].total == 6

    sweep = (await stub.GetSweep(pb.GetSweepRequest(sweep_id=queued.sweep_id))).sweep
    assert sweep.status == pb.RUN_STATUS_COMPLETED and sweep.done == 6
    results: list[pb.SweepResult] = []
    token = ""
    while True:
        page = await stub.ListSweepResults(
            pb.ListSweepResultsRequest(sweep_id=queued.sweep_id, page_size=4, page_token=token)
        )
        results.extend(page.results)
        token = page.next_page_token
        if not token:
            break
    assert [r.rank for r in results] == [1, 2, 3, 4, 5, 6]
    returns = [r.statistics.total_return for r in results]
    assert returns == sorted(returns, reverse=True)
    assert sweep.best.backtest_id == results[0].backtest_id
    combos = {(r.params["fast_period"], r.params["slow_period"]) for r in results}
    assert combos == {(f, s) for f in ("3", "5", "8") for s in ("20", "30")}
    by_drawdown = await stub.ListSweepResults(
        pb.ListSweepResultsRequest(sweep_id=queued.sweep_id, order_by=pb.STATISTIC_MAX_DRAWDOWN)
    )
    drawdowns = [r.statistics.max_drawdown for r in by_drawdown.results]
    assert drawdowns == sorted(drawdowns)

    members = await stub.ListBacktests(pb.ListBacktestsRequest(sweep_id=queued.sweep_id))
    assert len(members.backtests) == 6
    assert {b.backtest_id for b in members.backtests} == {r.backtest_id for r in results}
    listed = await stub.ListSweeps(pb.ListSweepsRequest(strategy="sma_crossover"))
    assert queued.sweep_id in [s.sweep_id for s in listed.sweeps]


async def test_bad_sweeps(backtest: Backtest, market: Market) -> None:
    stub = backtest.stub
    bad_axis = _grid_sweep(
        market, grid=pb.ParameterGrid(axes=[pb.ParameterAxis(name="nope", values=["1"])])
    )
    bad_value = _grid_sweep(
        market, grid=pb.ParameterGrid(axes=[pb.ParameterAxis(name="fast_period", values=["0"])])
    )
    bad_step = _grid_sweep(
        market,
        grid=pb.ParameterGrid(
            axes=[pb.ParameterAxis(name="fast_period", start="1", stop="5", step="0")]
        ),
    )
    search = pb.SweepConfig(base=config(market), search=pb.ParameterSearch(trials=3))
    cases = [
        (bad_axis, grpc.StatusCode.INVALID_ARGUMENT, "config.grid.axes[0].name"),
        (bad_value, grpc.StatusCode.INVALID_ARGUMENT, "config.grid"),
        (bad_step, grpc.StatusCode.INVALID_ARGUMENT, "config.grid.axes[0].step"),
        (pb.SweepConfig(), grpc.StatusCode.INVALID_ARGUMENT, "config.base"),
        (search, grpc.StatusCode.INVALID_ARGUMENT, "config.search.axes"),
        (
            pb.SweepConfig(
                base=config(market),
                search=pb.ParameterSearch(
                    trials=3, axes=[pb.ParameterAxis(name="nope", start="1", stop="3")]
                ),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.search.axes[0].name",
        ),
        (
            pb.SweepConfig(base=config(market), search=pb.ParameterSearch(trials=0)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.search.trials",
        ),
    ]
    for cfg, code, prefix in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RunSweep(pb.RunSweepRequest(config=cfg))
        assert info.value.code() is code, info.value.details()
        assert (info.value.details() or "").startswith(prefix), info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetSweep(pb.GetSweepRequest(sweep_id="missing"))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_cancel_sweep(database_url: str, market: Market) -> None:
    service = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    try:
        stub = service.stub
        queued = await stub.RunSweep(pb.RunSweepRequest(config=_grid_sweep(market)))
        canceled = await stub.CancelSweep(pb.CancelSweepRequest(sweep_id=queued.sweep_id))
        assert canceled.sweep.status == pb.RUN_STATUS_CANCELED
        members = await stub.ListBacktests(pb.ListBacktestsRequest(sweep_id=queued.sweep_id))
        assert {b.status for b in members.backtests} == {pb.RUN_STATUS_CANCELED}
        updates = await _progress(stub, sweep_id=queued.sweep_id)
        assert updates[-1].status == pb.RUN_STATUS_CANCELED
    finally:
        await stop_backtest(service)


async def test_market_down_is_retried_and_a_running_run_cancels(
    database_url: str, market: Market
) -> None:
    """A worker whose market is unreachable keeps the run RUNNING (retrying with backoff,
    never crashing) until it is cancelled; the API with the market up stays SERVING."""
    from tradeplane.testing.ports import free_port

    api = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    worker = await start_backtest(
        backtest_settings(database_url, f"127.0.0.1:{free_port()}"), worker=True
    )
    try:
        run = await api.stub.RunBacktest(pb.RunBacktestRequest(config=config(market)))
        for _ in range(100):
            got = await api.stub.GetBacktest(pb.GetBacktestRequest(backtest_id=run.backtest_id))
            if got.backtest.status == pb.RUN_STATUS_RUNNING:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # inside the market retry loop now
        got = await api.stub.GetBacktest(pb.GetBacktestRequest(backtest_id=run.backtest_id))
        assert got.backtest.status == pb.RUN_STATUS_RUNNING
        response = await api.stub.CancelBacktest(
            pb.CancelBacktestRequest(backtest_id=run.backtest_id)
        )
        assert response.backtest.status == pb.RUN_STATUS_RUNNING  # the worker acknowledges
        final = await wait_final(api.stub, run.backtest_id)
        assert final.status == pb.RUN_STATUS_CANCELED
        updates = await _progress(api.stub, backtest_id=run.backtest_id, since_seq=0)
        assert updates[-1].status == pb.RUN_STATUS_CANCELED
    finally:
        await stop_backtest(worker)
        await stop_backtest(api)


async def test_run_backtest_while_market_is_down_is_unavailable(database_url: str) -> None:
    from tradeplane.testing.ports import free_port

    dead = f"127.0.0.1:{free_port()}"
    service = await start_backtest(backtest_settings(database_url, dead))
    try:
        fake = Market(app=None, target=dead, started=int(time.time()))  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await service.stub.RunBacktest(pb.RunBacktestRequest(config=config(fake)))
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await stop_backtest(service)


async def test_a_stopping_worker_hands_its_run_back(database_url: str, market: Market) -> None:
    """A worker stopped mid-run (here: waiting for its unreachable market) releases the run
    to the queue; the next worker runs it to completion."""
    from tradeplane.testing.ports import free_port

    api = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    stranded = await start_backtest(
        backtest_settings(database_url, f"127.0.0.1:{free_port()}"), worker=True
    )
    try:
        run = await api.stub.RunBacktest(pb.RunBacktestRequest(config=config(market, hours=2)))
        for _ in range(100):
            got = await api.stub.GetBacktest(pb.GetBacktestRequest(backtest_id=run.backtest_id))
            if got.backtest.status == pb.RUN_STATUS_RUNNING:
                break
            await asyncio.sleep(0.05)
        await stop_backtest(stranded)
        got = await api.stub.GetBacktest(pb.GetBacktestRequest(backtest_id=run.backtest_id))
        assert got.backtest.status == pb.RUN_STATUS_QUEUED
        healthy = await start_backtest(backtest_settings(database_url, market.target), worker=True)
        try:
            final = await wait_final(api.stub, run.backtest_id)
            assert final.status == pb.RUN_STATUS_COMPLETED, final.error
        finally:
            await stop_backtest(healthy)
    finally:
        await stop_backtest(api)


async def test_walk_forward_holdout(backtest: Backtest, market: Market) -> None:
    """The last hour is held out: six in-sample runs over two hours, then the best five
    re-run on the held-out hour."""
    stub = backtest.stub
    sweep_config = _grid_sweep(market)
    base_range = sweep_config.base.time_range
    holdout_start = base_range.end.seconds - 3600
    sweep_config.holdout_range.start.seconds = holdout_start
    queued = await stub.RunSweep(pb.RunSweepRequest(config=sweep_config))
    assert queued.sweep.total == 6
    assert queued.sweep.config.holdout_range.start.seconds == holdout_start
    updates = await _progress(stub, sweep_id=queued.sweep_id, since_seq=0)
    assert updates[-1].status == pb.RUN_STATUS_COMPLETED
    assert updates[-1].done == updates[-1].total == 11
    results = (
        await stub.ListSweepResults(pb.ListSweepResultsRequest(sweep_id=queued.sweep_id))
    ).results
    assert [r.rank for r in results] == [1, 2, 3, 4, 5, 6]
    assert all(r.statistics.bar_count == 120 for r in results)
    assert [r.HasField("holdout_statistics") for r in results] == [True] * 5 + [False]
    assert all(r.holdout_statistics.bar_count == 60 for r in results[:5])
    sweep = (await stub.GetSweep(pb.GetSweepRequest(sweep_id=queued.sweep_id))).sweep
    assert sweep.total == sweep.done == 11
    assert sweep.best.holdout_statistics.bar_count == 60
    members = await stub.ListBacktests(pb.ListBacktestsRequest(sweep_id=queued.sweep_id))
    assert len(members.backtests) == 11

    outside = _grid_sweep(market)
    outside.holdout_range.start.seconds = base_range.start.seconds - 60
    wrong_end = _grid_sweep(market)
    wrong_end.holdout_range.start.seconds = holdout_start
    wrong_end.holdout_range.end.seconds = holdout_start + 60
    for cfg, field in [
        (outside, "config.holdout_range.start"),
        (wrong_end, "config.holdout_range.end"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RunSweep(pb.RunSweepRequest(config=cfg))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (info.value.details() or "").startswith(field), info.value.details()


async def test_optuna_search_sweep(backtest: Backtest, market: Market) -> None:
    """A search queues max_parallel trials, then one more per finished trial, up to trials."""
    stub = backtest.stub
    sweep_config = pb.SweepConfig(
        base=config(market, hours=3),
        search=pb.ParameterSearch(
            axes=[
                pb.ParameterAxis(name="fast_period", start="3", stop="12"),
                pb.ParameterAxis(name="slow_period", values=["20", "30"]),
            ],
            trials=8,
            seed=11,
        ),
        rank_by=pb.STATISTIC_TOTAL_RETURN,
        max_parallel=2,
    )
    queued = await stub.RunSweep(pb.RunSweepRequest(config=sweep_config))
    assert queued.sweep.total == 8
    first = await stub.ListBacktests(pb.ListBacktestsRequest(sweep_id=queued.sweep_id))
    assert len(first.backtests) == 2  # max_parallel trials to start with
    updates = await _progress(stub, sweep_id=queued.sweep_id, since_seq=0)
    assert updates[-1].status == pb.RUN_STATUS_COMPLETED
    assert updates[-1].done == updates[-1].total == 8
    results = (
        await stub.ListSweepResults(pb.ListSweepResultsRequest(sweep_id=queued.sweep_id))
    ).results
    assert len(results) == 8
    returns = [r.statistics.total_return for r in results]
    assert returns == sorted(returns, reverse=True)
    for result in results:
        assert 3 <= int(result.params["fast_period"]) <= 12
        assert result.params["slow_period"] in ("20", "30")
    sweep = (await stub.GetSweep(pb.GetSweepRequest(sweep_id=queued.sweep_id))).sweep
    assert sweep.config.search.trials == 8 and sweep.best.rank == 1


async def test_sweep_max_parallel_throttles_claims(database_url: str, market: Market) -> None:
    """A worker running four jobs at once still runs one run of a max_parallel=1 sweep."""
    api = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    worker = await start_backtest(
        backtest_settings(
            database_url, market.target, backtest_worker_concurrency=4, backtest_poll_seconds=0.02
        ),
        worker=True,
    )
    try:
        queued = await api.stub.RunSweep(
            pb.RunSweepRequest(config=_grid_sweep(market, max_parallel=1))
        )
        most = 0
        while True:
            running = await api.stub.ListBacktests(
                pb.ListBacktestsRequest(sweep_id=queued.sweep_id, statuses=[pb.RUN_STATUS_RUNNING])
            )
            most = max(most, len(running.backtests))
            sweep = (await api.stub.GetSweep(pb.GetSweepRequest(sweep_id=queued.sweep_id))).sweep
            if sweep.status == pb.RUN_STATUS_COMPLETED:
                break
            await asyncio.sleep(0.01)
        assert most == 1
        assert sweep.done == 6
    finally:
        await stop_backtest(worker)
        await stop_backtest(api)


async def test_a_dead_workers_job_is_taken_again(database_url: str, market: Market) -> None:
    """A job claimed by a worker that then stopped heartbeating (it died) is taken again
    after BACKTEST_STALE_SECONDS and completed."""
    api = await start_backtest(
        backtest_settings(database_url, market.target, backtest_embedded_worker=False)
    )
    try:
        run = await api.stub.RunBacktest(pb.RunBacktestRequest(config=config(market, hours=1)))
        claimed = await api.app.repo.claim_next("dead-worker", stale_seconds=60)
        assert claimed == run.backtest_id
        survivor = await start_backtest(
            backtest_settings(database_url, market.target, backtest_stale_seconds=0.5),
            worker=True,
        )
        try:
            final = await wait_final(api.stub, run.backtest_id)
            assert final.status == pb.RUN_STATUS_COMPLETED, final.error
        finally:
            await stop_backtest(survivor)
        from sqlalchemy import select

        from tradeplane.backtest.adapters import orm

        async with api.app.engine.connect() as conn:
            attempts = (
                await conn.execute(
                    select(orm.runs.c.attempts).where(orm.runs.c.backtest_id == run.backtest_id)
                )
            ).scalar_one()
        assert attempts == 2
    finally:
        await stop_backtest(api)


async def test_cli_runs_and_watches(
    backtest: Backtest, market: Market, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradeplane.backtest.entrypoints import client_cli

    parser = client_cli._parser()
    args = parser.parse_args(
        [
            "--addr",
            backtest.target,
            "run",
            "--strategy",
            "sma_crossover",
            "--days",
            "0.1",
            "--param",
            "fast_period=5",
            "--param",
            "slow_period=20",
        ]
    )
    assert await client_cli._main(args) == 0
    out = capsys.readouterr()
    backtest_id = out.out.splitlines()[0]
    assert "COMPLETED: completed" in out.out
    assert "bar" in out.err  # the tqdm progress bar
    watch = parser.parse_args(["--addr", backtest.target, "watch", backtest_id])
    assert await client_cli._main(watch) == 0
    bad = parser.parse_args(["--addr", backtest.target, "run", "--strategy", "nope"])
    assert await client_cli._main(bad) == 1
    assert "INVALID_ARGUMENT: config.strategy" in capsys.readouterr().err
