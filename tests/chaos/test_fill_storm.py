"""Duplicate and replayed fills while processes crash (issue 11, item 3): the fake Coinbase
trades a real execution process's resting orders thousands of times, and the fills reach it
every way Coinbase delivers them: one `user` channel update per fill, cumulative jumps after
several fills (each read back over REST: list fills), fills never announced (found by the
reconciliation over REST: open orders, get order, list fills), repeated cumulative states,
every order's state replayed, the WebSocket dropped (reconnect + resync). Meanwhile execution
is SIGKILLed at seeded points and started again (fills keep trading while it is down), and a
wallets process consumes execution's fills into its ledger (StreamEvents, durable cursor).

An independent oracle computed from the fake's own fill records (trade ids, per-product
size, cost and fees; the ledger's rounded notionals and fees) must equal what execution
reports (ListFills: count and trade ids; ListPositions: quantity, fees, realised P&L against
the cost basis; every order's filled size) and what the ledger holds (one set of entries per
trade id, the Coinbase wallet's balances): zero double-counted trade ids, zero lost fills.

Fills: CHAOS_FILLS (800 here; `make test-chaos` sets 10,000); kills: CHAOS_FILL_KILLS
(2 here; 5 under `make test-chaos`). `--seed=N` repeats a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import grpc
import grpc.aio
import pytest
from coinbase_chaos import RETRIABLE, CoinbaseStack, Recovery, coinbase_stack

from tradeplane.testing.processes import ServiceFactory, ServiceProcess, service_processes
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb

FILLS = int(os.environ.get("CHAOS_FILLS", "800"))
KILLS = int(os.environ.get("CHAOS_FILL_KILLS", "2"))
FILLS_PER_ORDER = 10
MAX_BACKLOG = 200  # fills traded but not applied yet, at most (while execution is up)
OUTAGE_FILLS = 150  # at most this many fills traded during one outage (seeded below it)
RATE = 300.0  # fills per second the fake trades (execution keeps up with a few hundred)
PRICES = {"BTC-USD": Decimal("50000"), "ETH-USD": Decimal("3000")}
ORDER_SIZE = Decimal("0.1")
CENT = Decimal("0.01")
LEDGER_USD = Decimal("0.00000001")  # the ledger keeps USD to 8 decimals, rounded half-even
ACCOUNT = "paper-main"  # execution's default account; wallets' default too

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(2400)]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    with service_processes(tmp_path) as factory:
        yield factory


@dataclass(frozen=True)
class PlannedFill:
    order: int  # index into the placed orders
    size: Decimal
    price: Decimal


def plan_fills(rng: random.Random, orders: int) -> list[PlannedFill]:
    """FILLS_PER_ORDER fills per order (a fifth of the orders filled completely), the
    orders' fills interleaved in a seeded order."""
    per_order: list[list[PlannedFill]] = []
    for k in range(orders):
        base = PRICES[product_of(k)]
        sizes = [Decimal(rng.randint(10, 100)) / 10_000 for _ in range(FILLS_PER_ORDER)]
        if k % 5 == 0:  # completes the order: FILLED after its last fill
            sizes[-1] = ORDER_SIZE - sum(sizes[:-1], Decimal(0))
        prices = [(base * Decimal(1 + rng.uniform(-0.02, 0.02))).quantize(CENT) for _ in sizes]
        per_order.append([PlannedFill(k, s, p) for s, p in zip(sizes, prices, strict=True)])
    out: list[PlannedFill] = []
    remaining = [k for k in range(orders)]
    while remaining:
        k = rng.choice(remaining)
        out.append(per_order[k].pop(0))
        if not per_order[k]:
            remaining.remove(k)
    return out


def product_of(k: int) -> str:
    return "BTC-USD" if k % 2 == 0 else "ETH-USD"


def order_request(seed: int, k: int, side: int) -> pb.SubmitOrderRequest:
    price = PRICES[product_of(k)]
    limit = price * Decimal("1.1") if side == common_pb2.SIDE_BUY else price * Decimal("0.9")
    return pb.SubmitOrderRequest(
        client_order_id=f"fills-{seed}-{k}",
        product_id=product_of(k),
        side=side,  # type: ignore[arg-type]
        type=pb.ORDER_TYPE_LIMIT,
        base_size=str(ORDER_SIZE),
        limit_price=str(limit.quantize(CENT)),
    )


def sign(side: str) -> int:
    return 1 if side == "BUY" else -1


async def eventually(check: object, what: str, within: float) -> None:
    """Poll `check()` (a callable returning a falsy "not yet" or a truthy "done")."""
    assert callable(check)
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:.0f}s")
        await asyncio.sleep(0.25)


def applied(stack: CoinbaseStack) -> int:
    """Fills in execution's database."""
    return int(stack.sql("SELECT count(*) FROM fills")[0][0])


def ledger_rows(wallets: ServiceProcess, query: str) -> list[tuple[object, ...]]:
    path = wallets.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute(query).fetchall()


async def test_duplicate_and_replayed_fills_while_execution_crashes(
    tmp_path: Path, services: ServiceFactory, postgres_database_url: str, chaos_seed: int | None
) -> None:
    seed = 13 if chaos_seed is None else chaos_seed
    rng = random.Random(seed)
    orders = max(FILLS // FILLS_PER_ORDER, 2)
    plan = plan_fills(rng, orders)
    kill_points = sorted(rng.sample(range(len(plan) // 10, len(plan) * 9 // 10), KILLS))

    async with coinbase_stack(tmp_path, services, postgres_database_url, seed=seed) as stack:
        fake = stack.fake.orders
        wallets = services.create(
            "wallets",
            "tradeplane.wallets",
            {
                "EXECUTION_ADDR": stack.execution.svc.address,
                "WALLETS_FILL_BACKOFF_INITIAL_SECONDS": "0.2",
                "WALLETS_FILL_BACKOFF_MAX_SECONDS": "1",
                "WALLETS_INITIAL_DEPOSITS": "",
            },
        )
        await asyncio.to_thread(wallets.start)

        # The resting orders the fake will trade (placed before the storm).
        stub = stack.execution.stub
        sides = [rng.choice((common_pb2.SIDE_BUY, common_pb2.SIDE_SELL)) for _ in range(orders)]
        venue_ids = [""] * orders
        indices = iter(range(orders))

        async def place() -> None:  # 16 at a time, each retried (idempotent) if need be
            for k in indices:
                request = order_request(seed, k, sides[k])
                for _ in range(5):
                    try:
                        reply = await stub.SubmitOrder(request, timeout=30)
                    except grpc.aio.AioRpcError as error:
                        assert error.code() in RETRIABLE, error
                        continue
                    venue_ids[k] = reply.order.venue_order_id
                    break

        await asyncio.gather(*(place() for _ in range(16)))
        assert all(venue_ids), "an order was not acknowledged"
        await stack.fake.wait_for(lambda: stack.fake.subscriptions_total["user"] >= 1, within=30)

        how: Counter[str] = Counter()
        down_fills = outage_fills = outage_cap = checked = 0
        restart: asyncio.Task[Recovery] | None = None
        restart_times: list[Recovery] = []
        began = time.monotonic()
        delivered = 0
        while delivered < len(plan):
            batch = plan[delivered : delivered + rng.randint(1, 30)]
            fills = [(venue_ids[f.order], f.size, f.price) for f in batch]
            way = rng.choices(("each", "bulk", "silent"), weights=(5, 4, 1))[0]
            if way == "each":  # one update per fill
                for f in fills:
                    fake.fill(*f)
            else:  # a cumulative jump, or (silent) only REST will tell
                fake.fill_many(fills, publish=way == "bulk")
            how[way] += len(fills)
            touched = {venue_ids[f.order] for f in batch}
            if rng.random() < 0.2:  # repeated cumulative states
                for venue_order_id in touched:
                    fake.publish(fake.orders[venue_order_id])
                how["repeated states"] += len(touched)
            if rng.random() < 0.02:
                fake.replay_user_updates()
                how["replays of every order"] += 1
            if rng.random() < 0.02:
                await stack.fake.drop_connections()
                how["user channel drops"] += 1
            if restart is not None:
                down_fills += len(batch)
                outage_fills += len(batch)
                if outage_fills >= outage_cap:  # bounded: start-up applies them all first
                    restart_times.append(await restart)
                    restart = None
            delivered += len(batch)
            if kill_points and delivered >= kill_points[0]:
                if restart is not None:  # still coming back from the last kill
                    restart_times.append(await restart)
                kill_points.pop(0)
                stack.execution.kill()

                async def come_back(after: float) -> Recovery:
                    await asyncio.sleep(after)
                    return await stack.execution.start()

                restart = asyncio.create_task(come_back(rng.uniform(0.2, 1.5)))
                outage_fills, outage_cap = 0, rng.randint(20, OUTAGE_FILLS)
            if restart is not None and restart.done():
                restart_times.append(restart.result())
                restart = None
            await asyncio.sleep(len(batch) / RATE)
            if restart is None and delivered >= checked + 100:
                # Bounded backlog: on a loaded machine execution applies fewer than RATE fills
                # a second; the storm waits for it rather than queue thousands of updates.
                checked = delivered
                await eventually(
                    lambda d=delivered: applied(stack) >= d - MAX_BACKLOG, "backlog", 300
                )
        if restart is not None:
            restart_times.append(await restart)
        storm = time.monotonic() - began

        # The oracle: the fake's own fill records.
        ours = {venue_ids[k]: k for k in range(orders)}
        trades = [f for o in fake.orders.values() if o.order_id in ours for f in o.fills]
        trade_ids = {t["trade_id"] for t in trades}
        assert len(trades) == len(trade_ids) == len(plan)
        qty: defaultdict[str, Decimal] = defaultdict(Decimal)
        cost: defaultdict[str, Decimal] = defaultdict(Decimal)
        fees: defaultdict[str, Decimal] = defaultdict(Decimal)
        for t in trades:
            size, price = Decimal(t["size"]), Decimal(t["price"])
            qty[t["product_id"]] += sign(t["side"]) * size
            cost[t["product_id"]] += sign(t["side"]) * size * price
            fees[t["product_id"]] += Decimal(t["commission"])

        # A last round of duplicates once everything is there, then convergence.
        fake.replay_user_updates()
        await stack.fake.drop_connections()
        converge_began = time.monotonic()
        await eventually(
            lambda: applied(stack) >= len(plan),
            "execution has every fill",
            180 + len(plan) / 20,
        )
        await eventually(
            lambda: all(
                o.filled_size == Decimal(r[1])
                for r in stack.sql("SELECT venue_order_id, filled_size FROM orders")
                if (o := fake.orders.get(r[0])) is not None
            ),
            "every order's filled size",
            60,
        )
        converged = time.monotonic() - converge_began

        # Execution's own report (gRPC).
        listed: list[pb.Fill] = []
        token = ""
        while True:
            page = await stub.ListFills(pb.ListFillsRequest(page_size=1000, page_token=token))
            listed.extend(page.fills)
            token = page.next_page_token
            if not token:
                break
        listed_ids = Counter(f.venue_trade_id for f in listed)
        doubled = sorted(t for t, n in listed_ids.items() if n > 1)
        lost = sorted(trade_ids - set(listed_ids))
        unknown = sorted(set(listed_ids) - trade_ids)
        positions = {
            p.product_id: p
            for p in (
                await stub.ListPositions(pb.ListPositionsRequest(include_closed=True))
            ).positions
        }
        statuses = Counter(
            r[0]
            for r in stack.sql(
                "SELECT status FROM orders WHERE client_order_id LIKE %s", f"fills-{seed}-%"
            )
        )

        # The ledger (wallets' database, read directly): posted once per trade id.
        def ledger_complete() -> bool:
            rows = ledger_rows(
                wallets,
                "SELECT count(DISTINCT external_ref) FROM journal_entries WHERE fill_id <> ''",
            )
            return int(str(rows[0][0])) >= len(plan)

        await eventually(ledger_complete, "the ledger has every fill", 120)
        entries = Counter(
            str(r[0])
            for r in ledger_rows(
                wallets, "SELECT external_ref FROM journal_entries WHERE fill_id <> ''"
            )
        )
        (wallet_id,) = ledger_rows(
            wallets,
            f"SELECT wallet_id FROM wallets WHERE venue = 'coinbase' AND account_id = '{ACCOUNT}'",
        )[0]
        balances: defaultdict[str, Decimal] = defaultdict(Decimal)
        for currency, amount in ledger_rows(
            wallets,
            "SELECT currency, amount FROM postings "
            f"WHERE account_code = 'wallet/{wallet_id}/available'",
        ):
            balances[str(currency)] += Decimal(str(amount))
        expected_entries = {
            t["trade_id"]: 2 + (Decimal(t["commission"]).quantize(LEDGER_USD, ROUND_HALF_EVEN) > 0)
            for t in trades
        }
        expected_balances: defaultdict[str, Decimal] = defaultdict(Decimal)
        for t in trades:
            size, price = Decimal(t["size"]), Decimal(t["price"])
            base, quote = t["product_id"].split("-")
            expected_balances[base] += sign(t["side"]) * size
            expected_balances[quote] -= sign(t["side"]) * (size * price).quantize(
                LEDGER_USD, ROUND_HALF_EVEN
            )
            expected_balances[quote] -= Decimal(t["commission"]).quantize(
                LEDGER_USD, ROUND_HALF_EVEN
            )

        print(
            f"\nseed {seed}: {len(plan)} fills on {orders} orders in {storm:.1f}s "
            f"({dict(how)}); {stack.execution.kills} SIGKILLs, {down_fills} fills traded while "
            f"execution was down; converged {converged:.1f}s after the storm. Execution lists "
            f"{len(listed)} fills ({len(listed_ids)} trade ids): doubled {len(doubled)}, "
            f"lost {len(lost)}, unknown {len(unknown)}; orders {dict(statuses)}; ledger "
            f"{sum(entries.values())} entries for {len(entries)} trade ids, wallet balances "
            f"{ {c: str(v) for c, v in balances.items()} }. "
            f"Recovery: {stack.recovery_summary()}"
        )
        for product, p in sorted(positions.items()):
            print(
                f"  {product}: quantity {p.quantity} (oracle {qty[product]}), fees "
                f"{p.fees_paid} (oracle {fees[product]}), realised {p.realized_pnl}, "
                f"average entry {p.average_entry_price}"
            )

        assert stack.execution.kills == KILLS
        assert not doubled, f"double-counted trade ids: {doubled[:5]}"
        assert not lost, f"lost fills: {lost[:5]}"
        assert not unknown, f"fills the venue never made: {unknown[:5]}"
        assert len(listed) == len(plan)
        assert applied(stack) == len(plan)
        for product in PRICES:
            p = positions[product]
            assert Decimal(p.quantity) == qty[product], product
            assert Decimal(p.fees_paid) == fees[product], product
            # Average cost: realised P&L - quantity * average entry = -(signed cost of fills).
            basis = Decimal(p.realized_pnl) - Decimal(p.quantity) * Decimal(p.average_entry_price)
            assert abs(basis + cost[product]) <= Decimal("0.0001") * max(
                abs(cost[product]), Decimal(1)
            ), (product, basis, cost[product])
        assert statuses["FILLED"] == (orders + 4) // 5
        assert statuses["PARTIALLY_FILLED"] == orders - statuses["FILLED"]
        assert dict(entries) == expected_entries, "ledger entries per trade id differ"
        assert {c: v for c, v in balances.items() if v} == {
            c: v for c, v in expected_balances.items() if v
        }
        assert len(restart_times) == KILLS
