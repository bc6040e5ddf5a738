"""Typed strategy parameters: declarations, parsing and validation.

A `Parameter` mirrors `trading.common.v1.ParameterSpec` field for field (name, type, default,
inclusive min/max, step, choices, description). Values arrive either as strings (the proto's
`map<string, string> params`) or as Python values (tests, sweeps); `validate_params` turns
them into typed values and raises `InvalidArgument(field="params.<name>")` on the first bad
one, so the caller's error names the parameter.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from tradeplane.runtime.errors import InvalidArgument

ParamValue = int | float | Decimal | bool | str
Params = Mapping[str, ParamValue]


class ParamType(enum.Enum):
    """How a value is parsed; the names match `trading.common.v1.ParameterType`."""

    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOL = "bool"
    STRING = "string"
    CHOICE = "choice"


_NUMERIC = frozenset({ParamType.INT, ParamType.FLOAT, ParamType.DECIMAL})


def _field(name: str) -> str:
    return f"params.{name}"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter a strategy accepts. Bounds are inclusive; None means unbounded."""

    name: str
    type: ParamType
    default: ParamValue
    description: str
    min: ParamValue | None = None
    max: ParamValue | None = None
    step: ParamValue | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.type is ParamType.CHOICE and not self.choices:
            raise ValueError(f"parameter {self.name}: a choice needs choices")
        if self.type not in _NUMERIC and (self.min is not None or self.max is not None):
            raise ValueError(f"parameter {self.name}: bounds only apply to numbers")
        # The default must itself be valid: a spec that cannot be run is a programming error.
        self.parse(self.default)

    def parse(self, raw: object) -> ParamValue:
        """The typed value of `raw` (a string or a Python value); raises InvalidArgument."""
        name = _field(self.name)
        value = self._convert(raw, name)
        if self.type in _NUMERIC:
            assert isinstance(value, int | float | Decimal)
            if isinstance(value, float | Decimal) and not math.isfinite(value):
                raise InvalidArgument(name, f"must be a finite number, got {raw!r}")
            if self.min is not None and value < self.min:  # type: ignore[operator]
                raise InvalidArgument(name, f"must be >= {self.min}, got {value}")
            if self.max is not None and value > self.max:  # type: ignore[operator]
                raise InvalidArgument(name, f"must be <= {self.max}, got {value}")
        if self.type is ParamType.CHOICE and value not in self.choices:
            raise InvalidArgument(name, f"must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def _convert(self, raw: object, name: str) -> ParamValue:
        kind = self.type
        text = raw.strip() if isinstance(raw, str) else None
        if kind is ParamType.BOOL:
            if isinstance(raw, bool):
                return raw
            if text is not None and text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise InvalidArgument(name, f"must be true or false, got {raw!r}")
        if kind in (ParamType.STRING, ParamType.CHOICE):
            if text is None:
                raise InvalidArgument(name, f"must be a string, got {raw!r}")
            return text
        if isinstance(raw, bool):  # bool is an int subclass; never a number here
            raise InvalidArgument(name, f"must be a number, got {raw!r}")
        if kind is ParamType.INT:
            if isinstance(raw, int):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if text is not None:
                try:
                    return int(text)
                except ValueError:
                    pass
            raise InvalidArgument(name, f"must be an integer, got {raw!r}")
        if kind is ParamType.FLOAT:
            if isinstance(raw, int | float | Decimal):
                return float(raw)
            if text is not None:
                try:
                    return float(text)
                except ValueError:
                    pass
            raise InvalidArgument(name, f"must be a number, got {raw!r}")
        # DECIMAL: exact; floats go through their shortest repr so 0.1 stays 0.1.
        try:
            if isinstance(raw, Decimal):
                return raw
            if isinstance(raw, int | float):
                return Decimal(repr(raw))
            if text is not None:
                return Decimal(text)
        except InvalidOperation:
            pass
        raise InvalidArgument(name, f"must be a decimal number, got {raw!r}")

    def format(self, value: ParamValue | None) -> str:
        """The string form used in `ParameterSpec` and `map<string, string> params`."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def validate_params(
    parameters: Sequence[Parameter], raw: Mapping[str, object]
) -> Mapping[str, ParamValue]:
    """Typed values for every declared parameter: given ones parsed and checked, missing
    ones defaulted. Unknown names are refused (a typo must not silently use a default)."""
    declared = {p.name: p for p in parameters}
    for name in raw:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidArgument(_field(name), f"unknown parameter; expected one of {known}")
    values = {
        p.name: p.parse(raw[p.name]) if p.name in raw else p.parse(p.default) for p in parameters
    }
    return MappingProxyType(values)


def format_params(parameters: Sequence[Parameter], values: Params) -> dict[str, str]:
    """Values back to their string form (for storage and the proto map)."""
    return {p.name: p.format(values[p.name]) for p in parameters if p.name in values}
