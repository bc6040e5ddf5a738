"""gRPC status -> HTTP status + JSON error body, for every route of the JSON API.

One real grpc.aio server stands in for all four services: it answers EVERY method by aborting
with the status named in the caller's bearer token (forwarded by the gateway as-is with
AUTH_MODE=disabled), so each route is checked against the documented table
(docs/api/gateway.md, the grpc-gateway mapping) over real sockets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
import pytest_asyncio

from tradeplane.gateway.api import ROUTES

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The table of docs/api/gateway.md.
EXPECTED = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class AbortEverything(grpc.GenericRpcHandler):
    """Every unary method aborts with the status its caller's token names."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        code = grpc.StatusCode[str(metadata.get("authorization", "Bearer INTERNAL")).split()[1]]

        async def abort(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.calls.append(method)
            await context.abort(code, f"{code.name.lower()} from {method} (secret internals)")
            return b""

        return grpc.unary_unary_rpc_method_handler(abort)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def upstream() -> AsyncIterator[tuple[str, AbortEverything]]:
    handler = AbortEverything()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", handler
    finally:
        await server.stop(0)


async def _call(http: httpx.AsyncClient, route: Any, status: str) -> httpx.Response:
    path = re.sub(r"\{[a-z_]+\}", "x1", route.path)
    headers = {"authorization": f"Bearer {status}"}
    if route.http_method in ("POST", "PUT"):
        return await http.request(route.http_method, path, headers=headers, json={})
    return await http.request(route.http_method, path, headers=headers)


def _check(response: httpx.Response, status: str) -> None:
    body = response.json()
    assert response.status_code == EXPECTED[status], (status, response.status_code, body)
    assert body["code"] == status and body["httpStatus"] == EXPECTED[status]
    assert isinstance(body["message"], str) and body["message"]
    if status in ("UNKNOWN", "INTERNAL", "DATA_LOSS"):
        assert "secret" not in body["message"]  # no internals leak to the browser


async def test_every_route_maps_an_upstream_error(
    upstream: tuple[str, AbortEverything], gateway_factory: Any
) -> None:
    target, handler = upstream
    gw = await gateway_factory(
        market_addr=target, execution_addr=target, wallets_addr=target, backtest_addr=target
    )
    async with httpx.AsyncClient(base_url=gw.http) as http:
        for route in ROUTES:
            before = len(handler.calls)
            _check(await _call(http, route, "NOT_FOUND"), "NOT_FOUND")
            assert handler.calls[before:] == [
                f"/trading.{route.service}.v1.{route.service.capitalize()}Service/{route.rpc}"
            ], route.path


async def test_every_status_code_on_each_route_family(
    upstream: tuple[str, AbortEverything], gateway_factory: Any
) -> None:
    target, _ = upstream
    gw = await gateway_factory(
        market_addr=target, execution_addr=target, wallets_addr=target, backtest_addr=target
    )
    families: dict[str, Any] = {}
    for route in ROUTES:  # the first route of each /api/<family>
        families.setdefault(route.path.split("/")[2], route)
    assert {"market", "live", "strategies", "decisions", "wallets", "backtests", "sweeps"} <= set(
        families
    )
    async with httpx.AsyncClient(base_url=gw.http) as http:
        for route in families.values():
            for status in EXPECTED:
                _check(await _call(http, route, status), status)
