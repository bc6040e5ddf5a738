"""Hostile input (issue 11, item 10): every gRPC method of every service, called by an admin
with messages generated from its request descriptor (boundary numbers, NaN, unknown enums,
hostile strings, deep nesting). No call may end INTERNAL or UNKNOWN, no process may die, and
a rejected order or transfer changes nothing.

Examples per method: FUZZ_EXAMPLES (default 12; `make test-chaos` runs 200). Without --seed
Hypothesis is derandomised so CI is repeatable; `--seed=N` explores other inputs, and a
failure prints the request that broke the method.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest
from chaos_support import JwtPlatform
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from proto_strategies import messages

from tradeplane.runtime.auth import Scope
from trading.backtest.v1 import backtest_pb2
from trading.execution.v1 import execution_pb2
from trading.market.v1 import market_pb2
from trading.wallets.v1 import wallets_pb2

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SERVICES = {
    "market": market_pb2.DESCRIPTOR.services_by_name["MarketService"],
    "execution": execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
    "wallets": wallets_pb2.DESCRIPTOR.services_by_name["WalletsService"],
    "backtest": backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"],
}
METHODS = [(name, m) for name, service in SERVICES.items() for m in service.methods]
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# A rejected call of these must leave the listed state exactly as it was.
STATE_OF = {
    "trading.execution.v1.ExecutionService.SubmitOrder": (
        "execution",
        "/trading.execution.v1.ExecutionService/ListOrders",
        execution_pb2.ListOrdersRequest(page_size=100),
        execution_pb2.ListOrdersResponse,
    ),
    "trading.wallets.v1.WalletsService.RecordTransfer": (
        "wallets",
        "/trading.wallets.v1.WalletsService/ListLedgerEntries",
        wallets_pb2.ListLedgerEntriesRequest(page_size=100),
        wallets_pb2.ListLedgerEntriesResponse,
    ),
}
# Methods whose accepted random input would stop the run or a service for the others.
SKIP = {
    "trading.execution.v1.ExecutionService.HaltTrading": "halting is covered by its own tests",
}


def _call(channel: grpc.Channel, method: Any, request: Any, token: str) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_cls = GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if method.server_streaming:
            # A valid subscription may stay quiet: a rejection comes at once, so 0.3 s of
            # silence is an accepted stream (DEADLINE_EXCEEDED is not a failure here).
            stream = channel.unary_stream(path, **kwargs)(request, metadata=metadata, timeout=0.3)
            for _ in stream:
                break
            stream.cancel()
            return grpc.StatusCode.OK
        channel.unary_unary(path, **kwargs)(request, metadata=metadata, timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined,no-any-return]


def _state(channel: grpc.Channel, path: str, request: Any, response_cls: Any, token: str) -> bytes:
    reply = channel.unary_unary(
        path,
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_cls.FromString,
    )(request, metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    return bytes(reply.SerializeToString(deterministic=True))


@pytest.mark.parametrize(
    ("service", "method"), METHODS, ids=[m.full_name.split(".", 3)[-1] for _, m in METHODS]
)
def test_random_requests_never_break_a_method(
    jwt_platform: JwtPlatform, chaos_seed: int | None, service: str, method: Any
) -> None:
    if method.full_name in SKIP:
        pytest.skip(SKIP[method.full_name])
    token = jwt_platform.tokens[Scope.ADMIN]
    proc = jwt_platform.procs[service]
    state_of = STATE_OF.get(method.full_name)
    with grpc.insecure_channel(proc.address) as channel:

        @settings(
            max_examples=EXAMPLES,
            derandomize=chaos_seed is None,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            request = data.draw(messages(method.input_type), label="request")
            before = _state(channel, *state_of[1:], token) if state_of else b""
            code = _call(channel, method, request, token)
            assert code not in BAD, f"{method.full_name} answered {code.name} to {request}"
            if state_of and code is not grpc.StatusCode.OK:
                after = _state(channel, *state_of[1:], token)
                assert after == before, f"rejected {method.name} ({code.name}) changed state"

        (fuzz if chaos_seed is None else seed(chaos_seed)(fuzz))()
    assert proc.proc is not None and proc.proc.poll() is None, f"{service} died:\n{proc.log()}"
