"""What a run produces, built the same way whichever fill path ran it.

A fill path leaves `RunRecords`: the cash/position change points, the closed trades' P&L,
portfolio states at snapshot bars, and (built on first use, as they are only needed to store
or inspect a run) the order, fill and trade records. Per-bar arrays and statistics are
computed here, vectorised, from those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tradeplane.backtest.domain.bars import BarSeries, FloatArray
from tradeplane.backtest.domain.broker import Order
from tradeplane.backtest.domain.playback import Playback, build_snapshots
from tradeplane.backtest.domain.portfolio import FillRecord, PortfolioState, TradeRecord
from tradeplane.backtest.domain.settings import BacktestSettings
from tradeplane.backtest.domain.statistics import Statistics, compute_statistics, drawdown


class RunRecords(Protocol):
    """What a fill path hands over at the end of a run."""

    def change_points(self) -> tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]:
        """(bars, cash, position): values after the last fill of each bar with fills,
        bars ascending (a repeated bar: the last entry counts)."""
        ...

    def closed_pnls(self) -> FloatArray:
        """P&L after fees of every closed round trip, in order."""
        ...

    def final_state(self) -> PortfolioState: ...

    def snapshot_states(self, bars: Sequence[int]) -> tuple[list[PortfolioState], list[int]]:
        """Portfolio state after each of `bars` and the number of fills up to it."""
        ...

    def records(self) -> tuple[list[Order], list[FillRecord], list[TradeRecord]]:
        """Orders, fills and round-trip trades (an open trade unmarked)."""
        ...


def _step_series(
    bars: int, change_bars: npt.ArrayLike, values: npt.ArrayLike, initial: float
) -> FloatArray:
    """The value after each bar, from the bars at which it changed (forward fill)."""
    lookup = np.concatenate(([initial], np.asarray(values, dtype=np.float64)))
    edges = np.concatenate(([0], np.asarray(change_bars, dtype=np.int64), [bars]))
    result: FloatArray = np.repeat(lookup, np.diff(edges))
    return result


class BacktestResult:
    """Everything stored with a run. Per-bar arrays are aligned with `bars`; cash and
    position are after the bar's fills and equity = cash + position x close. `orders`,
    `fills`, `trades` and `playback` are built on first access."""

    def __init__(
        self,
        settings: BacktestSettings,
        bars: BarSeries,
        indicators: Mapping[str, FloatArray],
        records: RunRecords,
        *,
        vectorised: bool,
    ) -> None:
        n = len(bars)
        initial = settings.initial_cash
        change_bars, change_cash, change_quantity = records.change_points()
        self.settings = settings
        self.bars = bars
        self.indicators = indicators
        self.vectorised = vectorised
        self.cash = _step_series(n, change_bars, change_cash, initial)
        self.position = _step_series(n, change_bars, change_quantity, 0.0)
        self.equity: FloatArray = self.cash + self.position * bars.close
        self.drawdown = drawdown(self.equity, initial)
        self._records = records
        self.statistics: Statistics = compute_statistics(
            self.equity,
            self.drawdown,
            self.position,
            bars.time,
            initial,
            records.closed_pnls(),
            records.final_state().fees_paid,
            bars.bar_seconds(),
        )

    @cached_property
    def _materialised(self) -> tuple[list[Order], list[FillRecord], list[TradeRecord]]:
        orders, fills, trades = self._records.records()
        final = self._records.final_state()
        if trades and trades[-1].open and len(self.bars):
            # Mark the open trade to the last close so its pnl and return mean something.
            sign = 1.0 if final.quantity > 0 else -1.0
            unrealised = (float(self.bars.close[-1]) - final.average_price) * sign
            trades[-1].gross_pnl += unrealised * abs(final.quantity)
        return orders, fills, trades

    @property
    def orders(self) -> list[Order]:
        return self._materialised[0]

    @property
    def fills(self) -> list[FillRecord]:
        return self._materialised[1]

    @property
    def trades(self) -> list[TradeRecord]:
        """Round trips in order; an open one is marked to the last close."""
        return self._materialised[2]

    @cached_property
    def playback(self) -> Playback:
        snapshots = build_snapshots(self._records, self.orders, len(self.bars), self.settings)
        return Playback(
            self.bars.time,
            self.bars.close,
            self.equity,
            self.drawdown,
            self.fills,
            self.orders,
            snapshots,
            self.settings.initial_cash,
        )
