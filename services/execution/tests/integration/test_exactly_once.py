"""Exactly-once fills, a gapless outbox under concurrent writers, and an upstream market that
is down at start (retry with backoff, never a crash)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.execution.adapters.sql_store import WriteLane
from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution, execution_settings, start_execution, stop_execution
from .test_execution_grpc import eventually, get, last_price, limit, read_events

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_fill_reported_twice_is_applied_once(execution: RunningExecution) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    order = (
        await execution.stub.SubmitOrder(limit("dup-1", common_pb2.SIDE_BUY, far, size="0.01"))
    ).order
    await execution.app.venue.cancel_quietly(order.order_id)  # keep the book from filling it
    report = VenueFill(
        order_id=order.order_id,
        venue_trade_id="paper-dup-trade-1",
        price=far,
        size=Decimal("0.004"),
        fee=Decimal("0.01"),
        fee_currency="USD",
        liquidity=Liquidity.MAKER,
        time=execution.app.market.last_tick("BTC-USD").time,  # type: ignore[union-attr]
    )
    await asyncio.gather(*(execution.app.commands.on_fill(report) for _ in range(5)))
    await execution.app.commands.on_fill(report)
    got = await get(execution, order.order_id)
    assert got.status == pb.ORDER_STATUS_PARTIALLY_FILLED
    assert Decimal(got.filled_size) == Decimal("0.004")
    fills = (await execution.stub.ListFills(pb.ListFillsRequest(order_id=order.order_id))).fills
    assert [f.venue_trade_id for f in fills] == ["paper-dup-trade-1"]
    positions = (await execution.stub.ListPositions(pb.ListPositionsRequest())).positions
    assert [Decimal(p.quantity) for p in positions] == [Decimal("0.004")]
    fill_events, _ = await read_events(execution, 0, 1, event_types=[pb.EVENT_TYPE_FILL])
    assert [e.fill.venue_trade_id for e in fill_events] == ["paper-dup-trade-1"]


async def test_outbox_is_gapless_under_concurrent_clients(execution: RunningExecution) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))

    async def client(n: int) -> None:
        for i in range(5):
            await execution.stub.SubmitOrder(limit(f"c{n}-{i}", common_pb2.SIDE_BUY, far))

    reader = asyncio.ensure_future(read_events(execution, 0, 100))  # 50 orders x 2 events
    await asyncio.gather(*(client(n) for n in range(10)))
    events, reset = await reader
    assert not reset
    assert [e.seq for e in events] == list(range(1, 101))
    submitted = [e.order_submitted.client_order_id for e in events if e.HasField("order_submitted")]
    assert len(submitted) == len(set(submitted)) == 50


async def test_market_down_at_start_is_retried_not_fatal(
    execution_db: str, unused_tcp_port: int, tmp_path: Path
) -> None:
    port = unused_tcp_port
    settings = execution_settings(execution_db, port, execution_market_wait_seconds=0.2)
    ex = await start_execution(settings)
    market: MarketApp | None = None
    try:
        health = health_pb2_grpc.HealthStub(ex.channel)

        async def status() -> int:
            return (await health.Check(health_pb2.HealthCheckRequest())).status

        await eventually(status, lambda s: s == health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ex.stub.SubmitOrder(limit("u-1", common_pb2.SIDE_BUY, Decimal("1")))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # Reads work meanwhile.
        await ex.stub.ListOrders(pb.ListOrdersRequest())

        market = build_market(
            MarketSettings(
                database_url=f"sqlite:///{tmp_path / 'late-market.db'}",
                grpc_host="127.0.0.1",
                grpc_port=port,
                metrics_port=-1,
                auth_mode="disabled",
                market_backfill_days=0,
                market_tick_rate=50,
            )
        )
        await market.server.start()
        await eventually(status, lambda s: s == health_pb2.HealthCheckResponse.SERVING, 15)
        await last_price(ex)
        order = (await ex.stub.SubmitOrder(limit("u-2", common_pb2.SIDE_BUY, Decimal("1")))).order
        assert order.status == pb.ORDER_STATUS_OPEN
    finally:
        await stop_execution(ex)
        if market is not None:
            await market.server.stop()


async def test_a_cursor_older_than_the_retained_outbox_gets_reset(
    execution: RunningExecution,
) -> None:
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    await execution.stub.SubmitOrder(limit("old-1", common_pb2.SIDE_BUY, far))
    events, _ = await read_events(execution, 0, 2)
    assert [e.seq for e in events] == [1, 2]
    # Retention deletes what is there now; new events follow.
    assert await execution.app.store.prune_events(datetime.now(UTC) + timedelta(seconds=1)) == 2
    await execution.stub.SubmitOrder(limit("old-2", common_pb2.SIDE_BUY, far))
    stale, reset = await read_events(execution, 1, 2)
    assert reset and [e.seq for e in stale] == [3, 4]
    fresh, reset = await read_events(execution, 0, 2)  # "from the oldest retained": no reset
    assert not reset and [e.seq for e in fresh] == [3, 4]
    current, reset = await read_events(execution, 3, 1)
    assert not reset and [e.seq for e in current] == [4]
    future, reset = await read_events(execution, 99, 2)
    assert reset and [e.seq for e in future] == [3, 4]


async def test_sequencer_waits_for_an_earlier_open_transaction(
    execution: RunningExecution,
) -> None:
    """Postgres: events committed while an earlier writer is still open are numbered only
    after it finishes, so a reader never passes a seq that an earlier commit would fill."""
    store = execution.app.store
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite numbers events inside its single writer")
    from tradeplane.execution.adapters.sql_store import SqlTx
    from tradeplane.execution.domain import events as ev
    from tradeplane.execution.domain.risk import RiskLimits
    from tradeplane.execution.entrypoints.mapping import encode_event

    sequencer = store._sequencer
    assert sequencer is not None
    await sequencer.stop()  # drive it by hand
    now = datetime.now(UTC)
    _, before = await store.event_bounds()
    async with store.engine.begin() as conn:
        early = SqlTx(conn, "postgresql")
        early.add_event(ev.RiskLimitsChanged(RiskLimits("early"), "t", now), now)
        await early.flush_events(encode_event)
        async with store.transaction() as late:
            late.add_event(ev.RiskLimitsChanged(RiskLimits("late"), "t", now), now)
        assert await sequencer.run_once() == 0  # "late" committed, but "early" is still open
    assert await sequencer.run_once() == 2
    events, _ = await read_events(execution, before, 2)
    assert [(e.seq, e.risk_limits_changed.account_id) for e in events] == [
        (before + 1, "early"),
        (before + 2, "late"),
    ]
    await sequencer.start()


async def test_a_writer_connection_killed_by_the_database_answers_unavailable_then_recovers(
    execution: RunningExecution,
) -> None:
    """Postgres: the group commit's own connection is terminated by the server (as on a
    database restart). Killed while idle, it is seen closing (its socket stays watched) and
    the next submit is served on a new connection. Killed in the middle of a batch (here
    while it waits for an account lock), the submit gets UNAVAILABLE and changes nothing;
    the caller's retry (same client order id) is served on a new connection, once."""
    store = execution.app.store
    if store._writers is None:
        pytest.skip("SQLite: the group commit runs on the SQLAlchemy engine")
    writer = store._writers[WriteLane.INTENTS]
    price = await last_price(execution)
    far = (price / 2).quantize(Decimal("0.01"))
    await execution.stub.SubmitOrder(limit("conn-0", common_pb2.SIDE_BUY, far))  # connected
    assert writer._conn is not None
    pid = writer._conn.info.backend_pid
    async with store.engine.connect() as conn:

        async def backend(pid: int) -> tuple[int, str]:
            # pg_stat_activity is a snapshot kept for the transaction: take a fresh one.
            await conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            row = (
                await conn.exec_driver_sql(
                    "SELECT count(*), max(coalesce(wait_event_type, '')) "
                    f"FROM pg_stat_activity WHERE pid = {pid}"
                )
            ).one()
            return int(row[0]), str(row[1])

        await conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        await conn.commit()
        await eventually(lambda: backend(pid), lambda b: b[0] == 0, seconds=10)
        idle = limit("conn-idle", common_pb2.SIDE_BUY, far)
        assert (await execution.stub.SubmitOrder(idle)).order.status == pb.ORDER_STATUS_OPEN
        assert writer._conn.info.backend_pid != pid
        pid = writer._conn.info.backend_pid

        # Mid-batch: the account row locked elsewhere holds the batch inside its transaction.
        await conn.exec_driver_sql(
            "SELECT 1 FROM accounts WHERE account_id = 'paper-main' FOR UPDATE"
        )
        request = limit("conn-1", common_pb2.SIDE_BUY, far)
        submit = asyncio.ensure_future(execution.stub.SubmitOrder(request))
        await eventually(lambda: backend(pid), lambda b: b[1] == "Lock", seconds=10)
        await conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        await conn.rollback()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await submit
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    listed = (await execution.stub.ListOrders(pb.ListOrdersRequest())).orders
    assert "conn-1" not in {o.client_order_id for o in listed}  # nothing was committed
    order = (await execution.stub.SubmitOrder(request)).order
    assert order.status == pb.ORDER_STATUS_OPEN
    assert writer._conn.info.backend_pid != pid
    again = (await execution.stub.SubmitOrder(request)).order  # idempotent: the same order
    assert again.order_id == order.order_id
