"""MarketSettings: the market service's configuration (environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from tradeplane.market.adapters.replay_feed import ReplayFormatError, check_recording
from tradeplane.market.adapters.venues.coinbase.config import (
    DEFAULT_CHANNELS,
    DEFAULT_REST_URL,
    DEFAULT_WS_URL,
    KNOWN_CHANNELS,
)
from tradeplane.market.domain.products import CATALOG, DEFAULT_PRODUCT_IDS
from tradeplane.runtime.config import ServiceSettings


class MarketSettings(ServiceSettings):
    service_name: str = "market"
    grpc_port: int = 50051  # GRPC_PORT
    metrics_port: int = 9101  # METRICS_PORT
    database_url: str  # DATABASE_URL: required (the launcher passes sqlite:///var/data/market.db)

    market_feed: Literal["simulated", "replay", "coinbase"] = "simulated"  # MARKET_FEED
    market_seed: int = 42  # MARKET_SEED
    market_products: str = ",".join(DEFAULT_PRODUCT_IDS)  # MARKET_PRODUCTS, comma separated
    market_tick_rate: float = Field(5.0, gt=0, le=100_000)  # MARKET_TICK_RATE, ticks/s/product
    market_backfill_days: float = Field(7.0, ge=0, le=3660)  # MARKET_BACKFILL_DAYS
    market_tick_replay_size: int = Field(10_000, ge=1)  # ticks kept per product for since_seq
    market_tick_queue_size: int = Field(10_000, ge=1)  # per StreamTicks subscriber
    market_candle_replay_size: int = Field(1_000, ge=1)  # candle updates per product/interval
    market_candle_queue_size: int = Field(1_000, ge=1)  # per StreamCandles subscriber
    market_book_queue_size: int = Field(1_000, ge=1)  # per StreamOrderBook subscriber (level2)
    market_stream_batch_max: int = Field(1_000, ge=1)  # ticks per StreamTicks message at most
    # StreamTicks: after each message a stream waits this long; what arrives meanwhile goes
    # out as one batch (0 = send as soon as anything is queued).
    market_stream_flush_seconds: float = Field(0.005, ge=0, le=1)
    market_candle_flush_seconds: float = Field(1.0, gt=0)  # batched candle writes
    # MARKET_FEED=replay: MARKET_REPLAY_PATH, comma-separated files played in order (trades or
    # candles, CSV or Parquet; adapters/replay_feed.py); MARKET_REPLAY_SPEED: 0 = as fast as
    # possible, 1 = recorded speed, N = N times faster.
    market_replay_path: str | None = None
    market_replay_speed: float = Field(0.0, ge=0)
    market_replay_format: Literal["auto", "csv", "parquet"] = "auto"  # auto: by extension
    market_replay_data: Literal["auto", "trades", "candles"] = "auto"  # auto: by columns
    market_replay_bar_seconds: float = Field(60.0, gt=0)  # width of each replayed candle
    # MARKET_FEED=coinbase: the Advanced Trade market-data WebSocket and REST candles (refills).
    market_coinbase_ws_url: str = DEFAULT_WS_URL
    market_coinbase_rest_url: str = DEFAULT_REST_URL
    market_coinbase_channels: str = ",".join(DEFAULT_CHANNELS)
    market_coinbase_heartbeat_timeout_seconds: float = Field(10.0, gt=0)
    market_coinbase_backoff_min_seconds: float = Field(0.5, gt=0)
    market_coinbase_backoff_max_seconds: float = Field(30.0, gt=0)
    market_coinbase_refill_delay_seconds: float = Field(5.0, ge=0)
    # Optional CDP API key name and private key (PEM or base64 Ed25519): public channels work
    # without; with them each subscribe message carries a JWT. Never logged (SecretStr).
    coinbase_api_key: SecretStr | None = None
    coinbase_api_secret: SecretStr | None = None

    @field_validator("market_products")
    @classmethod
    def _known_products(cls, value: str) -> str:
        ids = [p.strip() for p in value.split(",") if p.strip()]
        if not ids:
            raise ValueError("at least one product is required")
        unknown = [p for p in ids if p not in CATALOG]
        if unknown:
            raise ValueError(f"unknown products {unknown}; known: {', '.join(sorted(CATALOG))}")
        return ",".join(dict.fromkeys(ids))

    @model_validator(mode="after")
    def _replay_needs_a_file(self) -> MarketSettings:
        if self.market_feed == "replay":
            if not self.replay_paths:
                raise ValueError("MARKET_REPLAY_PATH is required when MARKET_FEED=replay")
            try:
                check_recording(
                    self.replay_paths, self.market_replay_format, self.market_replay_data
                )
            except ReplayFormatError as exc:
                raise ValueError(f"MARKET_REPLAY_PATH: {exc}") from None
        return self

    @property
    def replay_paths(self) -> list[Path]:
        raw = self.market_replay_path or ""
        return [Path(p.strip()) for p in raw.split(",") if p.strip()]

    @model_validator(mode="after")
    def _coinbase_settings(self) -> MarketSettings:
        if self.market_feed != "coinbase":
            return self
        unknown = [c for c in self.coinbase_channels if c not in KNOWN_CHANNELS]
        if unknown:
            raise ValueError(
                f"MARKET_COINBASE_CHANNELS: unknown {unknown}; known: {', '.join(KNOWN_CHANNELS)}"
            )
        if "market_trades" not in self.coinbase_channels:
            raise ValueError("MARKET_COINBASE_CHANNELS must include market_trades")
        if (self.coinbase_api_key is None) != (self.coinbase_api_secret is None):
            raise ValueError("set both COINBASE_API_KEY and COINBASE_API_SECRET, or neither")
        if self.market_coinbase_backoff_min_seconds > self.market_coinbase_backoff_max_seconds:
            raise ValueError("MARKET_COINBASE_BACKOFF_MIN_SECONDS exceeds the max")
        if self.market_coinbase_refill_delay_seconds <= self.market_candle_flush_seconds:
            # The live (partial) candles must be written before the refilled ones.
            raise ValueError(
                "MARKET_COINBASE_REFILL_DELAY_SECONDS must exceed MARKET_CANDLE_FLUSH_SECONDS"
            )
        return self

    @property
    def coinbase_channels(self) -> list[str]:
        return [c.strip() for c in self.market_coinbase_channels.split(",") if c.strip()]

    @property
    def product_ids(self) -> list[str]:
        return self.market_products.split(",")
