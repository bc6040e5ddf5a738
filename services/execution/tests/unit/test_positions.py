"""Position maths (average cost), hand-computed, plus seeded random fill sequences checked
against independent oracles."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.values import Side

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal


def t(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def test_hand_computed_sequence() -> None:
    p = Position("acct", "BTC-USD")
    assert not p.is_open and p.unrealized_pnl == 0 and p.notional == 0

    c = p.apply_fill(Side.BUY, D("2"), D("100"), D("0.2"), t(1))
    p = c.position
    assert (p.quantity, p.average_entry_price, p.realized_pnl, p.fees_paid) == (2, 100, 0, D("0.2"))
    assert not c.is_closing_trade and p.open_time == t(1)

    p = p.apply_fill(Side.BUY, D("1"), D("130"), D("0.13"), t(2)).position
    assert (p.quantity, p.average_entry_price) == (3, 110)  # (200 + 130) / 3
    assert p.fees_paid == D("0.33") and p.open_time == t(1)

    c = p.apply_fill(Side.SELL, D("1.5"), D("120"), D("0.18"), t(3))
    p = c.position
    assert c.realized_pnl == 15 and c.closed_size == D("1.5")  # 1.5 * (120 - 110)
    assert (p.quantity, p.average_entry_price, p.realized_pnl) == (D("1.5"), 110, 15)

    # Sell 2.5 @ 100: closes 1.5 at a 15 loss, opens a 1.0 short at 100.
    c = p.apply_fill(Side.SELL, D("2.5"), D("100"), D("0.25"), t(4))
    p = c.position
    assert c.realized_pnl == -15 and c.closed_size == D("1.5")
    assert (p.quantity, p.average_entry_price, p.realized_pnl) == (-1, 100, 0)
    assert p.open_time == t(4)

    p = p.marked(D("90"), t(5))
    assert p.unrealized_pnl == 10 and p.notional == -90 and p.update_time == t(5)

    c = p.apply_fill(Side.BUY, D("1"), D("95"), D("0.1"), t(6))
    p = c.position
    assert c.realized_pnl == 5  # short from 100 covered at 95
    assert (p.quantity, p.average_entry_price, p.realized_pnl) == (0, 0, 5)
    assert p.open_time is None and p.fees_paid == D("0.86") and not p.is_open


def test_short_position_averages_and_realises() -> None:
    p = Position("acct", "ETH-USD")
    p = p.apply_fill(Side.SELL, D("1"), D("200"), D("0"), t(1)).position
    p = p.apply_fill(Side.SELL, D("3"), D("220"), D("0"), t(2)).position
    assert (p.quantity, p.average_entry_price) == (-4, 215)
    c = p.apply_fill(Side.BUY, D("2"), D("210"), D("0"), t(3))
    assert c.realized_pnl == 10 and c.position.quantity == -2  # 2 * (215 - 210)
    assert c.position.average_entry_price == 215


def test_without_a_mark_the_position_is_valued_at_entry() -> None:
    p = Position("acct", "BTC-USD").apply_fill(Side.BUY, D("2"), D("50"), D("0"), t(1)).position
    assert p.mark_price is None and p.notional == 100 and p.unrealized_pnl == 0


def test_invalid_fill_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        Position("acct", "BTC-USD").apply_fill(Side.BUY, D("0"), D("1"), D("0"), t(1))


# --- random sequences against oracles -------------------------------------------------------


class AverageCostOracle:
    """Average cost written as a signed cost basis in exact fractions (not as an average)."""

    def __init__(self) -> None:
        self.qty = Fraction(0)
        self.basis = Fraction(0)  # signed: quantity * average entry
        self.realized = Fraction(0)

    def fill(self, signed: Fraction, price: Fraction) -> None:
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self.basis += signed * price
            self.qty += signed
            return
        closed = min(abs(signed), abs(self.qty))
        sign = 1 if self.qty > 0 else -1
        released = self.basis * closed / abs(self.qty)
        self.realized += sign * closed * price - released
        self.basis -= released
        self.qty += signed
        remaining = abs(signed) - closed
        if remaining > 0:
            self.basis = (1 if signed > 0 else -1) * remaining * price


def close_enough(a: Decimal, b: Fraction | Decimal, scale: Decimal) -> bool:
    return abs(Fraction(a) - Fraction(b)) <= Fraction(scale) * Fraction(1, 10**18)


def run_random_sequence(seed: int) -> int:
    """Apply a random fill sequence, checking the oracles after every fill; returns how many
    times the position went flat (where the flat-position identity was checked)."""
    rng = random.Random(seed)
    p = Position("acct", "BTC-USD")
    oracle = AverageCostOracle()
    total_signed = D(0)
    cash = D(0)  # quote cash flow of the fills, fees aside
    fees = D(0)
    price_level = rng.randint(50, 5000)
    flat_checks = 0
    for i in range(rng.randint(1, 60)):
        side = rng.choice([Side.BUY, Side.SELL])
        size = D(rng.randint(1, 5000)) / 1000
        if p.quantity != 0 and rng.random() < 0.2:  # sometimes close out exactly
            side = Side.SELL if p.quantity > 0 else Side.BUY
            size = abs(p.quantity)
        price = (
            D(price_level + rng.randint(-price_level // 5, price_level // 5))
            + D(rng.randint(0, 99)) / 100
        )
        fee = (size * price * D("0.001")).quantize(D("0.01"))
        p = p.apply_fill(side, size, price, fee, t(i)).position
        oracle.fill(Fraction(side.sign) * Fraction(size), Fraction(price))
        total_signed += side.sign * size
        cash -= side.sign * size * price
        fees += fee

        scale = D(10) ** 6 * (1 + abs(cash))
        # Quantity is exactly the sum of the signed fills; fees exactly their sum.
        assert p.quantity == total_signed
        assert p.fees_paid == fees
        assert Fraction(p.quantity) == oracle.qty
        # Realised P&L matches the independent average-cost oracle.
        assert close_enough(p.realized_pnl, oracle.realized, scale)
        # Method-free identity: realised + unrealised == cash flow + quantity * mark.
        mark = price + D(rng.randint(-500, 500)) / 100
        m = p.marked(mark, t(i))
        assert close_enough(m.realized_pnl + m.unrealized_pnl, cash + m.quantity * mark, scale)
        if p.quantity == 0:
            # Flat: every method (average cost, FIFO, ...) has realised the whole cash flow.
            assert close_enough(p.realized_pnl, cash, scale)
            assert p.average_entry_price == 0
            flat_checks += 1
    return flat_checks


@pytest.mark.parametrize("seed", range(40))
def test_random_fill_sequences_match_oracles(seed: int) -> None:
    run_random_sequence(seed)


def test_random_sequences_do_go_flat() -> None:
    # The flat-position identity is exercised, not vacuous.
    assert sum(run_random_sequence(seed) for seed in range(40)) > 20


def test_round_trip_realises_the_cash_flow_exactly_when_prices_divide() -> None:
    p = Position("acct", "BTC-USD")
    for side, size, price in [
        (Side.BUY, "1", "100"),
        (Side.BUY, "3", "104"),
        (Side.SELL, "2", "110"),
        (Side.SELL, "4", "90"),
        (Side.BUY, "2", "95"),
    ]:
        p = p.apply_fill(side, D(size), D(price), D(0), t(0)).position
    # cash = -100 - 312 + 220 + 360 - 190 = -22
    assert p.quantity == 0 and p.realized_pnl == D(-22)
