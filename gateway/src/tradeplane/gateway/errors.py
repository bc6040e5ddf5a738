"""gRPC status -> HTTP status, and the JSON error body (`trading.gateway.v1.HttpError`)."""

from __future__ import annotations

import grpc

# The grpc-gateway table (google.golang.org/grpc-gateway runtime.HTTPStatusFromCode), so
# clients that know it find no surprise.
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


class ApiError(Exception):
    """An error answered as HTTP status + HttpError JSON body."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_CODE.get(self.code, 500)

    def body(self) -> dict[str, object]:
        """HttpError in protobuf's JSON mapping."""
        return {"code": self.code.name, "message": self.message, "httpStatus": self.http_status}


def from_rpc_error(error: grpc.aio.AioRpcError, service: str) -> ApiError:
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return ApiError(code, f"the {service} service is unavailable; retry later ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiError(code, f"the {service} service did not answer in time")
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS):
        return ApiError(code, f"internal error in the {service} service")
    return ApiError(code, details or code.name.lower())
