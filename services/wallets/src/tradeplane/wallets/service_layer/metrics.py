"""The wallets service's domain metrics (Prometheus default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FILL_CONSUMER_CONNECTED = Gauge(
    "wallets_fill_consumer_connected",
    "1 while the fill consumer has an open StreamEvents stream to execution, else 0.",
)
FILL_CONSUMER_CURSOR = Gauge(
    "wallets_fill_consumer_cursor", "Last execution event seq whose fills are in the ledger."
)
FILL_CONSUMER_RECONNECTS = Counter(
    "wallets_fill_consumer_reconnects", "Times the fill consumer (re)connected to execution."
)
FILLS_POSTED = Counter("wallets_fills_posted", "Fills newly posted to the ledger.")
FILLS_REPLAYED = Counter(
    "wallets_fills_replayed", "Fills received again and recognised as already posted."
)
FILLS_REJECTED = Counter(
    "wallets_fills_rejected",
    "Fills that could not be posted (logged and skipped), by reason.",
    ["reason"],
)
FILL_STREAM_RESETS = Counter(
    "wallets_fill_stream_resets",
    "Times execution said the cursor was older than its retained outbox (events missed).",
)
RECONCILIATIONS = Counter(
    "wallets_reconciliations",
    "Finished reconciliation runs, by trigger and status.",
    ["trigger", "status"],
)
