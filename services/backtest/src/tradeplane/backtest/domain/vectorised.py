"""The vectorised fill simulation for strategies that declare entries/exits as arrays.

Semantics are those of the event engine running the equivalent `on_bar` (and the equality
is tested, bit for bit): at a bar t where the position is flat and `entries[t]` is set, a
market buy of `entry_fraction` x cash (quote size, fees included) is submitted; where it is
long and `exits[t]` is set, a market sell of the whole position. Orders fill like any market
order (FillRule.NEXT_OPEN: at bar t+1's open; CLOSE: at bar t's close) and the next signal
is looked for from bar t+1 on. Long only.

How it is fast without numba (not installed here): numpy does the per-bar work
(indicators, signals, the equity curve, statistics); Python runs once per order, in three
steps: (1) the alternating chain of signal bars, by binary search in the signal indices;
(2) the fill prices, gathered with one numpy index; (3) the money, a tight loop of float
arithmetic that repeats `Broker._execute` and `Portfolio.apply` operation for operation (so
results are bit-identical; tests/unit/test_paths_agree.py holds the two to that). Order,
fill and trade records are columns until someone asks for them. Should an order ever be
rejected (an account too small to pay its fees), the run is redone through the `Broker`
itself, which handles every case.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

import numpy as np

from tradeplane.backtest.domain.bars import BarSeries, FloatArray
from tradeplane.backtest.domain.broker import Broker, Order, OrderStatus
from tradeplane.backtest.domain.portfolio import (
    FillKind,
    FillRecord,
    PortfolioState,
    TradeRecord,
)
from tradeplane.backtest.domain.results import BacktestResult
from tradeplane.backtest.domain.settings import BacktestSettings, FillRule
from tradeplane.strategies import OrderRequest, Side, Strategy, compute_all

ENTRY_REASON = "entry signal"
EXIT_REASON = "exit signal"


class _Rejected(Exception):
    """An order the fast loop does not model; the Broker path takes over."""


def _signal_chain(entry_bars: list[int], exit_bars: list[int]) -> list[int]:
    """Bars of the orders: first entry, first exit after it, first entry after that..."""
    chain: list[int] = []
    bar, lists, which = 0, (entry_bars, exit_bars), 0
    while True:
        candidates = lists[which]
        k = bisect_left(candidates, bar)
        if k == len(candidates):
            return chain
        signal = candidates[k]
        chain.append(signal)
        bar, which = signal + 1, 1 - which


class SignalRecords:
    """Run records of the fast loop, as columns (one entry per order, even index = buy)."""

    def __init__(self, bars: BarSeries, settings: BacktestSettings, fraction: float) -> None:
        self._bars = bars
        self._settings = settings
        self._fraction = fraction
        self.signal_bars: list[int] = []
        self.fill_bars: list[int] = []  # one per filled order (all but maybe the last)
        self.requested: list[float] = []  # quote size of buys, base size of sells
        self.prices: list[float] = []
        self.sizes: list[float] = []
        self.fees: list[float] = []
        self.pnls: list[float] = []  # realised P&L of each sell
        # Portfolio after each fill.
        self.cash: list[float] = []
        self.quantity: list[float] = []
        self.average: list[float] = []
        self.realized: list[float] = []
        self.fees_paid: list[float] = []

    def simulate(self, chain: list[int], raw_prices: list[float]) -> None:
        """Books the chain's orders; raises _Rejected where the Broker would reject."""
        settings = self._settings
        cash = settings.initial_cash
        fixed, rate, slip = settings.commission_fixed, settings.fee_rate, settings.slippage_rate
        fraction = self._fraction
        quantity = average = realized = fees_paid = 0.0
        signal_bars, requested, prices, sizes, fees = (
            self.signal_bars,
            self.requested,
            self.prices,
            self.sizes,
            self.fees,
        )
        cash_after, quantity_after, average_after = self.cash, self.quantity, self.average
        realized_after, fees_after, pnls = self.realized, self.fees_paid, self.pnls
        for k, signal in enumerate(chain):
            signal_bars.append(signal)
            if k & 1 == 0:  # buy `fraction` of cash, as buy_with_cash + Broker._execute
                quote = cash * fraction
                if not quote > 0:
                    raise _Rejected
                requested.append(quote)
                if k >= len(raw_prices):
                    return  # submitted on the last bar: still working
                price = raw_prices[k]
                if slip:
                    price = price * (1.0 + slip)
                size = (quote - fixed) / (price * (1.0 + rate))
                notional = size * price
                fee = fixed + notional * rate
                cost = notional + fee
                if size <= 0.0 or (cost > cash * (1.0 + 1e-12) and cost > cash + 1e-9):
                    raise _Rejected
                # Portfolio.apply, opening from flat (sign = 1.0, held = 0.0).
                cash -= 1.0 * size * price + fee
                fees_paid += fee
                average = (average * 0.0 + price * size) / (0.0 + size)
                quantity = quantity + 1.0 * size
            else:  # sell the whole position, as close_position + Broker._execute
                size = quantity
                requested.append(size)
                if k >= len(raw_prices):
                    return
                price = raw_prices[k]
                if slip:
                    price = price * (1.0 - slip)
                notional = size * price
                fee = fixed + notional * rate
                # Portfolio.apply, closing a long (sign = -1.0, closed = held = size).
                cash -= -1.0 * size * price + fee
                fees_paid += fee
                pnl = (price - average) * size * 1.0
                realized += pnl
                pnls.append(pnl)
                quantity = average = 0.0
            prices.append(price)
            sizes.append(size)
            fees.append(fee)
            cash_after.append(cash)
            quantity_after.append(quantity)
            average_after.append(average)
            realized_after.append(realized)
            fees_after.append(fees_paid)

    # -- RunRecords -------------------------------------------------------------------------

    def change_points(self) -> tuple[list[int], list[float], list[float]]:
        return self.fill_bars, self.cash, self.quantity

    def closed_pnls(self) -> FloatArray:
        # TradeRecord.pnl = (0.0 + pnl) - ((0.0 + entry fee) + exit fee), as numpy columns.
        closed = len(self.pnls)
        fees = np.asarray(self.fees[: 2 * closed], dtype=np.float64)
        gross = 0.0 + np.asarray(self.pnls, dtype=np.float64)
        result: FloatArray = gross - ((0.0 + fees[0::2]) + fees[1::2])
        return result

    def _state(self, fills: int) -> PortfolioState:
        if fills == 0:
            return PortfolioState(self._settings.initial_cash, 0.0, 0.0, 0.0, 0.0)
        i = fills - 1
        return PortfolioState(
            self.cash[i], self.quantity[i], self.average[i], self.realized[i], self.fees_paid[i]
        )

    def final_state(self) -> PortfolioState:
        return self._state(len(self.fill_bars))

    def snapshot_states(self, bars: Sequence[int]) -> tuple[list[PortfolioState], list[int]]:
        counts = np.searchsorted(np.asarray(self.fill_bars, dtype=np.int64), bars, "right")
        fill_counts = [int(c) for c in counts]
        return [self._state(c) for c in fill_counts], fill_counts

    def records(self) -> tuple[list[Order], list[FillRecord], list[TradeRecord]]:
        times: list[int] = self._bars.time.tolist()
        orders: list[Order] = []
        fills: list[FillRecord] = []
        trades: list[TradeRecord] = []
        for k, signal in enumerate(self.signal_bars):
            buy = k & 1 == 0
            side = Side.BUY if buy else Side.SELL
            request = (
                OrderRequest(Side.BUY, quote_size=self.requested[k], reason=ENTRY_REASON)
                if buy
                else OrderRequest(Side.SELL, size=self.requested[k], reason=EXIT_REASON)
            )
            order = Order(f"o-{k + 1}", request, signal, times[signal], signal, times[signal])
            orders.append(order)
            if k >= len(self.fill_bars):
                break
            bar, price, size, fee = self.fill_bars[k], self.prices[k], self.sizes[k], self.fees[k]
            order.status = OrderStatus.FILLED
            order.update_bar, order.update_time = bar, times[bar]
            order.filled_size, order.average_fill_price, order.fees = size, price, fee
            trade_id = f"t-{k // 2 + 1}"
            if buy:
                trade = TradeRecord(trade_id, Side.BUY, bar, times[bar])
                trade.entry_size += size
                trade.entry_notional += size * price
                trade.fees += fee
                trades.append(trade)
            else:
                trade = trades[-1]
                trade.exit_size += size
                trade.exit_notional += size * price
                trade.gross_pnl += self.pnls[k // 2]
                trade.fees += fee
                trade.open = False
                trade.exit_bar, trade.exit_time = bar, times[bar]
            kind = FillKind.ENTRY if buy else FillKind.EXIT
            reason = request.reason
            fills.append(
                FillRecord(
                    order.order_id, bar, times[bar], side, price, size, fee, kind, trade_id, reason
                )
            )
        return orders, fills, trades


def _run_with_broker(
    bars: BarSeries,
    settings: BacktestSettings,
    entries: list[int],
    exits: list[int],
    fraction: float,
) -> Broker:
    """The same simulation, every order through the Broker (handles rejections)."""
    broker = Broker(settings)
    portfolio = broker.portfolio
    n = len(bars)
    lag = 1 if settings.fill_rule is FillRule.NEXT_OPEN else 0
    fill_prices = bars.open if lag else bars.close
    bar = 0
    while True:
        long = portfolio.quantity > 0
        candidates = exits if long else entries
        k = bisect_left(candidates, bar)
        if k >= len(candidates):
            break
        signal = candidates[k]
        bar = signal + 1
        if long:
            request = OrderRequest(Side.SELL, size=portfolio.quantity, reason=EXIT_REASON)
        else:
            amount = portfolio.cash * fraction
            if not amount > 0:
                continue
            request = OrderRequest(Side.BUY, quote_size=amount, reason=ENTRY_REASON)
        order = broker.submit(request, signal, int(bars.time[signal]))
        fill_bar = signal + lag
        if fill_bar >= n:
            break  # signalled on the last bar: the order is still working at the end
        broker.fill_market(order, float(fill_prices[fill_bar]), fill_bar, int(bars.time[fill_bar]))
    return broker


def run_vectorised(
    strategy: Strategy,
    bars: BarSeries,
    settings: BacktestSettings,
    *,
    indicators: Mapping[str, FloatArray] | None = None,
) -> BacktestResult | None:
    """Runs `strategy` through its `signals`; None when it has none for its parameters."""
    if not strategy.is_vectorised():
        return None
    if indicators is None:
        indicators = compute_all(strategy.indicators(), bars.columns())
    signals = strategy.signals({**bars.columns(), **indicators}, strategy.params)
    if signals is None:
        return None
    n = len(bars)
    entries, exits = (np.asarray(s, dtype=np.bool_) for s in signals)
    if entries.shape != (n,) or exits.shape != (n,):
        raise ValueError(f"{strategy.name}.signals must return two arrays of {n} booleans")
    entry_bars: list[int] = np.flatnonzero(entries).tolist()
    exit_bars: list[int] = np.flatnonzero(exits).tolist()
    fraction = strategy.entry_fraction()

    chain = _signal_chain(entry_bars, exit_bars)
    lag = 1 if settings.fill_rule is FillRule.NEXT_OPEN else 0
    fill_bars = np.asarray(chain, dtype=np.int64) + lag
    fill_bars = fill_bars[fill_bars < n]
    source = bars.open if lag else bars.close
    records = SignalRecords(bars, settings, fraction)
    records.fill_bars = fill_bars.tolist()
    try:
        records.simulate(chain, source[fill_bars].tolist())
    except _Rejected:
        broker = _run_with_broker(bars, settings, entry_bars, exit_bars, fraction)
        return BacktestResult(settings, bars, indicators, broker, vectorised=True)
    return BacktestResult(settings, bars, indicators, records, vectorised=True)
