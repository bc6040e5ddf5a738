"""Orders: the request a caller makes, its validation and fingerprint, and the Order entity
with its validated state machine and exactly-once fill application.

Flow (the service layer drives it): map a SubmitOrderRequest to an ``OrderRequest`` ->
``validate_order_request`` gives an ``OrderSpec`` (normalised, defaults filled in) ->
``match_existing`` against any order with the same client order id (idempotency) -> risk
check -> ``Order.new`` (status NEW, the committed intent) -> ``acknowledge`` / ``apply_fill``
/ ``cancel`` / ``reject`` / ``expire`` as the venue reports.

``Order`` is immutable: every change returns a new Order, so events can carry it as is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from tradeplane.execution.domain.decimals import ZERO, format_decimal, is_multiple
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import (
    BracketLeg,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument

MAX_CLIENT_ORDER_ID_LENGTH = 128

# Time in force each order type accepts; the first is the default when none is given.
ALLOWED_TIME_IN_FORCE: dict[OrderType, tuple[TimeInForce, ...]] = {
    OrderType.MARKET: (TimeInForce.IOC,),
    OrderType.LIMIT: (TimeInForce.GTC, TimeInForce.GTD, TimeInForce.IOC, TimeInForce.FOK),
    OrderType.STOP_LIMIT: (TimeInForce.GTC, TimeInForce.GTD),
    OrderType.BRACKET: (TimeInForce.GTC, TimeInForce.GTD),
}

# The state machine (same table as the OrderStatus comment in execution.proto).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.REJECTED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class BracketSpec:
    """Exit legs of a bracket. ``stop_loss_limit_price`` None means a market exit once the
    stop triggers. With ``exit_only`` there is no entry: the legs close an existing position
    and the order's ``side`` is the side of the legs (SELL closes a long), as at Coinbase."""

    take_profit_price: Decimal | None
    stop_loss_trigger_price: Decimal | None
    stop_loss_limit_price: Decimal | None = None
    exit_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as the caller sent it, decimals parsed but nothing checked. ``None`` stands
    for an absent field (an empty string or an ``*_UNSPECIFIED`` enum in the proto)."""

    account_id: str
    client_order_id: str
    product_id: str
    side: Side | None
    type: OrderType | None
    time_in_force: TimeInForce | None = None
    expire_time: datetime | None = None
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    post_only: bool = False
    bracket: BracketSpec | None = None
    venue: Venue | None = None
    strategy_instance_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A validated, normalised order request: what the order is, never how it is going.
    Exactly one of ``base_size`` / ``quote_size`` is set (quote only for MARKET)."""

    account_id: str
    client_order_id: str
    product_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    venue: Venue
    expire_time: datetime | None = None
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    post_only: bool = False
    bracket: BracketSpec | None = None
    strategy_instance_id: str = ""

    def fingerprint(self) -> str:
        return order_fingerprint(self)

    @property
    def position_side(self) -> Side:
        """The side of the position the order is about: an exit-only bracket's legs sell to
        close a long, so its position side is the opposite of ``side``."""
        if self.bracket is not None and self.bracket.exit_only:
            return self.side.opposite
        return self.side


def order_fingerprint(spec: OrderSpec) -> str:
    """SHA-256 of the canonical payload: every field that defines the order, decimals
    normalised ("1.0" == "1"), times in UTC, keys sorted. Two submissions are "the same
    order" exactly when their fingerprints match. The decision record is not part of it: it
    explains the order, a retry may phrase it differently."""
    bracket = spec.bracket
    payload = {
        "v": 1,
        "account_id": spec.account_id,
        "client_order_id": spec.client_order_id,
        "product_id": spec.product_id,
        "side": spec.side.value,
        "type": spec.type.value,
        "time_in_force": spec.time_in_force.value,
        "venue": spec.venue.value,
        "expire_time": _canonical_time(spec.expire_time),
        "base_size": format_decimal(spec.base_size),
        "quote_size": format_decimal(spec.quote_size),
        "limit_price": format_decimal(spec.limit_price),
        "stop_price": format_decimal(spec.stop_price),
        "stop_direction": spec.stop_direction.value if spec.stop_direction else "",
        "post_only": spec.post_only,
        "bracket": None
        if bracket is None
        else {
            "take_profit_price": format_decimal(bracket.take_profit_price),
            "stop_loss_trigger_price": format_decimal(bracket.stop_loss_trigger_price),
            "stop_loss_limit_price": format_decimal(bracket.stop_loss_limit_price),
            "exit_only": bracket.exit_only,
        },
        "strategy_instance_id": spec.strategy_instance_id,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_time(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(UTC).isoformat(timespec="microseconds")


# --- validation -----------------------------------------------------------------------------


def validate_order_request(
    req: OrderRequest, product: ProductRules | None, now: datetime, default_venue: Venue
) -> OrderSpec:
    """Check every field and return the normalised spec; the first problem raises
    InvalidArgument naming its field. ``product`` is None when the product is unknown."""
    coid = req.client_order_id
    if not coid:
        raise InvalidArgument("client_order_id", "required")
    if len(coid) > MAX_CLIENT_ORDER_ID_LENGTH:
        raise InvalidArgument(
            "client_order_id", f"at most {MAX_CLIENT_ORDER_ID_LENGTH} characters, got {len(coid)}"
        )
    if not coid.isprintable() or coid != coid.strip():
        raise InvalidArgument("client_order_id", "must be printable, without edge whitespace")
    if not req.account_id:
        raise InvalidArgument("account_id", "required")
    if not req.product_id:
        raise InvalidArgument("product_id", "required")
    if product is None:
        raise InvalidArgument("product_id", f"unknown product {req.product_id!r}")
    if product.product_id != req.product_id:
        raise ValueError("product rules do not match the request's product")
    if req.side is None:
        raise InvalidArgument("side", "required (BUY or SELL)")
    if req.type is None:
        raise InvalidArgument("type", "required")
    otype = req.type

    tif = _check_time_in_force(req, otype, now)
    _check_sizes(req, otype, product)
    _check_prices(req, otype, product)
    stop_direction = _check_stop(req, otype, product)
    _check_post_only(req, otype, tif)
    _check_bracket(req, otype, product)

    return OrderSpec(
        account_id=req.account_id,
        client_order_id=coid,
        product_id=req.product_id,
        side=req.side,
        type=otype,
        time_in_force=tif,
        venue=req.venue or default_venue,
        expire_time=req.expire_time,
        base_size=req.base_size,
        quote_size=req.quote_size,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        stop_direction=stop_direction,
        post_only=req.post_only,
        bracket=req.bracket,
        strategy_instance_id=req.strategy_instance_id,
    )


def _check_time_in_force(req: OrderRequest, otype: OrderType, now: datetime) -> TimeInForce:
    allowed = ALLOWED_TIME_IN_FORCE[otype]
    tif = req.time_in_force or allowed[0]
    if tif not in allowed:
        names = ", ".join(t.value for t in allowed)
        raise InvalidArgument(
            "time_in_force", f"{tif.value} is not allowed for {otype.value} orders ({names})"
        )
    if tif is TimeInForce.GTD:
        if req.expire_time is None:
            raise InvalidArgument("expire_time", "required for GTD")
        if req.expire_time.tzinfo is None:
            raise InvalidArgument("expire_time", "must be timezone-aware")
        if req.expire_time <= now:
            raise InvalidArgument(
                "expire_time", f"must be in the future, got {_canonical_time(req.expire_time)}"
            )
    elif req.expire_time is not None:
        raise InvalidArgument("expire_time", f"only allowed with GTD, not {tif.value}")
    return tif


def _check_sizes(req: OrderRequest, otype: OrderType, product: ProductRules) -> None:
    if req.base_size is None and req.quote_size is None:
        raise InvalidArgument("base_size", "required (or quote_size for MARKET orders)")
    if req.base_size is not None and req.quote_size is not None:
        raise InvalidArgument("quote_size", "give base_size or quote_size, not both")
    if req.quote_size is not None:
        if otype is not OrderType.MARKET:
            raise InvalidArgument("quote_size", "only MARKET orders may be sized in quote")
        _check_positive_increment("quote_size", req.quote_size, product.quote_increment)
        return
    assert req.base_size is not None
    _check_positive_increment("base_size", req.base_size, product.base_increment)
    if req.base_size < product.min_size:
        raise InvalidArgument(
            "base_size", f"{req.base_size} is below the minimum size {product.min_size}"
        )
    if product.max_size is not None and req.base_size > product.max_size:
        raise InvalidArgument(
            "base_size", f"{req.base_size} is above the maximum size {product.max_size}"
        )


def _check_prices(req: OrderRequest, otype: OrderType, product: ProductRules) -> None:
    if otype in (OrderType.LIMIT, OrderType.STOP_LIMIT) and req.limit_price is None:
        raise InvalidArgument("limit_price", f"required for {otype.value} orders")
    if otype is OrderType.MARKET and req.limit_price is not None:
        raise InvalidArgument("limit_price", "not allowed for MARKET orders")
    if req.limit_price is not None:
        _check_positive_increment("limit_price", req.limit_price, product.quote_increment)


def _check_stop(req: OrderRequest, otype: OrderType, product: ProductRules) -> StopDirection | None:
    if otype is not OrderType.STOP_LIMIT:
        if req.stop_price is not None:
            raise InvalidArgument("stop_price", "only allowed for STOP_LIMIT orders")
        if req.stop_direction is not None:
            raise InvalidArgument("stop_direction", "only allowed for STOP_LIMIT orders")
        return None
    if req.stop_price is None:
        raise InvalidArgument("stop_price", "required for STOP_LIMIT orders")
    _check_positive_increment("stop_price", req.stop_price, product.quote_increment)
    assert req.side is not None
    # Buy stops trigger on the way up, sell stops on the way down, unless told otherwise.
    return req.stop_direction or (StopDirection.UP if req.side is Side.BUY else StopDirection.DOWN)


def _check_post_only(req: OrderRequest, otype: OrderType, tif: TimeInForce) -> None:
    if not req.post_only:
        return
    if otype is not OrderType.LIMIT:
        raise InvalidArgument("post_only", "only LIMIT orders can be post-only")
    if tif not in (TimeInForce.GTC, TimeInForce.GTD):
        raise InvalidArgument("post_only", f"needs GTC or GTD, not {tif.value}")


def _check_bracket(req: OrderRequest, otype: OrderType, product: ProductRules) -> None:
    b = req.bracket
    if otype is not OrderType.BRACKET:
        if b is not None:
            raise InvalidArgument("bracket", "only allowed for BRACKET orders")
        return
    if b is None:
        raise InvalidArgument("bracket", "required for BRACKET orders")
    if req.quote_size is not None:
        raise InvalidArgument("quote_size", "BRACKET orders are sized in base_size")
    tp, trigger, sl_limit = b.take_profit_price, b.stop_loss_trigger_price, b.stop_loss_limit_price
    if tp is None:
        raise InvalidArgument("bracket.take_profit_price", "required")
    if trigger is None:
        raise InvalidArgument("bracket.stop_loss_trigger_price", "required")
    inc = product.quote_increment
    _check_positive_increment("bracket.take_profit_price", tp, inc)
    _check_positive_increment("bracket.stop_loss_trigger_price", trigger, inc)
    if sl_limit is not None:
        _check_positive_increment("bracket.stop_loss_limit_price", sl_limit, inc)
    if b.exit_only and req.limit_price is not None:
        raise InvalidArgument("limit_price", "must be empty for an exit-only bracket")

    assert req.side is not None
    long = (req.side is Side.BUY) != b.exit_only  # the position the legs protect is long
    entry = req.limit_price
    # A long is protected by a take-profit above and a stop below (entry in between); a
    # short the other way round.
    above, below = ("above", "below") if long else ("below", "above")
    if not _beyond(tp, trigger, long):
        raise InvalidArgument(
            "bracket.take_profit_price",
            f"{tp} must be {above} the stop-loss trigger {trigger} for a "
            f"{'long' if long else 'short'} position",
        )
    if entry is not None:
        if not _beyond(tp, entry, long):
            raise InvalidArgument(
                "bracket.take_profit_price", f"{tp} must be {above} the entry price {entry}"
            )
        if not _beyond(entry, trigger, long):
            raise InvalidArgument(
                "bracket.stop_loss_trigger_price",
                f"{trigger} must be {below} the entry price {entry}",
            )
    # The stop-loss sells (long) at or below its trigger, buys (short) at or above it.
    if sl_limit is not None and _beyond(sl_limit, trigger, long):
        raise InvalidArgument(
            "bracket.stop_loss_limit_price",
            f"{sl_limit} must be at or {below} the stop-loss trigger {trigger}",
        )


def _beyond(a: Decimal, b: Decimal, long: bool) -> bool:
    """a strictly more favourable than b for a position: higher for a long, lower for a short."""
    return a > b if long else a < b


def _check_positive_increment(field: str, value: Decimal, increment: Decimal) -> None:
    if value <= 0:
        raise InvalidArgument(field, f"must be positive, got {value}")
    if not is_multiple(value, increment):
        raise InvalidArgument(field, f"{value} is not a multiple of the increment {increment}")


# --- idempotency ------------------------------------------------------------------------------


def match_existing(existing: Order | None, spec: OrderSpec) -> Order | None:
    """Idempotency on (account, client_order_id): None when the id is unused; the existing
    order when it was submitted with the same payload; AlreadyExists when with another."""
    if existing is None:
        return None
    if (existing.spec.account_id, existing.spec.client_order_id) != (
        spec.account_id,
        spec.client_order_id,
    ):
        raise ValueError("match_existing called with an order of another client order id")
    if existing.spec.fingerprint() == spec.fingerprint():
        return existing
    raise AlreadyExists(
        f"client_order_id {spec.client_order_id!r} is already used by order "
        f"{existing.order_id} with a different payload"
    )


# --- the Order entity -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillApplication:
    """Result of ``Order.apply_fill``: the order after it, and whether the fill was new.
    A duplicate (same venue trade id) leaves the order unchanged and is reported here."""

    order: Order
    applied: bool

    @property
    def duplicate(self) -> bool:
        return not self.applied


@dataclass(frozen=True, slots=True)
class Order:
    """An order and its state. ``filled_quote`` (sum of price * size) gives the average fill price;
    ``fill_trade_ids`` holds the venue trade ids already applied, for exactly-once fills."""

    order_id: str
    spec: OrderSpec
    status: OrderStatus
    create_time: datetime
    update_time: datetime
    venue_order_id: str = ""
    filled_size: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fees: Decimal = ZERO
    fee_currency: str = ""
    status_reason: str = ""
    parent_order_id: str = ""
    bracket_leg: BracketLeg | None = None
    decision_id: str = ""
    external: bool = False
    fill_trade_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def new(
        cls,
        order_id: str,
        spec: OrderSpec,
        now: datetime,
        *,
        decision_id: str = "",
        parent_order_id: str = "",
        bracket_leg: BracketLeg | None = None,
        external: bool = False,
    ) -> Order:
        """The committed intent (status NEW). A bracket with an entry is the ENTRY leg."""
        if bracket_leg is None and spec.bracket is not None and not spec.bracket.exit_only:
            bracket_leg = BracketLeg.ENTRY
        return cls(
            order_id=order_id,
            spec=spec,
            status=OrderStatus.NEW,
            create_time=now,
            update_time=now,
            decision_id=decision_id,
            parent_order_id=parent_order_id,
            bracket_leg=bracket_leg,
            external=external,
        )

    # -- derived values

    @property
    def average_fill_price(self) -> Decimal | None:
        """Volume-weighted average fill price; None before the first fill."""
        if self.filled_size == 0:
            return None
        return self.filled_quote / self.filled_size

    @property
    def remaining_size(self) -> Decimal | None:
        """Base size still to fill; None for quote-sized orders (unknown in base)."""
        if self.spec.base_size is None:
            return None
        return self.spec.base_size - self.filled_size

    @property
    def is_fully_filled(self) -> bool:
        if self.spec.base_size is not None:
            return self.filled_size == self.spec.base_size
        assert self.spec.quote_size is not None
        return self.filled_quote == self.spec.quote_size

    # -- transitions

    def transition(self, to: OrderStatus, now: datetime, reason: str = "") -> Order:
        """Move to ``to`` if the state machine allows it and the fill state agrees;
        otherwise FailedPrecondition. Prefer the named methods below."""
        if to not in TRANSITIONS[self.status]:
            raise FailedPrecondition(
                f"order {self.order_id}: illegal transition {self.status.value} -> {to.value}"
            )
        if to is OrderStatus.PARTIALLY_FILLED and (self.filled_size == 0 or self.is_fully_filled):
            raise FailedPrecondition(
                f"order {self.order_id}: PARTIALLY_FILLED needs a partial fill "
                f"(filled {self.filled_size})"
            )
        if to is OrderStatus.FILLED and not self._may_be_called_filled():
            raise FailedPrecondition(
                f"order {self.order_id}: FILLED needs the whole size filled "
                f"(filled {self.filled_size} of {self._size_text()})"
            )
        if to is OrderStatus.REJECTED and self.filled_size != 0:
            raise FailedPrecondition(f"order {self.order_id}: a filled order cannot be rejected")
        return replace(self, status=to, update_time=now, status_reason=reason)

    def _may_be_called_filled(self) -> bool:
        if self.spec.base_size is not None:
            return self.is_fully_filled
        # A quote-sized market order is done when the venue says so: fees may come out of
        # the quote size, so the filled notional need not reach it exactly.
        return self.filled_size > 0

    def _size_text(self) -> str:
        if self.spec.base_size is not None:
            return format_decimal(self.spec.base_size)
        return f"{format_decimal(self.spec.quote_size)} quote"

    def acknowledge(self, venue_order_id: str, now: datetime) -> Order:
        """The venue accepted the order: NEW -> OPEN. Repeating the ack of an order already
        past NEW (a fill may arrive before the ack) is a no-op if the venue id agrees."""
        if not venue_order_id:
            raise InvalidArgument("venue_order_id", "required to acknowledge an order")
        if self.status is not OrderStatus.NEW and self.status.is_working:
            if self.venue_order_id not in ("", venue_order_id):
                raise FailedPrecondition(
                    f"order {self.order_id}: venue order id {venue_order_id!r} does not match "
                    f"{self.venue_order_id!r}"
                )
            return replace(self, venue_order_id=venue_order_id) if not self.venue_order_id else self
        opened = self.transition(OrderStatus.OPEN, now)
        return replace(opened, venue_order_id=venue_order_id)

    def cancel(self, now: datetime, reason: str = "") -> Order:
        return self.transition(OrderStatus.CANCELED, now, reason)

    def reject(self, now: datetime, reason: str) -> Order:
        return self.transition(OrderStatus.REJECTED, now, reason)

    def expire(self, now: datetime) -> Order:
        return self.transition(OrderStatus.EXPIRED, now, "time in force expired")

    def mark_filled(self, now: datetime) -> Order:
        """The venue reports the order done (needed for quote-sized market orders)."""
        return self.transition(OrderStatus.FILLED, now)

    def is_expired_at(self, now: datetime) -> bool:
        """True when a GTD order's expiry has passed and it is still working."""
        return (
            self.status.is_working
            and self.spec.time_in_force is TimeInForce.GTD
            and self.spec.expire_time is not None
            and now >= self.spec.expire_time
        )

    # -- fills

    def apply_fill(self, fill: Fill) -> FillApplication:
        """Apply ``fill`` exactly once. A venue trade id already applied is a duplicate: the
        order is returned unchanged with ``applied=False``. A fill that would take the order
        past its size is refused (FailedPrecondition) and changes nothing.

        A fill on a NEW order proves the venue accepted it (NEW -> OPEN first). A fill that
        arrives after CANCELED/EXPIRED (found late, e.g. by reconciliation) is still applied -
        the trade happened - and the final status stays. REJECTED orders never traded."""
        if fill.order_id != self.order_id:
            raise FailedPrecondition(f"fill {fill.venue_trade_id} is for order {fill.order_id}")
        if fill.venue_trade_id in self.fill_trade_ids:
            return FillApplication(self, applied=False)
        if self.status is OrderStatus.REJECTED:
            raise FailedPrecondition(f"order {self.order_id} was rejected; it cannot fill")
        if fill.side is not self.spec.side or fill.product_id != self.spec.product_id:
            raise FailedPrecondition(
                f"fill {fill.venue_trade_id} ({fill.side.value} {fill.product_id}) does not "
                f"match order {self.order_id} ({self.spec.side.value} {self.spec.product_id})"
            )
        if self.fee_currency and fill.fee_currency != self.fee_currency:
            raise FailedPrecondition(
                f"fill {fill.venue_trade_id} fee currency {fill.fee_currency} differs from "
                f"{self.fee_currency}"
            )
        filled = self.filled_size + fill.size
        filled_quote = self.filled_quote + fill.notional
        if self.spec.base_size is not None and filled > self.spec.base_size:
            raise FailedPrecondition(
                f"fill {fill.venue_trade_id} would overfill order {self.order_id}: "
                f"{format_decimal(filled)} > {format_decimal(self.spec.base_size)}"
            )
        if self.spec.quote_size is not None and filled_quote > self.spec.quote_size:
            raise FailedPrecondition(
                f"fill {fill.venue_trade_id} would overfill order {self.order_id}: "
                f"notional {format_decimal(filled_quote)} > {format_decimal(self.spec.quote_size)}"
            )

        order = self
        if order.status is OrderStatus.NEW:
            order = order.transition(OrderStatus.OPEN, fill.time, "acknowledged by a fill")
        order = replace(
            order,
            filled_size=filled,
            filled_quote=filled_quote,
            fees=order.fees + fill.fee,
            fee_currency=fill.fee_currency,
            fill_trade_ids=order.fill_trade_ids | {fill.venue_trade_id},
            update_time=max(order.update_time, fill.time),
        )
        if order.status.is_working:
            to = OrderStatus.FILLED if order.is_fully_filled else OrderStatus.PARTIALLY_FILLED
            order = order.transition(to, order.update_time)
        return FillApplication(order, applied=True)


# --- brackets ---------------------------------------------------------------------------------


def bracket_exit_legs(
    parent: Order, size: Decimal, take_profit_id: str, stop_loss_id: str, now: datetime
) -> tuple[Order, Order]:
    """The take-profit (LIMIT) and stop-loss (STOP_LIMIT) exit legs of a bracket, sized
    ``size`` (the entry's filled size, or the position for an exit-only bracket), on the side
    that closes the position, children of ``parent``. The stop-loss leg has no limit price
    when the bracket asks for a market exit. The caller cancels the other leg when one fills.
    """
    spec, b = parent.spec, parent.spec.bracket
    if spec.type is not OrderType.BRACKET or b is None:
        raise FailedPrecondition(f"order {parent.order_id} is not a bracket")
    if b.take_profit_price is None or b.stop_loss_trigger_price is None:
        raise FailedPrecondition(f"bracket {parent.order_id} has no exit prices")
    if size <= 0:
        raise InvalidArgument("size", f"must be positive, got {size}")
    exit_side = spec.side if b.exit_only else spec.side.opposite
    base_id = spec.client_order_id[: MAX_CLIENT_ORDER_ID_LENGTH - 3]

    def leg(suffix: str, otype: OrderType, **prices: Decimal | None) -> OrderSpec:
        return OrderSpec(
            account_id=spec.account_id,
            client_order_id=f"{base_id}-{suffix}",
            product_id=spec.product_id,
            side=exit_side,
            type=otype,
            time_in_force=spec.time_in_force,
            venue=spec.venue,
            expire_time=spec.expire_time,
            base_size=size,
            limit_price=prices.get("limit_price"),
            stop_price=prices.get("stop_price"),
            stop_direction=None
            if otype is not OrderType.STOP_LIMIT
            else (StopDirection.DOWN if exit_side is Side.SELL else StopDirection.UP),
            strategy_instance_id=spec.strategy_instance_id,
        )

    take_profit = leg("tp", OrderType.LIMIT, limit_price=b.take_profit_price)
    stop_loss = leg(
        "sl",
        OrderType.STOP_LIMIT,
        stop_price=b.stop_loss_trigger_price,
        limit_price=b.stop_loss_limit_price,
    )
    legs = (
        Order.new(
            take_profit_id,
            take_profit,
            now,
            parent_order_id=parent.order_id,
            bracket_leg=BracketLeg.TAKE_PROFIT,
            decision_id=parent.decision_id,
        ),
        Order.new(
            stop_loss_id,
            stop_loss,
            now,
            parent_order_id=parent.order_id,
            bracket_leg=BracketLeg.STOP_LOSS,
            decision_id=parent.decision_id,
        ),
    )
    return legs
