"""Indicators a strategy declares, computed once per run over whole columns.

The maths is `tradeplane.indicators` (the same implementation the market service serves), so
names, parameters and conventions are the market's. Every output is causal — the value at
bar t depends on bars 0..t only — which is what makes "no look-ahead" hold for indicator reads.

Outputs are float64 arrays as long as the input, NaN during warm-up. A spec with key "fast"
yields "fast" for single-output indicators and "<key>.<output>" (e.g. "bb.upper") otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tradeplane.indicators import INDICATORS, FloatArray

__all__ = [
    "INDICATOR_NAMES",
    "FloatArray",
    "IndicatorSpec",
    "Series",
    "compute_all",
    "indicator_keys",
]

Series = Mapping[str, FloatArray]

INDICATOR_NAMES: tuple[str, ...] = tuple(INDICATORS)


@dataclass(frozen=True, slots=True)
class _Columns:
    """A run's columns by attribute, as `tradeplane.indicators` reads them."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    @classmethod
    def of(cls, series: Series) -> _Columns:
        return cls(series["open"], series["high"], series["low"], series["close"], series["volume"])


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """An indicator a strategy needs: read back under `key` (e.g. "fast" for sma(10))."""

    key: str
    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        definition = INDICATORS.get(self.name)
        if definition is None:
            raise ValueError(f"unknown indicator {self.name!r}; expected one of {INDICATOR_NAMES}")
        unknown = set(self.params) - set(definition.params)
        if unknown:
            raise ValueError(f"indicator {self.name}: unknown parameters {sorted(unknown)}")

    def resolved_params(self) -> dict[str, float]:
        """The parameters with the indicator's defaults filled in."""
        return INDICATORS[self.name].resolve(self.params)

    def output_keys(self) -> tuple[str, ...]:
        """The keys its outputs are read under, in the indicator's output order."""
        outputs = INDICATORS[self.name].outputs
        if len(outputs) == 1:
            return (self.key,)
        return tuple(f"{self.key}.{name}" for name in outputs)

    def compute(self, series: Series) -> dict[str, FloatArray]:
        """Every output over the whole run, keyed "<key>" or "<key>.<output>"."""
        outputs = INDICATORS[self.name].compute(_Columns.of(series), self.params)
        if len(outputs) == 1:
            return {self.key: outputs["value"]}
        return {f"{self.key}.{name}": values for name, values in outputs.items()}


def compute_all(specs: tuple[IndicatorSpec, ...], series: Series) -> Mapping[str, FloatArray]:
    """All declared indicators over a run's columns (each computed once)."""
    out: dict[str, FloatArray] = {}
    for spec in specs:
        for key, values in spec.compute(series).items():
            if key in out:
                raise ValueError(f"two indicators are both read as {key!r}")
            out[key] = values
    return MappingProxyType(out)


def indicator_keys(specs: tuple[IndicatorSpec, ...]) -> tuple[str, ...]:
    """Every key `specs` are read under, in declaration order: the order of a context's
    `indicator_values`."""
    return tuple(key for spec in specs for key in spec.output_keys())
