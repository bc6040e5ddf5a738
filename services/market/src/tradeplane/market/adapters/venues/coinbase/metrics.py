"""Metrics of the Coinbase feed (Prometheus default registry)."""

from __future__ import annotations

from prometheus_client import Counter

RECONNECTS = Counter(
    "market_feed_reconnects",
    "Times the venue WebSocket was reconnected (drop, error or heartbeat timeout).",
)
HEARTBEAT_TIMEOUTS = Counter(
    "market_feed_heartbeat_timeouts",
    "Times the venue WebSocket was silent longer than the heartbeat timeout.",
)
SEQUENCE_GAPS = Counter(
    "market_feed_sequence_gaps", "Jumps in the venue's per-connection sequence_num."
)
GAP_REFILLS = Counter(
    "market_feed_gap_refills",
    "Candle ranges rewritten from the venue's REST candles after a gap, by interval.",
    ["interval"],
)
GAP_REFILL_ERRORS = Counter(
    "market_feed_gap_refill_errors", "Failed REST candle refills (retried later)."
)
BOOK_RESYNCS = Counter(
    "market_book_resyncs",
    "Times level2 was resubscribed for a fresh snapshot after a sequence gap.",
)
