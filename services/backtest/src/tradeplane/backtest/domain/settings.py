"""How a backtest fills orders and charges for them."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from tradeplane.runtime.errors import InvalidArgument


class FillRule(enum.Enum):
    """When a market order submitted at a bar's close fills (proto FillRule)."""

    NEXT_OPEN = "next_open"  # at the next bar's open: the default, no look-ahead
    CLOSE = "close"  # at the signal bar's own close


@dataclass(frozen=True, slots=True)
class BacktestSettings:
    """Money settings of a run. Amounts are in the quote currency.

    - commission per fill = commission_fixed + notional x commission_bps / 10,000
    - slippage: market and stop fills are moved slippage_bps / 10,000 of the price against
      the trader (buys higher, sells lower); limit fills get their limit price or better
    - snapshot_every: K, the bars between stored state snapshots (playback replays <= K)
    - allow_short: when False, a sell larger than the position is rejected
    """

    initial_cash: float
    commission_fixed: float = 0.0
    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    fill_rule: FillRule = FillRule.NEXT_OPEN
    snapshot_every: int = 1000
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_cash) and self.initial_cash > 0):
            raise InvalidArgument("config.initial_cash", "must be a positive amount")
        for name in ("commission_fixed", "commission_bps", "slippage_bps"):
            value = getattr(self, name)
            field = {
                "commission_fixed": "config.commission.fixed",
                "commission_bps": "config.commission.bps",
                "slippage_bps": "config.slippage_bps",
            }[name]
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgument(field, "must be zero or positive")
        if self.commission_bps >= 10_000 or self.slippage_bps >= 10_000:
            raise InvalidArgument("config", "basis points must be below 10,000 (100%)")
        if self.snapshot_every < 1:
            raise InvalidArgument("snapshot_every", "must be at least 1")

    @property
    def fee_rate(self) -> float:
        return self.commission_bps * 1e-4

    @property
    def slippage_rate(self) -> float:
        return self.slippage_bps * 1e-4
