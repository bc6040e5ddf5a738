"""What the use cases pass around: a run's specification and the views read back."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any


class Status(enum.Enum):
    """Lifecycle of a run (proto RunStatus)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELED)


INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that defines a run (proto BacktestConfig), validated. Money as Decimal
    strings in storage; times in epoch seconds, `end` exclusive."""

    strategy: str
    params: dict[str, str]
    product_id: str
    interval: str  # "1m", "5m", ...
    start: int
    end: int
    initial_cash: Decimal
    commission_fixed: Decimal = Decimal(0)
    commission_bps: Decimal = Decimal(0)
    slippage_bps: Decimal = Decimal(0)
    fill_rule: str = "next_open"  # or "close"
    label: str = ""
    seed: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("initial_cash", "commission_fixed", "commission_bps", "slippage_bps"):
            data[key] = str(data[key])
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data: dict[str, Any] = json.loads(text)
        for key in ("initial_cash", "commission_fixed", "commission_bps", "slippage_bps"):
            data[key] = Decimal(data[key])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RunStatistics:
    """Mirrors proto Statistics (stored as JSON with the run)."""

    total_return: float
    annualized_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_seconds: float
    win_rate: float
    profit_factor: float
    exposure: float
    trade_count: int
    fees_paid: str
    final_equity: str
    bar_count: int


@dataclass(frozen=True, slots=True)
class RunView:
    backtest_id: str
    spec: RunSpec
    status: Status
    progress: float
    statistics: RunStatistics | None
    error: str
    sweep_id: str
    create_time_us: int
    start_time_us: int | None
    end_time_us: int | None
    vectorised: bool
    bars_done: int = 0
    bars_total: int = 0
    cancel_requested: bool = False


@dataclass(frozen=True, slots=True)
class ProgressView:
    """One progress update (proto ProgressUpdate)."""

    seq: int
    backtest_id: str
    sweep_id: str
    status: Status
    progress: float
    done: int
    total: int
    bars_per_second: float
    eta_seconds: float
    message: str
    time_us: int


@dataclass(frozen=True, slots=True)
class IndicatorColumn:
    """One stored indicator series of a run: the strategy's key, the market-style spec
    (name + params) and its output name ("value", "upper", ...)."""

    key: str
    name: str
    params: dict[str, float] = field(default_factory=dict)
    output: str = "value"


# Statistic -> (column, higher is better); proto Statistic names map onto these.
RANK_STATISTICS: dict[str, bool] = {
    "total_return": True,
    "annualized_return": True,
    "sharpe": True,
    "sortino": True,
    "calmar": True,
    "max_drawdown": False,  # smaller ranks higher
    "win_rate": True,
    "profit_factor": True,
}


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated grid sweep: the base run, each varied parameter's values, the ranking."""

    base: RunSpec  # its range is the whole range, hold-out included
    axes: dict[str, list[str]]
    rank_by: str = "sharpe"
    max_parallel: int = 0
    holdout_start: int | None = None  # [holdout_start, base.end) is held out
    holdout_top: int = 5  # best in-sample results re-run on the hold-out
    # An Optuna search instead of a grid (trials > 0): per parameter {"choices": [...]} or
    # {"low": "1", "high": "9", "step": "1" or ""}.
    search_axes: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_trials: int = 0
    search_seed: int = 0

    @property
    def is_search(self) -> bool:
        return self.search_trials > 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "base": json.loads(self.base.to_json()),
                "axes": self.axes,
                "rank_by": self.rank_by,
                "max_parallel": self.max_parallel,
                "holdout_start": self.holdout_start,
                "holdout_top": self.holdout_top,
                "search_axes": self.search_axes,
                "search_trials": self.search_trials,
                "search_seed": self.search_seed,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        data = json.loads(text)
        return cls(
            RunSpec.from_json(json.dumps(data["base"])),
            data["axes"],
            data["rank_by"],
            data["max_parallel"],
            data.get("holdout_start"),
            data.get("holdout_top", 5),
            data.get("search_axes", {}),
            data.get("search_trials", 0),
            data.get("search_seed", 0),
        )


@dataclass(frozen=True, slots=True)
class SweepView:
    sweep_id: str
    spec: SweepSpec
    status: Status
    total: int
    done: int
    error: str
    create_time_us: int
    end_time_us: int | None


@dataclass(frozen=True, slots=True)
class SweepResultView:
    run: RunView
    params: dict[str, str]  # the varied values
    rank: int
    holdout: RunView | None = None  # its re-run on the hold-out period
