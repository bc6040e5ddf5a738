"""Server interceptors, installed by GrpcService in this order (outermost first)."""

from tradeplane.runtime.interceptors.auth import AuthInterceptor
from tradeplane.runtime.interceptors.calls import CallTracker
from tradeplane.runtime.interceptors.errors import STATUS_BY_ERROR, ErrorsInterceptor
from tradeplane.runtime.interceptors.logging import LoggingInterceptor
from tradeplane.runtime.interceptors.metrics import MetricsInterceptor
from tradeplane.runtime.interceptors.tracing import TracingInterceptor
from tradeplane.runtime.interceptors.validation import ValidationInterceptor

__all__ = [
    "STATUS_BY_ERROR",
    "AuthInterceptor",
    "CallTracker",
    "ErrorsInterceptor",
    "LoggingInterceptor",
    "MetricsInterceptor",
    "TracingInterceptor",
    "ValidationInterceptor",
]
