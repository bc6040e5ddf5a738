"""Parameters several built-in strategies share."""

from __future__ import annotations

from tradeplane.strategies.params import Parameter, ParamType

SIZE_FRACTION = Parameter(
    "size_fraction",
    ParamType.FLOAT,
    1.0,
    "Fraction of the cash each entry spends, fees included (1 = all of it).",
    min=0.0001,
    max=1.0,
    step=0.05,
)


def period(name: str, default: int, description: str, minimum: int = 1) -> Parameter:
    """A look-back length in bars."""
    return Parameter(name, ParamType.INT, default, description, min=minimum, max=10_000, step=1)
