"""CoinbaseVenueConfig: what the Coinbase venue needs, independent of pydantic settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

DEFAULT_REST_URL = "https://api.coinbase.com"
DEFAULT_WS_URL = "wss://advanced-trade-ws-user.coinbase.com"


@dataclass(frozen=True)
class CoinbaseVenueConfig:
    api_key: SecretStr = field(repr=False)
    api_secret: SecretStr = field(repr=False)
    rest_url: str = DEFAULT_REST_URL
    ws_url: str = DEFAULT_WS_URL  # "" = no user channel (REST reconciliation only)
    ca_file: str | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_min_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    heartbeat_timeout_seconds: float = 10.0
