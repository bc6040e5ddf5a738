"""The paper venue's book of working orders, indexed so that a tick visits only the orders it
can change.

A deep book is mostly resting limits far from the market; scanning all of them on every tick
(several a second, on the service's single event loop) delays every RPC. So each order is
filed, per product, under the thresholds of ``matching.wakes``: sorted ladders of prices
("wakes when the trade price is at most / at least this") and of expiry times, plus a small
set of orders that must see every tick. A tick reads only the ladder ranges its price and
time reach, and ``idle_on`` - the definition of "certainly changes nothing" - has the last
word on each candidate. The result is in book insertion order, as a full scan would give.

Ladders are sorted lists (``bisect``). Removal is lazy and O(1): every filing has a stamp,
an entry whose stamp is no longer live is skipped, and dropped when a tick's range meets it or
when stale entries outnumber live ones (a rebuild, amortised O(1) per removal).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Generic, TypeVar

from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, Wakes, idle_on, wakes
from tradeplane.execution.service_layer.ports import MarketTick

K = TypeVar("K", Decimal, datetime)

_COMPACT_MIN = 64  # below this many stale entries a ladder is not worth rebuilding


@dataclass(slots=True)
class _Filed:
    order: PaperOrder
    seq: int  # insertion order into the book: the order of processing
    wakes: Wakes
    stamp: int = -1  # identifies its current ladder entries


class _Ladder(Generic[K]):
    """Entries (key, stamp) sorted by key; an entry counts while its stamp is live."""

    def __init__(self, live: dict[int, _Filed]) -> None:
        self._entries: list[tuple[K, int]] = []
        self._live = live
        self._stale = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: K, stamp: int) -> None:
        insort(self._entries, (key, stamp))

    def forget_one(self) -> None:
        """One of the entries is no longer live (its stamp was retired by the book)."""
        self._stale += 1
        if self._stale >= _COMPACT_MIN and 2 * self._stale > len(self._entries):
            self._entries = [e for e in self._entries if e[1] in self._live]
            self._stale = 0

    def keys_at_most(self, bound: K, out: list[int]) -> None:
        """Add the live stamps with key <= bound to ``out``."""
        self._collect(0, bisect_right(self._entries, bound, key=_key), out)

    def keys_at_least(self, bound: K, out: list[int]) -> None:
        """Add the live stamps with key >= bound to ``out``."""
        self._collect(bisect_left(self._entries, bound, key=_key), len(self._entries), out)

    def _collect(self, lo: int, hi: int, out: list[int]) -> None:
        if lo >= hi:
            return
        live = self._live
        kept = [e for e in self._entries[lo:hi] if e[1] in live]
        if len(kept) < hi - lo:  # drop the stale entries met, so no tick meets them again
            self._entries[lo:hi] = kept
            self._stale -= hi - lo - len(kept)
        out.extend(e[1] for e in kept)


_key = itemgetter(0)


@dataclass(slots=True)
class _ProductIndex:
    live: dict[int, _Filed]
    always: dict[int, None] = field(default_factory=dict)  # stamps (an ordered set)
    price_at_most: _Ladder[Decimal] = field(init=False)
    price_at_least: _Ladder[Decimal] = field(init=False)
    time_at_least: _Ladder[datetime] = field(init=False)

    def __post_init__(self) -> None:
        self.price_at_most = _Ladder(self.live)
        self.price_at_least = _Ladder(self.live)
        self.time_at_least = _Ladder(self.live)


class PaperBook:
    """Working orders by order id, in insertion order, indexed by what wakes them. The venue
    calls ``refile`` after ``match`` changed an order's state."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Filed] = {}
        self._live: dict[int, _Filed] = {}  # stamp -> filing, for the ladders' liveness test
        self._products: dict[str, _ProductIndex] = {}
        self._next_seq = 0
        self._next_stamp = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._by_id

    def get(self, order_id: str) -> PaperOrder | None:
        filed = self._by_id.get(order_id)
        return None if filed is None else filed.order

    def values(self) -> Iterator[PaperOrder]:
        """The working orders in insertion order."""
        return (f.order for f in self._by_id.values())

    def add(self, order: PaperOrder) -> None:
        if order.order_id in self._by_id:
            raise ValueError(f"order {order.order_id} is already in the book")
        filed = _Filed(order, self._next_seq, wakes(order))
        self._next_seq += 1
        self._by_id[order.order_id] = filed
        self._file(filed)

    def pop(self, order_id: str) -> PaperOrder | None:
        filed = self._by_id.pop(order_id, None)
        if filed is None:
            return None
        self._unfile(filed)
        return filed.order

    def refile(self, order: PaperOrder) -> None:
        """File ``order`` again after its state changed (no-op if it left the book)."""
        filed = self._by_id.get(order.order_id)
        if filed is None or filed.order is not order:
            return
        now = wakes(order)
        if now != filed.wakes:
            self._unfile(filed)
            filed.wakes = now
            self._file(filed)

    def due(self, tick: MarketTick) -> list[PaperOrder]:
        """The orders of the tick's product that it may change (not ``idle_on``), in
        insertion order: what a scan of the whole book would select."""
        index = self._products.get(tick.product_id)
        if index is None:
            return []
        stamps = list(index.always)
        index.price_at_most.keys_at_least(tick.price, stamps)
        index.price_at_least.keys_at_most(tick.price, stamps)
        index.time_at_least.keys_at_most(tick.time, stamps)
        found: dict[int, PaperOrder] = {}  # by seq; an order may be in two ladders
        for stamp in stamps:
            filed = self._live[stamp]
            if not idle_on(filed.order, tick):
                found[filed.seq] = filed.order
        return [found[seq] for seq in sorted(found)]

    def ladder_sizes(self, product_id: str) -> dict[str, int]:
        """Entries held per structure, stale ones included (tests check compaction)."""
        index = self._products.get(product_id)
        if index is None:
            return {}
        return {
            "always": len(index.always),
            "price_at_most": len(index.price_at_most),
            "price_at_least": len(index.price_at_least),
            "time_at_least": len(index.time_at_least),
        }

    def _file(self, filed: _Filed) -> None:
        filed.stamp = stamp = self._next_stamp
        self._next_stamp += 1
        self._live[stamp] = filed
        index = self._products.get(filed.order.product_id)
        if index is None:
            index = self._products[filed.order.product_id] = _ProductIndex(self._live)
        w = filed.wakes
        if w.always:
            index.always[stamp] = None
        if w.price_at_most is not None:
            index.price_at_most.add(w.price_at_most, stamp)
        if w.price_at_least is not None:
            index.price_at_least.add(w.price_at_least, stamp)
        if w.time_at_least is not None:
            index.time_at_least.add(w.time_at_least, stamp)

    def _unfile(self, filed: _Filed) -> None:
        del self._live[filed.stamp]
        index = self._products[filed.order.product_id]
        w = filed.wakes
        if w.always:
            del index.always[filed.stamp]
        if w.price_at_most is not None:
            index.price_at_most.forget_one()
        if w.price_at_least is not None:
            index.price_at_least.forget_one()
        if w.time_at_least is not None:
            index.time_at_least.forget_one()
