"""Order books: a venue's live level2 book (LiveBook), or a simulated one (levels stepping
away from the best bid/ask of the last tick) for feeds without depth."""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True, slots=True)
class BookChange:
    """Published on the book hub each time a venue book changes (its seq is the hub's)."""

    product_id: str
    snapshot: bool  # True: the book was replaced (first snapshot, or after a resync)
    time: datetime


class LiveBook:
    """A venue's level2 book of one product: a snapshot, then level updates (new size per
    price; size 0 removes the level). `ready` is False until the first snapshot and again
    after `invalidate` (e.g. a sequence gap: updates were lost) until the next snapshot."""

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.ready = False
        self.seq = 0  # set by the publisher: the seq of the last change applied
        self.time: datetime | None = None
        self._views: dict[tuple[int, int], OrderBook] = {}  # by (seq, depth), current state
        self._top: tuple[Decimal | None, Decimal | None] | None = None

    def apply(
        self,
        snapshot: bool,
        levels: Iterable[tuple[str, Decimal, Decimal]],
        time: datetime,
    ) -> bool:
        """Apply (side "bid"/"ask", price, size) changes; False (ignored) while an update
        arrives before the snapshot that would make it meaningful."""
        if snapshot:
            self.bids.clear()
            self.asks.clear()
            self.ready = True
        elif not self.ready:
            return False
        for side, price, size in levels:
            book = self.bids if side == "bid" else self.asks
            if size == 0:
                book.pop(price, None)
            else:
                book[price] = size
        self.time = time
        self._views.clear()
        self._top = None
        return True

    def invalidate(self) -> None:
        self.ready = False

    def top(self) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask (computed once per change: every trade tick asks for it)."""
        if self._top is None:
            self._top = (
                max(self.bids) if self.bids else None,
                min(self.asks) if self.asks else None,
            )
        return self._top

    def view(self, depth: int) -> OrderBook:
        """The best `depth` levels per side (computed once per change and depth)."""
        book = self._views.get((self.seq, depth))
        if book is None:
            bids = heapq.nlargest(depth, self.bids.items())
            asks = heapq.nsmallest(depth, self.asks.items())
            book = self._views[(self.seq, depth)] = OrderBook(
                self.product_id,
                self.seq,
                self.time or datetime.fromtimestamp(0, UTC),
                [PriceLevel(p, s) for p, s in bids],
                [PriceLevel(p, s) for p, s in asks],
            )
        return book
