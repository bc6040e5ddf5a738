"""The gateway's Prometheus series (default registry, served on METRICS_PORT). Names, labels
and label values: the metrics contract in docs/observability.md."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# `channel` is the WebSocket endpoint (market, live), except on SUBSCRIPTIONS where it is the
# subscribed channel (ticks, candles, live, ...): both bounded sets.
CONNECTIONS = Gauge("gateway_ws_connections", "Open WebSocket connections.", ["channel"])
CONNECTIONS_OPENED = Counter(
    "gateway_ws_connections_opened_total", "WebSocket connections accepted.", ["channel"]
)
SUBSCRIPTIONS = Gauge(
    "gateway_ws_subscriptions", "Active subscriptions (all clients), by channel.", ["channel"]
)
MESSAGES_SENT = Counter("gateway_ws_messages_sent_total", "WebSocket frames sent.", ["channel"])
MESSAGES_RECEIVED = Counter(
    "gateway_ws_messages_received_total", "WebSocket frames received.", ["channel"]
)
DROPS = Counter(
    "gateway_ws_messages_dropped_total",
    "Market data frames dropped for a slow client (then resynced), by reason.",
    ["channel", "reason"],
)
SLOW_CONSUMER_CLOSES = Counter(
    "gateway_ws_slow_consumer_closes_total",
    "Connections closed with 4409 because they could not keep up with a never-dropped channel.",
    ["channel"],
)
UPSTREAM_STREAMS = Gauge(
    "gateway_upstream_streams", "Open upstream gRPC streams per subscription key.", ["key"]
)
RESUMES = Counter(
    "gateway_ws_resumes_total",
    "Subscriptions opened with a cursor, by outcome (replayed, upstream, reset).",
    ["result"],
)
HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests (JSON API and static) by route template, method and status code.",
    ["route", "method", "code"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
)

# Known label values exist from the start (dashboards and alerts see 0, not "no data").
for _endpoint in ("market", "live"):
    CONNECTIONS.labels(_endpoint)
    CONNECTIONS_OPENED.labels(_endpoint)
    MESSAGES_SENT.labels(_endpoint)
    MESSAGES_RECEIVED.labels(_endpoint)
    SLOW_CONSUMER_CLOSES.labels(_endpoint)
for _reason in ("queue_full", "resync_pending"):
    DROPS.labels("market", _reason)
for _result in ("replayed", "upstream", "reset"):
    RESUMES.labels(_result)
