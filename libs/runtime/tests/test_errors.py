"""Domain errors -> gRPC status codes, over a real server."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import grpc.aio
import pytest

from tradeplane.runtime import errors
from tradeplane.runtime.interceptors.errors import STATUS_BY_ERROR
from trading.market.v1 import market_pb2

EXPECTED = {
    "InvalidArgument": grpc.StatusCode.INVALID_ARGUMENT,
    "NotFound": grpc.StatusCode.NOT_FOUND,
    "AlreadyExists": grpc.StatusCode.ALREADY_EXISTS,
    "FailedPrecondition": grpc.StatusCode.FAILED_PRECONDITION,
    "Aborted": grpc.StatusCode.ABORTED,
    "ResourceExhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "Unavailable": grpc.StatusCode.UNAVAILABLE,
    "Unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "PermissionDenied": grpc.StatusCode.PERMISSION_DENIED,
    "Crash": grpc.StatusCode.INTERNAL,
}


def test_every_domain_error_has_a_status() -> None:
    domain_errors = {c for c in vars(errors).values() if isinstance(c, type)}
    domain_errors = {c for c in domain_errors if issubclass(c, errors.DomainError)}
    assert domain_errors - {errors.DomainError} == set(STATUS_BY_ERROR)


def test_errors_module_does_not_import_grpc() -> None:
    import ast
    import pathlib

    source = pathlib.Path(errors.__file__).read_text()
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any("grpc" in name for name in imported)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_error_maps_to_status(start_service: Any, kit: Any, name: str) -> None:
    svc = await start_service(auth_mode="disabled")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await svc.raw_channel().unary_unary(kit.PROBE_METHOD)(name.encode(), timeout=5)
    assert info.value.code() == EXPECTED[name]


async def test_invalid_argument_names_the_field(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await svc.market().ListProducts(market_pb2.ListProductsRequest(page_size=-1), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "page_size: must not be negative"


async def test_not_found_keeps_its_message(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await svc.market().GetCandles(market_pb2.GetCandlesRequest(product_id="XYZ"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "product_id" in (info.value.details() or "")


async def test_unknown_exception_is_internal_without_internals(
    start_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    svc = await start_service(auth_mode="disabled")
    with (
        caplog.at_level(logging.ERROR, logger="tradeplane.runtime.errors"),
        pytest.raises(grpc.aio.AioRpcError) as info,
    ):
        await svc.market().ListProducts(market_pb2.ListProductsRequest(page_token="crash"))
    details = info.value.details() or ""
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert details.startswith("internal error (trace_id=")
    assert "hunter2" not in details and "RuntimeError" not in details
    trace_id = details.removeprefix("internal error (trace_id=").removesuffix(")")
    assert len(trace_id) == 32
    # The traceback is in the log instead.
    [record] = [r for r in caplog.records if r.name == "tradeplane.runtime.errors"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_error_in_the_middle_of_a_stream(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    # A stream that yields and then fails: messages delivered, then the mapped status.
    call = svc.market().StreamTicks(market_pb2.StreamTicksRequest(product_ids=["fail-after-2"]))
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for message in call:
            received.append(message)
    assert len(received) == 2
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "feed disconnected"
