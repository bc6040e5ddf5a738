"""Issue 6's "same trades" test: one strategy over one candle series, run (a) in the backtest
engine and (b) live: a real market service replaying those candles as trades, a real
execution service (paper venue, SQLite) and its strategy runner, all over gRPC.

Alignment (see docs/api/execution.md, "Live strategies"):
- fees and slippage are zero on both sides; the backtest uses its default NEXT_OPEN rule;
- each bar is replayed as four trades, the open first, then high/low/close late in the
  minute: the trade that closes bar t is bar t+1's open, and the runner sends a signal's
  market order once the market has printed past bar t, so the paper venue fills it at bar
  t+1's open, as the backtest does;
- prices are whole numbers, so every rolling sum is exact and the live indicator window
  (which starts elsewhere than the backtest's) gives bit-identical SMAs;
- sizes: live orders are in the product's increments (an entry spends the cash rounded down
  to 0.01 USD and gets a size rounded down to 1e-8 BTC), the backtest's floats are not, so
  sizes agree within 1e-6 relative (0.01 USD on 100,000 USD is 1e-7; the cash carries the
  rounding into later entries); sides, bar times and prices are exactly equal.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
import pytest_asyncio

from tradeplane.backtest.domain.bars import BarSeries
from tradeplane.backtest.domain.engine import run_event
from tradeplane.backtest.domain.settings import BacktestSettings
from tradeplane.execution.adapters.strategy_store import StrategyStore
from tradeplane.execution.entrypoints.settings import ExecutionSettings
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.strategies import (
    Bar,
    Fill,
    IndicatorSpec,
    OrderRequest,
    OrderType,
    Side,
    Strategy,
    StrategyContext,
    create_strategy,
    register,
)
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb
from trading.execution.v1 import execution_pb2_grpc

from .conftest import RunningExecution, execution_settings, start_execution, stop_execution

pytestmark = pytest.mark.asyncio(loop_scope="function")

PRODUCT = "BTC-USD"
T0 = 1_700_000_040  # a minute boundary
SPEED = 60.0  # replay speed: a 60 s bar takes 1 s
PARAMS = {"fast_period": "3", "slow_period": "6"}
FLAT = 8  # leading flat bars: nothing can cross while the runner starts
# Closes after the flat stretch: up, down, up, down, then flat (no signal at the end).
CLOSES = [100] * FLAT + [
    102, 105, 109, 112, 114, 113, 110, 106, 101, 97, 95, 96, 99, 103, 108, 111, 110,
    106, 100, 95, 92, 92, 92, 92,
]  # fmt: skip


def bars() -> list[tuple[int, int, int, int, int]]:
    """(time, open, high, low, close): each bar opens at the previous close."""
    out = []
    prev = CLOSES[0]
    for i, close in enumerate(CLOSES):
        o = prev
        out.append((T0 + 60 * i, o, max(o, close) + 1, min(o, close) - 1, close))
        prev = close
    return out


def write_trades(path: Path) -> None:
    """Four trades per bar: open at +0 s, then high, low, close at +54/+56/+58 s (0.9 s of
    wall time after the open: the margin a signal has to reach the paper venue)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "product_id", "trade_id", "price", "size", "side"])
        n = 0
        for t, o, h, lo, c in bars():
            for offset, price in ((0, o), (54, h), (56, lo), (58, c)):
                n += 1
                w.writerow([t + offset, PRODUCT, n, price, "1000000000", "buy"])


def backtest() -> tuple[list[tuple[str, float, int, float]], float]:
    """The backtest's fills (side, size, bar time, price) and its final P&L."""
    data = bars()
    series = BarSeries.from_arrays(
        [b[0] for b in data],
        [float(b[1]) for b in data],
        [float(b[2]) for b in data],
        [float(b[3]) for b in data],
        [float(b[4]) for b in data],
    )
    result = run_event(
        create_strategy("sma_crossover", PARAMS), series, BacktestSettings(initial_cash=100_000.0)
    )
    fills = [
        ("BUY" if f.side is Side.BUY else "SELL", f.size, f.time, f.price) for f in result.fills
    ]
    return fills, float(result.equity[-1]) - 100_000.0


@pytest_asyncio.fixture
async def replay_market(tmp_path: Path) -> AsyncIterator[MarketApp]:
    trades = tmp_path / "trades.csv"
    write_trades(trades)
    settings = MarketSettings(
        database_url=f"sqlite:///{tmp_path / 'market.db'}",
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        auth_mode="disabled",
        market_feed="replay",
        market_replay_path=str(trades),
        market_replay_speed=SPEED,
        market_products=PRODUCT,
        market_backfill_days=0,
        market_candle_flush_seconds=0.2,
        shutdown_grace_seconds=1,
    )
    app = build_market(settings)
    app.runner.publish_seconds = 0.05  # closed candles out within 50 ms of the next open
    await app.server.start()
    try:
        yield app
    finally:
        await app.server.stop()


@dataclass
class Live:
    """The execution service under test; `restart` replaces it with a fresh process state
    on the same database (everything in memory is lost, as after a crash)."""

    settings: ExecutionSettings
    running: RunningExecution

    @property
    def stub(self) -> execution_pb2_grpc.ExecutionServiceStub:
        return self.running.stub

    async def restart(self) -> None:
        await stop_execution(self.running)
        self.running = await start_execution(self.settings)


@pytest_asyncio.fixture
async def live(replay_market: MarketApp, tmp_path: Path) -> AsyncIterator[Live]:
    settings = execution_settings(
        f"sqlite:///{tmp_path / 'execution.db'}",
        replay_market.server.grpc_port,
        execution_paper_maker_fee_bps="0",
        execution_paper_taker_fee_bps="0",
        execution_paper_slippage_bps="0",
        execution_strategy_warmup_bars=50,
    )
    live = Live(settings, await start_execution(settings))
    try:
        yield live
    finally:
        await stop_execution(live.running)


async def _wait(predicate: Any, seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("restart", [False, True], ids=["straight", "restart-while-long"])
async def test_backtest_and_paper_make_the_same_trades(
    live: Live, replay_market: MarketApp, restart: bool
) -> None:
    """With `restart`, the execution service is restarted once the first entry filled: the
    instance resumes from the database, rebuilds its position from its fills and still
    makes the exit (and every later trade) the backtest makes."""
    expected, pnl = backtest()
    assert len(expected) >= 4, "the series must make at least two round trips"
    first_signal_time = min(t for _, _, t, _ in expected) - 60

    await _wait(lambda: _ready(live), 15, "execution to see market data")
    started = await live.stub.StartStrategy(
        pb.StartStrategyRequest(strategy="sma_crossover", params=PARAMS, product_ids=[PRODUCT])
    )
    instance_id = started.instance.strategy_instance_id

    async def running() -> bool:
        rec = await StrategyStore(live.running.app.engine).get(instance_id)
        return rec is not None and rec.state == "RUNNING"

    await _wait(running, 10, "the instance to warm up")
    assert replay_market.feed.replayed < 4 * (first_signal_time - T0) // 60, (
        "the runner started after the first signal bar; the flat lead-in is too short here"
    )

    async def fills() -> list[pb.Fill]:
        resp = await live.stub.ListFills(pb.ListFillsRequest(page_size=1000))
        return sorted(resp.fills, key=lambda f: f.time.ToNanoseconds())

    if restart:
        await _wait(lambda: _count(fills, 1), 30, "the first live fill")
        await live.restart()
        await _wait(lambda: _ready(live), 15, "execution to see market data again")
        await _wait(running, 10, "the instance to resume")
        resumed = live.running.app.strategies
        assert resumed is not None and instance_id in resumed._runs
        assert resumed._runs[instance_id].sessions[PRODUCT].position > 0  # rebuilt from fills
        exit_signal_bar = (expected[1][2] - 60 - T0) // 60
        assert replay_market.feed.replayed <= 4 * exit_signal_bar, (
            "resumed too late: the exit signal bar closed while the service was down"
        )

    async def done() -> bool:
        return len(await fills()) >= len(expected) and bool(replay_market.feed.finished)

    await _wait(done, 60, f"{len(expected)} live fills")
    await asyncio.sleep(1.0)  # nothing more may come
    got = await fills()
    assert len(got) == len(expected)

    actual = []
    for f in got:
        run, product, bar_time, n = f.client_order_id.split(":")
        assert (run, product, n) == (instance_id, PRODUCT, "0")
        # A signal on bar t fills at bar t+1's open.
        actual.append(
            (common_pb2.Side.Name(f.side)[5:], float(f.size), int(bar_time) + 60, f.price)
        )
    for (side, size, t, price), (eside, esize, et, eprice) in zip(actual, expected, strict=True):
        assert (side, t) == (eside, et)
        assert float(price) == eprice
        assert size == pytest.approx(esize, rel=1e-6, abs=0)

    # Every order carries its decision record: strategy, instance, indicator inputs.
    decisions = await live.stub.ListDecisions(pb.ListDecisionsRequest(strategy="sma_crossover"))
    assert len(decisions.decisions) == len(expected)
    for d in decisions.decisions:
        assert d.strategy_instance_id == instance_id
        assert {"fast", "slow", "close"} <= set(d.inputs.fields)
        assert len(d.order_ids) == 1
        assert len(d.trace_id) == 32  # the strategy.on_bar span's

    listed = await live.stub.ListStrategies(pb.ListStrategiesRequest())
    (inst,) = listed.instances
    assert inst.state == pb.STRATEGY_STATE_RUNNING
    assert inst.order_count == len(expected)
    assert float(inst.realized_pnl) == pytest.approx(pnl, rel=1e-4)  # flat at the end
    stopped = await live.stub.StopStrategy(pb.StopStrategyRequest(strategy_instance_id=instance_id))
    assert stopped.instance.state == pb.STRATEGY_STATE_STOPPED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await live.stub.StopStrategy(pb.StopStrategyRequest(strategy_instance_id=instance_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _ready(live: Live) -> bool:
    return bool(live.running.app.market.ready)


async def _count(fetch: Any, n: int) -> bool:
    return len(await fetch()) == n


async def test_a_risk_refusal_of_a_strategy_order_is_recorded_and_the_run_goes_on(
    live: Live,
) -> None:
    """The strategy's orders pass the same risk engine: with a 1,000 USD order limit its
    100,000 USD entry is refused, recorded as a block naming the instance and the decision,
    and the instance keeps running."""
    await _wait(lambda: _ready(live), 15, "execution to see market data")
    await live.stub.SetRiskLimits(
        pb.SetRiskLimitsRequest(
            limits=pb.RiskLimits(account_id="paper-main", max_order_notional="1000")
        )
    )
    started = await live.stub.StartStrategy(
        pb.StartStrategyRequest(strategy="sma_crossover", params=PARAMS, product_ids=[PRODUCT])
    )
    instance_id = started.instance.strategy_instance_id

    async def blocks() -> list[pb.Block]:
        return list((await live.stub.ListBlocks(pb.ListBlocksRequest())).blocks)

    await _wait(lambda: _count(blocks, 1), 30, "the entry to be refused")
    (block,) = await blocks()
    assert block.rule == pb.RISK_RULE_MAX_ORDER_NOTIONAL
    assert block.strategy_instance_id == instance_id
    assert block.decision_id
    assert block.client_order_id.startswith(f"{instance_id}:{PRODUCT}:")
    assert list((await live.stub.ListFills(pb.ListFillsRequest())).fills) == []
    listed = await live.stub.ListStrategies(pb.ListStrategiesRequest())
    assert [i.state for i in listed.instances] == [pb.STRATEGY_STATE_RUNNING]


@register
class _ProbeStrategy(Strategy):
    """Test-only: on its first live bar buys 1 BTC at market and bids far below; records
    what `on_fill` receives."""

    name = "test_live_probe"
    display_name = "Live probe (tests)"
    seen: ClassVar[list[tuple[str, Fill]]] = []

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return ()

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        if not ctx.open_orders and ctx.position == 0 and not self.seen:
            self.market_id = ctx.submit(OrderRequest(Side.BUY, size=1.0, reason="probe"))
            self.limit_id = ctx.submit(
                OrderRequest(Side.BUY, OrderType.LIMIT, size=1.0, limit_price=bar.close / 2)
            )

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        self.seen.append((self.market_id, fill))


async def test_fills_reach_on_fill_and_stop_cancels_open_orders(live: Live) -> None:
    await _wait(lambda: _ready(live), 15, "execution to see market data")
    started = await live.stub.StartStrategy(
        pb.StartStrategyRequest(strategy="test_live_probe", product_ids=[PRODUCT])
    )
    instance_id = started.instance.strategy_instance_id

    async def seen() -> bool:
        return bool(_ProbeStrategy.seen)

    await _wait(seen, 20, "on_fill")
    (market_id, fill), *more = _ProbeStrategy.seen
    assert more == []
    assert (fill.order_id, fill.side, fill.size) == (market_id, Side.BUY, 1.0)
    orders = await live.stub.ListOrders(pb.ListOrdersRequest(strategy_instance_id=instance_id))
    by_type = {o.type: o for o in orders.orders}
    assert by_type[pb.ORDER_TYPE_MARKET].status == pb.ORDER_STATUS_FILLED
    assert by_type[pb.ORDER_TYPE_LIMIT].status == pb.ORDER_STATUS_OPEN
    assert all(o.decision_id for o in orders.orders)

    await live.stub.StopStrategy(
        pb.StopStrategyRequest(strategy_instance_id=instance_id, cancel_open_orders=True)
    )
    limit = await live.stub.GetOrder(
        pb.GetOrderRequest(order_id=by_type[pb.ORDER_TYPE_LIMIT].order_id)
    )
    assert limit.order.status == pb.ORDER_STATUS_CANCELED
