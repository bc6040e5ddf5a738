"""The market service's domain metrics (Prometheus default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TICKS_INGESTED = Counter(
    "market_ticks_ingested", "Ticks received from the feed, by product.", ["product"]
)
FEED_LAG = Gauge(
    "market_feed_lag_seconds", "Delay between a tick's exchange time and its ingestion."
)
FEED_RESTARTS = Counter(
    "market_feed_restarts", "Times the feed task died (or ended) and was restarted."
)
FEED_UP = Gauge("market_feed_up", "1 while the feed task is running, 0 while it is restarting.")
STREAM_SUBSCRIBERS = Gauge(
    "market_stream_subscribers", "Open stream subscriptions, by stream.", ["stream"]
)
SUBSCRIBERS_DROPPED = Counter(
    "market_subscribers_dropped",
    "Stream subscribers dropped, by stream and reason (fell_behind).",
    ["stream", "reason"],
)
INDICATOR_CACHE = Counter(
    "market_indicator_cache_requests",
    "Indicator computations looked up in the cache, by result (hit, miss, uncacheable).",
    ["result"],
)
TRADES_TOO_LATE = Counter(
    "market_trades_too_late",
    "Trades older than the candle correction window (not applied to candles).",
)
CANDLE_WRITE_ERRORS = Counter(
    "market_candle_write_errors", "Failed batched candle writes (retried on the next flush)."
)
