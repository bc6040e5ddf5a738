"""Execution metrics (Prometheus, default registry; served on METRICS_PORT with the shared
grpc_server_* series)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ORDERS_SUBMITTED = Counter(
    "execution_orders_submitted_total", "Order intents committed (new orders)", ["venue", "type"]
)
ORDERS_FINISHED = Counter(
    "execution_orders_finished_total", "Orders that reached a final status", ["venue", "status"]
)
FILLS = Counter("execution_fills_total", "Fills applied (exactly once)", ["venue", "liquidity"])
FILLS_DUPLICATE = Counter(
    "execution_fills_duplicate_total", "Fill reports ignored because already applied", ["venue"]
)
TRADE_BLOCKED = Counter("execution_trade_blocked_total", "Orders refused by risk", ["rule"])
SUBMIT_TO_ACK = Histogram(
    "execution_submit_to_ack_seconds",
    "From the committed intent to the recorded venue acknowledgement",
    ["venue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MARKET_DATA_UP = Gauge("execution_market_data_up", "1 while market data flows, else 0")
EVENTS_LAST_SEQ = Gauge("execution_events_last_seq", "Last outbox seq committed by this process")
