"""JWT bearer authentication and per-method scopes over real gRPC."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tradeplane.runtime.auth import (
    Principal,
    Scope,
    issue_token,
    required_scope,
    set_current_caller,
)
from trading.market.v1 import market_pb2


async def _list_products(channel: grpc.aio.Channel) -> grpc.StatusCode:
    stub = channel.unary_unary(
        "/trading.market.v1.MarketService/ListProducts",
        request_serializer=market_pb2.ListProductsRequest.SerializeToString,
        response_deserializer=market_pb2.ListProductsResponse.FromString,
    )
    try:
        await stub(market_pb2.ListProductsRequest(), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _probe(channel: grpc.aio.Channel, method: str) -> grpc.aio.AioRpcError | None:
    try:
        await channel.unary_unary(method)(b"", timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


def test_required_scope_comes_from_the_proto_option() -> None:
    assert required_scope("trading.market.v1.MarketService.ListProducts") is Scope.READ
    assert required_scope("trading.market.v1.MarketService.StreamTicks") is Scope.READ
    import trading.execution.v1.execution_pb2  # noqa: F401  (registers the descriptors)

    assert required_scope("trading.execution.v1.ExecutionService.SubmitOrder") is Scope.TRADE
    assert required_scope("trading.execution.v1.ExecutionService.SetRiskLimits") is Scope.ADMIN
    # No option (or no descriptor at all): admin only.
    assert required_scope("tradeplane.test.v1.Probe.Raise") is Scope.ADMIN


def test_scopes_are_ordered() -> None:
    trader = Principal("t", frozenset({"trade"}))
    assert trader.allows(Scope.READ) and trader.allows(Scope.TRADE)
    assert not trader.allows(Scope.ADMIN)
    assert not Principal("x", frozenset({"bogus"})).allows(Scope.READ)


async def test_missing_bad_and_expired_tokens_are_unauthenticated(
    start_service: Any, kit: Any
) -> None:
    svc = await start_service()
    expired = issue_token("alice", ["read"], secret=kit.JWT_SECRET, ttl_seconds=-60)
    wrong_key = issue_token("alice", ["read"], secret="another-secret-of-at-least-32-bytes!!")
    assert await _list_products(svc.channel()) == grpc.StatusCode.UNAUTHENTICATED
    assert await _list_products(svc.channel(token="not-a-jwt")) == grpc.StatusCode.UNAUTHENTICATED
    assert await _list_products(svc.channel(token=expired)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _list_products(svc.channel(token=wrong_key)) == grpc.StatusCode.UNAUTHENTICATED
    err = await _probe(svc.channel(token=expired), kit.PROBE_METHOD)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (err.details() or "")


async def test_good_token_is_accepted_and_logged_as_the_principal(
    start_service: Any, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    svc = await start_service()
    token = issue_token("alice", ["read"], secret=kit.JWT_SECRET)
    with caplog.at_level(logging.INFO, logger="tradeplane.runtime.rpc"):
        assert await _list_products(svc.channel(token=token)) == grpc.StatusCode.OK
    [record] = [r for r in caplog.records if r.name == "tradeplane.runtime.rpc"]
    assert record.principal == "alice"  # type: ignore[attr-defined]


async def test_insufficient_scope_is_permission_denied_naming_the_scope(
    start_service: Any, kit: Any
) -> None:
    svc = await start_service()
    for scopes in (["read"], ["read", "trade"]):
        token = issue_token("bob", scopes, secret=kit.JWT_SECRET)
        err = await _probe(svc.channel(token=token), kit.PROBE_METHOD)
        assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'admin'" in (err.details() or "")
    admin = issue_token("root", ["admin"], secret=kit.JWT_SECRET)
    assert await _probe(svc.channel(token=admin), kit.PROBE_METHOD) is None
    # admin implies read
    assert await _list_products(svc.channel(token=admin)) == grpc.StatusCode.OK


async def test_issuer_and_audience_are_checked_when_configured(
    start_service: Any, kit: Any
) -> None:
    svc = await start_service(jwt_issuer="tradeplane", jwt_audience="market")
    good = issue_token("a", ["read"], secret=kit.JWT_SECRET, issuer="tradeplane", audience="market")
    other = issue_token("a", ["read"], secret=kit.JWT_SECRET, issuer="tradeplane", audience="x")
    assert await _list_products(svc.channel(token=good)) == grpc.StatusCode.OK
    assert await _list_products(svc.channel(token=other)) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("key_as", ["pem", "path"])
async def test_es256_tokens(start_service: Any, kit: Any, tmp_path: Any, key_as: str) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public_key = public_pem
    if key_as == "path":
        (tmp_path / "jwt.pub").write_text(public_pem)
        public_key = str(tmp_path / "jwt.pub")
    svc = await start_service(jwt_algorithm="ES256", jwt_public_key=public_key)
    token = issue_token("carol", ["read"], algorithm="ES256", private_key=private_pem)
    assert await _list_products(svc.channel(token=token)) == grpc.StatusCode.OK
    # An HS256 token must not pass an ES256 server (no algorithm confusion).
    hs = issue_token("carol", ["read"], secret=kit.JWT_SECRET)
    assert await _list_products(svc.channel(token=hs)) == grpc.StatusCode.UNAUTHENTICATED


async def test_disabled_auth_warns_and_lets_everything_through(
    start_service: Any, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tradeplane.runtime.server"):
        svc = await start_service(auth_mode="disabled", jwt_secret=None)
    assert any(
        r.levelno == logging.WARNING and "AUTH_MODE=disabled" in r.getMessage()
        for r in caplog.records
    )
    assert await _list_products(svc.channel()) == grpc.StatusCode.OK
    assert await _probe(svc.channel(), kit.PROBE_METHOD) is None  # even admin methods


async def test_channel_forwards_the_token_of_the_call_being_served(
    start_service: Any, kit: Any
) -> None:
    svc = await start_service()
    token = issue_token("dave", ["read"], secret=kit.JWT_SECRET)

    async def downstream_call() -> grpc.StatusCode:
        # What the auth interceptor does for an incoming call (in the call's own task);
        # a channel made without a token then forwards the caller's.
        set_current_caller(Principal("dave", frozenset({"read"})), token)
        return await _list_products(svc.channel())

    assert await asyncio.create_task(downstream_call()) == grpc.StatusCode.OK
