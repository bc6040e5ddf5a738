"""ExecutionSettings: the execution service's configuration (environment variables)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr

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
    execution_venue: Literal["paper"] = "paper"  # EXECUTION_VENUE (coinbase comes later)
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
