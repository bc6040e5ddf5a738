"""A simulated order book: levels stepping away from the best bid/ask of the last tick."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tradeplane.market.domain.products import Product


@dataclass(frozen=True, slots=True)
class PriceLevel:
    price: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    product_id: str
    seq: int
    time: datetime
    bids: list[PriceLevel]  # best (highest) first
    asks: list[PriceLevel]  # best (lowest) first


def simulated_book(
    product: Product,
    *,
    seq: int,
    time: datetime,
    best_bid: Decimal,
    best_ask: Decimal,
    mean_size: float,
    depth: int,
) -> OrderBook:
    """A deterministic book for (product, seq): sizes grow away from the touch, with noise
    drawn from a hash so the same tick always gives the same book."""
    step = product.quote_increment * max(
        1, int(best_bid * Decimal("0.0001") / product.quote_increment)
    )

    def size(side: int, level: int) -> Decimal:
        noise = zlib.crc32(f"{product.product_id}:{seq}:{side}:{level}".encode()) / 2**32
        value = mean_size * (1.0 + 0.5 * level) * (0.5 + noise) * math.log(2 + level)
        return product.round_size(Decimal(repr(value)))

    bids = [PriceLevel(best_bid - step * i, size(0, i)) for i in range(depth)]
    asks = [PriceLevel(best_ask + step * i, size(1, i)) for i in range(depth)]
    return OrderBook(product.product_id, seq, time, [b for b in bids if b.price > 0], asks)


def diff_levels(old: list[PriceLevel], new: list[PriceLevel]) -> list[PriceLevel]:
    """The level changes that turn `old` into `new`: changed or added levels with their new
    size, removed levels with size 0. In `new`'s order, removals last."""
    before = {level.price: level.size for level in old}
    after = {level.price for level in new}
    changes = [level for level in new if before.get(level.price) != level.size]
    changes += [PriceLevel(level.price, Decimal(0)) for level in old if level.price not in after]
    return changes
