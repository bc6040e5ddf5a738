"""grpc-ecosystem server metrics for every RPC, including the ones auth rejects."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio

from tradeplane.runtime import metrics
from tradeplane.runtime.interceptors._base import (
    RpcInfo,
    WrappingInterceptor,
    code_label,
    status_code_of,
)


class MetricsInterceptor(WrappingInterceptor):
    counts_messages = True

    @asynccontextmanager
    async def around(self, info: RpcInfo, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        labels = (info.grpc_type, info.service, info.method)
        metrics.SERVER_STARTED.labels(*labels).inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            failure = exc
            raise
        finally:
            code = status_code_of(context, failure)
            metrics.SERVER_HANDLED.labels(*labels, code_label(code)).inc()
            metrics.SERVER_HANDLING_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    def on_received(self, info: RpcInfo) -> None:
        metrics.SERVER_MSG_RECEIVED.labels(info.grpc_type, info.service, info.method).inc()

    def on_sent(self, info: RpcInfo) -> None:
        metrics.SERVER_MSG_SENT.labels(info.grpc_type, info.service, info.method).inc()
