"""CoinbaseConfig: everything the Coinbase feed needs, independent of pydantic settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

DEFAULT_WS_URL = "wss://advanced-trade-ws.coinbase.com"
DEFAULT_REST_URL = "https://api.coinbase.com"
# The market-data channels this feed understands; `heartbeats` keeps quiet subscriptions open.
KNOWN_CHANNELS = ("heartbeats", "market_trades", "ticker", "level2", "candles")
DEFAULT_CHANNELS = ("heartbeats", "market_trades", "ticker")


@dataclass(frozen=True)
class CoinbaseConfig:
    product_ids: Sequence[str]
    ws_url: str = DEFAULT_WS_URL
    rest_url: str = DEFAULT_REST_URL
    channels: Sequence[str] = DEFAULT_CHANNELS
    # Optional CDP API key (name) and its private key (PEM EC or base64 Ed25519). Public
    # channels work without; with them every subscribe message carries a fresh JWT.
    api_key: SecretStr | None = field(default=None, repr=False)
    api_secret: SecretStr | None = field(default=None, repr=False)
    heartbeat_timeout_seconds: float = 10.0  # no message for this long -> reconnect
    backoff_min_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    rest_timeout_seconds: float = 10.0
    # A gap's candles are fetched this long after their bucket is over (and the feed has
    # seen a later trade), so the exchange's candles are final and the live aggregator has
    # written its own (partial) version first. Must exceed the candle flush period.
    refill_delay_seconds: float = 5.0
    # Without any later trade, refill anyway this long after the gap closed (quiet markets).
    refill_quiet_seconds: float = 60.0
    # At start, the hole since the last stored candle (the service was down) is refilled like
    # a gap, from at most this many days back; 0 = not at all.
    restart_refill_max_days: float = 7.0
    # Extra CA bundle (PEM) to trust for wss:// and https:// (a private CA, or a test server);
    # None = the system's trust store.
    ca_file: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.channels if c not in KNOWN_CHANNELS]
        if unknown:
            raise ValueError(f"unknown Coinbase channels {unknown}; known: {KNOWN_CHANNELS}")
        if "market_trades" not in self.channels:
            raise ValueError("the market_trades channel is required (ticks come from trades)")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("COINBASE_API_KEY and COINBASE_API_SECRET go together")
        if not 0 < self.backoff_min_seconds <= self.backoff_max_seconds:
            raise ValueError("need 0 < backoff min <= backoff max")

    @property
    def authenticated(self) -> bool:
        return self.api_key is not None and self.api_secret is not None
