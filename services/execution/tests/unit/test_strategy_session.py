"""The live StrategyContext (ProductSession): deterministic client order ids, no look-ahead,
average-cost accounting and the order mapping to execution's OrderRequest."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeplane.execution.adapters.strategy_store import RunFill, StrategyRecord
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import OrderType, Side, Venue
from tradeplane.execution.service_layer.strategy_context import ProductSession, exec_request
from tradeplane.strategies import Bar, OrderRequest, create_strategy
from tradeplane.strategies import OrderType as StrategyOrderType
from tradeplane.strategies import Side as StrategySide

BTC = ProductRules(
    product_id="BTC-USD",
    base_currency="BTC",
    quote_currency="USD",
    base_increment=Decimal("0.00000001"),
    quote_increment=Decimal("0.01"),
    min_size=Decimal("0.00001"),
)


def session() -> ProductSession:
    strategy = create_strategy("sma_crossover", {"fast_period": "2", "slow_period": "3"})
    s = ProductSession("run-1", strategy, "BTC-USD", Decimal(1000), max_bars=4)
    s.add_bars([Bar(60 * i, 10.0 + i, 11.0 + i, 9.0 + i, 10.0 + i, 1.0) for i in range(3)])
    return s


def fill(fid: str, side: Side, price: str, size: str, fee: str = "0") -> RunFill:
    return RunFill(
        fid, "o", "c", "BTC-USD", side, Decimal(price), Decimal(size), Decimal(fee),
        datetime.now(UTC),
    )  # fmt: skip


def test_client_order_ids_are_deterministic_per_run_bar_and_n() -> None:
    s = session()
    ids = [s.submit(OrderRequest(StrategySide.BUY, size=1.0)) for _ in range(2)]
    assert ids == ["run-1:BTC-USD:120:0", "run-1:BTC-USD:120:1"]
    assert [o.order_id for o in s.open_orders] == ids
    again = session()  # the same bar processed again (after a restart) gives the same ids
    assert again.submit(OrderRequest(StrategySide.BUY, size=1.0)) == ids[0]


def test_reads_are_as_of_the_current_bar_and_window_is_bounded() -> None:
    s = session()
    assert s.indicator("fast") == pytest.approx(11.5)
    assert s.indicator("slow") == pytest.approx(11.0)
    assert math.isnan(s.indicator("slow", 1))
    assert s.price("close", 2) == 10.0 and math.isnan(s.price("close", 3))
    with pytest.raises(ValueError):
        s.indicator("fast", -1)
    with pytest.raises(KeyError):
        s.indicator("rsi")
    s.add_bars([Bar(180 + 60 * i, 13.0, 14.0, 12.0, 13.0, 1.0) for i in range(3)])
    assert len(s.columns["close"]) == 4 and s.bar_index == 5 and s.time == 300


def test_average_cost_accounting() -> None:
    s = session()
    s.apply_fill(fill("1", Side.BUY, "10", "10", fee="1"))
    s.apply_fill(fill("2", Side.BUY, "20", "10"))
    assert (s.position, s.average_entry_price) == (20.0, 15.0)
    assert s.cash == 1000 - 100 - 1 - 200
    made = s.apply_fill(fill("3", Side.SELL, "25", "20", fee="2"))
    assert made == Decimal(200 - 2)
    assert (s.position, s.average_entry_price, s.cash) == (0.0, 0.0, 1000 - 301 + 500 - 2)
    assert s.realized == Decimal(200 - 1 - 2)
    assert s.equity == s.cash


def test_orders_map_to_execution_requests_in_product_increments() -> None:
    rec = StrategyRecord(
        "run-1", "sma_crossover", {}, ("BTC-USD",), "acct", Venue.PAPER, "RUNNING",
        datetime.now(UTC), Decimal(1000),
    )  # fmt: skip
    buy = exec_request(
        rec, BTC, "c1", OrderRequest(StrategySide.BUY, quote_size=1234.5678, reason="x")
    )
    assert (buy.type, buy.side, buy.quote_size, buy.base_size) == (
        OrderType.MARKET, Side.BUY, Decimal("1234.56"), None,
    )  # fmt: skip
    assert buy.strategy_instance_id == "run-1" and buy.account_id == "acct"
    limit = exec_request(
        rec,
        BTC,
        "c2",
        OrderRequest(
            StrategySide.SELL, StrategyOrderType.LIMIT, size=0.1234567891, limit_price=99.999
        ),
    )
    assert (limit.type, limit.base_size, limit.limit_price) == (
        OrderType.LIMIT, Decimal("0.12345678"), Decimal("99.99"),
    )  # fmt: skip
    s = session()
    with pytest.raises(ValueError, match="stop-market"):
        s.submit(OrderRequest(StrategySide.SELL, StrategyOrderType.STOP, size=1.0, stop_price=5.0))
