"""Authentication and Origin checks on the WebSockets and the JSON API (AUTH_MODE=jwt)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tradeplane.gateway.testing import Client
from tradeplane.runtime.auth import issue_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "gateway-auth-test-secret-of-32-bytes+"


def token(*scopes: str, ttl: float = 300) -> str:
    return issue_token("alice", scopes or ("read",), secret=SECRET, ttl_seconds=ttl)


async def _jwt_gateway(gateway_factory: Any, **kw: Any) -> Any:
    return await gateway_factory(auth_mode="jwt", jwt_secret=SECRET, **kw)


async def _closed_code(client: Client) -> tuple[int | None, list[dict[str, Any]]]:
    frames = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), frames


async def test_frame_before_auth_closes_4401(gateway_factory: Any, execution: Any) -> None:
    gw = await _jwt_gateway(gateway_factory, execution_addr=execution.target)
    client = await Client.open(gw.ws("live"))
    assert "authenticated" not in client.hello
    await client.send({"subscribe": {"channel": "CHANNEL_LIVE"}})
    code, frames = await _closed_code(client)
    assert code == 4401
    assert frames[-1]["closing"]["code"] == "CLOSE_CODE_UNAUTHENTICATED"


async def test_invalid_token_on_upgrade_closes_4401(gateway_factory: Any) -> None:
    gw = await _jwt_gateway(gateway_factory)
    client = await Client.open(gw.ws("market", f"access_token={token(ttl=-10)}"))
    code, frames = await _closed_code(client)
    assert code == 4401
    assert "expired" in frames[-1]["closing"]["reason"]


async def test_token_on_upgrade_or_in_auth_frame(gateway_factory: Any, execution: Any) -> None:
    gw = await _jwt_gateway(gateway_factory, execution_addr=execution.target)
    by_header = await Client.open(
        gw.ws("live"), additional_headers={"Authorization": f"Bearer {token()}"}
    )
    assert by_header.hello["authenticated"] is True
    await by_header.subscribe(channel="CHANNEL_LIVE")
    await by_header.close()

    by_frame = await Client.open(gw.ws("live"))
    await by_frame.send({"auth": {"token": token()}})
    await by_frame.subscribe(channel="CHANNEL_LIVE")
    await by_frame.recv_kind("snapshot")
    # The browser's token was forwarded to the service for its snapshot.
    assert f"Bearer {token()}".split(".")[0] in (execution.servicer.tokens[-1] or "")
    await by_frame.close()


async def test_origin_allow_list(gateway_factory: Any) -> None:
    gw = await gateway_factory(gateway_allowed_origins="https://ui.example.com")
    with pytest.raises(InvalidStatus) as refused:
        await connect(gw.ws("market"), origin="https://evil.example.com", open_timeout=5)
    assert refused.value.response.status_code == 403
    ok = await connect(gw.ws("market"), origin="https://ui.example.com", open_timeout=5)
    await ok.close()
    # Same origin (Origin host == Host) is allowed without being listed.
    same = await connect(gw.ws("market"), origin=f"http://127.0.0.1:{gw.port}", open_timeout=5)
    await same.close()


async def test_http_api_needs_a_token(gateway_factory: Any, execution: Any) -> None:
    gw = await _jwt_gateway(gateway_factory, execution_addr=execution.target)
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.get("/api/live/orders")
        assert response.status_code == 401
        assert response.json() == {
            "code": "UNAUTHENTICATED",
            "message": "a bearer token is required",
            "httpStatus": 401,
        }
        response = await http.get(
            "/api/live/orders", headers={"Authorization": f"Bearer {token()}"}
        )
        assert response.status_code == 200
        # A read token cannot submit (the route's RPC needs 'trade').
        response = await http.post(
            "/api/live/orders", json={}, headers={"Authorization": f"Bearer {token()}"}
        )
        assert response.status_code == 403
        assert response.json()["code"] == "PERMISSION_DENIED"
        assert (await http.get("/healthz")).status_code == 200  # probes need no token


async def test_socket_closes_4401_when_its_token_expires(gateway_factory: Any) -> None:
    gw = await _jwt_gateway(gateway_factory, gateway_heartbeat_seconds=0.2)
    client = await Client.open(gw.ws("market", f"access_token={token(ttl=1)}"))
    code, frames = await _closed_code(client)
    assert code == 4401
    assert frames[-1]["closing"]["reason"].startswith("token expired")

    # A fresh token sent in an `auth` frame keeps the socket.
    client = await Client.open(gw.ws("market", f"access_token={token(ttl=1)}"))
    await client.send({"auth": {"token": token(ttl=300)}})
    for i in range(15):  # 1.5 s, past the first token's expiry, heartbeating meanwhile
        await client.send({"ping": {"nonce": f"n{i}"}})
        assert (await client.recv_kind("pong"))["nonce"] == f"n{i}"
        await asyncio.sleep(0.1)
    await client.close()


async def test_too_many_connections_for_one_caller_closes_4429(gateway_factory: Any) -> None:
    gw = await _jwt_gateway(gateway_factory, gateway_max_connections_per_caller=2)
    url = gw.ws("market", f"access_token={token()}")
    first, second = await Client.open(url), await Client.open(url)
    third = await Client.open(url)
    code, _ = await _closed_code(third)
    assert code == 4429
    await first.close()
    await asyncio.sleep(0.1)
    again = await Client.open(url)  # a slot was freed
    await again.send({"ping": {"nonce": "ok"}})
    assert (await again.recv_kind("pong"))["nonce"] == "ok"
    await again.close()
    await second.close()
