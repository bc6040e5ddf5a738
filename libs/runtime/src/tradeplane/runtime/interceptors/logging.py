"""One structured log line per finished RPC."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio
from opentelemetry import trace

from tradeplane.runtime.auth import PUBLIC_SERVICES, current_principal
from tradeplane.runtime.interceptors._base import (
    SERVER_ERROR_CODES,
    RpcInfo,
    WrappingInterceptor,
    status_code_of,
)

log = logging.getLogger("tradeplane.runtime.rpc")


class LoggingInterceptor(WrappingInterceptor):
    @asynccontextmanager
    async def around(self, info: RpcInfo, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        started = time.perf_counter()
        # Read from the call now: the line is written at the very end, when nothing should
        # have to rely on the call still being alive.
        peer = context.peer()
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            failure = exc
            raise
        finally:
            code = status_code_of(context, failure)
            if info.service in PUBLIC_SERVICES:
                level = logging.DEBUG  # probes and grpcurl discovery would drown the log
            elif code in SERVER_ERROR_CODES:
                level = logging.ERROR
            else:
                level = logging.INFO
            if log.isEnabledFor(level):
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
