"""Pieces of the fail-closed reconciliation test (issue 11, item 6): the execution process on
the coinbase venue behind a fault proxy, the seeded changes made at the fake Coinbase while it
is down, and the venue's truth the local orders are compared with."""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
import grpc.aio
from coinbase_chaos import execution_env
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tradeplane.execution.service_layer.venue_reconciliation import TRADING_HEALTH_NAME
from tradeplane.testing.fakes.coinbase_keys import CoinbaseKeys
from tradeplane.testing.fakes.coinbase_orders import FakeCoinbaseOrders, FakeOrder
from tradeplane.testing.processes import ServiceFactory, ServiceProcess
from trading.execution.v1 import execution_pb2 as pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# What happens to one of our resting orders at the venue while execution is down.
FATES = (
    "untouched",
    "canceled",  # canceled outside
    "filled",  # filled in one trade nobody reported
    "filled_in_two",
    "partial",  # partly filled, still open
    "partial_then_canceled",
)
# Of an order placed outside the platform while execution is down (one canceled without a
# trade leaves nothing to adopt).
EXTERNAL_FATES = ("untouched", "partial", "filled", "partial_then_canceled")


def execution_process(
    services: ServiceFactory,
    *,
    database_url: str,
    market_address: str,
    venue_port: int,
    keys: CoinbaseKeys,
    reconcile_interval: float,
    user_channel: bool = True,
) -> ServiceProcess:
    """`python -m tradeplane.execution` on the coinbase venue, REST and `user` WebSocket
    through `venue_port` (the fault proxy in front of the fake Coinbase). Without the user
    channel nothing but the reconciliation runs looks at the venue (no resync on reconnect)."""
    env = execution_env(
        keys,
        rest_url=f"https://127.0.0.1:{venue_port}",
        ws_url=f"wss://127.0.0.1:{venue_port}" if user_channel else "",
        market_addr=market_address,
        database_url=database_url,
        extra={
            "EXECUTION_COINBASE_MAX_ATTEMPTS": "6",
            "EXECUTION_RECONCILE_INTERVAL_SECONDS": str(reconcile_interval),
            "EXECUTION_RECONCILE_CONFIRM_SECONDS": "0.3",
        },
    )
    return services.create("execution", "tradeplane.execution", env)


async def trading_health(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=TRADING_HEALTH_NAME), timeout=2
    )
    return int(answer.status)


async def wait_trading(channel: grpc.aio.Channel, status: int, within: float) -> float:
    """Seconds until trading health reports `status`."""
    began = time.monotonic()
    last = -1
    while time.monotonic() - began < within:
        try:
            last = await trading_health(channel)
        except grpc.aio.AioRpcError:
            last = -1
        if last == status:
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"trading health {last}, not {status}, after {within}s")


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The process's /metrics as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def unreconciled(port: int) -> float:
    return metrics(port)[("execution_venue_unreconciled_orders", (("venue", "COINBASE"),))]


def reconciliations(port: int, outcome: str) -> float:
    """Reconciliation runs of the process so far that ended `outcome` (ok, error, mismatch)."""
    key = (
        "execution_venue_reconciliations_total",
        (("outcome", outcome), ("venue", "COINBASE")),
    )
    return metrics(port).get(key, 0.0)


def venue_counters(port: int) -> dict[str, int]:
    """Repairs by kind and REST retries by reason, for the figures a run prints."""
    out: dict[str, int] = {}
    for (name, labels), value in metrics(port).items():
        label = dict(labels)
        if name == "execution_venue_repairs_total":
            out[f"repaired {label['kind']}"] = int(value)
        elif name == "execution_venue_retries_total":
            out[f"retried {label['reason']}"] = int(value)
    return out


def truth_status(order: FakeOrder) -> int:
    """The venue's state of an order in our terms (Coinbase has no partially-filled status)."""
    if order.status == "CANCELLED":
        return pb.ORDER_STATUS_CANCELED
    if order.status == "FILLED":
        return pb.ORDER_STATUS_FILLED
    assert order.status == "OPEN", order.status
    return pb.ORDER_STATUS_PARTIALLY_FILLED if order.filled_size else pb.ORDER_STATUS_OPEN


def trade_ids(order: FakeOrder) -> list[str]:
    return sorted(f["trade_id"] for f in order.fills)


@dataclass
class Changes:
    """What the fake exchange did while execution was down."""

    fates: dict[str, str] = field(default_factory=dict)  # venue order id -> fate
    hidden: set[str] = field(default_factory=set)  # venue order ids given one "not found"
    external: list[str] = field(default_factory=list)  # venue ids of orders placed outside
    external_fates: dict[str, str] = field(default_factory=dict)


def _part(size: Decimal, rng: random.Random) -> Decimal:
    """A seeded piece of `size`, strictly between 0 and `size` (to 0.00001)."""
    steps = int(size / Decimal("0.00001"))
    return Decimal(rng.randint(1, steps - 1)) * Decimal("0.00001")


def change_while_down(
    fake: FakeCoinbaseOrders, venue_ids: list[str], rng: random.Random
) -> Changes:
    """Seeded changes at the venue, none reported on the user channel (nobody listens):
    every fate at least once, a brief not-found (one 404) for a quarter of the orders (at
    least one still open, where a false cancel would show), orders placed outside."""
    changes = Changes()
    fates = [*FATES, *(rng.choice(FATES) for _ in range(len(venue_ids) - len(FATES)))]
    rng.shuffle(fates)
    for venue_id, fate in zip(venue_ids, fates, strict=True):
        order = fake.orders[venue_id]
        assert order.base_size is not None
        left = order.base_size - order.filled_size
        changes.fates[venue_id] = fate
        if fate == "canceled":
            fake.cancel_outside(venue_id, publish=False)
        elif fate == "filled":
            fake.fill(venue_id, left, publish=False)
        elif fate == "filled_in_two":
            first = _part(left, rng)
            fake.fill(venue_id, first, publish=False)
            fake.fill(venue_id, left - first, publish=False)
        elif fate in ("partial", "partial_then_canceled"):
            fake.fill(venue_id, _part(left, rng), publish=False)
            if fate == "partial_then_canceled":
                fake.cancel_outside(venue_id, publish=False)
    still_open = [v for v, f in changes.fates.items() if f in ("untouched", "partial")]
    changes.hidden = {rng.choice(still_open)}
    changes.hidden.update(v for v in venue_ids if rng.random() < 0.25)
    for venue_id in changes.hidden:
        fake.hide(venue_id, 1)
    extra = rng.randint(0, 3)
    outside_fates = [*EXTERNAL_FATES, *(rng.choice(EXTERNAL_FATES) for _ in range(extra))]
    for fate in outside_fates:
        size = Decimal(rng.randint(2, 9)) / 1000
        price = Decimal(rng.randint(1_000, 2_000))
        side = rng.choice(("BUY", "SELL"))
        outside = fake.place_outside("BTC-USD", side, str(size), str(price), publish=False)
        changes.external.append(outside.order_id)
        changes.external_fates[outside.order_id] = fate
        if fate == "filled":
            fake.fill(outside.order_id, size, publish=False)
        elif fate in ("partial", "partial_then_canceled"):
            fake.fill(outside.order_id, _part(size, rng), publish=False)
            if fate == "partial_then_canceled":
                fake.cancel_outside(outside.order_id, publish=False)
    return changes
