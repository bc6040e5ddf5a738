"""The gateway's Prometheus series (default registry, served on METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("gateway_connections", "Open WebSocket connections per endpoint.", ["channel"])
SUBSCRIPTIONS = Gauge("gateway_subscriptions", "Open subscriptions per channel.", ["channel"])
MESSAGES_SENT = Counter(
    "gateway_messages_sent_total", "WebSocket frames sent to browsers.", ["channel"]
)
DROPS = Counter(
    "gateway_drops_total",
    "Market data frames dropped for a slow client (then resynced).",
    ["reason"],
)
SLOW_CONSUMER_CLOSES = Counter(
    "gateway_slow_consumer_closes_total",
    "Connections closed with 4409 because they could not keep up with a never-dropped channel.",
)
UPSTREAM_STREAMS = Gauge(
    "gateway_upstream_streams", "Open upstream gRPC streams per subscription key.", ["key"]
)
RESUMES = Counter(
    "gateway_resumes_total",
    "Subscriptions opened with a cursor, by outcome (replayed, upstream, reset).",
    ["result"],
)
HTTP_REQUESTS = Histogram(
    "gateway_http_request_seconds",
    "JSON API and static requests by route template and status.",
    ["method", "route", "status"],
)

# Known label values exist from the start (dashboards and alerts see 0, not "no data").
for _endpoint in ("market", "live"):
    CONNECTIONS.labels(_endpoint)
    MESSAGES_SENT.labels(_endpoint)
for _reason in ("queue_full", "resync_pending"):
    DROPS.labels(_reason)
for _result in ("replayed", "upstream", "reset"):
    RESUMES.labels(_result)
