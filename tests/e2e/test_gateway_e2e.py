"""The gateway end to end with REAL processes, started like `make up` does (the launcher, every
service its own process, SQLite, simulated feed, paper venue) but with AUTH_MODE=jwt:

- a market order submitted through the gateway's JSON API with a trade token is filled on the
  paper venue and reaches a /ws/live client as `order_submitted`, `fill`, `position_update`
  and `portfolio_update` events; a client whose token is scoped to another account sees none
  of them;
- a tick published by the market service reaches a /ws/market client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from e2e_support import (
    LAUNCHER_START_TIMEOUT,
    Platform,
    launcher_env,
    requires_market,
    stop_launcher,
    wait_for_endpoints,
)

from tradeplane.gateway.testing import Client
from tradeplane.runtime.auth import issue_token
from trading.execution.v1 import execution_pb2

pytestmark = pytest.mark.slow

SECRET = "e2e-gateway-secret-of-at-least-32-bytes"
ACCOUNT = "paper-main"  # EXECUTION_DEFAULT_ACCOUNT of the embedded default


def _token(subject: str, scope: str, accounts: list[str] | None = None) -> str:
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": scope,
        "exp": dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=1),
    }
    if accounts is not None:
        claims["accounts"] = accounts
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`python -m tradeplane.platform up` with AUTH_MODE=jwt; the services' own background
    streams (execution <- market ticks, wallets <- execution fills) carry read tokens."""
    requires_market()
    var_dir = tmp_path_factory.mktemp("gateway-e2e-var")
    output = var_dir.parent / "gateway-e2e-console.txt"
    service = issue_token("platform", ["read"], secret=SECRET, ttl_seconds=3600)
    env = launcher_env(
        var_dir,
        {
            "AUTH_MODE": "jwt",
            "JWT_SECRET": SECRET,
            "EXECUTION_MARKET_TOKEN": service,
            "WALLETS_EXECUTION_TOKEN": service,
            "GATEWAY_SERVICE_TOKEN": service,
            "GATEWAY_HTTP_PORT": str(_free()),
        },
    )
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.platform", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        doc = wait_for_endpoints(proc, var_dir / "endpoints.json", output, LAUNCHER_START_TIMEOUT)
        yield Platform(proc, var_dir, output, doc)
    finally:
        if proc.poll() is None:
            stop_launcher(proc, output)


def _free() -> int:
    from tradeplane.testing import free_port

    return free_port()


def _ws(platform: Platform, endpoint: str, token: str) -> str:
    http = platform.service("gateway")["http"].rstrip("/")
    return http.replace("http://", "ws://") + f"/ws/{endpoint}?access_token={token}"


async def _live_events(client: Client, until: Any, wait: float) -> list[dict[str, Any]]:
    """Events from `data` frames until `until(events)` holds."""
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(wait):
            while not until(events):
                frame = await client.recv(wait=wait)
                if "data" in frame:
                    assert frame["data"]["channel"] == "CHANNEL_LIVE"
                    events += frame["data"]["live"]["events"]
    except TimeoutError:
        pytest.fail(f"timed out after {wait}s; events seen: {[_kind(e) for e in events]}")
    return events


async def _collect(client: Client, account: str, into: list[dict[str, Any]]) -> None:
    """Reads `client` (answering heartbeats) and keeps the events of `account` it receives."""
    while True:
        frame = await client.recv(wait=3600)
        if "data" in frame:
            into += [e for e in frame["data"]["live"]["events"] if e.get("accountId") == account]


_PAYLOADS = frozenset(
    f.json_name for f in execution_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
)


def _kind(event: dict[str, Any]) -> str:
    """The Event's payload (its oneof) in the JSON mapping."""
    return next((k for k in event if k in _PAYLOADS), "?")


def test_a_paper_fill_reaches_ws_live_as_a_fill_frame(jwt_platform: Platform) -> None:
    asyncio.run(_fill_flow(jwt_platform))


async def _fill_flow(platform: Platform) -> None:
    trader = _token("alice", "trade", [ACCOUNT])
    outsider = _token("mallory", "read", ["someone-else"])
    alice = await Client.open(_ws(platform, "live", trader))
    await alice.subscribe(channel="CHANNEL_LIVE", subscriptionId="live")
    snapshot = await alice.recv_kind("snapshot", wait=30)
    assert snapshot["channel"] == "CHANNEL_LIVE"
    other = await Client.open(_ws(platform, "live", outsider))
    await other.subscribe(channel="CHANNEL_LIVE")
    other_snapshot = await other.recv_kind("snapshot", wait=30)
    assert not other_snapshot["live"].get("openOrders") and not other_snapshot["live"].get(
        "portfolios"
    )
    leaked: list[dict[str, Any]] = []
    outsider_reader = asyncio.create_task(_collect(other, ACCOUNT, leaked))

    client_order_id = f"e2e-{uuid.uuid4().hex[:12]}"
    http = platform.service("gateway")["http"].rstrip("/")
    async with httpx.AsyncClient(base_url=http, timeout=30) as api:
        order: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while True:  # the paper venue needs a first tick from the market service
            r = await api.post(
                "/api/live/orders",
                headers={"authorization": f"Bearer {trader}"},
                json={
                    "clientOrderId": client_order_id,
                    "productId": "BTC-USD",
                    "side": "SIDE_BUY",
                    "type": "ORDER_TYPE_MARKET",
                    "baseSize": "0.01",
                },
            )
            if r.status_code == 200:
                order = r.json()["order"]
                break
            assert r.status_code in (409, 412, 503), r.text  # not ready yet: retried
            assert time.monotonic() < deadline, r.text
            client_order_id = f"e2e-{uuid.uuid4().hex[:12]}"
            await asyncio.sleep(1)
        # A read token may not submit (gRPC PERMISSION_DENIED -> HTTP 403 with a JSON body).
        r = await api.post(
            "/api/live/orders",
            headers={"authorization": f"Bearer {outsider}"},
            json={"clientOrderId": "x", "productId": "BTC-USD"},
        )
        assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    order_id = order["orderId"]
    assert order["accountId"] == ACCOUNT

    def complete(events: list[dict[str, Any]]) -> bool:
        kinds = {_kind(e) for e in events}
        return {"orderSubmitted", "positionUpdate", "portfolioUpdate"} <= kinds and any(
            e.get("fill", {}).get("orderId") == order_id for e in events
        )

    events = await _live_events(alice, complete, wait=60)
    ours = [e for e in events if e.get("accountId") == ACCOUNT]
    submitted = next(e for e in ours if "orderSubmitted" in e)
    assert submitted["orderSubmitted"]["clientOrderId"] == client_order_id
    fill = next(e for e in ours if e.get("fill", {}).get("orderId") == order_id)["fill"]
    assert fill["productId"] == "BTC-USD" and fill["side"] == "SIDE_BUY"
    # The paper venue may fill a market order in parts (liquidity per tick).
    assert Decimal(fill["price"]) > 0 and Decimal(0) < Decimal(fill["size"]) <= Decimal("0.01")
    position = next(e for e in ours if "positionUpdate" in e)["positionUpdate"]
    assert position["productId"] == "BTC-USD"
    assert (
        next(e for e in ours if "portfolioUpdate" in e)["portfolioUpdate"]["accountId"] == ACCOUNT
    )
    seqs = [int(e["seq"]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Every event on the socket is the trader's account or global.
    assert all(e.get("accountId") in (None, ACCOUNT) for e in events)

    # The outsider's token is scoped to another account: none of those events reached it.
    await asyncio.sleep(1)
    assert not outsider_reader.done(), outsider_reader  # still connected and reading
    outsider_reader.cancel()
    assert leaked == []
    await alice.close()
    await other.close()


def test_a_market_tick_reaches_ws_market(jwt_platform: Platform) -> None:
    asyncio.run(_tick_flow(jwt_platform))


async def _tick_flow(platform: Platform) -> None:
    client = await Client.open(_ws(platform, "market", _token("viewer", "read")))
    await client.subscribe(channel="CHANNEL_TICKS", productIds=["BTC-USD"])
    snapshot = await client.recv_kind("snapshot", wait=30)
    assert snapshot["channel"] == "CHANNEL_TICKS"
    data = await client.recv_kind("data", wait=30)
    assert data["channel"] == "CHANNEL_TICKS" and list(data["seqByProduct"]) == ["BTC-USD"]
    ticks = data["ticks"]["ticks"]
    assert ticks and all(t["productId"] == "BTC-USD" and float(t["price"]) > 0 for t in ticks)
    assert int(data["seq"]) == int(ticks[-1]["seq"])
    # Published by the market moments ago (the tick's own time, set by the market service).
    age = dt.datetime.now(tz=dt.UTC) - dt.datetime.fromisoformat(
        ticks[-1]["time"].replace("Z", "+00:00")
    )
    assert age < dt.timedelta(seconds=10)
    second = await client.recv_kind("data", wait=30)
    assert int(second["ticks"]["ticks"][0]["seq"]) > int(ticks[-1]["seq"])
    await client.close()
