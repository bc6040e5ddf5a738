"""Fills: one execution of (part of) an order, keyed by the venue's trade id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tradeplane.execution.domain.products import split_product_id
from tradeplane.execution.domain.values import Liquidity, Side, Venue
from tradeplane.runtime.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill as reported by a venue. ``fee`` is in ``fee_currency`` (the quote currency on
    Coinbase); a negative fee is a maker rebate."""

    fill_id: str
    venue_trade_id: str
    order_id: str
    client_order_id: str
    account_id: str
    venue: Venue
    product_id: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    fee_currency: str
    time: datetime
    liquidity: Liquidity | None = None

    def __post_init__(self) -> None:
        if not self.venue_trade_id:
            raise InvalidArgument("venue_trade_id", "required")
        if not self.price.is_finite() or self.price <= 0:
            raise InvalidArgument("price", f"must be positive, got {self.price}")
        if not self.size.is_finite() or self.size <= 0:
            raise InvalidArgument("size", f"must be positive, got {self.size}")
        if not self.fee.is_finite():
            raise InvalidArgument("fee", f"must be finite, got {self.fee}")
        if self.time.tzinfo is None:
            raise InvalidArgument("time", "must be timezone-aware")

    @property
    def base_currency(self) -> str:
        return split_product_id(self.product_id)[0]

    @property
    def quote_currency(self) -> str:
        return split_product_id(self.product_id)[1]

    @property
    def notional(self) -> Decimal:
        """price * size, in the quote currency."""
        return self.price * self.size

    @property
    def dedup_key(self) -> tuple[Venue, str]:
        """Exactly-once key: venue trade ids are unique per venue."""
        return (self.venue, self.venue_trade_id)
