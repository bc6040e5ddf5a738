"""The simulated venue of a backtest: orders, their fills within a bar, fees and slippage.

Fill rules (a bar is open/high/low/close; "working" = submitted at an earlier bar):

- market, working at a bar's start: fills at its open (this is how a signal on bar t fills at
  bar t+1's open); with FillRule.CLOSE a market order submitted in `on_bar` fills at once at
  that bar's close.
- limit buy at L: fills when low <= L, at min(open, L) (a gap down fills at the better open);
  limit sell: when high >= L, at max(open, L). No slippage (it rests on the book).
- stop buy at S: triggers when high >= S and fills at max(open, S); stop sell: when
  low <= S, at min(open, S); then slippage as for a market order.
- stop-limit: triggers like a stop; if the trigger price (max(open, S) for a buy) is within
  the limit it fills there, else it rests as a limit order from the next bar on.
- slippage: market and stop fills move slippage_bps against the trader.
- commission: fixed + notional x bps on every fill.
- a buy costing more than the cash, or (without allow_short) a sell of more than the long
  position, is REJECTED at fill time. No partial fills: bars carry no depth.
- working orders are matched in submission order, all of them before the strategy hears of
  any fill of that bar (so a cancel from `on_fill`, e.g. one-cancels-other, acts from the
  next bar); orders placed during a bar's matching start working at the next bar.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradeplane.backtest.domain.portfolio import (
    FillRecord,
    Portfolio,
    PortfolioState,
    TradeRecord,
)
from tradeplane.backtest.domain.settings import BacktestSettings
from tradeplane.strategies import OrderRequest, OrderType, Side


class OrderStatus(enum.Enum):
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


# Reading an enum member through its class costs ~70 ns on CPython 3.11 (a module global
# ~7 ns); these are read several times per fill.
_BUY = Side.BUY
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_OPEN, _FILLED = OrderStatus.OPEN, OrderStatus.FILLED


@dataclass(slots=True)
class Order:
    """An order of the run and its (final, after the run) status."""

    order_id: str
    request: OrderRequest
    submit_bar: int
    submit_time: int
    update_bar: int
    update_time: int
    status: OrderStatus = OrderStatus.OPEN
    filled_size: float = 0.0
    average_fill_price: float = 0.0
    fees: float = 0.0
    triggered: bool = False  # a stop-limit whose stop traded: now a plain limit
    note: str = ""  # why it was rejected

    def done_bar(self) -> int | None:
        """Bar at which it stopped working; None while still working."""
        return None if self.status is OrderStatus.OPEN else self.update_bar


class Broker:
    """Orders and portfolio of one run. Both fill paths drive it, so they fill alike."""

    __slots__ = (
        "_by_id",
        "_fee_fixed",
        "_fee_rate",
        "_next_snapshot",
        "_slip",
        "change_bars",
        "change_cash",
        "change_quantity",
        "fills",
        "orders",
        "portfolio",
        "settings",
        "snapshot_fill_counts",
        "snapshot_states_kept",
        "working",
    )

    def __init__(self, settings: BacktestSettings) -> None:
        self.settings = settings
        self.portfolio = Portfolio(settings.initial_cash)
        self.orders: list[Order] = []
        self.working: list[Order] = []
        self.fills: list[FillRecord] = []
        self._by_id: dict[str, Order] = {}
        self._fee_fixed = settings.commission_fixed
        self._fee_rate = settings.fee_rate
        self._slip = settings.slippage_rate
        # Cash and position after the last fill of each bar that had fills (the equity curve
        # is rebuilt from these change points, vectorised).
        self.change_bars: list[int] = []
        self.change_cash: list[float] = []
        self.change_quantity: list[float] = []
        # Portfolio state after bars K-1, 2K-1, ... (K = settings.snapshot_every), captured
        # when the first fill after such a bar arrives, and how many fills preceded it.
        self._next_snapshot = settings.snapshot_every - 1
        self.snapshot_states_kept: list[PortfolioState] = []
        self.snapshot_fill_counts: list[int] = []

    # -- orders ----------------------------------------------------------------------------

    def submit(self, request: OrderRequest, bar: int, time: int) -> Order:
        order = Order(f"o-{len(self.orders) + 1}", request, bar, time, bar, time)
        self.orders.append(order)
        self._by_id[order.order_id] = order
        self.working.append(order)
        return order

    def cancel(self, order_id: str, bar: int, time: int) -> bool:
        order = self._by_id.get(order_id)
        if order is None or order.status is not _OPEN:
            return False
        self._finish(order, OrderStatus.CANCELED, bar, time)
        return True

    def get(self, order_id: str) -> Order | None:
        return self._by_id.get(order_id)

    def _finish(self, order: Order, status: OrderStatus, bar: int, time: int) -> None:
        order.status = status
        order.update_bar = bar
        order.update_time = time
        self.working.remove(order)

    # -- fills -----------------------------------------------------------------------------

    def fill_market(self, order: Order, price: float, bar: int, time: int) -> FillRecord | None:
        """Fills `order` now at `price` moved by slippage; None when it was rejected."""
        slip = self._slip
        if slip:
            price = price * (1.0 + slip) if order.request.side is _BUY else price * (1.0 - slip)
        return self._execute(order, price, bar, time)

    def match_bar(
        self, bar: int, time: int, open_: float, high: float, low: float
    ) -> list[FillRecord]:
        """Fills of the orders working at the start of `bar` within its range."""
        fills: list[FillRecord] = []
        for order in list(self.working):
            request = order.request
            kind = request.type
            buy = request.side is _BUY
            if kind is _MARKET:
                if self._slip:
                    fill = self.fill_market(order, open_, bar, time)
                else:  # the common case, one call less
                    fill = self._execute(order, open_, bar, time)
            elif kind is _LIMIT or order.triggered:
                limit = request.limit_price
                assert limit is not None
                if buy and low <= limit:
                    fill = self._execute(order, min(open_, limit), bar, time)
                elif not buy and high >= limit:
                    fill = self._execute(order, max(open_, limit), bar, time)
                else:
                    continue
            else:  # STOP or STOP_LIMIT, not yet triggered
                stop = request.stop_price
                assert stop is not None
                if buy and high >= stop:
                    trigger = max(open_, stop)
                elif not buy and low <= stop:
                    trigger = min(open_, stop)
                else:
                    continue
                if kind is _STOP:
                    fill = self.fill_market(order, trigger, bar, time)
                else:
                    limit = request.limit_price
                    assert limit is not None
                    if (buy and trigger <= limit) or (not buy and trigger >= limit):
                        fill = self._execute(order, trigger, bar, time)
                    else:
                        order.triggered = True
                        order.update_bar, order.update_time = bar, time
                        continue
            if fill is not None:
                fills.append(fill)
        return fills

    def _execute(self, order: Order, price: float, bar: int, time: int) -> FillRecord | None:
        request = order.request
        portfolio = self.portfolio
        buy = request.side is _BUY
        fixed, rate = self._fee_fixed, self._fee_rate
        if request.size is not None:
            size = request.size
        else:
            # quote_size is what leaves (buy) or arrives in (sell) the cash, fees included.
            quote = request.quote_size
            assert quote is not None
            size = (
                (quote - fixed) / (price * (1.0 + rate))
                if buy
                else (quote + fixed) / (price * (1.0 - rate))
            )
        notional = size * price
        fee = fixed + notional * rate
        if size <= 0.0:
            self._reject(order, bar, time, "size after fees is not positive")
            return None
        if buy:
            cost = notional + fee
            if cost > portfolio.cash * (1.0 + 1e-12) and cost > portfolio.cash + 1e-9:
                self._reject(order, bar, time, "insufficient cash")
                return None
        elif not self.settings.allow_short and size > portfolio.quantity * (1.0 + 1e-12):
            self._reject(order, bar, time, "sell larger than the position")
            return None
        if bar > self._next_snapshot:
            self.snapshot_until(bar - 1)
        fill = portfolio.apply(
            order.order_id, request.side, size, price, fee, bar, time, request.reason
        )
        self.fills.append(fill)
        order.filled_size = size
        order.average_fill_price = price
        order.fees = fee
        order.status = _FILLED  # _finish, inlined
        order.update_bar = bar
        order.update_time = time
        self.working.remove(order)
        bars = self.change_bars
        if bars and bars[-1] == bar:
            self.change_cash[-1] = portfolio.cash
            self.change_quantity[-1] = portfolio.quantity
        else:
            bars.append(bar)
            self.change_cash.append(portfolio.cash)
            self.change_quantity.append(portfolio.quantity)
        return fill

    # -- RunRecords (see results) ------------------------------------------------------------

    def change_points(self) -> tuple[list[int], list[float], list[float]]:
        return self.change_bars, self.change_cash, self.change_quantity

    def closed_pnls(self) -> npt.NDArray[np.float64]:
        return np.array([t.pnl for t in self.portfolio.trades if not t.open], dtype=np.float64)

    def final_state(self) -> PortfolioState:
        return self.portfolio.state()

    def snapshot_states(self, bars: Sequence[int]) -> tuple[list[PortfolioState], list[int]]:
        if bars:
            self.snapshot_until(bars[-1])
        count = len(bars)
        return self.snapshot_states_kept[:count], self.snapshot_fill_counts[:count]

    def records(self) -> tuple[list[Order], list[FillRecord], list[TradeRecord]]:
        return self.orders, self.fills, self.portfolio.trades

    def snapshot_until(self, last_bar: int) -> None:
        """Records the current state for every snapshot bar <= `last_bar` not yet recorded
        (fills arrive in bar order, so nothing after those bars is booked yet)."""
        state = self.portfolio.state()
        every = self.settings.snapshot_every
        while self._next_snapshot <= last_bar:
            self.snapshot_states_kept.append(state)
            self.snapshot_fill_counts.append(len(self.fills))
            self._next_snapshot += every

    def _reject(self, order: Order, bar: int, time: int, why: str) -> None:
        order.note = why
        self._finish(order, OrderStatus.REJECTED, bar, time)
