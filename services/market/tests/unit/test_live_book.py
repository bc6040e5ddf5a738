"""LiveBook: a venue's level2 book kept from a snapshot and level updates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from tradeplane.market.domain.order_book import LiveBook, PriceLevel

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_snapshot_then_updates_and_sorted_views() -> None:
    book = LiveBook("BTC-USD")
    assert not book.apply(False, [("bid", D(1), D(1))], T)  # no snapshot yet: ignored
    assert not book.ready and book.bids == {}
    snapshot = [("bid", D(99), D(1)), ("bid", D(98), D(2)), ("ask", D(101), D(3))]
    assert book.apply(True, [*snapshot, ("ask", D(102), D(4))], T)
    book.seq = 1
    assert book.view(1).bids == [PriceLevel(D(99), D(1))]
    assert book.apply(False, [("bid", D(99), D(0)), ("bid", D("98.5"), D(5))], T)
    book.seq = 2
    view = book.view(5)
    assert view.seq == 2
    assert view.bids == [PriceLevel(D("98.5"), D(5)), PriceLevel(D(98), D(2))]  # best first
    assert view.asks == [PriceLevel(D(101), D(3)), PriceLevel(D(102), D(4))]
    assert book.top() == (D("98.5"), D(101))


def test_invalidate_ignores_updates_until_a_new_snapshot_replaces_the_book() -> None:
    book = LiveBook("BTC-USD")
    book.apply(True, [("bid", D(99), D(1)), ("ask", D(101), D(1))], T)
    book.invalidate()
    assert not book.apply(False, [("bid", D(100), D(1))], T)
    assert book.apply(True, [("bid", D(50), D(1))], T)
    assert book.ready and book.bids == {D(50): D(1)} and book.asks == {}
