"""The paper venue's indexed book: a tick selects exactly the orders a scan of the whole book
with ``idle_on`` would select, in the same (insertion) order, while the venue submits,
resumes, cancels, fills (partly), triggers stops and brackets and expires orders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from tradeplane.execution.adapters.venues.paper import book as book_module
from tradeplane.execution.adapters.venues.paper import venue as venue_module
from tradeplane.execution.adapters.venues.paper.book import PaperBook
from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, idle_on, wakes
from tradeplane.execution.adapters.venues.paper.venue import PaperVenue
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import (
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.ports import MarketTick, VenueFill

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTS = ("BTC-USD", "ETH-USD")


# -- a market and a report sink for the venue -------------------------------------------------


class FakeMarket:
    """MarketData with fixed product rules; ``push`` delivers a tick as the client does."""

    ready = True

    def __init__(self) -> None:
        self.listeners: list[Callable[[MarketTick], None]] = []
        self.ticks: dict[str, MarketTick] = {}

    def product(self, product_id: str) -> ProductRules | None:
        return ProductRules.simple(product_id)

    def last_tick(self, product_id: str) -> MarketTick | None:
        return self.ticks.get(product_id)

    def last_price(self, product_id: str) -> D | None:
        t = self.ticks.get(product_id)
        return None if t is None else t.price

    def add_listener(self, listener: Callable[[MarketTick], None]) -> None:
        self.listeners.append(listener)

    def push(self, tick: MarketTick) -> None:
        self.ticks[tick.product_id] = tick
        for listener in self.listeners:
            listener(tick)


@dataclass
class Reports:
    """Records what the venue reports; ``on_fill_hook`` acts like the service in between."""

    log: list[tuple[object, ...]]
    on_fill_hook: Callable[[VenueFill], Awaitable[None]] | None = None

    async def on_fill(self, report: VenueFill) -> None:
        self.log.append(("fill", report.order_id, report.venue_trade_id, report.price, report.size))
        if self.on_fill_hook is not None:
            await self.on_fill_hook(report)

    async def on_fills(self, reports: Sequence[VenueFill]) -> None:
        for report in reports:
            await self.on_fill(report)

    async def on_order_done(self, order_id: str, status: OrderStatus, reason: str) -> None:
        self.log.append(("done", order_id, status))


async def drain(venue: PaperVenue) -> None:
    """Let the venue's worker process everything queued (the fakes never block it)."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if venue._queue.empty():
            await asyncio.sleep(0)
            return
    raise AssertionError("the paper venue did not drain its queue")


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


class CheckedBook(PaperBook):
    """A PaperBook that checks every selection against the full scan it replaces (and notes
    differences: the venue's worker logs and swallows exceptions)."""

    def __init__(self) -> None:
        super().__init__()
        self.mismatches: list[tuple[MarketTick, list[str], list[str]]] = []
        self.nonempty = 0

    def due(self, tick: MarketTick) -> list[PaperOrder]:
        got = super().due(tick)
        scan = [
            o for o in self.values() if o.product_id == tick.product_id and not idle_on(o, tick)
        ]
        if len(got) != len(scan) or any(a is not b for a, b in zip(got, scan, strict=False)):
            self.mismatches.append((tick, [o.order_id for o in got], [o.order_id for o in scan]))
        self.nonempty += bool(got)
        return got


# -- random orders and operations -------------------------------------------------------------

prices = st.integers(min_value=95, max_value=105).map(D)
sizes = st.sampled_from([D("0.5"), D("1"), D("2"), D("3")])


@st.composite
def specs(draw: st.DrawFn, resting: bool = False) -> OrderSpec:
    """Any order; with ``resting`` only one that can have been working before a restart (a
    resumed MARKET order makes ``match`` fail an assertion on every tick, scan or index)."""
    product = draw(st.sampled_from(PRODUCTS))
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    types = [OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.BRACKET]
    otype = draw(st.sampled_from(types if resting else [OrderType.MARKET, *types]))
    fields: dict[str, object] = {"base_size": draw(sizes)}
    tif = TimeInForce.GTC
    if otype is OrderType.MARKET:
        tif = TimeInForce.IOC
        if draw(st.booleans()):
            fields = {"quote_size": draw(prices) * draw(sizes)}
    elif otype is OrderType.LIMIT:
        tif = draw(st.sampled_from(list(TimeInForce)[:2] if resting else list(TimeInForce)))
        fields["limit_price"] = draw(prices)
        fields["post_only"] = tif in (TimeInForce.GTC, TimeInForce.GTD) and draw(st.booleans())
    else:
        tif = draw(st.sampled_from([TimeInForce.GTC, TimeInForce.GTD]))
    if otype is OrderType.STOP_LIMIT:
        fields["limit_price"] = draw(prices)
        fields["stop_price"] = draw(prices)
        fields["stop_direction"] = draw(st.sampled_from([None, *StopDirection]))
    if otype is OrderType.BRACKET:
        exit_only = draw(st.booleans())
        low = draw(prices)
        high = low + draw(st.integers(1, 5))
        long = (side is Side.BUY) != exit_only  # the protected position: take profit above
        tp, trigger = (high, low) if long else (low, high)
        # The stop-loss limit is at or beyond the trigger (or None: a market exit).
        sl_offset = draw(st.none() | st.integers(0, 3))
        sl = None if sl_offset is None else trigger + (-sl_offset if long else sl_offset)
        fields["bracket"] = BracketSpec(tp, trigger, sl, exit_only=exit_only)
        if not exit_only:
            fields["limit_price"] = draw(prices if resting else st.none() | prices)
    if tif is TimeInForce.GTD:
        fields["expire_time"] = T0 + timedelta(seconds=draw(st.integers(1, 20)))
    return OrderSpec(
        "acct",
        "c",
        product,
        side,
        otype,
        tif,
        Venue.PAPER,
        **fields,  # type: ignore[arg-type]
    )


tick_ops = st.tuples(
    st.just("tick"),
    st.sampled_from(PRODUCTS),
    prices,
    st.sampled_from([D("0.5"), D("1"), D("1.5"), D("5")]),
    st.integers(0, 3),  # seconds since the previous tick
    st.sampled_from([D("0.5"), D("1"), D("2")]),  # spread
)
operations = st.lists(
    st.one_of(
        tick_ops,  # three ticks for two new orders and three other operations
        tick_ops,
        tick_ops,
        st.tuples(st.just("submit"), specs()),
        st.tuples(st.just("submit"), specs()),
        st.tuples(st.just("resume"), specs(resting=True), st.sampled_from([D(0), D("0.5")])),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("cancel_quietly"), st.integers(0, 40)),
    ),
    min_size=20,
    max_size=100,
)


async def run(
    ops: list[tuple[object, ...]], cancel_on_fill: bool
) -> tuple[list[tuple[object, ...]], CheckedBook]:
    """Play ``ops`` on a paper venue whose book checks each tick's selection; return the
    reports and the book."""
    market = FakeMarket()
    venue = PaperVenue(market, PaperConfig())
    venue._book = book = CheckedBook()
    errors = _Errors()
    logging.getLogger(venue_module.__name__).addHandler(errors)
    orders: list[Order] = []
    reports = Reports([])

    async def cancel_next(fill: VenueFill) -> None:
        # Like the service's one-cancels-other: a cancel in the middle of a tick.
        await venue.cancel(orders[(int(fill.order_id) + 1) % len(orders)])

    if cancel_on_fill:
        reports.on_fill_hook = cancel_next
    venue.bind(reports)
    await venue.start()
    now = T0
    try:
        for op in ops:
            kind = op[0]
            if kind in ("submit", "resume"):
                spec = op[1]
                assert isinstance(spec, OrderSpec)
                order = Order.new(
                    str(len(orders)), replace(spec, client_order_id=f"c{len(orders)}"), now
                )
                orders.append(order)
                if kind == "submit":
                    await venue.submit(order)
                else:
                    filled = op[2]
                    assert isinstance(filled, D)
                    if spec.base_size is not None and filled < spec.base_size:
                        order = replace(
                            order,
                            filled_size=filled,
                            fill_trade_ids=frozenset({"x"} if filled else ()),
                        )
                    await venue.resume([order.acknowledge(f"paper-{order.order_id}", now)])
            elif kind in ("cancel", "cancel_quietly") and orders:
                target = orders[int(op[1]) % len(orders)]  # type: ignore[call-overload]
                if kind == "cancel":
                    await venue.cancel(target)
                else:
                    await venue.cancel_quietly(target.order_id)
            elif kind == "tick":
                _, product, price, size, dt, spread = op
                assert isinstance(price, D) and isinstance(size, D) and isinstance(spread, D)
                now += timedelta(seconds=int(dt))  # type: ignore[call-overload]
                market.push(
                    MarketTick(str(product), 0, now, price, size, price - spread, price + spread)
                )
            await drain(venue)
    finally:
        await venue.stop()
        logging.getLogger(venue_module.__name__).removeHandler(errors)
    # The worker logs and swallows exceptions (the book's included): none may have happened.
    assert errors.records == []
    return reports.log, book


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, cancel_on_fill=st.booleans())
def test_indexed_selection_equals_the_full_scan(
    ops: list[tuple[object, ...]], cancel_on_fill: bool
) -> None:
    log, book = asyncio.run(run(ops, cancel_on_fill))
    assert book.mismatches == []
    hypothesis.event(f"fills: {min(sum(e[0] == 'fill' for e in log), 5)}")
    hypothesis.event(f"ticks that selected orders: {min(book.nonempty, 5)}")


def test_the_random_books_do_exercise_fills_stops_and_expiry() -> None:
    """Not vacuous: a fixed scenario through the same harness selects and fills orders."""
    sell = OrderSpec(
        "a",
        "c",
        "BTC-USD",
        Side.SELL,
        OrderType.LIMIT,
        TimeInForce.GTC,
        Venue.PAPER,
        base_size=D("2"),
        limit_price=D("101"),
    )
    stop = replace(
        sell,
        type=OrderType.STOP_LIMIT,
        side=Side.BUY,
        stop_price=D("103"),
        stop_direction=StopDirection.UP,
        limit_price=D("104"),
    )
    expiring = replace(
        sell,
        side=Side.BUY,
        limit_price=D("90"),
        time_in_force=TimeInForce.GTD,
        expire_time=T0 + timedelta(seconds=2),
    )
    bracket = replace(
        sell,
        type=OrderType.BRACKET,
        limit_price=None,
        bracket=BracketSpec(D("104"), D("98"), None, exit_only=True),
    )
    tick = ("tick", "BTC-USD")
    log, book = asyncio.run(
        run(
            [
                ("submit", sell),
                ("submit", stop),
                ("submit", expiring),
                ("submit", bracket),
                (*tick, D("100"), D("1"), 0, D("1")),
                (*tick, D("101"), D("1"), 0, D("1")),  # sell limit: half filled
                (*tick, D("103"), D("5"), 1, D("1")),  # stop triggers; the rest of the sell fills
                (*tick, D("99"), D("1"), 2, D("1")),  # expiry
                (*tick, D("97"), D("1"), 0, D("1")),  # the bracket's stop: a market exit
            ],
            cancel_on_fill=False,
        )
    )
    done = {entry[1]: entry[2] for entry in log if entry[0] == "done"}
    fills = [entry[1] for entry in log if entry[0] == "fill"]
    assert fills.count("0") == 2 and "1" in fills and "3" in fills
    assert done == {"2": OrderStatus.EXPIRED, "3": OrderStatus.CANCELED}
    assert book.mismatches == [] and book.nonempty >= 4


# -- the book on its own ------------------------------------------------------------------------


def paper(order_id: str, side: Side, limit: str, **kw: object) -> PaperOrder:
    fields: dict[str, object] = {
        "order_id": order_id,
        "venue_order_id": f"paper-{order_id}",
        "product_id": "BTC-USD",
        "side": side,
        "type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "remaining": D("1"),
        "quote_remaining": None,
        "limit_price": D(limit),
        "stop_price": None,
        "stop_direction": None,
        "post_only": False,
        "expire_time": None,
        "evaluated": True,
    }
    return PaperOrder(**(fields | kw))  # type: ignore[arg-type]


def tick_at(price: str, when: datetime = T0) -> MarketTick:
    p = D(price)
    return MarketTick("BTC-USD", 0, when, p, D("1"), p - 1, p + 1)


def test_wakes_says_exactly_when_idle_on_is_false() -> None:
    @settings(max_examples=400, deadline=None)
    @given(
        spec=specs(),
        evaluated=st.booleans(),
        triggered=st.booleans(),
        price=prices,
        dt=st.integers(0, 25),
    )
    def check(spec: OrderSpec, evaluated: bool, triggered: bool, price: D, dt: int) -> None:
        venue = PaperVenue(FakeMarket(), PaperConfig())
        venue._add(Order.new("o", spec, T0), "paper-o")
        order = venue._book.get("o")
        assert order is not None
        order.evaluated, order.triggered = evaluated, triggered
        t = MarketTick(spec.product_id, 0, T0 + timedelta(seconds=dt), price, D(1), price, price)
        assert wakes(order).holds(t) == (not idle_on(order, t))

    check()


def test_a_tick_visits_only_the_orders_it_reaches_in_insertion_order() -> None:
    book = PaperBook()
    for i, limit in enumerate(["90", "99", "100", "98"]):
        book.add(paper(f"b{i}", Side.BUY, limit))
    book.add(paper("s", Side.SELL, "99"))
    assert [o.order_id for o in book.due(tick_at("99"))] == ["b1", "b2", "s"]
    assert [o.order_id for o in book.due(tick_at("99.5"))] == ["b2", "s"]
    book.pop("b2")
    assert [o.order_id for o in book.due(tick_at("99.5"))] == ["s"]
    assert "b2" not in book and len(book) == 4


def test_refile_follows_a_state_change_and_ignores_orders_that_left() -> None:
    book = PaperBook()
    o = paper("o", Side.BUY, "100", expire_time=T0 + timedelta(seconds=5))
    o.evaluated = False  # arriving: every tick
    book.add(o)
    assert book.due(tick_at("150")) == [o]
    o.evaluated = True
    book.refile(o)
    assert book.due(tick_at("150")) == []
    assert book.due(tick_at("150", T0 + timedelta(seconds=5))) == [o]  # expired
    book.pop("o")
    book.refile(o)  # a cancel during the fill reports: it stays out
    assert book.due(tick_at("50")) == [] and len(book) == 0


def test_cancelled_orders_do_not_pile_up_in_the_ladders() -> None:
    book = PaperBook()
    for round_ in range(5):
        for i in range(1000):
            book.add(
                paper(
                    f"{round_}-{i}", Side.BUY, str(50 + i % 40), expire_time=T0 + timedelta(hours=1)
                )
            )
        for i in range(1000):
            book.pop(f"{round_}-{i}")
    sizes = book.ladder_sizes("BTC-USD")
    assert sizes["price_at_most"] <= 1000 and sizes["time_at_least"] <= 1000
    assert book.due(tick_at("10")) == []


def test_a_far_away_tick_looks_at_no_order_however_deep_the_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10,000 resting orders far from the market: a tick examines none of them (the scan it
    replaced called idle_on for each; its cost is measured, not asserted here: ~12 us vs
    ~2.8 ms per tick)."""
    book = PaperBook()
    for i in range(10_000):
        side = Side.BUY if i % 2 else Side.SELL
        book.add(paper(str(i), side, str(1000 + i % 500) if i % 2 else str(200_000 - i % 500)))
    examined: list[str] = []
    real_idle_on = book_module.idle_on

    def counting_idle_on(order: PaperOrder, tick: MarketTick) -> bool:
        examined.append(order.order_id)
        return real_idle_on(order, tick)

    monkeypatch.setattr(book_module, "idle_on", counting_idle_on)
    assert book.due(tick_at("60000")) == []
    assert examined == []


@pytest.mark.parametrize(
    ("otype", "tif", "limit"),
    [
        (OrderType.MARKET, TimeInForce.IOC, None),
        (OrderType.LIMIT, TimeInForce.IOC, "101"),
        (OrderType.LIMIT, TimeInForce.FOK, "101"),
    ],
)
async def test_an_order_that_cannot_rest_is_evaluated_again_after_a_restart(
    otype: OrderType, tif: TimeInForce, limit: str | None
) -> None:
    """A market/IOC/FOK order acknowledged just before a crash (it never met a tick) is
    handed back by ``resume``: it is matched at once as a taker and its remainder cancelled,
    as on arrival - not left in the book (it cannot rest) nor failing on every tick."""
    market = FakeMarket()
    venue = PaperVenue(market, PaperConfig())
    reports = Reports([])
    venue.bind(reports)
    errors = _Errors()
    logging.getLogger(venue_module.__name__).addHandler(errors)
    await venue.start()
    try:
        market.push(MarketTick("BTC-USD", 0, T0, D(100), D(1), D(99), D(100)))
        spec = OrderSpec(
            "acct",
            "c",
            "BTC-USD",
            Side.BUY,
            otype,
            tif,
            Venue.PAPER,
            base_size=D(3),
            limit_price=None if limit is None else D(limit),
        )
        order = replace(Order.new("o", spec, T0), venue_order_id="paper-o")
        await venue.resume([order])
        await drain(venue)
        market.push(
            MarketTick("BTC-USD", 1, T0 + timedelta(seconds=1), D(100), D(1), D(99), D(100))
        )
        await drain(venue)
    finally:
        await venue.stop()
        logging.getLogger(venue_module.__name__).removeHandler(errors)
    assert errors.records == []
    assert "o" not in venue._book
    kinds = [entry[0] for entry in reports.log]
    assert kinds[-1] == "done"
    if tif is TimeInForce.FOK:
        assert kinds == ["done"]  # 3 wanted, 1 at the top of book: nothing fills
    else:
        assert kinds == ["fill", "done"]  # the top of book's 1, the rest cancelled
        assert reports.log[0][4] == D(1)
