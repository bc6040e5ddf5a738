"""Postgres: a batch of orders decided on the risk inputs its account's last batch kept
(migration 0008) is checked in its writes' round trip, and anything that changed them since -
a risk limit, the kill switch, a cancel, a fill, another replica's orders, a client order id
already used - sends it back to fresh reads: the answer is the one fresh reads give. Each
change is made here (the service drops what it kept) and on another replica on the same
database (only the check can find it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import grpc
import psycopg
import pytest
import pytest_asyncio

from tradeplane.execution.adapters.pg_writer import KEYED_PLANS, PgTx
from tradeplane.execution.domain.values import Liquidity
from tradeplane.execution.service_layer.ports import VenueFill
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.testing.isolation import libpq_url, postgres_database
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

from .conftest import RunningExecution, execution_settings, start_execution, stop_execution
from .test_execution_grpc import last_price
from .test_risk_rules_grpc import events_after, order, set_limits, settled_seq

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.postgres]

BUY = common_pb2.SIDE_BUY


@pytest.fixture
def execution_db(postgres_url: str) -> Iterator[str]:
    """Postgres only (conftest's ``execution`` runs on it)."""
    with postgres_database(postgres_url) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module", params=["here", "on another replica"])
async def changer(
    request: pytest.FixtureRequest,
    execution: RunningExecution,
    market: MarketApp,
    execution_db: str,
) -> AsyncIterator[RunningExecution]:
    """The service that makes the change: this one, or another on the same database."""
    if request.param == "here":
        yield execution
        return
    other = await start_execution(execution_settings(execution_db, market.server.grpc_port))
    try:
        yield other
    finally:
        await stop_execution(other)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The accounts of each batch that read its risk inputs (the real reads, counted)."""
    calls: list[list[str]] = []
    real = PgTx.batch_inputs

    async def counted(self: PgTx, order_ids: Any, account_ids: Any, *args: Any) -> Any:
        if account_ids:
            calls.append(list(account_ids))
        return await real(self, order_ids, account_ids, *args)

    monkeypatch.setattr(PgTx, "batch_inputs", counted)
    return calls


async def submit(ex: RunningExecution, request: pb.SubmitOrderRequest) -> pb.Order:
    return (await ex.stub.SubmitOrder(request)).order


async def refused(ex: RunningExecution, request: pb.SubmitOrderRequest) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ex.stub.SubmitOrder(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    return err.value.details() or ""


async def test_the_next_batch_decides_without_reading(
    execution: RunningExecution, reads: list[list[str]]
) -> None:
    price = await last_price(execution) * Decimal("0.9")
    first = await submit(execution, order("k-fast", "f-1", BUY, price))
    assert reads == [["k-fast"]] * 2  # a new account: created, then read again
    later = [await submit(execution, order("k-fast", f"f-{n}", BUY, price)) for n in (2, 3, 4)]
    assert reads == [["k-fast"]] * 2  # decided on the kept inputs, checked in the writes
    listed = (await execution.stub.ListOrders(pb.ListOrdersRequest(account_id="k-fast"))).orders
    assert sorted(o.order_id for o in listed) == sorted(o.order_id for o in [first, *later])
    assert {o.status for o in listed} == {pb.ORDER_STATUS_OPEN}


async def test_a_risk_limit_set_since_applies(
    execution: RunningExecution, changer: RunningExecution, reads: list[list[str]]
) -> None:
    price = await last_price(execution) * Decimal("0.9")
    await submit(execution, order("k-limit", "l-1", BUY, price))
    before = len(reads)
    await set_limits(changer, "k-limit", max_order_notional="10")
    assert "MAX_ORDER_NOTIONAL" in await refused(execution, order("k-limit", "l-2", BUY, price))
    assert len(reads) == before + 1  # read again: the limits' row changed
    await set_limits(changer, "k-limit")  # no limits
    await submit(execution, order("k-limit", "l-3", BUY, price))


async def test_the_kill_switch_applies_to_the_next_order(
    execution: RunningExecution, changer: RunningExecution
) -> None:
    price = await last_price(execution) * Decimal("0.9")
    await submit(execution, order("k-halt", "h-1", BUY, price))
    await changer.stub.HaltTrading(pb.HaltTradingRequest(account_id="k-halt", reason="t"))
    assert "HALTED" in await refused(execution, order("k-halt", "h-2", BUY, price))
    await changer.stub.SetTradingState(
        pb.SetTradingStateRequest(account_id="k-halt", state=pb.TRADING_STATE_ACTIVE, reason="t")
    )
    await submit(execution, order("k-halt", "h-3", BUY, price))
    # The global state too (every account's inputs include it).
    await changer.stub.HaltTrading(pb.HaltTradingRequest(all_accounts=True, reason="t"))
    assert "HALTED" in await refused(execution, order("k-halt", "h-4", BUY, price))


async def test_a_cancel_since_frees_its_size(
    execution: RunningExecution, changer: RunningExecution
) -> None:
    """The kept inputs count both working orders; a cancel (another path) frees one: the
    third order fits under the position limit only on fresh inputs."""
    price = await last_price(execution) * Decimal("0.9")
    await set_limits(execution, "k-cancel", max_position="0.0025")
    first = await submit(execution, order("k-cancel", "c-1", BUY, price))
    await submit(execution, order("k-cancel", "c-2", BUY, price))
    await changer.stub.CancelOrder(pb.CancelOrderRequest(order_id=first.order_id))
    third = await submit(execution, order("k-cancel", "c-3", BUY, price))
    assert third.status == pb.ORDER_STATUS_OPEN


async def test_another_replicas_orders_count(
    execution: RunningExecution, market: MarketApp, execution_db: str
) -> None:
    """Two services on one database: each one's kept inputs miss the other's orders; the
    check finds them, so the position limit holds over both."""
    other = await start_execution(execution_settings(execution_db, market.server.grpc_port))
    try:
        price = await last_price(execution) * Decimal("0.9")
        await set_limits(execution, "k-two", max_position="0.0025")
        await submit(execution, order("k-two", "t-1", BUY, price))  # kept here: 0.001 working
        await submit(other, order("k-two", "t-2", BUY, price))  # 0.002 working in all
        details = await refused(execution, order("k-two", "t-3", BUY, price))
        assert "MAX_POSITION" in details
    finally:
        await stop_execution(other)


async def test_a_fill_since_counts(execution: RunningExecution, changer: RunningExecution) -> None:
    """A fill changes the position (and the account row): the next order is checked on it.
    While REDUCING, a sell is allowed only against a long position - which the kept inputs,
    kept before the fill, do not have."""
    price = await last_price(execution)
    placed = await submit(execution, order("k-fill", "x-1", BUY, price / 2, size="0.002"))
    await execution.stub.SetTradingState(
        pb.SetTradingStateRequest(account_id="k-fill", state=pb.TRADING_STATE_REDUCING, reason="t")
    )
    sell = common_pb2.SIDE_SELL
    await refused(execution, order("k-fill", "x-2", sell, price * 2))  # no position yet: kept
    await execution.app.venue.cancel_quietly(placed.order_id)  # the fill is reported by hand
    tick = execution.app.market.last_tick("BTC-USD")
    assert tick is not None
    await changer.app.commands.on_fill(
        VenueFill(
            order_id=placed.order_id,
            venue_trade_id="k-fill-t1",
            price=(price / 2).quantize(Decimal("0.01")),
            size=Decimal("0.002"),
            fee=Decimal("0.01"),
            fee_currency="USD",
            liquidity=Liquidity.MAKER,
            time=tick.time,
        )
    )
    sold = await submit(execution, order("k-fill", "x-3", sell, price * 2))
    assert sold.status == pb.ORDER_STATUS_OPEN


async def test_acks_ride_in_the_next_batch_of_intents(
    execution: RunningExecution, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent orders: the acks of one batch's orders are committed in the next batch's
    round trip; every order ends OPEN with its venue id, with one order_submitted and one
    order_updated event each, numbered without a gap."""
    rode: list[int] = []
    real = PgTx.ack_first

    def counted(self: PgTx, pairs: Any) -> None:
        rode.append(len(pairs))
        real(self, pairs)

    monkeypatch.setattr(PgTx, "ack_first", counted)
    price = await last_price(execution) * Decimal("0.9")
    await submit(execution, order("k-ride", "a-0", BUY, price))  # the inputs kept
    since = await settled_seq(execution)
    placed = await asyncio.gather(
        *(submit(execution, order("k-ride", f"a-{n}", BUY, price)) for n in range(1, 41))
    )
    assert sum(rode) > 0
    listed = (await execution.stub.ListOrders(pb.ListOrdersRequest(account_id="k-ride"))).orders
    assert len(listed) == 41
    assert all(o.status == pb.ORDER_STATUS_OPEN and o.venue_order_id for o in listed)
    events = await events_after(execution, since, "k-ride")
    assert [e.seq for e in events] == list(range(since + 1, since + 81))
    kinds: dict[str, list[str]] = {o.order_id: [] for o in placed}
    for e in events:
        kind = e.WhichOneof("payload")
        assert kind in ("order_submitted", "order_updated")
        kinds[getattr(e, kind).order_id].append(kind)
    assert all(k == ["order_submitted", "order_updated"] for k in kinds.values())


async def test_a_retry_gets_its_order(execution: RunningExecution, reads: list[list[str]]) -> None:
    price = await last_price(execution) * Decimal("0.9")
    first = await submit(execution, order("k-retry", "r-1", BUY, price))
    await submit(execution, order("k-retry", "r-2", BUY, price))
    again = await submit(execution, order("k-retry", "r-1", BUY, price))
    assert again.order_id == first.order_id  # the client order id's unique index sent it back
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execution.stub.SubmitOrder(order("k-retry", "r-1", BUY, price, size="0.002"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = (await execution.stub.ListOrders(pb.ListOrdersRequest(account_id="k-retry"))).orders
    assert len(listed) == 2


async def test_each_input_row_changes_the_stamp(execution_db: str) -> None:
    """tp_risk_rows changes with any write to a row the inputs come from - even of the same
    values - and only then; tp_expect_risk_inputs compares the remaining sizes as numbers."""
    from tradeplane.execution.entrypoints.bootstrap import MIGRATIONS_DIR
    from tradeplane.runtime.db import run_migrations

    run_migrations(execution_db, MIGRATIONS_DIR)
    with psycopg.connect(libpq_url(execution_db), autocommit=True, options=KEYED_PLANS) as conn:
        conn.execute(
            "INSERT INTO accounts (account_id, venue, display_name, valuation_currency, cash, "
            "daily_pnl_amount, loss_streak_count, create_time_us) "
            "VALUES ('s', 'PAPER', 's', 'USD', '{}', '0', 0, 0), "
            "('other', 'PAPER', 'o', 'USD', '{}', '0', 0, 0)"
        )

        def stamp() -> str:
            row = conn.execute("SELECT tp_risk_rows('s')").fetchone()
            assert row is not None
            return str(row[0])

        writes = [
            "UPDATE accounts SET cash = cash WHERE account_id = 's'",
            "INSERT INTO risk_limits VALUES ('s', '{}', 'test', 0)",
            "UPDATE risk_limits SET limits = limits WHERE account_id = 's'",
            "INSERT INTO trading_states VALUES ('s', 'HALTED', 'ACTIVE', 'r', 'test', 0, 0)",
            "INSERT INTO trading_states VALUES ('', 'HALTED', 'ACTIVE', 'r', 'test', 0, 0)",
            "UPDATE trading_states SET state = state WHERE scope_id = ''",
            "INSERT INTO positions (account_id, product_id, venue, quantity, "
            "average_entry_price, realized_pnl, fees_paid) "
            "VALUES ('s', 'BTC-USD', 'PAPER', '0', '0', '0', '0')",
            "UPDATE positions SET quantity = quantity WHERE account_id = 's'",
        ]
        for sql in writes:
            before = stamp()
            conn.execute(sql)
            assert stamp() != before, sql
        before = stamp()
        for sql in [
            "UPDATE accounts SET cash = cash WHERE account_id = 'other'",
            "INSERT INTO trading_states VALUES ('other', 'HALTED', 'ACTIVE', 'r', 'test', 0, 0)",
            "INSERT INTO open_size_deltas (account_id, product_id, side, delta) "
            "VALUES ('s', 'BTC-USD', 'BUY', 1.5)",
        ]:
            conn.execute(sql)
        assert stamp() == before  # another account's rows; sizes are compared as numbers

        def expect(sizes: str) -> None:
            conn.execute(
                "SELECT tp_expect_risk_inputs(ARRAY['s'], ARRAY[%s], %s::json)", (before, sizes)
            )

        expect('[["s", "BTC-USD", "BUY", "1.50"], ["s", "ETH-USD", "SELL", "0"]]')
        for wrong in [
            "[]",
            '[["s", "BTC-USD", "BUY", "1.4"]]',
            '[["s", "BTC-USD", "SELL", "1.5"]]',
            '[["s", "BTC-USD", "BUY", "1.5"], ["s", "ETH-USD", "BUY", "1"]]',
        ]:
            with pytest.raises(psycopg.errors.SerializationFailure):
                expect(wrong)
        with pytest.raises(psycopg.errors.SerializationFailure):
            conn.execute(
                "SELECT tp_expect_risk_inputs(ARRAY['s'], ARRAY['x'], "
                """'[["s", "BTC-USD", "BUY", "1.5"]]'::json)"""
            )
