"""Protos <-> use-case values. Bad request fields raise InvalidArgument naming the field."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from tradeplane.backtest.adapters.market_client import INTERVAL_TO_PROTO
from tradeplane.backtest.domain.monte_carlo import Distribution
from tradeplane.backtest.service_layer.models import (
    IndicatorColumn,
    ProgressView,
    RunSpec,
    RunStatistics,
    RunView,
    Status,
    SweepResultView,
    SweepSpec,
    SweepView,
)
from tradeplane.backtest.service_layer.results import StateView
from tradeplane.backtest.service_layer.rows import WORKING, num
from tradeplane.backtest.service_layer.search import search_axis
from tradeplane.backtest.service_layer.sweeps import axis_values
from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import strategy_class
from trading.backtest.v1 import backtest_pb2 as pb
from trading.common.v1 import common_pb2 as cpb
from trading.execution.v1 import execution_pb2 as epb
from trading.market.v1 import market_pb2 as mpb

INTERVAL_FROM_PROTO = {v: k for k, v in INTERVAL_TO_PROTO.items()}
STATUS_TO_PROTO = {
    Status.QUEUED: pb.RUN_STATUS_QUEUED,
    Status.RUNNING: pb.RUN_STATUS_RUNNING,
    Status.COMPLETED: pb.RUN_STATUS_COMPLETED,
    Status.FAILED: pb.RUN_STATUS_FAILED,
    Status.CANCELED: pb.RUN_STATUS_CANCELED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
SIDE_TO_PROTO = {"buy": cpb.SIDE_BUY, "sell": cpb.SIDE_SELL}
# A stop (stop-market) order has no execution OrderType of its own: it is shown as MARKET
# with its stop_price set.
ORDER_TYPE_TO_PROTO = {
    "market": epb.ORDER_TYPE_MARKET,
    "limit": epb.ORDER_TYPE_LIMIT,
    "stop": epb.ORDER_TYPE_MARKET,
    "stop_limit": epb.ORDER_TYPE_STOP_LIMIT,
}
ORDER_STATUS_TO_PROTO = {
    "open": epb.ORDER_STATUS_OPEN,
    "filled": epb.ORDER_STATUS_FILLED,
    "canceled": epb.ORDER_STATUS_CANCELED,
    "rejected": epb.ORDER_STATUS_REJECTED,
}


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(seconds, UTC))
    return ts


def timestamp_us(micros: int | None) -> Timestamp | None:
    if micros is None:
        return None
    ts = Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return d


def _decimal(text: str, field: str, *, default: Decimal | None = None) -> Decimal:
    if not text.strip():
        if default is None:
            raise InvalidArgument(field, "is required")
        return default
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidArgument(field, f"must be a decimal number, got {text!r}") from None
    if not value.is_finite():
        raise InvalidArgument(field, "must be a finite number")
    return value


def time_range(message: Any, has: bool, field: str) -> tuple[int | None, int | None]:
    """An optional TimeRange as (start, end) epoch seconds; unset parts are None."""
    if not has:
        return None, None
    start = message.start.seconds if message.HasField("start") else None
    end = message.end.seconds if message.HasField("end") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"{field}.end", "must be after start")
    return start, end


def spec_from_config(config: pb.BacktestConfig, field: str = "config") -> RunSpec:
    interval = INTERVAL_FROM_PROTO.get(config.interval)
    if interval is None:
        raise InvalidArgument(f"{field}.interval", "is required (a CandleInterval)")
    if not config.HasField("time_range"):
        raise InvalidArgument(f"{field}.time_range", "is required")
    tr = config.time_range
    if not tr.HasField("start") or not tr.HasField("end"):
        raise InvalidArgument(f"{field}.time_range", "needs both start and end")
    initial = _decimal(config.initial_cash, f"{field}.initial_cash")
    if initial <= 0:
        raise InvalidArgument(f"{field}.initial_cash", "must be positive")
    zero = Decimal(0)
    values = {
        "commission_fixed": _decimal(
            config.commission.fixed, f"{field}.commission.fixed", default=zero
        ),
        "commission_bps": _decimal(config.commission.bps, f"{field}.commission.bps", default=zero),
        "slippage_bps": _decimal(config.slippage_bps, f"{field}.slippage_bps", default=zero),
    }
    return RunSpec(
        strategy=config.strategy.strip(),
        params=dict(config.params),
        product_id=config.product_id.strip(),
        interval=interval,
        start=tr.start.seconds,
        end=tr.end.seconds,
        initial_cash=initial,
        fill_rule="close" if config.fill_rule == pb.FILL_RULE_CLOSE else "next_open",
        label=config.label,
        seed=config.seed,
        **values,
    )


def config_from_spec(spec: RunSpec) -> pb.BacktestConfig:
    return pb.BacktestConfig(
        strategy=spec.strategy,
        params=spec.params,
        product_id=spec.product_id,
        interval=INTERVAL_TO_PROTO[spec.interval],
        time_range=cpb.TimeRange(start=timestamp(spec.start), end=timestamp(spec.end)),
        initial_cash=str(spec.initial_cash),
        commission=pb.Commission(fixed=str(spec.commission_fixed), bps=str(spec.commission_bps)),
        slippage_bps=str(spec.slippage_bps),
        fill_rule=pb.FILL_RULE_CLOSE if spec.fill_rule == "close" else pb.FILL_RULE_NEXT_OPEN,
        label=spec.label,
        seed=spec.seed,
    )


def statistics_to_proto(s: RunStatistics) -> pb.Statistics:
    return pb.Statistics(
        total_return=s.total_return,
        annualized_return=s.annualized_return,
        sharpe=s.sharpe,
        sortino=s.sortino,
        calmar=s.calmar,
        max_drawdown=s.max_drawdown,
        max_drawdown_duration=duration(s.max_drawdown_seconds),
        win_rate=s.win_rate,
        profit_factor=s.profit_factor,
        exposure=s.exposure,
        trade_count=s.trade_count,
        fees_paid=s.fees_paid,
        final_equity=s.final_equity,
        bar_count=s.bar_count,
    )


def run_to_proto(run: RunView) -> pb.Backtest:
    message = pb.Backtest(
        backtest_id=run.backtest_id,
        config=config_from_spec(run.spec),
        status=STATUS_TO_PROTO[run.status],
        progress=run.progress,
        error=run.error,
        sweep_id=run.sweep_id,
        create_time=timestamp_us(run.create_time_us),
        start_time=timestamp_us(run.start_time_us),
        end_time=timestamp_us(run.end_time_us),
        vectorised=run.vectorised,
    )
    if run.statistics is not None:
        message.statistics.CopyFrom(statistics_to_proto(run.statistics))
    return message


def progress_to_proto(p: ProgressView) -> pb.ProgressUpdate:
    return pb.ProgressUpdate(
        seq=p.seq,
        backtest_id=p.backtest_id,
        sweep_id=p.sweep_id,
        status=STATUS_TO_PROTO[p.status],
        progress=p.progress,
        done=p.done,
        total=p.total,
        bars_per_second=p.bars_per_second,
        eta=duration(p.eta_seconds),
        message=p.message,
        time=timestamp_us(p.time_us),
    )


def trade_to_proto(row: Row[Any], product_id: str) -> pb.Trade:
    message = pb.Trade(
        trade_id=row.trade_id,
        product_id=product_id,
        side=SIDE_TO_PROTO[row.side],
        size=row.size,
        entry_time=timestamp(row.entry_time),
        entry_price=row.entry_price,
        exit_price=row.exit_price,
        pnl=row.pnl,
        return_fraction=row.return_fraction,
        fees=row.fees,
        bars_held=row.bars_held,
        open=row.open,
    )
    if not row.open:
        message.exit_time.CopyFrom(timestamp(row.exit_time))
    return message


def order_to_proto(
    row: Row[Any], product_id: str, *, at_bar: int | None = None
) -> pb.BacktestOrder:
    """A stored order; with `at_bar` (playback) it is shown as it was then: working."""
    status = ORDER_STATUS_TO_PROTO[row.status]
    filled, average, fees = row.filled_size, row.average_fill_price, row.fees
    update_time = row.update_time
    if at_bar is not None and (row.done_bar == WORKING or row.done_bar > at_bar):
        status, filled, average, fees, update_time = (
            epb.ORDER_STATUS_OPEN,
            "0",
            "",
            "0",
            (row.submit_time),
        )
    return pb.BacktestOrder(
        order_id=row.order_id,
        product_id=product_id,
        side=SIDE_TO_PROTO[row.side],
        type=ORDER_TYPE_TO_PROTO[row.type],
        time_in_force=epb.TIME_IN_FORCE_GTC,
        base_size=row.size or row.filled_size,
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        status=status,
        filled_size=filled,
        average_fill_price=average,
        fees=fees,
        submit_time=timestamp(row.submit_time),
        update_time=timestamp(update_time),
        reason=row.reason or row.note,
    )


def marker_to_proto(row: Row[Any]) -> pb.TradeMarker:
    return pb.TradeMarker(
        time=timestamp(row.time),
        side=SIDE_TO_PROTO[row.side],
        price=row.price,
        size=row.size,
        kind=pb.MARKER_KIND_ENTRY if row.kind == "entry" else pb.MARKER_KIND_EXIT,
        order_id=row.order_id,
        trade_id=row.trade_id,
        label=row.reason,
    )


def equity_point_to_proto(row: Any) -> pb.EquityPoint:
    return pb.EquityPoint(
        time=timestamp(row.time), equity=row.equity, cash=row.cash, drawdown=row.drawdown
    )


def candle_to_proto(row: Row[Any], product_id: str, interval: str) -> mpb.Candle:
    return mpb.Candle(
        product_id=product_id,
        interval=INTERVAL_TO_PROTO[interval],
        start=timestamp(row.time),
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        closed=True,
    )


def indicator_series(column: IndicatorColumn, values: list[float]) -> mpb.IndicatorSeries:
    return mpb.IndicatorSeries(
        spec=mpb.IndicatorSpec(name=column.name, params=column.params),
        output=column.output,
        values=values,
    )


def state_to_proto(state: StateView, product_id: str) -> pb.PlaybackState:
    message = pb.PlaybackState(
        time=timestamp(state.time),
        bar_index=state.bar_index,
        cash=num(state.cash),
        equity=num(state.equity),
        realized_pnl=num(state.realized_pnl),
        drawdown=state.drawdown,
        open_orders=[
            order_to_proto(o, product_id, at_bar=state.bar_index) for o in state.open_orders
        ],
        recent_fills=[marker_to_proto(f) for f in state.recent_fills],
    )
    if state.quantity:
        message.positions.append(
            pb.PlaybackPosition(
                product_id=product_id,
                quantity=num(state.quantity),
                average_entry_price=num(state.average_entry_price),
                mark_price=num(state.mark_price),
                unrealized_pnl=num((state.mark_price - state.average_entry_price) * state.quantity),
            )
        )
    return message


def statuses_from_proto(values: Iterable[int]) -> list[Status]:
    result = []
    for value in values:
        status = STATUS_FROM_PROTO.get(cast(pb.RunStatus.ValueType, value))
        if status is None:
            raise InvalidArgument("statuses", f"unknown run status {value}")
        result.append(status)
    return result


STATISTIC_FROM_PROTO = {
    pb.STATISTIC_UNSPECIFIED: "sharpe",
    pb.STATISTIC_TOTAL_RETURN: "total_return",
    pb.STATISTIC_ANNUALIZED_RETURN: "annualized_return",
    pb.STATISTIC_SHARPE: "sharpe",
    pb.STATISTIC_SORTINO: "sortino",
    pb.STATISTIC_CALMAR: "calmar",
    pb.STATISTIC_MAX_DRAWDOWN: "max_drawdown",
    pb.STATISTIC_WIN_RATE: "win_rate",
    pb.STATISTIC_PROFIT_FACTOR: "profit_factor",
}
STATISTIC_TO_PROTO = {
    v: k for k, v in STATISTIC_FROM_PROTO.items() if k != pb.STATISTIC_UNSPECIFIED
}


def statistic_from_proto(value: int, field: str) -> str:
    name = STATISTIC_FROM_PROTO.get(cast(pb.Statistic.ValueType, value))
    if name is None:
        raise InvalidArgument(field, f"unknown statistic {value}")
    return name


def sweep_spec_from_config(config: pb.SweepConfig) -> SweepSpec:
    """A grid or Optuna-search sweep, with an optional walk-forward hold-out."""
    if not config.HasField("base"):
        raise InvalidArgument("config.base", "is required")
    space = config.WhichOneof("space")
    if space is None:
        raise InvalidArgument("config.grid", "a grid or a search is required")
    if config.max_parallel < 0:
        raise InvalidArgument("config.max_parallel", "must not be negative")
    base = spec_from_config(config.base, "config.base")
    axes: dict[str, list[str]] = {}
    search_axes: dict[str, dict[str, Any]] = {}
    if space == "grid":
        for i, axis in enumerate(config.grid.axes):
            name = axis.name.strip()
            if name in axes:
                raise InvalidArgument(f"config.grid.axes[{i}].name", f"{name!r} appears twice")
            axes[name] = axis_values(i, name, list(axis.values), axis.start, axis.stop, axis.step)
    else:
        search = config.search
        if search.trials < 1:
            raise InvalidArgument("config.search.trials", "must be at least 1")
        if not base.strategy:
            raise InvalidArgument("config.base.strategy", "is required")
        declared = {
            p.name: p
            for p in strategy_class(base.strategy, field="config.base.strategy").parameters
        }
        for i, axis in enumerate(search.axes):
            name = axis.name.strip()
            if name not in declared:
                raise InvalidArgument(
                    f"config.search.axes[{i}].name", f"{base.strategy} has no parameter {name!r}"
                )
            if name in search_axes:
                raise InvalidArgument(f"config.search.axes[{i}].name", f"{name!r} appears twice")
            search_axes[name] = search_axis(
                i, declared[name], list(axis.values), axis.start, axis.stop, axis.step
            )
    holdout_start = None
    if config.HasField("holdout_range"):
        holdout = config.holdout_range
        if not holdout.HasField("start"):
            raise InvalidArgument("config.holdout_range.start", "is required")
        if holdout.HasField("end") and holdout.end.seconds != base.end:
            raise InvalidArgument(
                "config.holdout_range.end", "must be the end of config.base.time_range (or unset)"
            )
        holdout_start = holdout.start.seconds
    return SweepSpec(
        base,
        axes,
        statistic_from_proto(config.rank_by, "config.rank_by"),
        config.max_parallel,
        holdout_start,
        search_axes=search_axes,
        search_trials=config.search.trials if space == "search" else 0,
        search_seed=config.search.seed if space == "search" else 0,
    )


def sweep_result_to_proto(result: SweepResultView) -> pb.SweepResult:
    message = pb.SweepResult(
        backtest_id=result.run.backtest_id,
        params=result.params,
        rank=result.rank,
        status=STATUS_TO_PROTO[result.run.status],
    )
    if result.run.statistics is not None:
        message.statistics.CopyFrom(statistics_to_proto(result.run.statistics))
    if result.holdout is not None and result.holdout.statistics is not None:
        message.holdout_statistics.CopyFrom(statistics_to_proto(result.holdout.statistics))
    return message


def sweep_to_proto(sweep: SweepView, best: SweepResultView | None) -> pb.Sweep:
    spec = sweep.spec
    config = pb.SweepConfig(
        base=config_from_spec(spec.base),
        rank_by=STATISTIC_TO_PROTO[spec.rank_by],
        max_parallel=spec.max_parallel,
    )
    if spec.is_search:
        config.search.CopyFrom(
            pb.ParameterSearch(
                axes=[
                    pb.ParameterAxis(
                        name=n,
                        values=a.get("choices", []),
                        start=a.get("low", ""),
                        stop=a.get("high", ""),
                        step=a.get("step", ""),
                    )
                    for n, a in spec.search_axes.items()
                ],
                trials=spec.search_trials,
                seed=spec.search_seed,
            )
        )
    else:
        config.grid.CopyFrom(
            pb.ParameterGrid(
                axes=[pb.ParameterAxis(name=n, values=v) for n, v in spec.axes.items()]
            )
        )
    message = pb.Sweep(
        sweep_id=sweep.sweep_id,
        config=config,
        status=STATUS_TO_PROTO[sweep.status],
        total=sweep.total,
        done=sweep.done,
        error=sweep.error,
        create_time=timestamp_us(sweep.create_time_us),
        end_time=timestamp_us(sweep.end_time_us),
    )
    if spec.holdout_start is not None:
        message.config.holdout_range.CopyFrom(
            cpb.TimeRange(start=timestamp(spec.holdout_start), end=timestamp(spec.base.end))
        )
    if best is not None:
        message.best.CopyFrom(sweep_result_to_proto(best))
    return message


def distribution_to_proto(d: Distribution) -> pb.Distribution:
    return pb.Distribution(p5=d.p5, p50=d.p50, p95=d.p95, mean=d.mean, worst=d.worst)
