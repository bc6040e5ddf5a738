"""Enumerations of the execution model.

Member names equal the proto enum value names without their prefix (``OrderStatus.OPEN`` is
``ORDER_STATUS_OPEN``), so mapping is ``OrderStatus[name.removeprefix("ORDER_STATUS_")]``.
``*_UNSPECIFIED`` has no member: the mapping turns it into ``None`` and validation rejects it
where a value is required.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy (position grows), -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_LIMIT = "STOP_LIMIT"
    BRACKET = "BRACKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class OrderStatus(StrEnum):
    NEW = "NEW"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_working(self) -> bool:
        """NEW, OPEN or PARTIALLY_FILLED: the order may still trade or be cancelled."""
        return self not in _FINAL


_FINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class StopDirection(StrEnum):
    UP = "UP"
    DOWN = "DOWN"


class BracketLeg(StrEnum):
    ENTRY = "ENTRY"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class Venue(StrEnum):
    """Execution venues (the wallet-only venues of ``trading.common.v1.Venue`` are not here)."""

    PAPER = "PAPER"
    COINBASE = "COINBASE"
