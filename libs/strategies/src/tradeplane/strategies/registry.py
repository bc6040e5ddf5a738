"""Strategies by name: the one list the backtest service and execution's live runner share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies.api import Strategy, StrategyDefinition

_REGISTRY: dict[str, type[Strategy]] = {}
_S = TypeVar("_S", bound=type[Strategy])


def register(cls: _S) -> _S:
    """Class decorator adding a strategy under its `name` (names are unique)."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"strategy name {cls.name!r} is taken by {existing.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_class(name: str, *, field: str = "strategy") -> type[Strategy]:
    """The class registered as `name`; InvalidArgument naming `field` when there is none."""
    cls = _REGISTRY.get(name)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidArgument(field, f"unknown strategy {name!r}; expected one of {known}")
    return cls


def create_strategy(name: str, params: Mapping[str, object] | None = None) -> Strategy:
    """A new instance of strategy `name` with validated parameters."""
    return strategy_class(name)(params)


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def strategy_definitions() -> list[StrategyDefinition]:
    """Every registered strategy's definition, ordered by name."""
    return [_REGISTRY[name].definition() for name in sorted(_REGISTRY)]
