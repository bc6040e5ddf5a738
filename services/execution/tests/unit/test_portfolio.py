"""Portfolio: cash, equity, exposure, equity peak and drawdown, daily P&L and loss streaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.portfolio import DailyPnl, LossStreak, Portfolio, drawdown
from tradeplane.execution.domain.values import Side, Venue

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal
_n = 0


def fill(
    side: Side,
    size: str,
    price: str,
    fee: str = "0",
    product: str = "BTC-USD",
    at: datetime = T0,
    fee_currency: str | None = None,
) -> Fill:
    global _n
    _n += 1
    return Fill(
        fill_id=f"f{_n}",
        venue_trade_id=f"t{_n}",
        order_id="o",
        client_order_id="c",
        account_id="acct",
        venue=Venue.PAPER,
        product_id=product,
        side=side,
        price=D(price),
        size=D(size),
        fee=D(fee),
        fee_currency=fee_currency or product.split("-")[1],
        time=at,
    )


def test_cash_equity_and_exposure() -> None:
    pf = Portfolio("acct", cash={"USD": D("10000")})
    effect = pf.apply_fill(fill(Side.BUY, "1", "100", fee="1"))
    assert effect.position.quantity == 1
    assert pf.cash["USD"] == D("9899")
    pf.mark("BTC-USD", D("110"), T0)
    s = pf.revalue(T0)
    assert s.equity == D("10009")  # 9899 + 1 * 110
    assert (s.gross_exposure, s.net_exposure) == (D("110"), D("110"))
    assert (s.unrealized_pnl, s.realized_pnl, s.fees_paid) == (D("10"), 0, D("1"))
    assert s.cash == (("USD", D("9899")),)
    assert s.open_position_count == 1 and s.peak_equity == D("10009") and s.drawdown == 0


def test_long_and_short_gross_vs_net() -> None:
    pf = Portfolio("acct", cash={"USD": D("1000")})
    pf.apply_fill(fill(Side.BUY, "1", "100"))
    pf.apply_fill(fill(Side.SELL, "2", "25", product="ETH-USD"))
    pf.mark("BTC-USD", D("110"), T0)
    pf.mark("ETH-USD", D("30"), T0)
    s = pf.revalue(T0, open_order_count=3)
    # cash 1000 - 100 + 50 = 950; positions +110 and -60
    assert s.equity == D("1000") and s.gross_exposure == D("170") and s.net_exposure == D("50")
    assert s.unrealized_pnl == D("10") + D("-10")
    assert s.open_position_count == 2 and s.open_order_count == 3


def test_peak_and_drawdown_follow_revaluations() -> None:
    pf = Portfolio("acct", cash={"USD": D("900")})
    pf.apply_fill(fill(Side.BUY, "1", "100"))  # cash 800
    pf.mark("BTC-USD", D("200"), T0)
    assert pf.revalue(T0).peak_equity == D("1000")
    pf.mark("BTC-USD", D("150"), T0)
    s = pf.revalue(T0)
    assert (s.equity, s.peak_equity, s.drawdown) == (D("950"), D("1000"), D("0.05"))
    pf.mark("BTC-USD", D("300"), T0)
    s = pf.revalue(T0)
    assert (s.peak_equity, s.drawdown) == (D("1100"), 0)


def test_peak_can_be_restored() -> None:
    pf = Portfolio("acct", cash={"USD": D("500")}, peak_equity=D("1000"))
    s = pf.revalue(T0)
    assert s.peak_equity == D("1000") and s.drawdown == D("0.5")


def test_drawdown_helper() -> None:
    assert drawdown(D("0"), D("-5")) == 0
    assert drawdown(D("100"), D("120")) == 0
    assert drawdown(D("200"), D("150")) == D("0.25")


def test_other_quote_currencies_need_a_rate() -> None:
    pf = Portfolio("acct", cash={"USD": D("1000"), "BTC": D("1")})
    pf.apply_fill(fill(Side.BUY, "10", "0.05", product="ETH-BTC"))  # BTC cash 1 - 0.5
    pf.mark("ETH-BTC", D("0.06"), T0)
    s = pf.revalue(T0)
    assert s.equity == D("1000") and s.unpriced_currencies == ("BTC",)
    s = pf.revalue(T0, rates={"BTC": D("50000")})
    # 1000 + 0.5 BTC cash + 10 * 0.06 BTC position = 1000 + 1.1 * 50000
    assert s.equity == D("56000") and s.unpriced_currencies == ()
    assert s.gross_exposure == D("30000") and s.unrealized_pnl == D("5000")


def test_fee_in_another_currency_is_paid_from_that_cash() -> None:
    pf = Portfolio("acct", cash={"USD": D("100"), "BTC": D("1")})
    pf.apply_fill(fill(Side.BUY, "0.5", "100", fee="0.001", fee_currency="BTC"))
    assert pf.cash == {"USD": D("50"), "BTC": D("0.999")}
    assert pf.position("BTC-USD").fees_paid == 0  # only quote-currency fees are position fees


def test_daily_realized_pnl_is_net_of_fees_and_resets_each_utc_day() -> None:
    pf = Portfolio("acct")
    pf.apply_fill(fill(Side.BUY, "2", "100", fee="1", at=T0))
    eff = pf.apply_fill(fill(Side.SELL, "1", "90", fee="1", at=T0 + timedelta(hours=1)))
    # opening fee -1, closing loss -10 and fee -1
    assert eff.daily_realized_pnl == D("-12")
    assert pf.revalue(T0 + timedelta(hours=2)).daily_realized_pnl == D("-12")
    next_day = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    assert pf.revalue(next_day).daily_realized_pnl == 0
    pf.apply_fill(fill(Side.SELL, "1", "105", fee="1", at=next_day))
    assert pf.revalue(next_day).daily_realized_pnl == D("4")
    # A late fill from the previous day does not change today's figure.
    pf.apply_fill(fill(Side.BUY, "1", "100", fee="1", at=T0 + timedelta(hours=3)))
    assert pf.revalue(next_day).daily_realized_pnl == D("4")
    s = pf.revalue(next_day)
    assert s.realized_pnl == D("-5") and s.fees_paid == D("4")


def test_daily_pnl_uses_the_utc_date() -> None:
    from datetime import timezone

    tz = timezone(timedelta(hours=-5))
    late_evening = datetime(2026, 3, 10, 22, 0, tzinfo=tz)  # 03:00 UTC on the 11th
    d = DailyPnl().add(D("-3"), late_evening)
    assert d.day is not None and d.day.isoformat() == "2026-03-11"
    assert d.on(datetime(2026, 3, 11, 1, 0, tzinfo=UTC)) == D("-3")


def test_loss_streak_counts_losing_closing_trades() -> None:
    pf = Portfolio("acct")
    pf.apply_fill(fill(Side.BUY, "3", "100", at=T0))
    assert pf.loss_streak == LossStreak()  # opening fills are not trades
    pf.apply_fill(fill(Side.SELL, "1", "99", at=T0 + timedelta(minutes=1)))
    pf.apply_fill(fill(Side.SELL, "1", "98", at=T0 + timedelta(minutes=2)))
    assert pf.loss_streak == LossStreak(2, T0 + timedelta(minutes=2))
    # Break-even before fees is a loss after them.
    pf.apply_fill(fill(Side.SELL, "0.5", "100", fee="0.01", at=T0 + timedelta(minutes=3)))
    assert pf.loss_streak.count == 3
    # A winner ends the streak.
    pf.apply_fill(fill(Side.SELL, "0.5", "101", at=T0 + timedelta(minutes=4)))
    assert pf.loss_streak == LossStreak()


def test_fill_of_another_account_is_refused() -> None:
    with pytest.raises(ValueError):
        Portfolio("other").apply_fill(fill(Side.BUY, "1", "1"))


def test_mark_without_position_does_nothing() -> None:
    pf = Portfolio("acct")
    assert pf.mark("BTC-USD", D("1"), T0) is None
    assert pf.positions == {}
    assert pf.position("BTC-USD").quantity == 0
