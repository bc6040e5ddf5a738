"""Pure backtest model: bars, settings, the simulated broker, both fill paths, results,
statistics, LTTB downsampling and playback. No grpc, database or queue imports here.

    result = run_backtest(create_strategy("sma_crossover"), bars, BacktestSettings(10_000))
"""

from __future__ import annotations

from collections.abc import Mapping

from tradeplane.backtest.domain.bars import BarSeries, FloatArray
from tradeplane.backtest.domain.broker import Broker, Order, OrderStatus
from tradeplane.backtest.domain.engine import BacktestContext, ProgressCallback, run_event
from tradeplane.backtest.domain.lttb import lttb_indices
from tradeplane.backtest.domain.playback import (
    Playback,
    PlaybackState,
    Snapshots,
    replay_from_snapshot,
)
from tradeplane.backtest.domain.portfolio import (
    FillKind,
    FillRecord,
    Portfolio,
    PortfolioState,
    TradeRecord,
)
from tradeplane.backtest.domain.results import BacktestResult
from tradeplane.backtest.domain.settings import BacktestSettings, FillRule
from tradeplane.backtest.domain.statistics import Statistics, compute_statistics
from tradeplane.backtest.domain.vectorised import run_vectorised
from tradeplane.strategies import Strategy, compute_all


def run_backtest(
    strategy: Strategy,
    bars: BarSeries,
    settings: BacktestSettings,
    *,
    vectorised: bool = True,
    progress: ProgressCallback | None = None,
) -> BacktestResult:
    """Runs `strategy` over `bars`: through the vectorised fill simulation when it declares
    signals for its parameters (and `vectorised` is True), else bar by bar.
    `result.vectorised` says which path ran."""
    indicators: Mapping[str, FloatArray] = compute_all(strategy.indicators(), bars.columns())
    if vectorised:
        result = run_vectorised(strategy, bars, settings, indicators=indicators)
        if result is not None:
            if progress is not None:
                progress(len(bars), len(bars))
            return result
    return run_event(strategy, bars, settings, indicators=indicators, progress=progress)


__all__ = [
    "BacktestContext",
    "BacktestResult",
    "BacktestSettings",
    "BarSeries",
    "Broker",
    "FillKind",
    "FillRecord",
    "FillRule",
    "Order",
    "OrderStatus",
    "Playback",
    "PlaybackState",
    "Portfolio",
    "PortfolioState",
    "ProgressCallback",
    "Snapshots",
    "Statistics",
    "TradeRecord",
    "compute_statistics",
    "lttb_indices",
    "replay_from_snapshot",
    "run_backtest",
    "run_event",
    "run_vectorised",
]
