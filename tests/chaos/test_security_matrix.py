"""Security gate (issue 11, item 11): the authorisation matrix over every gRPC method of every
service and every JSON route of the gateway, for anonymous, `read`, `trade` and `admin`
callers, against real processes with AUTH_MODE=jwt.

Expected in every cell: anonymous -> UNAUTHENTICATED (HTTP 401); a scope below the method's
`required_scope` -> PERMISSION_DENIED (403); enough scope -> anything but those two (the empty
or placeholder request usually fails validation: that is past the gate). Scopes are ordered
read < trade < admin. Our API has unary and server-streaming methods only (no client or
bidirectional streams); both kinds are in the matrix.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from chaos_support import JwtPlatform
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from tradeplane.gateway.api import ROUTES
from tradeplane.runtime.auth import Scope, issue_token, required_scope
from trading.backtest.v1 import backtest_pb2
from trading.execution.v1 import execution_pb2
from trading.market.v1 import market_pb2
from trading.wallets.v1 import wallets_pb2

pytestmark = pytest.mark.slow

SERVICES = {
    "market": market_pb2.DESCRIPTOR.services_by_name["MarketService"],
    "execution": execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
    "wallets": wallets_pb2.DESCRIPTOR.services_by_name["WalletsService"],
    "backtest": backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"],
}
CALLERS: tuple[Scope | None, ...] = (None, Scope.READ, Scope.TRADE, Scope.ADMIN)


def _expected(caller: Scope | None, needed: Scope) -> str:
    if caller is None:
        return "unauthenticated"
    return "denied" if caller < needed else "allowed"


def _grpc_outcome(code: grpc.StatusCode) -> str:
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return "unauthenticated"
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return "denied"
    return "allowed"


def _http_outcome(status: int) -> str:
    return {401: "unauthenticated", 403: "denied"}.get(status, "allowed")


async def _call(channel: grpc.aio.Channel, method: Any, token: str | None) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_cls = GetMessageClass(method.input_type)
    response_cls = GetMessageClass(method.output_type)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    kwargs: dict[str, Any] = {
        "request_serializer": request_cls.SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, **kwargs)(request_cls(), metadata=metadata, timeout=3)
            await call.read()  # the first message or the status
            code = await call.code() if call.done() else grpc.StatusCode.OK
            call.cancel()
            return code
        await channel.unary_unary(path, **kwargs)(request_cls(), metadata=metadata, timeout=5)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        return error.code()


async def test_every_grpc_method_for_every_caller(jwt_platform: JwtPlatform) -> None:
    state = jwt_platform
    tokens, procs = state.tokens, state.procs
    wrong: list[str] = []
    cells = 0
    for name, service in SERVICES.items():
        async with grpc.aio.insecure_channel(procs[name].address) as channel:
            for method in service.methods:
                needed = required_scope(method.full_name)
                for caller in CALLERS:
                    code = await _call(channel, method, tokens[caller] if caller else None)
                    cells += 1
                    want, got = _expected(caller, needed), _grpc_outcome(code)
                    if want != got:
                        who = caller.label if caller else "anonymous"
                        wrong.append(f"{method.full_name} as {who}: {code.name}, want {want}")
    print(f"{cells} gRPC cells checked")
    assert not wrong, "\n".join(wrong)


async def test_every_gateway_route_for_every_caller(jwt_platform: JwtPlatform) -> None:
    state = jwt_platform
    tokens, gateway = state.tokens, state.procs["gateway"]
    pool = descriptor_pool.Default()
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        for route in ROUTES:
            full = f"trading.{route.service}.v1.{SERVICES[route.service].name}.{route.rpc}"
            pool.FindMethodByName(full)  # the route names a real method
            needed = required_scope(full)
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            for caller in CALLERS:
                headers = {"authorization": f"Bearer {tokens[caller]}"} if caller else {}
                reply = await http.request(
                    route.http_method,
                    path,
                    headers=headers,
                    json={} if route.http_method in ("POST", "PUT") else None,
                )
                want, got = _expected(caller, needed), _http_outcome(reply.status_code)
                if want != got:
                    who = caller.label if caller else "anonymous"
                    wrong.append(
                        f"{route.http_method} {route.path} as {who}: {reply.status_code}, "
                        f"want {want}"
                    )
                if reply.status_code in (401, 403):
                    assert reply.json()["code"] in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    print(f"{len(ROUTES) * len(CALLERS)} gateway cells checked")
    assert not wrong, "\n".join(wrong)


async def test_websockets_refuse_anonymous_and_accept_a_read_token(
    jwt_platform: JwtPlatform,
) -> None:
    import websockets

    state = jwt_platform
    gateway = state.procs["gateway"]
    ws_url = gateway.url.replace("http://", "ws://")
    ping = json.dumps({"ping": {"nonce": "7"}})
    for path in ("/ws/live", "/ws/market"):
        async with websockets.connect(ws_url + path) as anonymous:
            await anonymous.send(ping)
            seen = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                for _ in range(5):  # a greeting may come first; no data may
                    seen.append(json.loads(await asyncio.wait_for(anonymous.recv(), 5)))
            assert not any("data" in f or "pong" in f for f in seen), seen
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        headers = {"authorization": f"Bearer {state.tokens[Scope.READ]}"}
        async with websockets.connect(ws_url + path, additional_headers=headers) as reader:
            await reader.send(ping)
            while "pong" not in (frame := json.loads(await asyncio.wait_for(reader.recv(), 5))):
                assert "error" not in frame, frame


def test_an_expired_or_forged_token_is_unauthenticated(
    jwt_platform: JwtPlatform,
) -> None:
    state = jwt_platform
    secret = state.secret
    market = state.procs["market"]
    expired = issue_token("late", ["admin"], secret=secret, ttl_seconds=-10)
    forged = issue_token("mallory", ["admin"], secret=secrets.token_urlsafe(32))
    with grpc.insecure_channel(market.address) as channel:
        stub = channel.unary_unary(
            "/trading.market.v1.MarketService/ListProducts",
            request_serializer=market_pb2.ListProductsRequest.SerializeToString,
            response_deserializer=market_pb2.ListProductsResponse.FromString,
        )
        for token in (expired, forged, "not-a-jwt"):
            with pytest.raises(grpc.RpcError) as failed:
                stub(
                    market_pb2.ListProductsRequest(),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
            assert failed.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
