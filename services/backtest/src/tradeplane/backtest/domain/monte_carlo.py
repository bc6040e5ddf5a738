"""Monte Carlo robustness of a finished run, from its round-trip trades' P&L.

Each simulation rebuilds an equity path initial + cumulative P&L from the trades either in a
random order (SHUFFLE: the total return is the same, the drawdown is what varies) or drawn
with replacement (BOOTSTRAP: both vary). Deterministic per seed; vectorised in chunks so a
100,000 x 20,000 simulation never holds more than a few million values at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_CHUNK_VALUES = 4_000_000


class Resampling(enum.Enum):
    SHUFFLE = "shuffle"
    BOOTSTRAP = "bootstrap"


@dataclass(frozen=True, slots=True)
class Distribution:
    """Mirrors proto Distribution. `worst` is the minimum return / the maximum drawdown."""

    p5: float
    p50: float
    p95: float
    mean: float
    worst: float

    @classmethod
    def of(cls, values: FloatArray, *, worst_is_max: bool) -> Distribution:
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        worst = values.max() if worst_is_max else values.min()
        return cls(float(p5), float(p50), float(p95), float(values.mean()), float(worst))


@dataclass(frozen=True, slots=True)
class MonteCarloReport:
    total_return: Distribution
    max_drawdown: Distribution
    iterations: int


def monte_carlo(
    pnls: npt.ArrayLike, initial_cash: float, method: Resampling, iterations: int, seed: int
) -> MonteCarloReport:
    """Distributions of total return (fraction) and max drawdown (positive fraction)."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    trades = np.asarray(pnls, dtype=np.float64)
    n = len(trades)
    returns = np.zeros(iterations)
    drawdowns = np.zeros(iterations)
    if n:
        rng = np.random.default_rng(seed)
        chunk = max(1, _CHUNK_VALUES // n)
        for start in range(0, iterations, chunk):
            rows = min(chunk, iterations - start)
            if method is Resampling.SHUFFLE:
                paths = rng.permuted(np.broadcast_to(trades, (rows, n)), axis=1)
            else:
                paths = rng.choice(trades, size=(rows, n), replace=True)
            equity = initial_cash + np.cumsum(paths, axis=1)
            peak = np.maximum.accumulate(np.maximum(equity, initial_cash), axis=1)
            drawdowns[start : start + rows] = (1.0 - equity / peak).max(axis=1)
            returns[start : start + rows] = equity[:, -1] / initial_cash - 1.0
    return MonteCarloReport(
        Distribution.of(returns, worst_is_max=False),
        Distribution.of(drawdowns, worst_is_max=True),
        iterations,
    )
