"""Portfolio: an account's cash, positions, equity, exposure, drawdown and the loss trackers
the risk engine reads (daily realised P&L, losing streak).

Cash moves with fills: a buy pays ``price * size`` in the quote currency, a sell receives
it, and the fee is paid in its own currency. The base currency bought is the position, not
cash, so nothing is counted twice. Equity = cash + sum of quantity * mark, all converted into the
valuation currency with ``rates`` (currency -> price in the valuation currency); amounts in a
currency without a rate are left out and listed in ``unpriced_currencies``.

Definitions the risk rules rely on:
- ``daily_realized_pnl``: realised P&L minus fees of fills on the current UTC day.
- a losing trade: a fill that reduces a position and whose realised P&L minus its fee is
  below zero; a closing fill that is not a loss ends the streak, opening fills do not count.
- ``peak_equity``: the highest equity ``revalue`` has seen; drawdown = (peak - equity) / peak.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.positions import Position, PositionChange
from tradeplane.execution.domain.values import Venue


@dataclass(frozen=True, slots=True)
class LossStreak:
    """Consecutive losing trades and when the last one happened."""

    count: int = 0
    last_loss_time: datetime | None = None

    def after_trade(self, net_pnl: Decimal, time: datetime) -> LossStreak:
        if net_pnl < 0:
            return LossStreak(self.count + 1, time)
        return LossStreak()


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """Realised P&L net of fees for one UTC day."""

    day: date | None = None
    net_realized: Decimal = ZERO

    def add(self, amount: Decimal, time: datetime) -> DailyPnl:
        day = _utc_day(time)
        if self.day is None or day > self.day:
            return DailyPnl(day, amount)
        if day == self.day:
            return DailyPnl(day, self.net_realized + amount)
        return self  # a late fill of an earlier day does not change today's figure

    def on(self, now: datetime) -> Decimal:
        return self.net_realized if self.day == _utc_day(now) else ZERO


def _utc_day(t: datetime) -> date:
    return t.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """Valuation of an account at ``as_of`` (maps onto ``trading.execution.v1.Portfolio``;
    the service adds the trading state)."""

    account_id: str
    valuation_currency: str
    cash: tuple[tuple[str, Decimal], ...]  # (currency, amount), sorted by currency
    equity: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    daily_realized_pnl: Decimal
    fees_paid: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    open_position_count: int
    open_order_count: int
    as_of: datetime
    unpriced_currencies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What applying a fill to the portfolio did."""

    change: PositionChange
    daily_realized_pnl: Decimal
    loss_streak: LossStreak

    @property
    def position(self) -> Position:
        return self.change.position


class Portfolio:
    """The aggregate of one account's money. Mutable; the repository rebuilds it from rows."""

    def __init__(
        self,
        account_id: str,
        valuation_currency: str = "USD",
        *,
        venue: Venue = Venue.PAPER,
        cash: Mapping[str, Decimal] | None = None,
        positions: Iterable[Position] = (),
        peak_equity: Decimal | None = None,
        daily_pnl: DailyPnl | None = None,
        loss_streak: LossStreak | None = None,
    ) -> None:
        self.account_id = account_id
        self.valuation_currency = valuation_currency
        self.venue = venue
        self.cash: dict[str, Decimal] = dict(cash or {})
        self.positions: dict[str, Position] = {p.product_id: p for p in positions}
        self.peak_equity = peak_equity
        self.daily_pnl = daily_pnl or DailyPnl()
        self.loss_streak = loss_streak or LossStreak()

    def position(self, product_id: str) -> Position:
        """The position in ``product_id`` (a flat one when there is none yet)."""
        existing = self.positions.get(product_id)
        if existing is not None:
            return existing
        return Position(account_id=self.account_id, product_id=product_id, venue=self.venue)

    def apply_fill(self, fill: Fill) -> FillEffect:
        """Book a fill (already deduplicated by ``Order.apply_fill``) into position and cash,
        and update the daily P&L and the losing streak."""
        if fill.account_id != self.account_id:
            raise ValueError(f"fill of account {fill.account_id} applied to {self.account_id}")
        quote = fill.quote_currency
        fee_in_quote = fill.fee if fill.fee_currency == quote else ZERO
        change = self.position(fill.product_id).apply_fill(
            fill.side, fill.size, fill.price, fee_in_quote, fill.time
        )
        self.positions[fill.product_id] = change.position
        self.cash[quote] = self.cash.get(quote, ZERO) - fill.side.sign * fill.notional
        self.cash[fill.fee_currency] = self.cash.get(fill.fee_currency, ZERO) - fill.fee
        net = change.realized_pnl - fee_in_quote
        self.daily_pnl = self.daily_pnl.add(net, fill.time)
        if change.is_closing_trade:
            self.loss_streak = self.loss_streak.after_trade(net, fill.time)
        return FillEffect(change, self.daily_pnl.on(fill.time), self.loss_streak)

    def mark(self, product_id: str, price: Decimal, time: datetime) -> Position | None:
        """Mark an existing position to ``price``; None when the account has none."""
        existing = self.positions.get(product_id)
        if existing is None:
            return None
        marked = existing.marked(price, time)
        self.positions[product_id] = marked
        return marked

    def revalue(
        self,
        now: datetime,
        rates: Mapping[str, Decimal] | None = None,
        open_order_count: int = 0,
    ) -> PortfolioSnapshot:
        """Value the account at the current marks and raise the equity peak if exceeded."""
        rates = dict(rates or {})
        rates[self.valuation_currency] = Decimal(1)
        unpriced: set[str] = set()

        def convert(amount: Decimal, currency: str) -> Decimal:
            rate = rates.get(currency)
            if rate is None:
                if amount != 0:
                    unpriced.add(currency)
                return ZERO
            return amount * rate

        cash_value = sum((convert(a, c) for c, a in self.cash.items()), ZERO)
        gross = net = realized = unrealized = fees = ZERO
        open_count = 0
        for p in self.positions.values():
            quote = p.product_id.rpartition("-")[2]
            notional = convert(p.notional, quote)
            gross += abs(notional)
            net += notional
            realized += convert(p.realized_pnl, quote)
            unrealized += convert(p.unrealized_pnl, quote)
            fees += convert(p.fees_paid, quote)
            open_count += p.is_open
        equity = cash_value + net
        peak = equity if self.peak_equity is None else max(self.peak_equity, equity)
        self.peak_equity = peak
        return PortfolioSnapshot(
            account_id=self.account_id,
            valuation_currency=self.valuation_currency,
            cash=tuple(sorted(self.cash.items())),
            equity=equity,
            gross_exposure=gross,
            net_exposure=net,
            realized_pnl=realized,
            unrealized_pnl=unrealized,
            daily_realized_pnl=self.daily_pnl.on(now),
            fees_paid=fees,
            peak_equity=peak,
            drawdown=drawdown(peak, equity),
            open_position_count=open_count,
            open_order_count=open_order_count,
            as_of=now,
            unpriced_currencies=tuple(sorted(unpriced)),
        )


def drawdown(peak: Decimal, equity: Decimal) -> Decimal:
    """(peak - equity) / peak as a fraction; 0 when there is no positive peak or no loss."""
    if peak <= 0 or equity >= peak:
        return ZERO
    return (peak - equity) / peak
