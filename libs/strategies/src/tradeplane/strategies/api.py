"""The strategy API: what a strategy sees and what it may do, the same in backtests and live.

A strategy is a `Strategy` subclass. It declares its parameters (`parameters`), the
indicators it reads (`indicators()`), and reacts to closed bars (`on_bar`) and to its own
fills (`on_fill`) through a `StrategyContext`: position, cash, equity, indicator values at
the current bar (never later ones), its working orders, and submit/cancel of orders
(market, limit, stop, stop-limit; fractional sizes). The backtest engine and execution's
live runner each implement `StrategyContext`; the strategy code does not change.
`ctx.indicator(key, ago)` reads any declared indicator any number of bars back;
`ctx.indicator_values` / `ctx.previous_indicator_values` hold all of them at the current /
previous bar as plain tuples, which is several times cheaper per bar.

A strategy whose decisions are a pure function of the data may also implement
`signals(arrays, params) -> (entries, exits)` as boolean arrays. The backtest then runs it
through the vectorised fill simulation, whose semantics equal the bar-by-bar path's: an
entry on bar t while flat buys `size_fraction` of cash, an exit on bar t while long sells the
whole position, both filled like a market order submitted in `on_bar` at bar t.

Prices and sizes are floats inside a run (the fill simulation is numeric); they become
decimal strings at the service boundary.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from tradeplane.strategies.indicators import FloatArray, IndicatorSpec
from tradeplane.strategies.params import Parameter, ParamValue, validate_params

BoolArray = npt.NDArray[np.bool_]


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.Enum):
    """Order types. MARKET, LIMIT and STOP_LIMIT are execution's ORDER_TYPE_*; STOP is a
    stop-market (a stop-loss leg with a market exit in execution's terms)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


# Reading an enum member through its class costs ~70 ns on CPython 3.11 (a module global
# ~7 ns); these are read on every order.
_BUY, _SELL = Side.BUY, Side.SELL
_MARKET = OrderType.MARKET


@dataclass(frozen=True, slots=True, init=False)
class OrderRequest:
    """An order a strategy submits. Give exactly one of `size` (base units, fractional) or
    `quote_size` (market orders only: quote currency to spend or receive, fees included)."""

    side: Side
    type: OrderType = OrderType.MARKET
    size: float | None = None
    quote_size: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    reason: str = ""

    def __init__(
        self,
        side: Side,
        type: OrderType = _MARKET,
        size: float | None = None,
        quote_size: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
        reason: str = "",
    ) -> None:
        # The dataclass' own __init__ for a frozen class sets each field through
        # object.__setattr__; the slots' setters do the same at half the cost (one order per
        # signal of a million-bar backtest).
        _set_side(self, side)
        _set_type(self, type)
        _set_size(self, size)
        _set_quote_size(self, quote_size)
        _set_limit_price(self, limit_price)
        _set_stop_price(self, stop_price)
        _set_reason(self, reason)
        self._validate()

    def _validate(self) -> None:
        size, quote = self.size, self.quote_size
        if (size is None) == (quote is None):
            raise ValueError("give exactly one of size and quote_size")
        amount = size if quote is None else quote
        if not 0.0 < amount < math.inf:  # type: ignore[operator]
            raise ValueError(f"order amount must be positive and finite, got {amount!r}")
        kind = self.type
        if kind is _MARKET and self.limit_price is None and self.stop_price is None:
            return  # the common case, checked cheaply
        if quote is not None and kind is not OrderType.MARKET:
            raise ValueError("quote_size is only allowed on market orders")
        needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
        for name, needed, price in (
            ("limit_price", needs_limit, self.limit_price),
            ("stop_price", needs_stop, self.stop_price),
        ):
            if needed and (price is None or not 0.0 < price < math.inf):
                raise ValueError(f"{kind.value} order needs a positive {name}")
            if not needed and price is not None:
                raise ValueError(f"{kind.value} order takes no {name}")


def _setter(name: str) -> Callable[[OrderRequest, object], None]:
    """The slot's own setter of an OrderRequest field (it bypasses the frozen __setattr__)."""
    setter: Callable[[OrderRequest, object], None] = getattr(OrderRequest, name).__set__
    return setter


_set_side, _set_type = _setter("side"), _setter("type")
_set_size, _set_quote_size = _setter("size"), _setter("quote_size")
_set_limit_price, _set_stop_price = _setter("limit_price"), _setter("stop_price")
_set_reason = _setter("reason")


class Bar(NamedTuple):
    """A closed bar. `time` is the bar's start in epoch seconds (UTC)."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Fill(NamedTuple):
    """A fill of one of the strategy's orders. `fee` is in the quote currency."""

    order_id: str
    side: Side
    price: float
    size: float
    fee: float
    bar_index: int
    time: int


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """One of the strategy's orders that is still working."""

    order_id: str
    request: OrderRequest
    submit_bar: int


class StrategyContext(Protocol):
    """What a strategy sees at the current bar and the orders it can place.

    Reads are as of the close of the current bar (`bar_index`); nothing later is reachable.
    """

    @property
    def bar_index(self) -> int: ...
    @property
    def time(self) -> int: ...
    @property
    def position(self) -> float:
        """Signed base quantity held (negative = short)."""
        ...

    @property
    def average_entry_price(self) -> float:
        """Average entry price of the open position; 0 when flat."""
        ...

    @property
    def cash(self) -> float: ...
    @property
    def equity(self) -> float:
        """Cash plus position marked at the current bar's close."""
        ...

    @property
    def open_orders(self) -> Sequence[WorkingOrder]: ...
    @property
    def indicator_keys(self) -> tuple[str, ...]:
        """The declared indicators' keys in declaration order (`indicator_keys(specs)`)."""
        ...

    @property
    def indicator_values(self) -> tuple[float, ...]:
        """Every declared indicator at the current bar, a plain tuple in `indicator_keys`
        order (`fast, slow = ctx.indicator_values`): the cheapest read, for hot `on_bar`s."""
        ...

    @property
    def previous_indicator_values(self) -> tuple[float, ...]:
        """The same one bar earlier (NaN before the first bar)."""
        ...

    def indicator(self, key: str, ago: int = 0) -> float:
        """The declared indicator `key` at `ago` bars before the current one (NaN before its
        first value); `ago` < 0 would be the future and raises ValueError."""
        ...

    def price(self, field: str = "close", ago: int = 0) -> float:
        """open/high/low/close/volume of the bar `ago` bars back (NaN before the first)."""
        ...

    def submit(self, request: OrderRequest) -> str:
        """Submits an order; returns its id."""
        ...

    def cancel(self, order_id: str) -> bool:
        """Cancels a working order; False when it is no longer working."""
        ...


# ---------------------------------------------------------------------------------------------
# Order helpers on top of the protocol, shared by every context implementation.


def buy(ctx: StrategyContext, size: float, reason: str = "") -> str:
    """Market buy of `size` base units."""
    return ctx.submit(OrderRequest(_BUY, size=size, reason=reason))


def sell(ctx: StrategyContext, size: float, reason: str = "") -> str:
    """Market sell of `size` base units."""
    return ctx.submit(OrderRequest(_SELL, size=size, reason=reason))


def buy_with_cash(ctx: StrategyContext, fraction: float, reason: str = "") -> str | None:
    """Market buy spending `fraction` of the current cash (fees included); None when there
    is no cash to spend."""
    amount = ctx.cash * fraction
    if not amount > 0:
        return None
    return ctx.submit(OrderRequest(_BUY, quote_size=amount, reason=reason))


def close_position(ctx: StrategyContext, reason: str = "") -> str | None:
    """Market order that flattens the position; None when already flat."""
    qty = ctx.position
    if qty == 0:
        return None
    side = _SELL if qty > 0 else _BUY
    return ctx.submit(OrderRequest(side, size=abs(qty), reason=reason))


# ---------------------------------------------------------------------------------------------
# The strategy base class


@dataclass(frozen=True, slots=True)
class StrategyDefinition:
    """Mirrors `trading.common.v1.StrategyDefinition`."""

    name: str
    display_name: str
    description: str
    parameters: tuple[Parameter, ...]
    indicators: tuple[str, ...]
    vectorised: bool


class Strategy(ABC):
    """Base of every strategy. Subclasses set the class attributes, implement `indicators`
    and `on_bar`, and optionally `on_start`, `on_fill`, `check_params` and `signals`.

    An instance holds the validated, typed parameters (`self.params`) and whatever state the
    strategy keeps between bars; one instance runs one backtest or one live session.
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]] = ()

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params: Mapping[str, ParamValue] = validate_params(self.parameters, params or {})
        self.check_params(self.params)

    def check_params(self, params: Mapping[str, ParamValue]) -> None:  # noqa: B027 (optional hook)
        """Rules between parameters; raise InvalidArgument("params.<name>", ...)."""

    @abstractmethod
    def indicators(self) -> tuple[IndicatorSpec, ...]:
        """The indicators this instance reads (they may depend on its parameters)."""

    def on_start(self, ctx: StrategyContext) -> None:  # noqa: B027 (optional hook)
        """Called once before the first bar."""

    @abstractmethod
    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        """Called at the close of every bar."""

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:  # noqa: B027 (optional hook)
        """Called for every fill of this strategy's orders."""

    def signals(
        self, arrays: Mapping[str, FloatArray], params: Mapping[str, ParamValue]
    ) -> tuple[BoolArray, BoolArray] | None:
        """Optional vectorised form: boolean (entries, exits) arrays, one per bar, computed
        from `arrays` (open, high, low, close, volume and every declared indicator key).
        Return None when these parameters need the bar-by-bar path."""
        return None

    def entry_fraction(self) -> float:
        """Fraction of cash an entry signal spends in the vectorised form: the
        `size_fraction` parameter when declared, else all of it."""
        return float(self.params.get("size_fraction", 1.0))

    @classmethod
    def is_vectorised(cls) -> bool:
        """True when the class implements `signals`."""
        return cls.signals is not Strategy.signals

    @classmethod
    def definition(cls) -> StrategyDefinition:
        """Its description for ListStrategies; indicator names are those of the defaults."""
        doc = (cls.__doc__ or "").strip()
        names = tuple(dict.fromkeys(spec.name for spec in cls().indicators()))
        return StrategyDefinition(
            cls.name, cls.display_name, doc, cls.parameters, names, cls.is_vectorised()
        )
