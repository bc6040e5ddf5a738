"""Venue fills applied in batches (``on_fills``: one transaction per batch) against real
SQLite and Postgres: the same rows, outbox events and metrics as ``on_fill`` one fill at a
time on a second database; duplicates, unknown orders, bracket legs and a bad fill."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from prometheus_client import REGISTRY
from sqlalchemy import text

from tradeplane.execution.adapters.sql_store import SqlStore
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec, OrderStatus
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)
from tradeplane.execution.entrypoints.mapping import encode_event
from tradeplane.execution.migrations import MIGRATIONS_DIR
from tradeplane.execution.service_layer.commands import AccountDefaults, ExecutionCommands
from tradeplane.execution.service_layer.event_signal import EventSignal
from tradeplane.execution.service_layer.ports import MarketTick, VenueFill
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.runtime.errors import FailedPrecondition
from tradeplane.testing.isolation import postgres_database
from trading.execution.v1 import execution_pb2 as pb

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PRICES = {"BTC-USD": Decimal("50000"), "ETH-USD": Decimal("3000")}


class Market:
    """Fixed marks (the service marks positions to the last trade price)."""

    ready = True

    def product(self, product_id: str) -> None:
        return None

    def last_tick(self, product_id: str) -> MarketTick | None:
        return None

    def last_price(self, product_id: str) -> Decimal | None:
        return PRICES.get(product_id)

    def add_listener(self, listener: object) -> None:
        pass


class OfflineVenue:
    """A venue without native brackets that cannot be reached: legs opened by a fill are
    sent (recorded here) and stay NEW, so both databases end in the same state."""

    venue = Venue.COINBASE

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def bind(self, reports: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, order: Order) -> str:
        self.submitted.append(order.spec.client_order_id)
        raise ConnectionError("test venue is offline")

    async def cancel(self, order: Order) -> bool:
        return False

    async def resume(self, orders: object) -> None:
        pass


@dataclass
class Service:
    store: SqlStore
    commands: ExecutionCommands
    venue: OfflineVenue


@contextlib.contextmanager
def database(kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@contextlib.asynccontextmanager
async def service(url: str) -> AsyncIterator[Service]:
    await asyncio.to_thread(run_migrations, url, MIGRATIONS_DIR)
    engine = create_engine(url)
    store = SqlStore(engine, encode_event, EventSignal())
    await store.start()
    venue = OfflineVenue()
    commands = ExecutionCommands(
        store,
        venue,
        Market(),
        AccountDefaults("a", venue=Venue.COINBASE),
        rates=lambda currency: {},
        clock=lambda: NOW,
    )
    try:
        yield Service(store, commands, venue)
    finally:
        await store.stop()
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with (
        database(request.param, tmp_path, "batch", request) as batch,
        database(request.param, tmp_path, "single", request) as single,
    ):
        yield batch, single


def spec(account: str, client_id: str, product: str, side: Side, size: str, **kw: Any) -> OrderSpec:
    return OrderSpec(
        account_id=account,
        client_order_id=client_id,
        product_id=product,
        side=side,
        type=kw.pop("type", OrderType.LIMIT),
        time_in_force=TimeInForce.GTC,
        venue=Venue.COINBASE,
        base_size=Decimal(size),
        limit_price=PRICES[product],
        **kw,
    )


ORDERS = [
    Order.new("o-a-btc", spec("a", "a-btc", "BTC-USD", Side.BUY, "0.1"), NOW),
    Order.new("o-a-eth", spec("a", "a-eth", "ETH-USD", Side.SELL, "1"), NOW),
    Order.new("o-b-btc", spec("b", "b-btc", "BTC-USD", Side.BUY, "0.05"), NOW),
    Order.new(
        "o-b-entry",
        spec(
            "b",
            "b-entry",
            "BTC-USD",
            Side.BUY,
            "0.02",
            type=OrderType.BRACKET,
            bracket=BracketSpec(Decimal("55000"), Decimal("45000")),
        ),
        NOW,
    ),
]


async def place_orders(svc: Service) -> None:
    """The orders as acknowledged by the venue (accounts "a" and "b" exist)."""
    async with svc.store.transaction() as tx:
        for account in ("a", "b"):
            await tx.ensure_account(svc.commands._new_account(account))
        for n, order in enumerate(ORDERS):
            await tx.insert_order(order.acknowledge(f"v-{n}", NOW))


_trade_times = itertools.count()


def fill(order_id: str, trade_id: str, size: str, price: str, fee: str = "0.5") -> VenueFill:
    return VenueFill(
        order_id=order_id,
        venue_trade_id=trade_id,
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal(fee),
        fee_currency="USD",
        liquidity=Liquidity.MAKER,
        time=NOW + timedelta(seconds=next(_trade_times) % 7),
    )


# Two batches: several orders and accounts, partial then final fills of one order, a
# duplicate inside a batch and across batches, an unknown order, a bracket entry filled.
BATCH_1 = [
    fill("o-a-btc", "t1", "0.03", "49900"),
    fill("o-a-eth", "t2", "0.4", "3010"),
    fill("o-b-btc", "t3", "0.05", "50100", fee="1.25"),
    fill("o-a-btc", "t1", "0.03", "49900"),  # duplicate in the batch
    fill("o-missing", "t9", "1", "100"),  # unknown order
    fill("o-a-btc", "t4", "0.07", "49800"),  # completes o-a-btc
    fill("o-b-entry", "t5", "0.02", "50050"),  # completes the bracket entry: legs
    fill("o-a-eth", "t6", "0.35", "3020"),
]
BATCH_2 = [
    fill("o-a-btc", "t4", "0.07", "49800"),  # duplicate of the first batch
    fill("o-a-eth", "t7", "0.25", "3005"),  # completes o-a-eth
    fill("o-b-entry", "t5", "0.02", "50050"),  # duplicate: legs are not opened again
]


async def wait_sent(svc: Service, count: int) -> None:
    async with asyncio.timeout(10):
        while len(svc.venue.submitted) < count:  # noqa: ASYNC110 (sent by background tasks)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # nothing more is on its way


async def table(svc: Service, name: str, drop: tuple[str, ...], key: tuple[str, ...]) -> list[Any]:
    async with svc.store.engine.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {name}"))
        rows = [{k: v for k, v in r._mapping.items() if k not in drop} for r in result]
    return sorted(rows, key=lambda r: tuple(r[k] for k in key))


async def outbox(svc: Service, count: int) -> list[dict[str, Any]]:
    """The outbox events (once numbered), ids of rows made here (fills, legs) replaced by
    placeholders in order of appearance, trace context left out."""
    async with asyncio.timeout(10):
        while True:
            stored = await svc.store.events_after(0, 1 << 62, [], [], 10_000)
            if len(stored) >= count:
                break
            await asyncio.sleep(0.05)
    names: dict[str, str] = {}
    out = []
    for e in stored:
        event = pb.Event.FromString(e.payload)
        event.ClearField("trace_context")
        body = MessageToDict(event)
        _rename_ids(body, names)
        out.append({"type": e.event_type, "account": e.account_id, "body": body})
    return out


def _rename_ids(node: Any, names: dict[str, str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("fillId", "orderId") and isinstance(v, str) and not v.startswith("o-"):
                node[k] = names.setdefault(v, f"id-{len(names)}")
            else:
                _rename_ids(v, names)
    elif isinstance(node, list):
        for v in node:
            _rename_ids(v, names)


def counters() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in REGISTRY.collect():
        if metric.name in (
            "execution_fills",
            "execution_fills_duplicate",
            "execution_order_updates",
        ):
            for s in metric.samples:
                if s.name.endswith("_total"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


async def state(svc: Service) -> dict[str, Any]:
    return {
        # Legs get a fresh order id (uuid) on each database: compared by client order id.
        "orders": await table(svc, "orders", ("order_id",), ("account_id", "client_order_id")),
        "fills": await table(svc, "fills", ("fill_id",), ("venue", "venue_trade_id")),
        "positions": await table(svc, "positions", (), ("account_id", "product_id")),
        "accounts": await table(svc, "accounts", (), ("account_id",)),
    }


async def test_batches_equal_one_fill_at_a_time(two_databases: tuple[str, str]) -> None:
    batch_url, single_url = two_databases
    async with service(batch_url) as batch, service(single_url) as single:
        await place_orders(batch)
        await place_orders(single)

        before = counters()
        await batch.commands.on_fills(BATCH_1)
        await batch.commands.on_fills(BATCH_2)
        await wait_sent(batch, 2)
        batch_metrics = delta(before, counters())

        before = counters()
        for report in BATCH_1 + BATCH_2:
            await single.commands.on_fill(report)
        await wait_sent(single, 2)
        single_metrics = delta(before, counters())

        got, want = await state(batch), await state(single)
        assert got == want
        # ... and it is the expected state, not two equal wrong ones.
        orders = {o["client_order_id"]: o for o in got["orders"]}
        assert orders["a-btc"]["status"] == "FILLED" and orders["a-btc"]["fill_count"] == 2
        assert orders["a-eth"]["status"] == "FILLED" and orders["a-eth"]["filled_size"] == "1"
        assert orders["b-btc"]["status"] == "FILLED"
        assert orders["b-entry"]["status"] == "FILLED"
        legs = [o for o in got["orders"] if o["parent_order_id"] == "o-b-entry"]
        assert sorted(o["client_order_id"] for o in legs) == ["b-entry-sl", "b-entry-tp"]
        assert all(o["status"] == "NEW" and o["base_size"] == "0.02" for o in legs)
        assert sorted(batch.venue.submitted) == ["b-entry-sl", "b-entry-tp"]  # sent once
        assert [f["venue_trade_id"] for f in got["fills"]] == [
            "t1",
            "t2",
            "t3",
            "t4",
            "t5",
            "t6",
            "t7",
        ]
        positions = {(p["account_id"], p["product_id"]): p for p in got["positions"]}
        assert positions[("a", "BTC-USD")]["quantity"] == "0.1"
        assert positions[("a", "ETH-USD")]["quantity"] == "-1"
        assert positions[("b", "BTC-USD")]["quantity"] == "0.07"
        assert positions[("a", "BTC-USD")]["fees_paid"] == "1"

        count = 7 * 4 + 2  # 4 per applied fill, 2 legs
        events, expected = await outbox(batch, count), await outbox(single, count)
        assert len(events) == len(expected) == count
        assert events == expected
        types = [e["type"] for e in events]
        assert types[:4] == ["ORDER_UPDATED", "FILL", "POSITION_UPDATE", "PORTFOLIO_UPDATE"]
        a_btc = [
            e["body"]["orderUpdated"]["status"]
            for e in events
            if e["type"] == "ORDER_UPDATED" and e["body"]["orderUpdated"]["orderId"] == "o-a-btc"
        ]
        assert a_btc == ["ORDER_STATUS_PARTIALLY_FILLED", "ORDER_STATUS_FILLED"]
        assert types.count("ORDER_SUBMITTED") == 2

        assert batch_metrics == single_metrics
        dups = sum(v for (name, _), v in batch_metrics.items() if "duplicate" in name)
        applied = sum(
            v for (name, _), v in batch_metrics.items() if name == "execution_fills_total"
        )
        assert (dups, applied) == (3, 7)


async def test_a_bad_fill_does_not_hold_back_the_others(two_databases: tuple[str, str]) -> None:
    url, _ = two_databases
    async with service(url) as svc:
        await place_orders(svc)
        reports = [
            fill("o-a-btc", "t1", "0.03", "49900"),
            fill("o-b-btc", "t-over", "0.5", "50000"),  # overfills a 0.05 order
            fill("o-a-eth", "t2", "0.4", "3010"),
        ]
        with pytest.raises(FailedPrecondition, match="overfill"):
            await svc.commands.on_fills(reports)
        fills = await table(svc, "fills", ("fill_id",), ("venue_trade_id",))
        assert [f["venue_trade_id"] for f in fills] == ["t1", "t2"]
        orders = {o["client_order_id"]: o for o in await table(svc, "orders", (), ("order_id",))}
        assert orders["b-btc"]["status"] == "OPEN" and orders["b-btc"]["filled_size"] == "0"
        assert orders["a-btc"]["status"] == "PARTIALLY_FILLED"
        # The good ones are in exactly once: a retry of the whole batch adds nothing.
        with pytest.raises(FailedPrecondition):
            await svc.commands.on_fills(reports)
        assert len(await table(svc, "fills", (), ("fill_id",))) == 2


async def test_a_batch_larger_than_one_transaction(two_databases: tuple[str, str]) -> None:
    """More fills than MAX_FILL_BATCH: split into several transactions, all applied."""
    url, _ = two_databases
    async with service(url) as svc:
        await place_orders(svc)
        size = Decimal("0.0001")
        reports = [fill("o-a-btc", f"s{n}", str(size), "50000", fee="0") for n in range(450)]
        await svc.commands.on_fills(reports + reports[:10])
        orders = {o["client_order_id"]: o for o in await table(svc, "orders", (), ("order_id",))}
        assert Decimal(orders["a-btc"]["filled_size"]) == size * 450
        assert orders["a-btc"]["fill_count"] == 450
        [position] = [
            p for p in await table(svc, "positions", (), ("product_id",)) if p["account_id"] == "a"
        ]
        assert Decimal(position["quantity"]) == size * 450


async def test_fill_count_counts_fills_through_later_updates(
    two_databases: tuple[str, str],
) -> None:
    """``orders.fill_count`` is the number of fills applied: an update after the fills (here
    the venue reporting the order cancelled) keeps it - the order it writes was read without
    the trade ids of its past fills."""
    url, _ = two_databases
    async with service(url) as svc:
        await place_orders(svc)
        await svc.commands.on_fills([fill("o-a-btc", "c1", "0.01", "49900")])
        await svc.commands.on_fill(fill("o-a-btc", "c2", "0.02", "49900"))
        await svc.commands.on_order_done("o-a-btc", OrderStatus.CANCELED, "cancelled at the venue")
        orders = {o["client_order_id"]: o for o in (await state(svc))["orders"]}
        assert orders["a-btc"]["status"] == "CANCELED"
        assert orders["a-btc"]["filled_size"] == "0.03"
        assert orders["a-btc"]["fill_count"] == 2
