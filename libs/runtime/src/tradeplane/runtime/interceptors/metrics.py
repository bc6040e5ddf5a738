"""grpc-ecosystem server metrics for every RPC, including the ones auth rejects."""

from __future__ import annotations

import grpc
from prometheus_client import Counter, Histogram

from tradeplane.runtime import metrics
from tradeplane.runtime.interceptors._base import RpcInfo, code_label


class MethodMetrics:
    """One method's metric children, looked up once (`.labels()` takes a lock and builds a
    key per call) and each created on first use, as per-call `.labels()` would."""

    __slots__ = ("_handled", "_labels", "_received", "_seconds", "_sent", "_started")

    def __init__(self, info: RpcInfo) -> None:
        self._labels = (info.grpc_type, info.service, info.method)
        self._started: Counter | None = None
        self._seconds: Histogram | None = None
        self._received: Counter | None = None
        self._sent: Counter | None = None
        self._handled: dict[grpc.StatusCode, Counter] = {}

    def started(self) -> None:
        if self._started is None:
            self._started = metrics.SERVER_STARTED.labels(*self._labels)
        self._started.inc()

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._handled.get(code)
        if counter is None:
            counter = metrics.SERVER_HANDLED.labels(*self._labels, code_label(code))
            self._handled[code] = counter
        counter.inc()
        if self._seconds is None:
            self._seconds = metrics.SERVER_HANDLING_SECONDS.labels(*self._labels)
        self._seconds.observe(seconds)

    def received(self) -> None:
        if self._received is None:
            self._received = metrics.SERVER_MSG_RECEIVED.labels(*self._labels)
        self._received.inc()

    def sent(self) -> None:
        if self._sent is None:
            self._sent = metrics.SERVER_MSG_SENT.labels(*self._labels)
        self._sent.inc()
