"""One structured log line per finished RPC."""

from __future__ import annotations

import logging
import time

import grpc
from opentelemetry import trace

from tradeplane.runtime.auth import current_principal
from tradeplane.runtime.interceptors._base import SERVER_ERROR_CODES, RpcInfo

log = logging.getLogger("tradeplane.runtime.rpc")


def log_rpc(info: RpcInfo, public: bool, code: grpc.StatusCode, started: float, peer: str) -> None:
    """The call's line: called at the very end, inside the call's span, with the peer read
    from the call at its start (nothing should have to rely on the call still being alive)."""
    if public:
        level = logging.DEBUG  # probes and grpcurl discovery would drown the log
    elif code in SERVER_ERROR_CODES:
        level = logging.ERROR
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    principal = current_principal()
    fields = {
        "grpc_service": info.service,
        "grpc_method": info.method,
        "grpc_type": info.grpc_type,
        "code": code.name,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "peer": peer,
        "principal": principal.subject if principal else None,
    }
    # Stamped here so the line keeps them wherever it is formatted.
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = format(span_context.trace_id, "032x")
        fields["span_id"] = format(span_context.span_id, "016x")
    log.log(level, "rpc %s %s", info.full_method, code.name, extra=fields)
