"""What the use cases need from the outside world, as Protocols the adapters implement:
a venue (paper now, Coinbase later), market data, and the outbox event encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tradeplane.execution.domain.events import ExecutionEvent
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import Liquidity, OrderStatus, Venue


@dataclass(frozen=True, slots=True)
class MarketTick:
    """One trade print with the top of book after it, as the market service streams it."""

    product_id: str
    seq: int
    time: datetime
    price: Decimal
    size: Decimal
    best_bid: Decimal
    best_ask: Decimal


class MarketData(Protocol):
    """Live prices and product rules (from the market service)."""

    @property
    def ready(self) -> bool:
        """True once the product catalog is loaded and the tick stream is connected."""
        ...

    def product(self, product_id: str) -> ProductRules | None: ...

    def last_tick(self, product_id: str) -> MarketTick | None: ...

    def last_price(self, product_id: str) -> Decimal | None: ...

    def add_listener(self, listener: Callable[[MarketTick], None]) -> None:
        """Called (synchronously, in the event loop) for every tick received."""
        ...


@dataclass(frozen=True, slots=True)
class VenueFill:
    """A fill as the venue reports it (the service turns it into a domain Fill)."""

    order_id: str
    venue_trade_id: str
    price: Decimal
    size: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    time: datetime


class VenueReports(Protocol):
    """Where a venue reports what happened to orders (implemented by the service layer;
    each report is applied with its events, exactly once)."""

    async def on_fill(self, report: VenueFill) -> None: ...

    async def on_fills(self, reports: Sequence[VenueFill]) -> None:
        """Several fills known at once (e.g. one fill listing): applied in batches, each in
        one transaction, exactly as ``on_fill`` for each in order would."""
        ...

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        """The venue finished the order: FILLED, CANCELED, EXPIRED or REJECTED."""
        ...


class VenueRejected(Exception):
    """The venue refused the order outright (it becomes REJECTED with this reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExecutionVenue(Protocol):
    """One execution venue. ``submit`` must be idempotent on the order id (a resubmission
    after a crash between "intent committed" and "ack recorded" must not place a second
    order)."""

    @property
    def venue(self) -> Venue: ...

    def bind(self, reports: VenueReports) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, order: Order) -> str:
        """Place the order; returns the venue order id; raises VenueRejected."""
        ...

    async def cancel(self, order: Order) -> bool:
        """Request cancellation; True when the venue confirmed it (the order is no longer
        working there), False when the confirmation will arrive as a report."""
        ...

    async def resume(self, orders: Sequence[Order]) -> None:
        """Take over working (acknowledged) orders after a restart."""
        ...


EventEncoder = Callable[[ExecutionEvent], bytes]
