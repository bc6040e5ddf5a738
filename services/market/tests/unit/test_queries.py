"""GetCandles/ListProducts use cases with an in-memory repository and cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from tradeplane.market.domain.history import history_candles
from tradeplane.market.domain.intervals import ALL_INTERVALS, Interval, epoch_seconds
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.simulation import SimulatedMarket
from tradeplane.market.service_layer import metrics
from tradeplane.market.service_layer.queries import CandleQuery, IndicatorRequest, MarketQueries
from tradeplane.runtime.cache import InMemoryCache
from tradeplane.runtime.errors import InvalidArgument, NotFound

PRODUCTS = catalog_products(["BTC-USD", "ETH-USD", "SOL-USD"])
END = epoch_seconds(datetime(2026, 2, 1, tzinfo=UTC))
START = END - 86400


@pytest.fixture
async def queries(repo: Any) -> MarketQueries:
    market = SimulatedMarket(PRODUCTS, seed=3, tick_rate=5)
    history = market.minute_history("BTC-USD", START, 1440)
    await repo.upsert(history_candles(history, PRODUCTS[0], ALL_INTERVALS, END))
    return MarketQueries(PRODUCTS, repo, InMemoryCache(name="test"))


def query(**fields: Any) -> CandleQuery:
    values: dict[str, Any] = {
        "product_id": "BTC-USD",
        "interval": Interval.FIFTEEN_MINUTES,
        "start": START,
        "end": END,
    }
    values.update(fields)
    return CandleQuery(**values)


async def test_list_products_pages(queries: MarketQueries) -> None:
    page, token = await queries.list_products(2, "")
    assert [v.product.product_id for v in page] == ["BTC-USD", "ETH-USD"]
    rest, end = await queries.list_products(2, token)
    assert [v.product.product_id for v in rest] == ["SOL-USD"] and end == ""
    with pytest.raises(InvalidArgument) as error:
        await queries.list_products(1001, "")
    assert error.value.field == "page_size"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval": None}, "interval"),
        ({"start": None}, "start"),
        ({"end": None}, "end"),
        ({"end": START}, "end"),
        ({"page_size": 5001}, "page_size"),
        ({"page_token": "%%%"}, "page_token"),
        ({"indicators": [IndicatorRequest("rsi", {"period": 1.5})]}, "indicators[0].params.period"),
        ({"indicators": [IndicatorRequest("macd", {"fast": 30})]}, "indicators[0].params.fast"),
        ({"product_id": ""}, "product_id"),
    ],
)
async def test_invalid_queries_name_the_field(
    queries: MarketQueries, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await queries.get_candles(query(**fields))
    assert error.value.field == field


async def test_unknown_product_is_not_found(queries: MarketQueries) -> None:
    with pytest.raises(NotFound):
        await queries.get_candles(query(product_id="BTC-EUR"))


async def test_indicators_are_computed_once_then_served_from_cache(
    queries: MarketQueries, repo: Any
) -> None:
    def counts() -> tuple[float, float, float]:
        c = metrics.INDICATOR_CACHE
        return tuple(c.labels(r)._value.get() for r in ("hit", "miss", "uncacheable"))  # type: ignore[return-value]

    q = query(indicators=[IndicatorRequest("sma", {"period": 4}), IndicatorRequest("bollinger")])
    h0, m0, _ = counts()
    first = await queries.get_candles(q)
    h1, m1, _ = counts()
    second = await queries.get_candles(q)
    h2, m2, _ = counts()
    assert (m1 - m0, h1 - h0) == (2, 0) and (m2 - m1, h2 - h1) == (0, 2)
    assert len(first.candles) == 96
    assert [s.output for s in first.indicators] == ["value", "upper", "middle", "lower"]
    for a, b in zip(first.indicators, second.indicators, strict=True):
        np.testing.assert_array_equal(a.values, b.values)  # NaNs compare equal here

    # A page that contains an open candle is never cached: it still changes.
    last = first.candles[-1]
    await repo.upsert([replace(last, closed=False)])
    _, _, u0 = counts()
    await queries.get_candles(q)
    assert counts()[2] - u0 == 2
