"""ExecutionSettings: the execution service's configuration (environment variables)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from tradeplane.runtime.config import ServiceSettings


class ExecutionSettings(ServiceSettings):
    service_name: str = "execution"
    grpc_port: int = 50052  # GRPC_PORT
    metrics_port: int = 9102  # METRICS_PORT
    database_url: (
        str  # DATABASE_URL: required (the launcher passes sqlite:///var/data/execution.db)
    )

    market_addr: str = "127.0.0.1:50051"  # MARKET_ADDR: the market service (ticks, products)
    # EXECUTION_MARKET_TOKEN: bearer token (read scope) of the background tick stream when the
    # market service checks tokens; there is no caller whose token could be forwarded.
    execution_market_token: SecretStr | None = None
    execution_venue: Literal["paper", "coinbase"] = "paper"  # EXECUTION_VENUE
    execution_default_account: str = Field("paper-main", min_length=1, max_length=64)
    execution_valuation_currency: str = "USD"  # valuation currency of new accounts
    execution_paper_starting_cash: Decimal = Field(Decimal("100000"), ge=0)
    execution_paper_maker_fee_bps: Decimal = Field(Decimal("10"), ge=-100, le=1000)
    execution_paper_taker_fee_bps: Decimal = Field(Decimal("20"), ge=0, le=1000)
    execution_paper_slippage_bps: Decimal = Field(Decimal("0"), ge=0, le=1000)
    execution_market_wait_seconds: float = Field(10.0, ge=0)  # startup wait for market data
    # EXECUTION_EVENT_RETENTION_DAYS: outbox events older than this are deleted (hourly); a
    # StreamEvents cursor older than the oldest kept event gets `reset`. 0 keeps everything.
    execution_event_retention_days: float = Field(30.0, ge=0)
    execution_event_poll_seconds: float = Field(1.0, gt=0)  # StreamEvents poll (other replicas)
    # Live strategies: closed 1-minute bars loaded before the start to warm up indicators, bars
    # kept per product, and how long a signal waits for the next bar's first trade.
    execution_strategy_warmup_bars: int = Field(500, ge=0, le=5000)
    execution_strategy_max_bars: int = Field(5000, ge=10, le=100_000)
    execution_strategy_next_tick_wait_seconds: float = Field(5.0, ge=0)

    # EXECUTION_VENUE=coinbase: Advanced Trade REST + the `user` WebSocket channel.
    coinbase_api_key: SecretStr | None = None  # COINBASE_API_KEY (a Kubernetes Secret)
    coinbase_api_secret: SecretStr | None = None  # COINBASE_API_SECRET (PEM EC or Ed25519)
    execution_coinbase_rest_url: str = "https://api.coinbase.com"
    # "" = no user channel: fills and done orders come from the periodic reconciliation only.
    execution_coinbase_ws_url: str = "wss://advanced-trade-ws-user.coinbase.com"
    execution_coinbase_ca_file: str | None = None  # extra CA bundle (a private CA, tests)
    execution_coinbase_timeout_seconds: float = Field(10.0, gt=0)  # per REST request
    execution_coinbase_max_attempts: int = Field(5, ge=1, le=20)  # 429/5xx/lost-answer retries
    execution_coinbase_heartbeat_timeout_seconds: float = Field(10.0, gt=0)  # user channel
    # Venue reconciliation: at start, then every this many seconds (coinbase venue).
    execution_reconcile_interval_seconds: float = Field(30.0, gt=0)
    execution_reconcile_fills_lookback_hours: float = Field(24.0, gt=0)  # fills checked at start
    # A venue "not found" is asked again after this pause before it counts as a mismatch.
    execution_reconcile_confirm_seconds: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _coinbase_needs_keys(self) -> ExecutionSettings:
        if self.execution_venue == "coinbase" and (
            self.coinbase_api_key is None or self.coinbase_api_secret is None
        ):
            raise ValueError(
                "EXECUTION_VENUE=coinbase needs COINBASE_API_KEY and COINBASE_API_SECRET"
            )
        return self
