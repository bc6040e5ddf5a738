"""The pre-trade risk engine: pure rules checked before every order.

``check_order(spec, limits, context)`` returns ``RiskOk`` or the ``RiskBlock`` of the FIRST
failing rule, in this order (``RULE_ORDER``):

 1. TRADING_HALTED        the state in force (stricter of account and global) is HALTED
 2. VENUE_UNRECONCILED    the venue has an unresolved reconciliation mismatch
 3. PRODUCT_NOT_ALLOWED   product not in a non-empty allow-list
 4. PRICE_BAND            order price further than ``price_band`` (fraction) from the last
                          trade; also refuses orders that need a reference price and have
                          none (quote-sized, or a band/notional/exposure limit to check)
 5. REDUCE_ONLY           state REDUCING and the order would not shrink the position
 6. MAX_ORDER_NOTIONAL    size * price (in the valuation currency) above the limit
 7. MAX_POSITION          |position if this and every open order on its side fill| above
                          the product's limit
 8. MAX_GROSS_EXPOSURE    gross exposure after that worst case above the limit
 9. DAILY_LOSS            today's net realised loss at or beyond the limit
10. DRAWDOWN              drawdown from the equity peak at or beyond ``max_drawdown``
11. LOSS_COOLDOWN         ``loss_streak_limit`` losing trades in a row, and the last one
                          less than ``loss_cooldown`` ago (each further loss restarts it; a
                          closing trade that is not a loss ends the streak)

Rules 7-11 never refuse an order that only shrinks the position (opposite side, and its size
plus the open orders on its side at most the position): reducing risk is always allowed
unless trading is HALTED. ``None`` limits are "no limit".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal
from enum import StrEnum

from tradeplane.execution.domain.decimals import ZERO, format_decimal
from tradeplane.execution.domain.orders import OrderSpec
from tradeplane.execution.domain.portfolio import LossStreak, Portfolio, PortfolioSnapshot
from tradeplane.execution.domain.trading_state import TradingState, effective_state
from tradeplane.execution.domain.values import OrderType, Side
from tradeplane.runtime.errors import FailedPrecondition, InvalidArgument


class RiskRule(StrEnum):
    """Names equal ``trading.execution.v1.RiskRule`` without the ``RISK_RULE_`` prefix."""

    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    DAILY_LOSS = "DAILY_LOSS"
    PRICE_BAND = "PRICE_BAND"
    PRODUCT_NOT_ALLOWED = "PRODUCT_NOT_ALLOWED"
    DRAWDOWN = "DRAWDOWN"
    LOSS_COOLDOWN = "LOSS_COOLDOWN"
    TRADING_HALTED = "TRADING_HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    VENUE_UNRECONCILED = "VENUE_UNRECONCILED"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-account limits (maps onto ``RiskLimits``). Construction validates every field and
    raises InvalidArgument naming it, so SetRiskLimits can build one straight from input."""

    account_id: str
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_position_by_product: Mapping[str, Decimal] = field(default_factory=dict, hash=False)
    max_gross_exposure: Decimal | None = None
    daily_loss_limit: Decimal | None = None
    price_band: Decimal | None = None
    allowed_product_ids: frozenset[str] = frozenset()
    max_drawdown: Decimal | None = None
    loss_streak_limit: int = 0
    loss_cooldown: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not self.account_id:
            raise InvalidArgument("account_id", "required")
        for name in ("max_order_notional", "max_position", "max_gross_exposure"):
            _non_negative(name, getattr(self, name))
        _non_negative("daily_loss_limit", self.daily_loss_limit)
        for product_id, limit in self.max_position_by_product.items():
            if not product_id:
                raise InvalidArgument("max_position_by_product", "empty product id")
            _non_negative(f"max_position_by_product[{product_id}]", limit)
        if self.price_band is not None and not (self.price_band > 0):
            raise InvalidArgument(
                "price_band", f"must be a positive fraction, got {self.price_band}"
            )
        if self.max_drawdown is not None and not (0 < self.max_drawdown <= 1):
            raise InvalidArgument(
                "max_drawdown", f"must be a fraction in (0, 1], got {self.max_drawdown}"
            )
        if self.loss_streak_limit < 0:
            raise InvalidArgument("loss_streak_limit", "must not be negative")
        if self.loss_cooldown < timedelta(0):
            raise InvalidArgument("loss_cooldown", "must not be negative")
        if self.loss_streak_limit > 0 and self.loss_cooldown == timedelta(0):
            raise InvalidArgument("loss_cooldown", "required when loss_streak_limit is set")
        if "" in self.allowed_product_ids:
            raise InvalidArgument("allowed_product_ids", "empty product id")

    def position_limit(self, product_id: str) -> Decimal | None:
        return self.max_position_by_product.get(product_id, self.max_position)


def _non_negative(name: str, value: Decimal | None) -> None:
    if value is not None and (not value.is_finite() or value < 0):
        raise InvalidArgument(name, f"must be a non-negative number, got {value}")


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the rules need to know about the world when the order arrives. Money amounts are
    in the account's valuation currency; ``quote_rate`` converts the product's quote currency
    into it (1 when they are the same)."""

    now: datetime
    global_state: TradingState = TradingState.ACTIVE
    account_state: TradingState = TradingState.ACTIVE
    venue_reconciled: bool = True
    position: Decimal = ZERO  # signed, base currency
    open_buy_size: Decimal = ZERO  # working buy orders of this product, base currency
    open_sell_size: Decimal = ZERO
    last_trade_price: Decimal | None = None
    quote_rate: Decimal = Decimal(1)
    gross_exposure: Decimal = ZERO
    daily_realized_pnl: Decimal = ZERO
    equity: Decimal | None = None
    peak_equity: Decimal | None = None
    loss_streak: LossStreak = field(default_factory=LossStreak)

    @property
    def trading_state(self) -> TradingState:
        return effective_state(self.global_state, self.account_state)

    @classmethod
    def from_portfolio(
        cls,
        portfolio: Portfolio,
        snapshot: PortfolioSnapshot,
        product_id: str,
        *,
        global_state: TradingState = TradingState.ACTIVE,
        account_state: TradingState = TradingState.ACTIVE,
        venue_reconciled: bool = True,
        last_trade_price: Decimal | None = None,
        open_buy_size: Decimal = ZERO,
        open_sell_size: Decimal = ZERO,
        quote_rate: Decimal = Decimal(1),
    ) -> RiskContext:
        return cls(
            now=snapshot.as_of,
            global_state=global_state,
            account_state=account_state,
            venue_reconciled=venue_reconciled,
            position=portfolio.position(product_id).quantity,
            open_buy_size=open_buy_size,
            open_sell_size=open_sell_size,
            last_trade_price=last_trade_price,
            quote_rate=quote_rate,
            gross_exposure=snapshot.gross_exposure,
            daily_realized_pnl=snapshot.daily_realized_pnl,
            equity=snapshot.equity,
            peak_equity=snapshot.peak_equity,
            loss_streak=portfolio.loss_streak,
        )


@dataclass(frozen=True, slots=True)
class RiskOk:
    """The order passed every rule. ``price`` is the reference price the checks used."""

    price: Decimal | None = None

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class RiskBlock:
    """The first rule that refused the order, why, and its numbers as decimal strings
    (``limit`` the configured limit, ``actual`` the value that broke it)."""

    rule: RiskRule
    reason: str
    limit: str
    actual: str
    price: Decimal | None = None

    @property
    def ok(self) -> bool:
        return False


RiskDecision = RiskOk | RiskBlock


@dataclass(frozen=True, slots=True)
class Block:
    """A refused order as recorded and published (maps onto ``Block``)."""

    block_id: str
    account_id: str
    client_order_id: str
    product_id: str
    side: Side
    type: OrderType
    base_size: Decimal | None
    price: Decimal | None
    rule: RiskRule
    reason: str
    limit: str
    actual: str
    time: datetime
    strategy_instance_id: str = ""
    decision_id: str = ""

    @classmethod
    def record(
        cls,
        block_id: str,
        spec: OrderSpec,
        refusal: RiskBlock,
        time: datetime,
        decision_id: str = "",
    ) -> Block:
        return cls(
            block_id=block_id,
            account_id=spec.account_id,
            client_order_id=spec.client_order_id,
            product_id=spec.product_id,
            side=spec.side,
            type=spec.type,
            base_size=spec.base_size,
            price=refusal.price,
            rule=refusal.rule,
            reason=refusal.reason,
            limit=refusal.limit,
            actual=refusal.actual,
            time=time,
            strategy_instance_id=spec.strategy_instance_id,
            decision_id=decision_id,
        )


class OrderBlocked(FailedPrecondition):
    """Raised by the service layer for a refused order (FAILED_PRECONDITION)."""

    def __init__(self, block: RiskBlock) -> None:
        super().__init__(f"blocked by risk rule {block.rule.value}: {block.reason}")
        self.block = block


@dataclass(frozen=True, slots=True)
class OrderImpact:
    """How an order would change the position, as the rules see it."""

    price: Decimal | None  # reference price: the limit price, else the last trade
    size: Decimal | None  # base size (estimated from quote_size at the reference price)
    open_same_side: Decimal  # working orders on the order's side
    position: Decimal
    reduces: bool  # only shrinks the position, even if every open order on its side fills
    direction: int  # +1 buy, -1 sell

    @property
    def worst_position(self) -> Decimal:
        """The position if this order and every open order on its side fill."""
        assert self.size is not None
        return self.position + self.direction * (self.open_same_side + self.size)


def order_impact(spec: OrderSpec, ctx: RiskContext) -> OrderImpact:
    price = spec.limit_price
    if price is None:
        price = ctx.last_trade_price
    if price is None and spec.bracket is not None and spec.bracket.exit_only:
        price = spec.bracket.take_profit_price
    size = spec.base_size
    if size is None and spec.quote_size is not None and price is not None:
        size = spec.quote_size / price
    open_same = ctx.open_buy_size if spec.side is Side.BUY else ctx.open_sell_size
    q = ctx.position
    reduces = (
        size is not None
        and q != 0
        and (q > 0) != (spec.side is Side.BUY)
        and size + open_same <= abs(q)
    )
    return OrderImpact(price, size, open_same, q, reduces, spec.side.sign)


Rule = Callable[[OrderSpec, RiskLimits, RiskContext, OrderImpact], RiskBlock | None]


def _halted(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    if ctx.trading_state is not TradingState.HALTED:
        return None
    scope = "global" if ctx.global_state is TradingState.HALTED else "account"
    return RiskBlock(
        RiskRule.TRADING_HALTED,
        f"trading is HALTED ({scope}); no orders are accepted",
        limit=TradingState.HALTED.value,
        actual=scope,
        price=imp.price,
    )


def _venue(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    if ctx.venue_reconciled:
        return None
    return RiskBlock(
        RiskRule.VENUE_UNRECONCILED,
        f"venue {spec.venue.value} has unresolved reconciliation mismatches",
        limit="reconciled",
        actual="unreconciled",
        price=imp.price,
    )


def _allow_list(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    if not lim.allowed_product_ids or spec.product_id in lim.allowed_product_ids:
        return None
    allowed = ",".join(sorted(lim.allowed_product_ids))
    return RiskBlock(
        RiskRule.PRODUCT_NOT_ALLOWED,
        f"{spec.product_id} is not in the allow-list ({allowed})",
        limit=allowed,
        actual=spec.product_id,
        price=imp.price,
    )


def _price_band(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    band = lim.price_band
    needs_reference = (
        spec.quote_size is not None
        or band is not None
        or lim.max_order_notional is not None
        or lim.max_gross_exposure is not None
    )
    missing = imp.price is None or (band is not None and ctx.last_trade_price is None)
    if needs_reference and missing:
        return RiskBlock(
            RiskRule.PRICE_BAND,
            f"no last trade price for {spec.product_id} to check the order against",
            limit=format_decimal(band),
            actual="",
            price=imp.price,
        )
    if band is None or spec.limit_price is None:
        return None  # market orders trade at the last price: no deviation to check
    last = ctx.last_trade_price
    assert last is not None
    deviation = abs(spec.limit_price - last) / last
    if deviation <= band:
        return None
    return RiskBlock(
        RiskRule.PRICE_BAND,
        f"price {format_decimal(spec.limit_price)} is {_ratio(deviation)} away from the last "
        f"trade {format_decimal(last)}; the band is {format_decimal(band)}",
        limit=format_decimal(band),
        actual=_ratio(deviation),
        price=spec.limit_price,
    )


def _reduce_only(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    if ctx.trading_state is not TradingState.REDUCING or imp.reduces:
        return None
    wanted = (imp.size or ZERO) + imp.open_same_side
    return RiskBlock(
        RiskRule.REDUCE_ONLY,
        f"trading is REDUCING: a {spec.side.value} of {format_decimal(wanted)} (with open "
        f"orders) does not shrink the position {format_decimal(ctx.position)}",
        limit=format_decimal(abs(ctx.position)),
        actual=format_decimal(wanted),
        price=imp.price,
    )


def _notional(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    limit = lim.max_order_notional
    if limit is None:
        return None
    if spec.quote_size is not None:
        notional = spec.quote_size * ctx.quote_rate
    else:
        assert imp.size is not None and imp.price is not None
        notional = imp.size * imp.price * ctx.quote_rate
    if notional <= limit:
        return None
    return RiskBlock(
        RiskRule.MAX_ORDER_NOTIONAL,
        f"order notional {format_decimal(notional)} is above the maximum {format_decimal(limit)}",
        limit=format_decimal(limit),
        actual=format_decimal(notional),
        price=imp.price,
    )


def _max_position(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    limit = lim.position_limit(spec.product_id)
    if limit is None or imp.reduces or imp.size is None:
        return None
    worst = abs(imp.worst_position)
    if worst <= limit:
        return None
    return RiskBlock(
        RiskRule.MAX_POSITION,
        f"position in {spec.product_id} would reach {format_decimal(worst)} (including open "
        f"orders); the maximum is {format_decimal(limit)}",
        limit=format_decimal(limit),
        actual=format_decimal(worst),
        price=imp.price,
    )


def _gross_exposure(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    limit = lim.max_gross_exposure
    if limit is None or imp.reduces or imp.size is None:
        return None
    assert imp.price is not None
    value = imp.price * ctx.quote_rate
    after = ctx.gross_exposure - abs(ctx.position) * value + abs(imp.worst_position) * value
    if after <= limit:
        return None
    return RiskBlock(
        RiskRule.MAX_GROSS_EXPOSURE,
        f"gross exposure would reach {format_decimal(after)}; the maximum is "
        f"{format_decimal(limit)}",
        limit=format_decimal(limit),
        actual=format_decimal(after),
        price=imp.price,
    )


def _daily_loss(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    limit = lim.daily_loss_limit
    loss = -ctx.daily_realized_pnl
    if limit is None or imp.reduces or loss <= 0 or loss < limit:
        return None
    return RiskBlock(
        RiskRule.DAILY_LOSS,
        f"realised loss today {format_decimal(loss)} is at or beyond the daily limit "
        f"{format_decimal(limit)}; only position-reducing orders are accepted",
        limit=format_decimal(limit),
        actual=format_decimal(loss),
        price=imp.price,
    )


def _drawdown(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    limit = lim.max_drawdown
    if limit is None or imp.reduces or ctx.equity is None or ctx.peak_equity is None:
        return None
    if ctx.peak_equity <= 0 or ctx.equity >= ctx.peak_equity:
        return None
    dd = (ctx.peak_equity - ctx.equity) / ctx.peak_equity
    if dd < limit:
        return None
    return RiskBlock(
        RiskRule.DRAWDOWN,
        f"equity {format_decimal(ctx.equity)} is {_ratio(dd)} below its peak "
        f"{format_decimal(ctx.peak_equity)}; the breaker trips at {format_decimal(limit)}",
        limit=format_decimal(limit),
        actual=_ratio(dd),
        price=imp.price,
    )


def _cooldown(
    spec: OrderSpec, lim: RiskLimits, ctx: RiskContext, imp: OrderImpact
) -> RiskBlock | None:
    streak = ctx.loss_streak
    if lim.loss_streak_limit <= 0 or imp.reduces or streak.count < lim.loss_streak_limit:
        return None
    if streak.last_loss_time is None:
        return None
    until = streak.last_loss_time + lim.loss_cooldown
    if ctx.now >= until:
        return None
    return RiskBlock(
        RiskRule.LOSS_COOLDOWN,
        f"{streak.count} losing trades in a row (limit {lim.loss_streak_limit}); cooling down "
        f"until {until.isoformat()}",
        limit=str(lim.loss_streak_limit),
        actual=str(streak.count),
        price=imp.price,
    )


RULE_ORDER: tuple[tuple[RiskRule, Rule], ...] = (
    (RiskRule.TRADING_HALTED, _halted),
    (RiskRule.VENUE_UNRECONCILED, _venue),
    (RiskRule.PRODUCT_NOT_ALLOWED, _allow_list),
    (RiskRule.PRICE_BAND, _price_band),
    (RiskRule.REDUCE_ONLY, _reduce_only),
    (RiskRule.MAX_ORDER_NOTIONAL, _notional),
    (RiskRule.MAX_POSITION, _max_position),
    (RiskRule.MAX_GROSS_EXPOSURE, _gross_exposure),
    (RiskRule.DAILY_LOSS, _daily_loss),
    (RiskRule.DRAWDOWN, _drawdown),
    (RiskRule.LOSS_COOLDOWN, _cooldown),
)


def check_order(spec: OrderSpec, limits: RiskLimits, ctx: RiskContext) -> RiskDecision:
    """Run the rules in ``RULE_ORDER``; the first refusal wins."""
    impact = order_impact(spec, ctx)
    for _, rule in RULE_ORDER:
        block = rule(spec, limits, ctx, impact)
        if block is not None:
            return block
    return RiskOk(impact.price)


def _ratio(x: Decimal) -> str:
    """A fraction rounded up to 8 places, so the figure shown is never below the real one."""
    return format_decimal(x.quantize(Decimal("1e-8"), rounding=ROUND_UP))
