"""Portfolio state at any instant of a finished run, in O(log n).

A run stores a snapshot of its accounting state every K bars (after bars K-1, 2K-1, ...):
cash, position, average entry, realised P&L, fees, how many fills came before, and which
orders were working. The state after bar t is the nearest snapshot at or before t (binary
search) plus the fills of at most K bars replayed through the same `Portfolio.apply` the run
used, so it equals the run's own state exactly. Nothing replays from the start of the run.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tradeplane.backtest.domain.broker import Order
from tradeplane.backtest.domain.portfolio import FillRecord, Portfolio, PortfolioState
from tradeplane.backtest.domain.settings import BacktestSettings

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NEVER = 1 << 62  # done bar of an order still working at the end


@dataclass(frozen=True, slots=True)
class Snapshots:
    """State after bar `bars[k]`; `fill_counts[k]` fills happened up to it; `open_orders[k]`
    are indices into the run's orders that were working then."""

    every: int
    bars: list[int]
    states: list[PortfolioState]
    fill_counts: list[int]
    open_orders: list[tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class PlaybackState:
    """Mirrors `trading.backtest.v1.PlaybackState` for the run's one product.

    `bar_index` -1 is the state before the first bar. `open_orders` were working after the
    bar (bars carry no depth, so none was partly filled); `recent_fills` are newest first.
    """

    bar_index: int
    time: int
    cash: float
    equity: float
    realized_pnl: float
    drawdown: float
    quantity: float
    average_entry_price: float
    mark_price: float
    unrealized_pnl: float
    open_orders: tuple[Order, ...]
    recent_fills: tuple[FillRecord, ...]


def _done_bars(orders: Sequence[Order]) -> list[int]:
    return [_NEVER if (d := o.done_bar()) is None else d for o in orders]


class _StateSource(Protocol):
    def snapshot_states(self, bars: Sequence[int]) -> tuple[list[PortfolioState], list[int]]: ...


def build_snapshots(
    source: _StateSource, orders: Sequence[Order], bar_count: int, settings: BacktestSettings
) -> Snapshots:
    """Snapshots every `settings.snapshot_every` bars: the portfolio states the fill path
    kept, plus the orders working at each snapshot bar (one sweep over the orders)."""
    every = settings.snapshot_every
    snapshot_bars = list(range(every - 1, bar_count, every))
    states, counts = source.snapshot_states(snapshot_bars)
    done = _done_bars(orders)
    by_done = sorted(range(len(orders)), key=done.__getitem__)
    working: set[int] = set()
    next_submit = next_done = 0
    open_sets = []
    for s in snapshot_bars:
        while next_submit < len(orders) and orders[next_submit].submit_bar <= s:
            working.add(next_submit)
            next_submit += 1
        while next_done < len(by_done) and done[by_done[next_done]] <= s:
            working.discard(by_done[next_done])
            next_done += 1
        open_sets.append(tuple(sorted(working)))
    return Snapshots(every, snapshot_bars, states, counts, open_sets)


def _replay(portfolio: Portfolio, fill: FillRecord) -> None:
    portfolio.apply(
        fill.order_id, fill.side, fill.size, fill.price, fill.fee, fill.bar_index, fill.time
    )


class Playback:
    """Answers "what was the state at instant t" for one run."""

    def __init__(
        self,
        time: IntArray,
        close: FloatArray,
        equity: FloatArray,
        drawdown: FloatArray,
        fills: Sequence[FillRecord],
        orders: Sequence[Order],
        snapshots: Snapshots,
        initial_cash: float,
    ) -> None:
        self._time = time
        self._close = close
        self._equity = equity
        self._drawdown = drawdown
        self._fills = fills
        self._fill_bars = [f.bar_index for f in fills]
        self._orders = orders
        self._submit_bars = [o.submit_bar for o in orders]
        self._done = _done_bars(orders)
        self._snapshots = snapshots
        self._initial = PortfolioState(initial_cash, 0.0, 0.0, 0.0, 0.0)

    @property
    def snapshots(self) -> Snapshots:
        """The stored snapshots (what a service persists with the run)."""
        return self._snapshots

    def bar_at(self, timestamp: int) -> int:
        """Index of the last bar starting at or before `timestamp` (-1 before the first)."""
        return int(np.searchsorted(self._time, timestamp, side="right")) - 1

    def state_at_time(self, timestamp: int, recent_fills: int = 10) -> PlaybackState:
        return self.state_at(self.bar_at(timestamp), recent_fills, timestamp)

    def state_at(
        self, bar: int, recent_fills: int = 10, timestamp: int | None = None
    ) -> PlaybackState:
        """State after bar `bar` (-1: before the first bar)."""
        if not -1 <= bar < len(self._time):
            raise IndexError(f"bar {bar} is outside the run")
        snaps = self._snapshots
        k = bisect_right(snaps.bars, bar) - 1
        if k >= 0:
            base_bar, state = snaps.bars[k], snaps.states[k]
            first_fill, base_open = snaps.fill_counts[k], snaps.open_orders[k]
        else:
            # Virtual snapshot before everything, even orders placed in on_start (bar -1).
            base_bar, state, first_fill, base_open = -2, self._initial, 0, ()
        portfolio = Portfolio.restore(state)
        last_fill = bisect_right(self._fill_bars, bar)
        for fill in self._fills[first_fill:last_fill]:
            _replay(portfolio, fill)
        done = self._done
        working = [i for i in base_open if done[i] > bar]
        start = bisect_right(self._submit_bars, base_bar)
        stop = bisect_right(self._submit_bars, bar)
        working.extend(i for i in range(start, stop) if done[i] > bar)
        fills = self._fills[max(0, last_fill - recent_fills) : last_fill][::-1]
        quantity, average = portfolio.quantity, portfolio.average_price
        if bar >= 0:
            mark = float(self._close[bar])
            equity, dd = float(self._equity[bar]), float(self._drawdown[bar])
            when = int(self._time[bar])
        else:
            mark, equity, dd = 0.0, portfolio.cash, 0.0
            when = timestamp if timestamp is not None else 0
        return PlaybackState(
            bar_index=bar,
            time=when,
            cash=portfolio.cash,
            equity=equity,
            realized_pnl=portfolio.realized_pnl,
            drawdown=dd,
            quantity=quantity,
            average_entry_price=average,
            mark_price=mark,
            unrealized_pnl=(mark - average) * quantity if quantity else 0.0,
            open_orders=tuple(self._orders[i] for i in working),
            recent_fills=tuple(fills),
        )


def replay_from_snapshot(state: PortfolioState, fills: Sequence[FillRecord]) -> Portfolio:
    """The portfolio after `fills` (those after a snapshot, in order) booked onto the
    snapshot's `state`, exactly as the run booked them; for services that load the nearest
    stored snapshot and at most K bars of fills instead of the whole run."""
    portfolio = Portfolio.restore(state)
    for fill in fills:
        _replay(portfolio, fill)
    return portfolio
