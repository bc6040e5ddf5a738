"""The one table from domain errors to gRPC status codes."""

from __future__ import annotations

import logging

import grpc
import grpc.aio

from tradeplane.runtime import errors
from tradeplane.runtime.db.engine import is_unavailable_error
from tradeplane.runtime.interceptors._base import RpcInfo
from tradeplane.runtime.tracing import current_trace_id

log = logging.getLogger("tradeplane.runtime.errors")

STATUS_BY_ERROR: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}

# An upstream gRPC call that failed with one of these is passed on as UNAVAILABLE (retryable);
# any other upstream failure is our INTERNAL error.
_RETRYABLE_UPSTREAM = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def status_for(error: errors.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL  # a bare DomainError: a bug, not a caller mistake


async def abort_for(exc: Exception, info: RpcInfo, context: grpc.aio.ServicerContext) -> None:
    """End the call with the status for what the handler raised: never returns (abort raises).
    Called from the `except` block; an AbortError, the handler's own status, is re-raised by
    the caller before."""
    if isinstance(exc, errors.DomainError):
        await context.abort(status_for(exc), exc.status_message())
    if isinstance(exc, grpc.aio.AioRpcError):
        if exc.code() in _RETRYABLE_UPSTREAM:
            log.warning("upstream unavailable in %s: %s", info.full_method, exc.code().name)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "upstream service unavailable")
        await _internal(info, context)
    if is_unavailable_error(exc):
        # The database is down or unreachable: retryable, not our bug.
        log.warning("database unavailable in %s: %s", info.full_method, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
    await _internal(info, context)


async def _internal(info: RpcInfo, context: grpc.aio.ServicerContext) -> None:
    # The traceback goes to the log only; the caller gets the trace id to quote.
    trace_id = current_trace_id() or "none"
    log.exception("unhandled exception in %s", info.full_method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace_id={trace_id})")
