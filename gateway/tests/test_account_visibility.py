"""Per-account visibility (AUTH_MODE=jwt): a token whose `accounts` claim names account A
never receives account B's events on /ws/live (live updates, snapshot, resume replay) nor its
data from the JSON API; an admin token sees every account."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import httpx
import jwt
import pytest

from tradeplane.gateway.testing import Client

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "gateway-accounts-test-secret-of-32-bytes"


def token(subject: str, scope: str, accounts: Any = None) -> str:
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": scope,
        "exp": dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=5),
    }
    if accounts is not None:
        claims["accounts"] = accounts
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def _live(gw: Any, tok: str, **subscribe: Any) -> Client:
    client = await Client.open(gw.ws("live", f"access_token={tok}"))
    await client.subscribe(channel="CHANNEL_LIVE", **subscribe)
    return client


async def _events(client: Client, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events += (await client.recv_kind("data"))["live"]["events"]
    return events


async def _emit_mixed(execution: Any) -> None:
    """seq 1..12: acct-1, acct-2 and acct-3 in turns (4 each)."""
    for _ in range(4):
        for account in ("acct-1", "acct-2", "acct-3"):
            await execution.servicer.emit(1, account=account)


async def _wait_stream(execution: Any) -> None:
    deadline = time.monotonic() + 5
    while not execution.servicer.open_streams:
        assert time.monotonic() < deadline, "upstream stream not opened"
        await asyncio.sleep(0.01)


async def test_scoped_token_sees_only_its_accounts_admin_sees_all(
    execution: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(execution_addr=execution.target, auth_mode="jwt", jwt_secret=SECRET)
    alice = await _live(gw, token("alice", "read", ["acct-1"]))
    snapshot = await alice.recv_kind("snapshot")
    # The snapshot is made per account: the fake echoes the account it was asked for.
    assert [o["accountId"] for o in snapshot["live"]["openOrders"]] == ["acct-1"]
    both = await _live(gw, token("bob", "read", "acct-1 acct-3"))  # space-separated form
    await both.recv_kind("snapshot")
    admin = await _live(gw, token("root", "admin", ["acct-1"]))  # admin: the claim is moot
    admin_snapshot = await admin.recv_kind("snapshot")
    assert [o["accountId"] for o in admin_snapshot["live"]["openOrders"]] == ["acct-1"]
    await _wait_stream(execution)
    base = len(execution.servicer.events)
    await _emit_mixed(execution)

    seen_admin = await _events(admin, 12)
    assert [int(e["seq"]) - base for e in seen_admin] == list(range(1, 13))
    seen_alice = await _events(alice, 4)
    assert {e["accountId"] for e in seen_alice} == {"acct-1"}
    assert [int(e["seq"]) - base for e in seen_alice] == [1, 4, 7, 10]
    seen_both = await _events(both, 8)
    assert {e["accountId"] for e in seen_both} == {"acct-1", "acct-3"}
    # Nothing else is queued for alice: the next frame she gets is the next acct-1 event.
    await execution.servicer.emit(1, account="acct-2")
    await execution.servicer.emit(1, account="acct-1")
    assert [e["accountId"] for e in await _events(alice, 1)] == ["acct-1"]

    # Resume replay is filtered the same way.
    resumed = await _live(gw, token("alice", "read", ["acct-1"]), sinceSeq=str(base))
    replay = await _events(resumed, 5)
    assert {e["accountId"] for e in replay} == {"acct-1"}
    assert [int(e["seq"]) - base for e in replay] == [1, 4, 7, 10, 14]
    for client in (alice, both, admin, resumed):
        await client.close()


async def test_asking_for_another_account_is_refused(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target, auth_mode="jwt", jwt_secret=SECRET)
    client = await Client.open(gw.ws("live", f"access_token={token('alice', 'read', ['acct-1'])}"))
    await client.send(
        {"requestId": "x", "subscribe": {"channel": "CHANNEL_LIVE", "accountIds": ["acct-2"]}}
    )
    error = await client.recv_kind("error")
    assert error["code"] == "ERROR_CODE_PERMISSION_DENIED" and "acct-2" in error["message"]
    # Narrowing to one of its own accounts is fine.
    await client.subscribe(channel="CHANNEL_LIVE", accountIds=["acct-1"])
    await client.close()


async def test_json_api_is_limited_to_the_tokens_accounts(
    execution: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(execution_addr=execution.target, auth_mode="jwt", jwt_secret=SECRET)
    one = {"authorization": f"Bearer {token('alice', 'read', ['acct-1'])}"}
    two = {"authorization": f"Bearer {token('bob', 'read', ['acct-1', 'acct-2'])}"}
    admin = {"authorization": f"Bearer {token('root', 'admin')}"}
    async with httpx.AsyncClient(base_url=gw.http) as http:
        r = await http.get("/api/live/orders", params={"account_id": "acct-2"}, headers=one)
        assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
        r = await http.get("/api/live/orders", headers=one)  # defaults to its only account
        assert r.status_code == 200 and r.json()["orders"][0]["accountId"] == "acct-1"
        r = await http.get("/api/live/orders", headers=two)  # several: it must say which
        assert r.status_code == 403 and "account_id" in r.json()["message"]
        r = await http.get("/api/live/orders", params={"account_id": "acct-2"}, headers=two)
        assert r.status_code == 200 and r.json()["orders"][0]["accountId"] == "acct-2"
        r = await http.get("/api/live/orders", params={"account_id": "acct-9"}, headers=admin)
        assert r.status_code == 200 and r.json()["orders"][0]["accountId"] == "acct-9"


async def test_a_malformed_accounts_claim_is_refused(execution: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(execution_addr=execution.target, auth_mode="jwt", jwt_secret=SECRET)
    bad = {"authorization": f"Bearer {token('eve', 'read', 5)}"}
    async with httpx.AsyncClient(base_url=gw.http) as http:
        r = await http.get("/api/live/orders", headers=bad)
    assert r.status_code == 401 and "accounts" in r.json()["message"]
