"""The live `StrategyContext` of one product of a running strategy instance (its bars,
indicators, accounting and pending orders), and the mapping of a strategy's order to
execution's OrderRequest. Used by `strategy_runner`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from tradeplane.execution.adapters.strategy_store import RunFill, StrategyRecord
from tradeplane.execution.domain.orders import OrderRequest as ExecOrderRequest
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import OrderType as ExecOrderType
from tradeplane.execution.domain.values import Side as ExecSide
from tradeplane.strategies import (
    Bar,
    OrderRequest,
    OrderType,
    Side,
    Strategy,
    WorkingOrder,
    compute_all,
    indicator_keys,
)


@dataclass
class _Action:
    kind: str  # "submit" | "cancel"
    client_order_id: str
    request: OrderRequest | None = None


class ProductSession:
    """Implements `tradeplane.strategies.StrategyContext` for one product of a live run."""

    def __init__(
        self, run_id: str, strategy: Strategy, product_id: str, cash: Decimal, max_bars: int
    ) -> None:
        self._run_id = run_id
        self.strategy = strategy
        self.product_id = product_id
        self.max_bars = max_bars
        self.columns: dict[str, list[float]] = {
            k: [] for k in ("time", "open", "high", "low", "close", "volume")
        }
        self.indicators: Mapping[str, Any] = {}
        self.indicator_keys = indicator_keys(strategy.indicators())
        self.offset = 0  # bars dropped from the front of the window
        self.warm = False
        self.started = False
        self.qty = Decimal(0)
        self.avg = Decimal(0)
        self.cash_dec = cash
        self.realized = Decimal(0)
        self.working: dict[str, WorkingOrder] = {}  # client order id -> order
        self.actions: list[_Action] = []
        self.seq = 0  # orders submitted on the current bar

    # -- bars

    @property
    def last_time(self) -> int | None:
        times = self.columns["time"]
        return int(times[-1]) if times else None

    def add_bars(self, bars: Sequence[Bar]) -> None:
        cols = self.columns
        for b in bars:
            for name, value in zip(cols, b, strict=True):
                cols[name].append(float(value))
        extra = len(cols["time"]) - self.max_bars
        if extra > 0:
            for values in cols.values():
                del values[:extra]
            self.offset += extra
        if cols["time"]:
            series = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k != "time"}
            self.indicators = compute_all(self.strategy.indicators(), series)

    # -- StrategyContext

    @property
    def bar_index(self) -> int:
        return self.offset + len(self.columns["time"]) - 1

    @property
    def time(self) -> int:
        return int(self.columns["time"][-1]) if self.columns["time"] else 0

    @property
    def position(self) -> float:
        return float(self.qty)

    @property
    def average_entry_price(self) -> float:
        return float(self.avg) if self.qty else 0.0

    @property
    def cash(self) -> float:
        return float(self.cash_dec)

    @property
    def equity(self) -> float:
        close = self.columns["close"]
        mark = close[-1] if close else 0.0
        return float(self.cash_dec) + float(self.qty) * mark

    @property
    def open_orders(self) -> Sequence[WorkingOrder]:
        return list(self.working.values())

    def _index(self, ago: int) -> int:
        if ago < 0:
            raise ValueError("ago must be >= 0: bars after the current one are not available")
        return len(self.columns["time"]) - 1 - ago

    def indicator(self, key: str, ago: int = 0) -> float:
        try:
            values = self.indicators[key]
        except KeyError:
            raise KeyError(f"indicator {key!r} was not declared by the strategy") from None
        j = self._index(ago)
        return float(values[j]) if j >= 0 else math.nan

    @property
    def indicator_values(self) -> tuple[float, ...]:
        return self._values(0)

    @property
    def previous_indicator_values(self) -> tuple[float, ...]:
        return self._values(1)

    def _values(self, ago: int) -> tuple[float, ...]:
        if not self.indicators:  # no bar yet
            return (math.nan,) * len(self.indicator_keys)
        return tuple(self.indicator(key, ago) for key in self.indicator_keys)

    def price(self, field: str = "close", ago: int = 0) -> float:
        if field not in self.columns or field == "time":
            raise KeyError(f"no price field {field!r}")
        j = self._index(ago)
        return self.columns[field][j] if j >= 0 else math.nan

    def submit(self, request: OrderRequest) -> str:
        if request.type is OrderType.STOP:
            raise ValueError("stop-market orders are not supported live; use stop_limit")
        coid = f"{self._run_id}:{self.product_id}:{self.time}:{self.seq}"
        self.seq += 1
        self.actions.append(_Action("submit", coid, request))
        self.working[coid] = WorkingOrder(coid, request, self.bar_index)
        return coid

    def cancel(self, order_id: str) -> bool:
        if order_id not in self.working:
            return False
        self.actions.append(_Action("cancel", order_id))
        return True

    # -- accounting (average cost, like the backtest's portfolio)

    def apply_fill(self, f: RunFill) -> Decimal:
        """Applies a fill; returns the realised P&L it made."""
        signed = f.size if f.side is ExecSide.BUY else -f.size
        realized = Decimal(0)
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg = (self.avg * abs(self.qty) + f.price * f.size) / abs(total)
            self.qty = total
        else:
            closing = min(abs(signed), abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realized = (f.price - self.avg) * closing * direction
            self.qty += signed
            if self.qty == 0:
                self.avg = Decimal(0)
            elif (self.qty > 0) != (direction > 0):
                self.avg = f.price  # flipped: the rest opened at this price
        notional = f.price * f.size
        self.cash_dec += -notional if f.side is ExecSide.BUY else notional
        self.cash_dec -= f.fee
        self.realized += realized - f.fee
        return realized - f.fee

    def inputs(self) -> dict[str, Any]:
        """The decision inputs: the bar and every indicator value at it (NaN -> null)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        out: dict[str, Any] = {
            "bar_time": self.time,
            "close": num(self.price("close")),
            "position": float(self.qty),
            "cash": float(self.cash_dec),
        }
        for key in self.indicators:
            out[key] = num(self.indicator(key))
        return out


def _to_decimal(value: float, quantum: Decimal) -> Decimal:
    d = Decimal(repr(value))
    return d.quantize(quantum, ROUND_DOWN) if quantum > 0 else d


def exec_request(
    rec: StrategyRecord, product: ProductRules, coid: str, request: OrderRequest
) -> ExecOrderRequest:
    """The strategy's order as an execution order request (sizes rounded down to the
    product's increments, as the venue would)."""
    kinds = {
        OrderType.MARKET: ExecOrderType.MARKET,
        OrderType.LIMIT: ExecOrderType.LIMIT,
        OrderType.STOP_LIMIT: ExecOrderType.STOP_LIMIT,
    }
    price = product.quote_increment
    return ExecOrderRequest(
        account_id=rec.account_id,
        client_order_id=coid,
        product_id=product.product_id,
        side=ExecSide.BUY if request.side is Side.BUY else ExecSide.SELL,
        type=kinds[request.type],
        base_size=None
        if request.size is None
        else _to_decimal(request.size, product.base_increment),
        quote_size=None if request.quote_size is None else _to_decimal(request.quote_size, price),
        limit_price=None
        if request.limit_price is None
        else _to_decimal(request.limit_price, price),
        stop_price=None if request.stop_price is None else _to_decimal(request.stop_price, price),
        venue=rec.venue,
        strategy_instance_id=rec.strategy_instance_id,
    )
