"""A trading account: its venue, valuation currency and the portfolio state kept between
fills (cash, equity peak, today's realised P&L, losing streak); positions live apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradeplane.execution.domain.portfolio import DailyPnl, LossStreak, Portfolio
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.values import Venue


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    venue: Venue
    display_name: str
    valuation_currency: str
    create_time: datetime
    cash: dict[str, Decimal] = field(default_factory=dict, hash=False)
    peak_equity: Decimal | None = None
    daily_pnl: DailyPnl = field(default_factory=DailyPnl)
    loss_streak: LossStreak = field(default_factory=LossStreak)

    def portfolio(self, positions: Iterable[Position]) -> Portfolio:
        """The Portfolio aggregate of this account with ``positions``."""
        return Portfolio(
            self.account_id,
            self.valuation_currency,
            venue=self.venue,
            cash=self.cash,
            positions=positions,
            peak_equity=self.peak_equity,
            daily_pnl=self.daily_pnl,
            loss_streak=self.loss_streak,
        )
