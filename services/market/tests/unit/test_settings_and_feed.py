"""MarketSettings from the environment, and the simulated feed's pacing."""

from __future__ import annotations

import time

import pytest

from tradeplane.market.adapters.simulated_feed import SimulatedFeed
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.simulation import SimulatedMarket
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.runtime.config import load_settings


def test_defaults_and_comma_separated_products(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRPC_PORT", "METRICS_PORT", "SERVICE_NAME", "MARKET_FEED", "MARKET_SEED"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MARKET_TICK_RATE", "MARKET_BACKFILL_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/data/market.db")
    monkeypatch.setenv("AUTH_MODE", "disabled")
    monkeypatch.setenv("MARKET_PRODUCTS", " ETH-USD, BTC-USD ,ETH-USD")
    settings = load_settings(MarketSettings)
    assert (settings.service_name, settings.grpc_port, settings.metrics_port) == (
        "market",
        50051,
        9101,
    )
    assert settings.product_ids == ["ETH-USD", "BTC-USD"]
    assert (settings.market_feed, settings.market_seed, settings.market_tick_rate) == (
        "simulated",
        42,
        5.0,
    )
    assert settings.market_backfill_days == 7


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "DATABASE_URL"),
        ({"MARKET_PRODUCTS": "BTC-USD,FOO-BAR"}, "MARKET_PRODUCTS"),
        ({"MARKET_TICK_RATE": "0"}, "MARKET_TICK_RATE"),
    ],
)
def test_bad_configuration_fails_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    named: str,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("AUTH_MODE", "disabled")
    if named != "DATABASE_URL":
        monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        load_settings(MarketSettings)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


async def test_simulated_feed_paces_ticks_at_the_configured_rate() -> None:
    products = catalog_products(["BTC-USD", "SOL-USD"])
    feed = SimulatedFeed(SimulatedMarket(products, seed=1, tick_rate=200))
    counts = {"BTC-USD": 0, "SOL-USD": 0}
    began = time.monotonic()
    async for batch in feed.ticks():
        for tick in batch:
            counts[tick.product_id] += 1
        if time.monotonic() - began >= 0.5:
            break
    assert 70 <= counts["BTC-USD"] <= 110
    assert counts["BTC-USD"] == counts["SOL-USD"]
