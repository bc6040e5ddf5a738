"""The server interceptor GrpcService installs (its stages: see `rpc`)."""

from tradeplane.runtime.interceptors.errors import STATUS_BY_ERROR
from tradeplane.runtime.interceptors.rpc import RpcInterceptor

__all__ = ["STATUS_BY_ERROR", "RpcInterceptor"]
