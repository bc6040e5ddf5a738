"""Prometheus metrics (default registry) with the grpc-ecosystem server metric names, and the
/metrics HTTP endpoint on its own port."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import Counter, Histogram

REGISTRY = prometheus_client.REGISTRY

_LABELS = ("grpc_type", "grpc_service", "grpc_method")

# Names, labels and help texts as in grpc-ecosystem/go-grpc-middleware (providers/prometheus),
# so the community dashboards and alerts work unchanged.
SERVER_STARTED = Counter(
    "grpc_server_started_total", "Total number of RPCs started on the server.", _LABELS
)
SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    (*_LABELS, "grpc_code"),
)
SERVER_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level "
    "handled by the server.",
    _LABELS,
)
SERVER_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total",
    "Total number of RPC stream messages received on the server.",
    _LABELS,
)
SERVER_MSG_SENT = Counter(
    "grpc_server_msg_sent_total",
    "Total number of gRPC stream messages sent by the server.",
    _LABELS,
)


class MetricsHttpServer:
    """The /metrics endpoint served from a daemon thread (prometheus_client's WSGI server)."""

    def __init__(self, host: str, port: int) -> None:
        self._httpd: WSGIServer
        self._thread: threading.Thread
        self._httpd, self._thread = prometheus_client.start_http_server(port, addr=host)
        self.port: int = self._httpd.server_port

    def close(self) -> None:
        """Stop serving. Returns at once: the serve loop notices within its 0.5 s poll, and
        waiting for that would only lengthen every shutdown."""

        def shutdown() -> None:
            self._httpd.shutdown()
            self._httpd.server_close()

        threading.Thread(target=shutdown, name="metrics-http-close", daemon=True).start()


def serve_metrics(host: str, port: int) -> MetricsHttpServer:
    """Start the /metrics endpoint; port 0 picks a free port (see `.port`)."""
    return MetricsHttpServer(host, port)


def start_metrics_server(host: str, port: int) -> int:
    """Start the /metrics endpoint for the life of the process and return its port."""
    return serve_metrics(host, port).port
