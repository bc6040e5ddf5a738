"""The pre-trade risk engine: every rule passes and blocks with its numbers, in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import (
    BracketSpec,
    OrderRequest,
    OrderSpec,
    validate_order_request,
)
from tradeplane.execution.domain.portfolio import LossStreak, Portfolio
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.risk import (
    RULE_ORDER,
    Block,
    OrderBlocked,
    RiskBlock,
    RiskContext,
    RiskLimits,
    RiskOk,
    RiskRule,
    check_order,
    order_impact,
)
from tradeplane.execution.domain.trading_state import TradingState
from tradeplane.execution.domain.values import OrderType, Side, Venue
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
D = Decimal
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def order(
    side: Side = Side.BUY, size: str | None = "1", price: str | None = "100", **kw: object
) -> OrderSpec:
    otype = kw.pop("type", OrderType.LIMIT if price is not None else OrderType.MARKET)
    r = OrderRequest(
        account_id="acct",
        client_order_id="c-1",
        product_id="BTC-USD",
        side=side,
        type=otype,  # type: ignore[arg-type]
        base_size=None if size is None else D(size),
        limit_price=None if price is None else D(price),
    )
    return validate_order_request(
        replace(r, **kw),
        ProductRules.simple("BTC-USD"),
        T0,  # type: ignore[arg-type]
        Venue.PAPER,
    )


def ctx(**kw: object) -> RiskContext:
    base: dict[str, object] = {"now": T0, "last_trade_price": D("100")}
    base.update(kw)
    return RiskContext(**base)  # type: ignore[arg-type]


def limits(**kw: object) -> RiskLimits:
    return RiskLimits(account_id="acct", **kw)  # type: ignore[arg-type]


def blocked(spec: OrderSpec, lim: RiskLimits, c: RiskContext) -> RiskBlock:
    decision = check_order(spec, lim, c)
    assert isinstance(decision, RiskBlock), decision
    assert not decision.ok
    return decision


def passes(spec: OrderSpec, lim: RiskLimits, c: RiskContext) -> None:
    decision = check_order(spec, lim, c)
    assert isinstance(decision, RiskOk), decision
    assert decision.ok


def numbers(b: RiskBlock) -> tuple[RiskRule, str, str]:
    return (b.rule, b.limit, b.actual)


# --- no limits ------------------------------------------------------------------------------


def test_no_limits_pass_everything() -> None:
    decision = check_order(order(size="1000000"), limits(), ctx())
    assert decision == RiskOk(D("100"))
    passes(order(price=None, type=OrderType.MARKET), limits(), ctx(last_trade_price=None))


# --- trading state ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("global_state", "account_state", "scope"),
    [(H, A, "global"), (A, H, "account"), (H, R, "global"), (R, H, "account")],
)
def test_halted_blocks_everything(
    global_state: TradingState, account_state: TradingState, scope: str
) -> None:
    c = ctx(global_state=global_state, account_state=account_state, position=D("5"))
    for spec in (
        order(),
        order(Side.SELL, "1"),
        order(Side.SELL, "5", None, type=OrderType.MARKET),
    ):
        b = blocked(spec, limits(), c)
        assert numbers(b) == (RiskRule.TRADING_HALTED, "HALTED", scope)
        assert "HALTED" in b.reason


@pytest.mark.parametrize("state", [(R, A), (A, R), (R, R)])
def test_reducing_allows_only_position_shrinking_orders(
    state: tuple[TradingState, TradingState],
) -> None:
    g, a = state
    long = ctx(global_state=g, account_state=a, position=D("2"))
    passes(order(Side.SELL, "1"), limits(), long)
    passes(order(Side.SELL, "2"), limits(), long)  # closes exactly
    b = blocked(order(Side.SELL, "3"), limits(), long)  # would flip to short
    assert numbers(b) == (RiskRule.REDUCE_ONLY, "2", "3")
    b = blocked(order(Side.BUY, "0.1"), limits(), long)  # adds
    assert numbers(b) == (RiskRule.REDUCE_ONLY, "2", "0.1")
    # Open orders on the same side count: 1 + 1.5 open would exceed the 2 held.
    b = blocked(order(Side.SELL, "1"), limits(), replace(long, open_sell_size=D("1.5")))
    assert numbers(b) == (RiskRule.REDUCE_ONLY, "2", "2.5")
    # Short positions shrink with buys.
    short = replace(long, position=D("-2"))
    passes(order(Side.BUY, "2"), limits(), short)
    assert blocked(order(Side.SELL, "1"), limits(), short).rule is RiskRule.REDUCE_ONLY
    # Flat: nothing can shrink.
    b = blocked(order(Side.SELL, "1"), limits(), replace(long, position=D("0")))
    assert numbers(b) == (RiskRule.REDUCE_ONLY, "0", "1")


def test_exit_only_bracket_reduces_a_long() -> None:
    spec = order(
        Side.SELL,
        "2",
        None,
        type=OrderType.BRACKET,
        bracket=BracketSpec(D("120"), D("90"), exit_only=True),
    )
    passes(spec, limits(), ctx(account_state=R, position=D("2")))
    entry = order(
        Side.BUY, "1", "100", type=OrderType.BRACKET, bracket=BracketSpec(D("120"), D("90"))
    )
    assert blocked(entry, limits(), ctx(account_state=R, position=D("2"))).rule is (
        RiskRule.REDUCE_ONLY
    )


# --- venue, allow-list ------------------------------------------------------------------------


def test_unreconciled_venue_blocks() -> None:
    b = blocked(order(), limits(), ctx(venue_reconciled=False))
    assert numbers(b) == (RiskRule.VENUE_UNRECONCILED, "reconciled", "unreconciled")
    assert "PAPER" in b.reason


def test_product_allow_list() -> None:
    lim = limits(allowed_product_ids=frozenset({"SOL-USD", "ETH-USD"}))
    b = blocked(order(), lim, ctx())
    assert numbers(b) == (RiskRule.PRODUCT_NOT_ALLOWED, "ETH-USD,SOL-USD", "BTC-USD")
    passes(order(), limits(allowed_product_ids=frozenset({"BTC-USD"})), ctx())


# --- price band ---------------------------------------------------------------------------


def test_price_band() -> None:
    lim = limits(price_band=D("0.05"))
    passes(order(price="105"), lim, ctx())  # exactly at the band
    passes(order(price="95"), lim, ctx())
    b = blocked(order(price="105.01"), lim, ctx())
    assert numbers(b) == (RiskRule.PRICE_BAND, "0.05", "0.0501")
    assert b.price == D("105.01")
    b = blocked(order(Side.SELL, price="94.99"), lim, ctx())
    assert numbers(b) == (RiskRule.PRICE_BAND, "0.05", "0.0501")
    # A fat finger: 10x the price.
    assert blocked(order(price="1000"), lim, ctx()).actual == "9"
    # Market orders trade at the last price.
    passes(order(price=None, type=OrderType.MARKET), lim, ctx())


def test_band_deviation_is_rounded_up_never_down() -> None:
    b = blocked(order(price="103.01"), limits(price_band=D("0.03")), ctx())
    # |103.01 - 100| / 100 = 0.0301
    assert b.actual == "0.0301"
    b = blocked(order(price="1"), limits(price_band=D("0.1")), ctx(last_trade_price=D("3")))
    assert b.actual == "0.66666667"


def test_missing_reference_price_blocks_when_one_is_needed() -> None:
    no_last = ctx(last_trade_price=None)
    b = blocked(order(), limits(price_band=D("0.05")), no_last)
    assert numbers(b) == (RiskRule.PRICE_BAND, "0.05", "")
    assert "no last trade price" in b.reason
    quote_sized = order(size=None, price=None, type=OrderType.MARKET, quote_size=D("50"))
    assert blocked(quote_sized, limits(), no_last).rule is RiskRule.PRICE_BAND
    market = order(price=None, type=OrderType.MARKET)
    assert blocked(market, limits(max_order_notional=D("10")), no_last).rule is (
        RiskRule.PRICE_BAND
    )
    # A limit order carries its own price for the notional check.
    passes(order(), limits(max_order_notional=D("1000")), no_last)


# --- notional, position, exposure -----------------------------------------------------------


def test_max_order_notional() -> None:
    lim = limits(max_order_notional=D("1000"))
    passes(order(size="10"), lim, ctx())
    b = blocked(order(size="10.01"), lim, ctx())
    assert numbers(b) == (RiskRule.MAX_ORDER_NOTIONAL, "1000", "1001")
    # Market orders are valued at the last trade.
    b = blocked(
        order(size="11", price=None, type=OrderType.MARKET), lim, ctx(last_trade_price=D("99"))
    )
    assert numbers(b) == (RiskRule.MAX_ORDER_NOTIONAL, "1000", "1089")
    # Quote-sized: the quote size itself.
    qs = order(size=None, price=None, type=OrderType.MARKET, quote_size=D("1500"))
    assert numbers(blocked(qs, lim, ctx())) == (RiskRule.MAX_ORDER_NOTIONAL, "1000", "1500")
    # Converted into the valuation currency.
    b = blocked(order(size="6"), lim, ctx(quote_rate=D("2")))
    assert numbers(b) == (RiskRule.MAX_ORDER_NOTIONAL, "1000", "1200")
    # The notional limit applies to reducing orders too (fat finger on size).
    assert blocked(order(Side.SELL, "11"), lim, ctx(position=D("20"))).rule is (
        RiskRule.MAX_ORDER_NOTIONAL
    )


def test_max_position_counts_open_orders() -> None:
    lim = limits(max_position=D("5"))
    c = ctx(position=D("3"), open_buy_size=D("1"))
    passes(order(size="1"), lim, c)
    b = blocked(order(size="1.01"), lim, c)
    assert numbers(b) == (RiskRule.MAX_POSITION, "5", "5.01")
    # Shorts are measured by absolute size.
    b = blocked(order(Side.SELL, "3"), lim, ctx(position=D("-3")))
    assert numbers(b) == (RiskRule.MAX_POSITION, "5", "6")
    # Reducing an oversized position is allowed.
    passes(order(Side.SELL, "2"), lim, ctx(position=D("8")))
    # A flip beyond the limit is not a reduction.
    b = blocked(order(Side.SELL, "14"), lim, ctx(position=D("8")))
    assert numbers(b) == (RiskRule.MAX_POSITION, "5", "6")


def test_max_position_per_product_override() -> None:
    lim = limits(max_position=D("5"), max_position_by_product={"BTC-USD": D("1")})
    assert numbers(blocked(order(size="2"), lim, ctx())) == (RiskRule.MAX_POSITION, "1", "2")
    assert lim.position_limit("ETH-USD") == D("5")


def test_max_gross_exposure() -> None:
    lim = limits(max_gross_exposure=D("1000"))
    # Gross 800 includes this product's 2 @ 100.
    c = ctx(position=D("2"), gross_exposure=D("800"))
    passes(order(size="2"), lim, c)  # 800 - 200 + 400 = 1000
    b = blocked(order(size="3"), lim, c)
    assert numbers(b) == (RiskRule.MAX_GROSS_EXPOSURE, "1000", "1100")
    # Reducing is fine even when gross is above the limit already.
    passes(order(Side.SELL, "1"), lim, replace(c, gross_exposure=D("5000")))


# --- breakers -------------------------------------------------------------------------------


def test_daily_loss_limit() -> None:
    lim = limits(daily_loss_limit=D("500"))
    passes(order(), lim, ctx(daily_realized_pnl=D("-499.99")))
    b = blocked(order(), lim, ctx(daily_realized_pnl=D("-500")))
    assert numbers(b) == (RiskRule.DAILY_LOSS, "500", "500")
    b = blocked(order(), lim, ctx(daily_realized_pnl=D("-750.5")))
    assert numbers(b) == (RiskRule.DAILY_LOSS, "500", "750.5")
    passes(order(Side.SELL, "1"), lim, ctx(daily_realized_pnl=D("-750"), position=D("1")))
    passes(order(), lim, ctx(daily_realized_pnl=D("300")))
    # A zero limit stops new risk after any loss, but not on a flat or winning day.
    passes(order(), limits(daily_loss_limit=D("0")), ctx(daily_realized_pnl=D("0")))
    assert (
        blocked(order(), limits(daily_loss_limit=D("0")), ctx(daily_realized_pnl=D("-0.01"))).rule
        is RiskRule.DAILY_LOSS
    )


def test_drawdown_breaker() -> None:
    lim = limits(max_drawdown=D("0.1"))
    passes(order(), lim, ctx(peak_equity=D("1000"), equity=D("900.01")))
    b = blocked(order(), lim, ctx(peak_equity=D("1000"), equity=D("900")))
    assert numbers(b) == (RiskRule.DRAWDOWN, "0.1", "0.1")
    b = blocked(order(), lim, ctx(peak_equity=D("1000"), equity=D("750")))
    assert numbers(b) == (RiskRule.DRAWDOWN, "0.1", "0.25")
    passes(order(Side.SELL, "1"), lim, ctx(peak_equity=D("1000"), equity=D("750"), position=D("1")))
    passes(order(), lim, ctx())  # no valuation yet
    passes(order(), lim, ctx(peak_equity=D("0"), equity=D("-5")))


def test_loss_cooldown() -> None:
    lim = limits(loss_streak_limit=3, loss_cooldown=timedelta(hours=1))
    streak = LossStreak(3, T0 - timedelta(minutes=30))
    b = blocked(order(), lim, ctx(loss_streak=streak))
    assert numbers(b) == (RiskRule.LOSS_COOLDOWN, "3", "3")
    assert "until 2026-03-10T12:30:00+00:00" in b.reason
    passes(order(), lim, ctx(loss_streak=LossStreak(2, T0)))
    passes(order(), lim, ctx(loss_streak=LossStreak(3, T0 - timedelta(hours=1))))  # served
    passes(order(Side.SELL, "1"), lim, ctx(loss_streak=streak, position=D("1")))
    assert blocked(order(), lim, ctx(loss_streak=LossStreak(5, T0))).actual == "5"
    passes(order(), limits(), ctx(loss_streak=LossStreak(99, T0)))  # disabled


# --- order of rules -----------------------------------------------------------------------


def test_rules_are_checked_in_the_documented_order() -> None:
    assert [rule for rule, _ in RULE_ORDER] == [
        RiskRule.TRADING_HALTED,
        RiskRule.VENUE_UNRECONCILED,
        RiskRule.PRODUCT_NOT_ALLOWED,
        RiskRule.PRICE_BAND,
        RiskRule.REDUCE_ONLY,
        RiskRule.MAX_ORDER_NOTIONAL,
        RiskRule.MAX_POSITION,
        RiskRule.MAX_GROSS_EXPOSURE,
        RiskRule.DAILY_LOSS,
        RiskRule.DRAWDOWN,
        RiskRule.LOSS_COOLDOWN,
    ]
    assert {rule for rule, _ in RULE_ORDER} == set(RiskRule)
    # One order that breaks every rule; fixing the reported one reveals the next.
    spec = order(size="10", price="200")
    lim = limits(
        allowed_product_ids=frozenset({"ETH-USD"}),
        price_band=D("0.05"),
        max_order_notional=D("100"),
        max_position=D("1"),
        max_gross_exposure=D("100"),
        daily_loss_limit=D("10"),
        max_drawdown=D("0.1"),
        loss_streak_limit=2,
        loss_cooldown=timedelta(hours=1),
    )
    c = ctx(
        global_state=H,
        venue_reconciled=False,
        account_state=R,
        daily_realized_pnl=D("-50"),
        equity=D("500"),
        peak_equity=D("1000"),
        loss_streak=LossStreak(2, T0),
    )
    fixes = [
        (RiskRule.TRADING_HALTED, lambda lm, cx, s: (lm, replace(cx, global_state=A), s)),
        (
            RiskRule.VENUE_UNRECONCILED,
            lambda lm, cx, s: (lm, replace(cx, venue_reconciled=True), s),
        ),
        (
            RiskRule.PRODUCT_NOT_ALLOWED,
            lambda lm, cx, s: (replace(lm, allowed_product_ids=frozenset()), cx, s),
        ),
        (RiskRule.PRICE_BAND, lambda lm, cx, s: (lm, cx, replace(s, limit_price=D("100")))),
        (RiskRule.REDUCE_ONLY, lambda lm, cx, s: (lm, replace(cx, account_state=A), s)),
        (
            RiskRule.MAX_ORDER_NOTIONAL,
            lambda lm, cx, s: (replace(lm, max_order_notional=None), cx, s),
        ),
        (RiskRule.MAX_POSITION, lambda lm, cx, s: (replace(lm, max_position=None), cx, s)),
        (
            RiskRule.MAX_GROSS_EXPOSURE,
            lambda lm, cx, s: (replace(lm, max_gross_exposure=None), cx, s),
        ),
        (RiskRule.DAILY_LOSS, lambda lm, cx, s: (lm, replace(cx, daily_realized_pnl=D(0)), s)),
        (RiskRule.DRAWDOWN, lambda lm, cx, s: (lm, replace(cx, equity=D("1000")), s)),
        (RiskRule.LOSS_COOLDOWN, lambda lm, cx, s: (lm, replace(cx, loss_streak=LossStreak()), s)),
    ]
    for expected, fix in fixes:
        assert blocked(spec, lim, c).rule is expected
        lim, c, spec = fix(lim, c, spec)
    passes(spec, lim, c)


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"account_id": ""}, "account_id"),
        ({"max_order_notional": D("-1")}, "max_order_notional"),
        ({"max_position": D("NaN")}, "max_position"),
        ({"max_gross_exposure": D("-0.01")}, "max_gross_exposure"),
        ({"daily_loss_limit": D("-5")}, "daily_loss_limit"),
        ({"max_position_by_product": {"BTC-USD": D("-1")}}, "max_position_by_product[BTC-USD]"),
        ({"max_position_by_product": {"": D("1")}}, "max_position_by_product"),
        ({"price_band": D("0")}, "price_band"),
        ({"max_drawdown": D("0")}, "max_drawdown"),
        ({"max_drawdown": D("1.5")}, "max_drawdown"),
        ({"loss_streak_limit": -1}, "loss_streak_limit"),
        ({"loss_cooldown": timedelta(seconds=-1)}, "loss_cooldown"),
        ({"loss_streak_limit": 3}, "loss_cooldown"),
        ({"allowed_product_ids": frozenset({""})}, "allowed_product_ids"),
    ],
)
def test_invalid_limits_name_their_field(kw: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"account_id": "acct"}
    base.update(kw)
    with pytest.raises(InvalidArgument) as info:
        RiskLimits(**base)  # type: ignore[arg-type]
    assert info.value.field == field


def test_zero_limits_are_valid_and_mean_nothing_allowed() -> None:
    lim = limits(max_position=D("0"), max_drawdown=D("1"))
    assert blocked(order(), lim, ctx()).rule is RiskRule.MAX_POSITION


def test_order_impact() -> None:
    imp = order_impact(order(Side.SELL, "1"), ctx(position=D("3"), open_sell_size=D("1")))
    assert imp.reduces and imp.worst_position == D("1") and imp.price == D("100")
    qs = order(size=None, price=None, type=OrderType.MARKET, quote_size=D("250"))
    imp = order_impact(qs, ctx(last_trade_price=D("50")))
    assert imp.size == D("5") and not imp.reduces


def test_context_from_portfolio() -> None:
    pf = Portfolio("acct", cash={"USD": D("1000")}, peak_equity=D("2000"))
    pf.apply_fill(
        Fill(
            fill_id="f",
            venue_trade_id="t",
            order_id="o",
            client_order_id="c",
            account_id="acct",
            venue=Venue.PAPER,
            product_id="BTC-USD",
            side=Side.BUY,
            price=D("100"),
            size=D("2"),
            fee=D("1"),
            fee_currency="USD",
            time=T0,
        )
    )
    snap = pf.revalue(T0)
    c = RiskContext.from_portfolio(
        pf, snap, "BTC-USD", account_state=R, last_trade_price=D("101"), open_sell_size=D("1")
    )
    assert (c.position, c.equity, c.peak_equity, c.gross_exposure) == (
        D("2"),
        D("999"),
        D("2000"),
        D("200"),
    )
    assert c.daily_realized_pnl == D("-1") and c.trading_state is R and c.now == T0
    assert c.open_sell_size == D("1") and c.last_trade_price == D("101")
    passes(order(Side.SELL, "1"), limits(), c)


def test_block_record_and_error() -> None:
    spec = order(size="10.01", strategy_instance_id="s-1")
    refusal = blocked(spec, limits(max_order_notional=D("1000")), ctx())
    block = Block.record("b-1", spec, refusal, T0, decision_id="d-1")
    assert (block.block_id, block.account_id, block.client_order_id, block.product_id) == (
        "b-1",
        "acct",
        "c-1",
        "BTC-USD",
    )
    assert (block.side, block.type, block.base_size, block.price) == (
        Side.BUY,
        OrderType.LIMIT,
        D("10.01"),
        D("100"),
    )
    assert (block.rule, block.limit, block.actual) == (RiskRule.MAX_ORDER_NOTIONAL, "1000", "1001")
    assert (block.strategy_instance_id, block.decision_id, block.time) == ("s-1", "d-1", T0)
    err = OrderBlocked(refusal)
    assert isinstance(err, FailedPrecondition) and err.block is refusal
    assert err.status_message().startswith("blocked by risk rule MAX_ORDER_NOTIONAL: ")
