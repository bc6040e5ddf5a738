"""Result queries of finished runs: trades, orders, equity (paged or LTTB), playback."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy.engine import Row

from tradeplane.backtest.adapters.repository import EquitySeries, SqlBacktestRepository
from tradeplane.backtest.domain import (
    FillKind,
    FillRecord,
    PortfolioState,
    lttb_indices,
    replay_from_snapshot,
)
from tradeplane.backtest.domain.monte_carlo import MonteCarloReport, Resampling, monte_carlo
from tradeplane.backtest.service_layer.models import IndicatorColumn, RunView, Status
from tradeplane.backtest.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.backtest.service_layer.playback_index import PlaybackIndexCache
from tradeplane.backtest.service_layer.rows import num
from tradeplane.backtest.service_layer.runs import BacktestRuns
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument
from tradeplane.strategies import Side

SERIES_CACHE_RUNS = 8
PLAYBACK_INDEX_MAX_ROWS = 250_000  # fills or orders; bigger runs answer from SQL queries


class EquityPointView(NamedTuple):
    time: int
    equity: str
    cash: str
    drawdown: float


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    next_token: str


@dataclass(frozen=True, slots=True)
class EquityPage:
    rows: list[Any]  # (time, equity, cash, drawdown)
    next_token: str
    downsampled: bool
    total: int


@dataclass(frozen=True, slots=True)
class CandlePage:
    rows: list[Row[Any]]
    columns: list[IndicatorColumn]
    values: list[list[float]]  # one list per column, aligned with rows
    markers: list[Row[Any]]
    next_token: str


@dataclass(frozen=True, slots=True)
class StateView:
    """The state at an instant; money as floats formatted by the mapping."""

    bar_index: int
    time: int
    cash: float
    equity: float
    realized_pnl: float
    drawdown: float
    quantity: float
    average_entry_price: float
    mark_price: float
    open_orders: list[Row[Any]]
    recent_fills: list[Row[Any]]


@dataclass(frozen=True, slots=True)
class Comparison:
    a: RunView
    b: RunView
    equity: list[tuple[int, str, str]]  # time, equity A or "", equity B or ""
    only_in_a: list[Row[Any]]
    only_in_b: list[Row[Any]]


def _fill_record(row: Row[Any]) -> FillRecord:
    return FillRecord(
        row.order_id,
        row.bar_index,
        row.time,
        Side(row.side),
        float(row.price),
        float(row.size),
        float(row.fee),
        FillKind(row.kind),
        row.trade_id,
        row.reason,
    )


class BacktestResults:
    def __init__(
        self, repo: SqlBacktestRepository, runs: BacktestRuns, playback_cache_runs: int = 4
    ) -> None:
        self._repo = repo
        self._runs = runs
        self._playback = PlaybackIndexCache(
            lambda backtest_id: repo.playback_tables(backtest_id, PLAYBACK_INDEX_MAX_ROWS),
            playback_cache_runs,
        )
        # A completed run's series never change: the last few stay in memory (a chart zooms
        # and pans over the same run).
        self._series_cache: OrderedDict[str, EquitySeries] = OrderedDict()

    async def _series(self, backtest_id: str) -> EquitySeries | None:
        cached = self._series_cache.get(backtest_id)
        if cached is not None:
            self._series_cache.move_to_end(backtest_id)
            return cached
        series = await self._repo.equity_series(backtest_id)
        if series is not None:
            self._series_cache[backtest_id] = series
            while len(self._series_cache) > SERIES_CACHE_RUNS:
                self._series_cache.popitem(last=False)
        return series

    async def _completed(self, backtest_id: str, field: str = "backtest_id") -> RunView:
        run = await self._runs.get(backtest_id, field)
        if run.status is not Status.COMPLETED:
            raise FailedPrecondition(
                f"backtest {backtest_id} is {run.status.value}; results exist once it completed"
            )
        return run

    async def _page(
        self,
        table: str,
        backtest_id: str,
        time_column: str,
        time_range: tuple[int | None, int | None],
        size: int,
        token: str,
        *,
        default: int,
        maximum: int,
        order_column: str = "seq",
    ) -> tuple[list[Row[Any]], str, int]:
        """Keyset paging over one run's table; the token is bound to run and range."""
        await self._completed(backtest_id)
        limit = page_size(size, default, maximum)
        bound = [backtest_id, *time_range]
        after = -1
        if token:
            payload = decode_token(token)
            if payload.get("q") != bound:
                raise InvalidArgument("page_token", "does not match the request")
            after = int(payload["a"])
        rows = await self._repo.page(
            table,
            backtest_id,
            time_column=time_column,
            start=time_range[0],
            end=time_range[1],
            after_seq=after,
            limit=limit + 1,
            order_column=order_column,
        )
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = getattr(rows[-1], order_column)
            next_token = encode_token({"q": bound, "a": last})
        return rows, next_token, limit

    async def trades(
        self, backtest_id: str, time_range: tuple[int | None, int | None], size: int, token: str
    ) -> Page:
        rows, next_token, _ = await self._page(
            "trades", backtest_id, "entry_time", time_range, size, token, default=500, maximum=5000
        )
        return Page(rows, next_token)

    async def orders(
        self, backtest_id: str, time_range: tuple[int | None, int | None], size: int, token: str
    ) -> Page:
        rows, next_token, _ = await self._page(
            "orders", backtest_id, "submit_time", time_range, size, token, default=500, maximum=5000
        )
        return Page(rows, next_token)

    async def equity(
        self,
        backtest_id: str,
        time_range: tuple[int | None, int | None],
        max_points: int,
        size: int,
        token: str,
    ) -> EquityPage:
        if max_points < 0 or max_points > 10_000:
            raise InvalidArgument("max_points", "must be between 0 and 10000")
        if max_points:
            if max_points < 3:
                raise InvalidArgument("max_points", "must be at least 3 to downsample")
            await self._completed(backtest_id)
            series = await self._series(backtest_id)
            if series is None:
                return EquityPage([], "", False, 0)
            times, equity = series.time, series.equity
            start, end = time_range
            lo = 0 if start is None else int(np.searchsorted(times, start, side="left"))
            hi = len(times) if end is None else int(np.searchsorted(times, end, side="left"))
            total = max(hi - lo, 0)
            if total == 0:
                return EquityPage([], "", False, 0)
            keep = lttb_indices(times[lo:hi], equity[lo:hi], max_points) + lo
            points = [
                EquityPointView(
                    int(times[i]),
                    num(float(equity[i])),
                    num(float(series.cash[i])),
                    float(series.drawdown[i]),
                )
                for i in keep
            ]
            return EquityPage(points, "", len(keep) < total, total)
        rows, next_token, _ = await self._page(
            "bars",
            backtest_id,
            "time",
            time_range,
            size,
            token,
            default=1000,
            maximum=10_000,
            order_column="bar_index",
        )
        total = await self._repo.count_bars(backtest_id, *time_range)
        return EquityPage(list(rows), next_token, False, total)

    async def playback_candles(
        self, backtest_id: str, time_range: tuple[int | None, int | None], size: int, token: str
    ) -> CandlePage:
        rows, next_token, _ = await self._page(
            "bars",
            backtest_id,
            "time",
            time_range,
            size,
            token,
            default=500,
            maximum=5000,
            order_column="bar_index",
        )
        columns = await self._repo.indicator_columns(backtest_id)
        per_row = [json.loads(r.indicators) for r in rows]
        nan = float("nan")
        values = [
            [nan if v[i] is None else float(v[i]) for v in per_row] for i in range(len(columns))
        ]
        markers = (
            await self._repo.fills_between(backtest_id, rows[0].time, rows[-1].time) if rows else []
        )
        return CandlePage(rows, columns, values, markers, next_token)

    async def state_at(self, run: RunView, timestamp: int, recent: int) -> StateView:
        """From the nearest stored snapshot plus at most K bars of fills (never the start)."""
        if recent < 0 or recent > 100:
            raise InvalidArgument("recent_fills_limit", "must be between 0 and 100")
        backtest_id = run.backtest_id
        if run.status is not Status.COMPLETED:
            raise FailedPrecondition(
                f"backtest {backtest_id} is {run.status.value}; results exist once it completed"
            )
        index = await self._playback.get(backtest_id)
        if index is None:
            bar, snapshot, replay, working, latest = await self._repo.playback_rows(
                backtest_id, timestamp, recent or 10
            )
        else:
            bar = await self._repo.bar_at(backtest_id, timestamp)
            if bar is not None:
                found = index.rows_at(bar.bar_index, recent or 10)
                snapshot, replay = found.snapshot, found.replay
                working, latest = found.working, found.latest
        initial = float(run.spec.initial_cash)
        if bar is None:
            return StateView(-1, timestamp, initial, initial, 0.0, 0.0, 0.0, 0.0, 0.0, [], [])
        if snapshot is not None:
            state = PortfolioState(
                float(snapshot.cash),
                float(snapshot.quantity),
                float(snapshot.average_price),
                float(snapshot.realized_pnl),
                float(snapshot.fees_paid),
            )
        else:
            state = PortfolioState(initial, 0.0, 0.0, 0.0, 0.0)
        portfolio = replay_from_snapshot(state, [_fill_record(r) for r in replay])
        return StateView(
            bar_index=bar.bar_index,
            time=bar.time,
            cash=portfolio.cash,
            equity=float(bar.equity),
            realized_pnl=portfolio.realized_pnl,
            drawdown=bar.drawdown,
            quantity=portfolio.quantity,
            average_entry_price=portfolio.average_price,
            mark_price=float(bar.close),
            open_orders=working,
            recent_fills=latest,
        )

    async def monte_carlo(
        self, backtest_id: str, method: Resampling, iterations: int, seed: int
    ) -> MonteCarloReport:
        """Resamples the stored trades' P&L (never re-runs the strategy)."""
        count = page_size(iterations, 1000, 100_000, "iterations")
        run = await self._completed(backtest_id)
        trades = await self._repo.all_trades(backtest_id, 10_000_000)
        pnls = [float(t.pnl) for t in trades]
        initial = float(run.spec.initial_cash)
        return await asyncio.to_thread(monte_carlo, pnls, initial, method, count, seed)

    async def compare(self, a_id: str, b_id: str, max_points: int, max_trades: int) -> Comparison:
        points = page_size(max_points, 2000, 10_000, "max_points")
        trades_limit = page_size(max_trades, 500, 5000, "max_trades")
        if points < 3:
            raise InvalidArgument("max_points", "must be at least 3")
        a = await self._completed(a_id, "backtest_a_id")
        b = await self._completed(b_id, "backtest_b_id")
        series_a, series_b = await self._series(a_id), await self._series(b_id)
        equity = _aligned_equity(
            (series_a.time, series_a.equity) if series_a else None,
            (series_b.time, series_b.equity) if series_b else None,
            points,
        )
        trades_a = await self._repo.all_trades(a_id, 1_000_000)
        trades_b = await self._repo.all_trades(b_id, 1_000_000)

        def key(row: Row[Any], product: str) -> tuple[str, str, int]:
            return (product, row.side, row.entry_time)

        keys_a = {key(r, a.spec.product_id) for r in trades_a}
        keys_b = {key(r, b.spec.product_id) for r in trades_b}
        only_a = [r for r in trades_a if key(r, a.spec.product_id) not in keys_b][:trades_limit]
        only_b = [r for r in trades_b if key(r, b.spec.product_id) not in keys_a][:trades_limit]
        return Comparison(a, b, equity, only_a, only_b)


def _aligned_equity(
    a: tuple[Any, Any] | None, b: tuple[Any, Any] | None, max_points: int
) -> list[tuple[int, str, str]]:
    """Both curves on the union of their bar times ("" where a run has no bar), downsampled
    with LTTB on A's curve (B's where A has no bar) so both keep the same instants."""
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
    (ta, ea), (tb, eb) = a or empty, b or empty
    times = np.union1d(ta, tb)
    if not len(times):
        return []
    ia = np.minimum(np.searchsorted(ta, times), max(len(ta) - 1, 0))
    ib = np.minimum(np.searchsorted(tb, times), max(len(tb) - 1, 0))
    has_a = (ta[ia] == times) if len(ta) else np.zeros(len(times), dtype=bool)
    has_b = (tb[ib] == times) if len(tb) else np.zeros(len(times), dtype=bool)
    y = np.where(has_a, ea[ia] if len(ea) else 0.0, eb[ib] if len(eb) else 0.0)
    keep = lttb_indices(times.astype(np.float64), y, max_points)
    return [
        (
            int(times[k]),
            num(float(ea[ia[k]])) if has_a[k] else "",
            num(float(eb[ib[k]])) if has_b[k] else "",
        )
        for k in keep
    ]
