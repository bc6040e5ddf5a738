"""Positions: signed quantity per (account, product) with average-cost accounting.

Method (documented choice): AVERAGE COST. Adding to a position moves the average entry price
to the size-weighted mean of the old average and the fill price. Reducing realises
``closed * (fill price - average entry) * direction`` and leaves the average unchanged; a
fill that crosses through zero closes the old position and opens the rest at the fill
price. ``realized_pnl`` is gross of fees; fees accumulate in ``fees_paid`` (net P&L is
``realized_pnl - fees_paid``). Whatever the method, realised + unrealised P&L equals the
cash flow of the fills plus quantity * mark, which the tests use as an independent oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.values import Side, Venue


@dataclass(frozen=True, slots=True)
class PositionChange:
    """What one fill did to a position."""

    position: Position
    realized_pnl: Decimal  # realised by this fill, gross of its fee
    closed_size: Decimal  # part of the fill that reduced the previous position

    @property
    def is_closing_trade(self) -> bool:
        """True when the fill reduced (or closed) a position: a "trade" for loss streaks."""
        return self.closed_size > 0


@dataclass(frozen=True, slots=True)
class Position:
    account_id: str
    product_id: str
    venue: Venue = Venue.PAPER
    quantity: Decimal = ZERO  # signed, base currency; negative = short
    average_entry_price: Decimal = ZERO  # 0 when flat
    mark_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    open_time: datetime | None = None  # when the current (non-zero) position was opened
    update_time: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.quantity != 0

    @property
    def valuation_price(self) -> Decimal:
        """The mark, or the average entry price while no mark is known."""
        return self.mark_price if self.mark_price is not None else self.average_entry_price

    @property
    def notional(self) -> Decimal:
        """Signed quantity * mark, in the quote currency."""
        return self.quantity * self.valuation_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.quantity * (self.valuation_price - self.average_entry_price)

    def marked(self, price: Decimal, time: datetime) -> Position:
        return replace(self, mark_price=price, update_time=time)

    def apply_fill(
        self, side: Side, size: Decimal, price: Decimal, fee: Decimal, time: datetime
    ) -> PositionChange:
        """The position after a fill of ``size`` at ``price`` (fee in the quote currency)."""
        if size <= 0 or price <= 0:
            raise ValueError("fill size and price must be positive")
        qty, avg = self.quantity, self.average_entry_price
        delta = side.sign * size
        realized = ZERO
        closed = ZERO
        open_time = self.open_time
        if qty == 0 or (qty > 0) == (delta > 0):
            # Opening or adding: weighted mean of the entry prices.
            new_qty = qty + delta
            avg = (abs(qty) * avg + size * price) / abs(new_qty)
            if qty == 0:
                open_time = time
        else:
            closed = min(size, abs(qty))
            direction = 1 if qty > 0 else -1
            realized = closed * (price - avg) * direction
            new_qty = qty + delta
            if new_qty == 0:
                avg, open_time = ZERO, None
            elif (new_qty > 0) != (qty > 0):
                avg, open_time = price, time  # flipped: the remainder opens at the fill price
        position = replace(
            self,
            quantity=new_qty,
            average_entry_price=avg,
            realized_pnl=self.realized_pnl + realized,
            fees_paid=self.fees_paid + fee,
            open_time=open_time,
            update_time=time,
        )
        return PositionChange(position, realized, closed)
