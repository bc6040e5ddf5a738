"""Optuna search for sweeps: the next parameter sets to try, from the results so far.

The study is not stored: each call rebuilds an in-memory study from the sweep's finished runs
(their parameters and ranking statistic) and asks it for new trials, so any worker process
can continue a sweep and no Optuna tables live in our database. The sampler (TPE) is seeded
with the sweep's seed plus the number of runs already queued, so the same history gives the
same suggestions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies import Parameter, ParamType

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


def search_axis(
    index: int, parameter: Parameter, values: Sequence[str], start: str, stop: str, step: str
) -> dict[str, Any]:
    """One searched parameter: explicit choices, or a numeric range checked against the
    parameter's own bounds."""
    field = f"config.search.axes[{index}]"
    if values:
        for value in values:
            parameter.parse(value)
        return {"choices": [v.strip() for v in values]}
    if parameter.type not in (ParamType.INT, ParamType.FLOAT, ParamType.DECIMAL):
        raise InvalidArgument(f"{field}.values", f"{parameter.name} takes explicit values")
    if not start or not stop:
        raise InvalidArgument(f"{field}.start", "give values, or start and stop")
    low, high = parameter.parse(start), parameter.parse(stop)
    if high <= low:  # type: ignore[operator]
        raise InvalidArgument(f"{field}.stop", "must be above start")
    if step:
        try:
            if Decimal(step) <= 0:
                raise InvalidArgument(f"{field}.step", "must be positive")
        except ArithmeticError:
            raise InvalidArgument(f"{field}.step", "must be a number") from None
    return {
        "low": start.strip(),
        "high": stop.strip(),
        "step": step.strip(),
        "type": parameter.type.value,
    }


def _distribution(axis: Mapping[str, Any]) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if "choices" in axis:
        return CategoricalDistribution(list(axis["choices"]))
    if axis["type"] == ParamType.INT.value:
        return IntDistribution(int(axis["low"]), int(axis["high"]), step=int(axis["step"] or 1))
    step = float(axis["step"]) if axis["step"] else None
    return FloatDistribution(float(axis["low"]), float(axis["high"]), step=step)


def _external(axis: Mapping[str, Any], value: Any) -> str:
    if "choices" in axis:
        return str(value)
    if axis["type"] == ParamType.INT.value:
        return str(int(value))
    return repr(float(value))


def _internal(axis: Mapping[str, Any], text: str) -> Any:
    if "choices" in axis:
        return text
    if axis["type"] == ParamType.INT.value:
        return int(text)
    return float(text)


def suggest(
    axes: Mapping[str, Mapping[str, Any]],
    history: Sequence[tuple[Mapping[str, str], float]],
    *,
    maximize: bool,
    seed: int,
    count: int,
) -> list[dict[str, str]]:
    """`count` new parameter sets (strings) given finished (params, statistic) pairs."""
    import optuna  # imported on first use: about a second, not paid at service start

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {name: _distribution(axis) for name, axis in axes.items()}
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    for params, value in history:
        if not math.isfinite(value):
            continue
        try:
            values = {n: _internal(axes[n], params[n]) for n in axes}
        except (KeyError, ValueError):
            continue
        study.add_trial(
            optuna.trial.create_trial(params=values, distributions=distributions, value=value)
        )
    suggestions = []
    for _ in range(count):
        trial = study.ask(distributions)
        suggestions.append({n: _external(axes[n], trial.params[n]) for n in axes})
        # Told as failed so the next ask in this batch does not repeat it blindly.
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return suggestions
