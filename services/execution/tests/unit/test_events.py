"""Events are plain immutable records that name their type and account, for the outbox."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeplane.execution.domain import events as ev
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import Order, OrderRequest, validate_order_request
from tradeplane.execution.domain.portfolio import Portfolio
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.risk import (
    Block,
    RiskBlock,
    RiskContext,
    RiskLimits,
    check_order,
)
from tradeplane.execution.domain.trading_state import TradingState, change_trading_state
from tradeplane.execution.domain.values import OrderType, Side, Venue

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal


def test_every_event_names_its_type_and_account() -> None:
    spec = validate_order_request(
        OrderRequest(
            account_id="acct",
            client_order_id="c",
            product_id="BTC-USD",
            side=Side.BUY,
            type=OrderType.LIMIT,
            base_size=D("1"),
            limit_price=D("100"),
        ),
        ProductRules.simple("BTC-USD"),
        T0,
        Venue.PAPER,
    )
    order = Order.new("o", spec, T0)
    fill = Fill(
        fill_id="f",
        venue_trade_id="t",
        order_id="o",
        client_order_id="c",
        account_id="acct",
        venue=Venue.PAPER,
        product_id="BTC-USD",
        side=Side.BUY,
        price=D("100"),
        size=D("1"),
        fee=D("0"),
        fee_currency="USD",
        time=T0,
    )
    refusal = check_order(
        spec,
        RiskLimits("acct", max_order_notional=D("1")),
        RiskContext(now=T0, last_trade_price=D("100")),
    )
    assert isinstance(refusal, RiskBlock)
    block = Block.record("b", spec, refusal, T0)
    change = change_trading_state(
        TradingState.ACTIVE,
        TradingState.HALTED,
        account_id="",
        reason="kill",
        changed_by="ops",
        time=T0,
    )
    events: list[ev.ExecutionEvent] = [
        ev.OrderSubmitted(order),
        ev.OrderUpdated(order.acknowledge("v", T0)),
        ev.FillRecorded(fill),
        ev.PositionUpdated(Position("acct", "BTC-USD")),
        ev.TradeBlocked(block),
        ev.PortfolioUpdated(Portfolio("acct").revalue(T0)),
        ev.TradingStateChanged(change),
        ev.RiskLimitsChanged(RiskLimits("acct"), "ops", T0),
        ev.DecisionRecorded(Decision("d", "sma", "acct", "BTC-USD", T0)),
    ]
    assert [e.type for e in events] == list(ev.EventType)
    assert [e.account_id for e in events] == ["acct"] * 6 + ["", "acct", "acct"]
    for e in events:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(e, dataclasses.fields(e)[0].name, None)
