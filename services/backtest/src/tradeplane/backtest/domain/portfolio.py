"""Cash, position and round-trip trade accounting: the one place a fill changes money.

Both fill paths (bar by bar and vectorised) and the playback replay apply fills through
`Portfolio.apply`, so their cash, position and trades are equal to the last bit.

Accounting for a fill of `size` at `price` with `fee` (signed quantity d = +size for a buy,
-size for a sell):

- cash -= d x price + fee
- adding to a position (or opening one): the average entry price becomes the size-weighted
  mean of the old average and this price
- reducing it: realised P&L += (price - average entry) x closed size x sign(position); the
  average entry stays; a fill larger than the position closes it and opens the rest on the
  other side at `price` (its fee is split pro rata between the two trades)
- unrealised P&L = (mark - average entry) x position; equity = cash + position x mark

Realised P&L is before fees; a trade's `pnl` is after its fees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from tradeplane.strategies import Side


class FillKind(enum.Enum):
    ENTRY = "entry"  # opened or increased a position
    EXIT = "exit"  # reduced, closed or flipped it


# Enum members through their class cost ~70 ns each on CPython 3.11; `apply` runs per fill.
_BUY, _ENTRY, _EXIT = Side.BUY, FillKind.ENTRY, FillKind.EXIT


class FillRecord(NamedTuple):
    """One fill as stored with the run (a tuple: cheap to make by the ten thousand)."""

    order_id: str
    bar_index: int
    time: int
    side: Side
    price: float
    size: float
    fee: float
    kind: FillKind
    trade_id: str
    reason: str


# Builds a FillRecord from a tuple in C: a third of the NamedTuple constructor's cost.
_fill_record = partial(tuple.__new__, FillRecord)


@dataclass(slots=True)
class TradeRecord:
    """A round trip: from flat to a position and back to flat (or still open at the end)."""

    trade_id: str
    side: Side  # BUY = long, SELL = short
    entry_bar: int
    entry_time: int
    entry_size: float = 0.0
    entry_notional: float = 0.0
    exit_size: float = 0.0
    exit_notional: float = 0.0
    gross_pnl: float = 0.0  # realised, before fees
    fees: float = 0.0
    exit_bar: int = -1
    exit_time: int = 0
    open: bool = True

    @property
    def entry_price(self) -> float:
        return self.entry_notional / self.entry_size

    @property
    def exit_price(self) -> float | None:
        return self.exit_notional / self.exit_size if self.exit_size else None

    @property
    def pnl(self) -> float:
        """P&L after fees; an open trade is marked to the last close at the end of a run."""
        return self.gross_pnl - self.fees

    @property
    def return_fraction(self) -> float:
        """P&L after fees over the entry notional."""
        return self.pnl / self.entry_notional

    def bars_held(self, last_bar: int) -> int:
        return (self.exit_bar if not self.open else last_bar) - self.entry_bar


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """What a snapshot stores: enough to resume accounting (not trade history)."""

    cash: float
    quantity: float
    average_price: float
    realized_pnl: float
    fees_paid: float


class Portfolio:
    """Cash and one product's position, with the round-trip trades they made."""

    __slots__ = ("average_price", "cash", "fees_paid", "quantity", "realized_pnl", "trades")

    def __init__(self, initial_cash: float) -> None:
        self.cash = initial_cash
        self.quantity = 0.0
        self.average_price = 0.0
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.trades: list[TradeRecord] = []

    def state(self) -> PortfolioState:
        return PortfolioState(
            self.cash, self.quantity, self.average_price, self.realized_pnl, self.fees_paid
        )

    @classmethod
    def restore(cls, state: PortfolioState) -> Portfolio:
        """A portfolio resumed from a snapshot (without trade history)."""
        portfolio = cls(state.cash)
        portfolio.quantity = state.quantity
        portfolio.average_price = state.average_price
        portfolio.realized_pnl = state.realized_pnl
        portfolio.fees_paid = state.fees_paid
        if state.quantity:
            # Fills replayed onto the open position need a trade to book into.
            side = Side.BUY if state.quantity > 0 else Side.SELL
            portfolio.trades.append(TradeRecord("replay", side, -1, 0))
        return portfolio

    def apply(
        self,
        order_id: str,
        side: Side,
        size: float,
        price: float,
        fee: float,
        bar: int,
        time: int,
        reason: str = "",
    ) -> FillRecord:
        """Books one fill; returns its record."""
        sign = 1.0 if side is _BUY else -1.0
        self.cash -= sign * size * price + fee
        self.fees_paid += fee
        qty = self.quantity
        trades = self.trades
        if qty == 0.0 or (qty > 0.0) == (sign > 0.0):
            # Opening or adding.
            held = abs(qty)
            self.average_price = (self.average_price * held + price * size) / (held + size)
            self.quantity = qty + sign * size
            if qty == 0.0:
                trades.append(TradeRecord(f"t-{len(trades) + 1}", side, bar, time))
            trade = trades[-1]
            trade.entry_size += size
            trade.entry_notional += size * price
            trade.fees += fee
            return _fill_record(
                (order_id, bar, time, side, price, size, fee, _ENTRY, trade.trade_id, reason)
            )
        # Reducing, closing or flipping.
        held = abs(qty)
        closed = min(size, held)
        pnl = (price - self.average_price) * closed * (1.0 if qty > 0.0 else -1.0)
        self.realized_pnl += pnl
        trade = trades[-1]
        trade.exit_size += closed
        trade.exit_notional += closed * price
        trade.gross_pnl += pnl
        closing_fee = fee if size <= held else fee * (closed / size)
        trade.fees += closing_fee
        remaining = qty + sign * size
        # Partial exits can leave float dust where the sum should be exactly zero.
        if abs(remaining) <= 1e-12 * held:
            remaining = 0.0
        record = _fill_record(
            (order_id, bar, time, side, price, size, fee, _EXIT, trade.trade_id, reason)
        )
        if remaining == 0.0 or (remaining > 0.0) != (qty > 0.0):
            trade.open = False
            trade.exit_bar = bar
            trade.exit_time = time
        if remaining == 0.0:
            self.quantity = 0.0
            self.average_price = 0.0
        elif (remaining > 0.0) != (qty > 0.0):
            # Flipped: the rest opens a trade on the other side.
            opened = size - held
            self.quantity = remaining
            self.average_price = price
            new = TradeRecord(f"t-{len(trades) + 1}", side, bar, time)
            new.entry_size = opened
            new.entry_notional = opened * price
            new.fees = fee - closing_fee
            trades.append(new)
        else:
            self.quantity = remaining
        return record

    def equity(self, mark: float) -> float:
        return self.cash + self.quantity * mark
