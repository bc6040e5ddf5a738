"""MarketSettings: the market service's configuration (environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tradeplane.market.domain.products import CATALOG, DEFAULT_PRODUCT_IDS
from tradeplane.runtime.config import ServiceSettings


class MarketSettings(ServiceSettings):
    service_name: str = "market"
    grpc_port: int = 50051  # GRPC_PORT
    metrics_port: int = 9101  # METRICS_PORT
    database_url: str  # DATABASE_URL: required (the launcher passes sqlite:///var/data/market.db)

    market_feed: Literal["simulated", "replay"] = "simulated"  # MARKET_FEED
    market_seed: int = 42  # MARKET_SEED
    market_products: str = ",".join(DEFAULT_PRODUCT_IDS)  # MARKET_PRODUCTS, comma separated
    market_tick_rate: float = Field(5.0, gt=0, le=100_000)  # MARKET_TICK_RATE, ticks/s/product
    market_backfill_days: float = Field(7.0, ge=0, le=3660)  # MARKET_BACKFILL_DAYS
    market_tick_replay_size: int = Field(10_000, ge=1)  # ticks kept per product for since_seq
    market_tick_queue_size: int = Field(10_000, ge=1)  # per StreamTicks subscriber
    market_candle_replay_size: int = Field(1_000, ge=1)  # candle updates per product/interval
    market_candle_queue_size: int = Field(1_000, ge=1)  # per StreamCandles subscriber
    market_stream_batch_max: int = Field(1_000, ge=1)  # ticks per StreamTicks message at most
    market_candle_flush_seconds: float = Field(1.0, gt=0)  # batched candle writes
    # MARKET_REPLAY_PATH: trades CSV for MARKET_FEED=replay; MARKET_REPLAY_SPEED: 0 = as fast
    # as possible, 1 = recorded speed, N = N times faster.
    market_replay_path: Path | None = None
    market_replay_speed: float = Field(0.0, ge=0)

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
            if self.market_replay_path is None:
                raise ValueError("MARKET_REPLAY_PATH is required when MARKET_FEED=replay")
            if not self.market_replay_path.is_file():
                raise ValueError(f"MARKET_REPLAY_PATH {self.market_replay_path} is not a file")
        return self

    @property
    def product_ids(self) -> list[str]:
        return self.market_products.split(",")
