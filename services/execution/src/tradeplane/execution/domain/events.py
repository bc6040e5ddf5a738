"""Execution events: plain immutable records of state changes, written to the outbox in the
same transaction as the change (by the service layer) and published by StreamEvents.

Each class maps onto one ``Event.payload`` case; ``EventType`` names equal the proto's
``EVENT_TYPE_*`` names without the prefix. ``seq`` and ``time`` are assigned by the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.portfolio import PortfolioSnapshot
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits
from tradeplane.execution.domain.trading_state import TradingStateChange


class EventType(StrEnum):
    ORDER_SUBMITTED = "ORDER_SUBMITTED"
    ORDER_UPDATED = "ORDER_UPDATED"
    FILL = "FILL"
    POSITION_UPDATE = "POSITION_UPDATE"
    TRADE_BLOCKED = "TRADE_BLOCKED"
    PORTFOLIO_UPDATE = "PORTFOLIO_UPDATE"
    TRADING_STATE_CHANGED = "TRADING_STATE_CHANGED"
    RISK_LIMITS_CHANGED = "RISK_LIMITS_CHANGED"
    DECISION_RECORDED = "DECISION_RECORDED"


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    """An order intent was committed (status NEW)."""

    type: ClassVar[EventType] = EventType.ORDER_SUBMITTED
    order: Order

    @property
    def account_id(self) -> str:
        return self.order.spec.account_id


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    """An order changed: status, fills, venue acknowledgement."""

    type: ClassVar[EventType] = EventType.ORDER_UPDATED
    order: Order

    @property
    def account_id(self) -> str:
        return self.order.spec.account_id


@dataclass(frozen=True, slots=True)
class FillRecorded:
    """A fill was applied (the proto's ``fill`` event)."""

    type: ClassVar[EventType] = EventType.FILL
    fill: Fill

    @property
    def account_id(self) -> str:
        return self.fill.account_id


@dataclass(frozen=True, slots=True)
class PositionUpdated:
    """A position changed (fill or mark)."""

    type: ClassVar[EventType] = EventType.POSITION_UPDATE
    position: Position

    @property
    def account_id(self) -> str:
        return self.position.account_id


@dataclass(frozen=True, slots=True)
class TradeBlocked:
    """An order was refused by the risk engine."""

    type: ClassVar[EventType] = EventType.TRADE_BLOCKED
    block: Block

    @property
    def account_id(self) -> str:
        return self.block.account_id


@dataclass(frozen=True, slots=True)
class PortfolioUpdated:
    """The portfolio summary changed."""

    type: ClassVar[EventType] = EventType.PORTFOLIO_UPDATE
    portfolio: PortfolioSnapshot

    @property
    def account_id(self) -> str:
        return self.portfolio.account_id


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """A trading state changed (including the kill switch); global when account_id is ""."""

    type: ClassVar[EventType] = EventType.TRADING_STATE_CHANGED
    change: TradingStateChange

    @property
    def account_id(self) -> str:
        return self.change.account_id


@dataclass(frozen=True, slots=True)
class RiskLimitsChanged:
    """The risk limits of an account were replaced (by ``changed_by``)."""

    type: ClassVar[EventType] = EventType.RISK_LIMITS_CHANGED
    limits: RiskLimits
    changed_by: str
    time: datetime

    @property
    def account_id(self) -> str:
        return self.limits.account_id


@dataclass(frozen=True, slots=True)
class DecisionRecorded:
    """A decision record was stored with an order."""

    type: ClassVar[EventType] = EventType.DECISION_RECORDED
    decision: Decision

    @property
    def account_id(self) -> str:
        return self.decision.account_id


ExecutionEvent = (
    OrderSubmitted
    | OrderUpdated
    | FillRecorded
    | PositionUpdated
    | TradeBlocked
    | PortfolioUpdated
    | TradingStateChanged
    | RiskLimitsChanged
    | DecisionRecorded
)
