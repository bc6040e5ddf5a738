"""The paper venue: keeps working orders in memory and fills them against live ticks.

Brackets with an entry are not native here (``native_brackets`` False): the entry works as a
limit order, and the service layer commits and sends the exit legs once it has filled, and
cancels one leg when the other fills (one-cancels-other). An exit-only bracket (no entry: it
closes a position, like Coinbase's ``trigger_bracket``) is one paper order: a take-profit
limit that becomes the stop-loss once a trade crosses the stop trigger (see matching).

One worker task handles, in order, new orders and ticks, so the book never changes under a
report. Each outcome is reported to the service layer (``VenueReports``), which applies it
in one transaction; trade ids are ``<venue order id>-<n>`` so a fill reported twice (e.g.
around a restart) is recognised by the unique (venue, venue_trade_id) key.

Its state is the database: after a restart the service hands it back its working orders
(``resume``) with the fills they already have, and it carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from tradeplane.execution.adapters.venues.paper.book import PaperBook
from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, match
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.values import (
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.ports import (
    MarketData,
    MarketTick,
    VenueFill,
    VenueRejected,
    VenueReports,
)
from tradeplane.runtime import tracing

log = logging.getLogger(__name__)

# (kind, item, trace context of the submit for "match": its fills continue that trace)
_Work = tuple[str, PaperOrder | MarketTick, tracing.TraceContext | None]


class PaperVenue:
    """Implements service_layer.ports.ExecutionVenue."""

    def __init__(self, market: MarketData, config: PaperConfig) -> None:
        self._market = market
        self._config = config
        self._reports: VenueReports | None = None
        self._book = PaperBook()  # the working orders, indexed by what wakes them
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        market.add_listener(self._on_tick)

    native_brackets = False  # the service layer manages the exit legs of an entry

    @property
    def venue(self) -> Venue:
        return Venue.PAPER

    def bind(self, reports: VenueReports) -> None:
        self._reports = reports

    async def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="paper-venue")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def working_count(self) -> int:
        return len(self._book)

    # -- ExecutionVenue

    async def submit(self, order: Order) -> str:
        if order.spec.type is OrderType.BRACKET and order.spec.bracket is None:
            raise VenueRejected("a BRACKET order needs its bracket prices")
        venue_order_id = f"paper-{order.order_id}"
        if order.order_id not in self._book:  # idempotent on the order id
            self._add(order, venue_order_id)
        return venue_order_id

    async def cancel(self, order: Order) -> bool:
        self._book.pop(order.order_id)
        return True

    async def resume(self, orders: Sequence[Order]) -> None:
        for order in orders:
            if order.order_id not in self._book and order.venue_order_id:
                self._add(order, order.venue_order_id, evaluated=True)

    async def cancel_quietly(self, order_id: str) -> None:
        """Drop an order from the book without reporting (tests drive reports by hand)."""
        self._book.pop(order_id)

    # -- internals

    def _add(self, order: Order, venue_order_id: str, *, evaluated: bool = False) -> None:
        spec, bracket = order.spec, order.spec.bracket
        otype, limit, stop = spec.type, spec.limit_price, spec.stop_price
        direction, stop_limit = spec.stop_direction, None
        if spec.type is OrderType.BRACKET and bracket is not None and bracket.exit_only:
            # One order: the take-profit limit, turned stop-loss by a trade through the
            # trigger (selling closes a long: it stops on the way down).
            limit, stop = bracket.take_profit_price, bracket.stop_loss_trigger_price
            direction = StopDirection.DOWN if spec.side is Side.SELL else StopDirection.UP
            stop_limit = bracket.stop_loss_limit_price
        elif spec.type is OrderType.BRACKET:
            otype = OrderType.LIMIT  # the entry works as a limit; the service adds the legs
        paper = PaperOrder(
            order_id=order.order_id,
            venue_order_id=venue_order_id,
            product_id=spec.product_id,
            side=spec.side,
            type=otype,
            time_in_force=spec.time_in_force,
            remaining=order.remaining_size,
            quote_remaining=None
            if spec.quote_size is None
            else spec.quote_size - order.filled_quote,
            limit_price=limit,
            stop_price=stop,
            stop_direction=direction,
            post_only=spec.post_only,
            expire_time=spec.expire_time,
            stop_limit_price=stop_limit,
            fill_count=len(order.fill_trade_ids),
            # A resumed order that could rest already met the market: it is not "arriving".
            # Others (a market, IOC or FOK order caught by a restart before its first tick,
            # a stop whose trigger is checked again) are evaluated afresh.
            evaluated=evaluated and _rests(spec.type, spec.time_in_force),
        )
        self._book.add(paper)
        tick = self._market.last_tick(spec.product_id)
        if tick is not None and not paper.evaluated:
            self._queue.put_nowait(("match", paper, tracing.current_context()))

    def _on_tick(self, tick: MarketTick) -> None:
        self._queue.put_nowait(("tick", tick, None))

    async def _work(self) -> None:
        while True:
            kind, item, origin = await self._queue.get()
            try:
                if kind == "match":
                    assert isinstance(item, PaperOrder)
                    tick = self._market.last_tick(item.product_id)
                    if tick is not None and item.order_id in self._book and not item.evaluated:
                        with tracing.span("paper.match", parent=origin, order_id=item.order_id):
                            await self._match(item, tick)
                else:
                    assert isinstance(item, MarketTick)
                    for paper in self._book.due(item):  # only the orders it can change
                        if paper.order_id in self._book:
                            await self._match(paper, item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("paper venue failed to process", extra={"kind": kind})

    async def _match(self, paper: PaperOrder, tick: MarketTick) -> None:
        rules = self._market.product(paper.product_id)
        if rules is None or self._reports is None:
            return
        result = match(paper, tick, self._config, rules)
        self._book.refile(paper)  # its state changed: what wakes it may have too
        for execution in result.executions:
            await self._reports.on_fill(
                VenueFill(
                    order_id=paper.order_id,
                    venue_trade_id=paper.next_trade_id(),
                    price=execution.price,
                    size=execution.size,
                    fee=execution.fee,
                    fee_currency=rules.quote_currency,
                    liquidity=execution.liquidity,
                    # The trade happens now, against the latest quote (which may be older).
                    time=max(tick.time, datetime.now(UTC)),
                )
            )
        if result.done is not None:
            self._book.pop(paper.order_id)
            if result.done is not OrderStatus.FILLED or paper.remaining is None:
                await self._reports.on_order_done(paper.order_id, result.done, result.reason)


def _rests(order_type: OrderType, time_in_force: TimeInForce) -> bool:
    """Whether an order of this kind rests in the book after its first evaluation."""
    return order_type in (OrderType.LIMIT, OrderType.BRACKET) and time_in_force in (
        TimeInForce.GTC,
        TimeInForce.GTD,
    )
