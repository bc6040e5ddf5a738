"""A tick: one trade print with the top of book right after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """Side of the aggressor (taker) of a trade."""

    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class Tick:
    product_id: str
    trade_id: str
    time: datetime  # exchange time (UTC)
    price: Decimal
    size: Decimal
    side: Side
    best_bid: Decimal
    best_ask: Decimal
