"""Readiness probes: grpc.health.v1 Check for gRPC services, a TCP connect for HTTP ones."""

from __future__ import annotations

import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = "SERVING"


def grpc_health(address: str, *, timeout: float = 1.0, service: str = "") -> str:
    """The health status name (SERVING, NOT_SERVING, ...) or UNREACHABLE / the error code."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, None):
                return "UNREACHABLE"
            return str(code.name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def http_listening(port: int, *, timeout: float = 1.0) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return SERVING
    except OSError:
        return "UNREACHABLE"
