"""Live strategies: the same `Strategy` classes as the backtest, driven by closed candles
from the market service, trading through the normal SubmitOrder path.

For each instance and product there is one strategy object and one `LiveContext`:

- warm-up: on the first candle update the market's clock is known; the closed bars before
  it (GetCandles) fill the indicator history without calling `on_bar`;
- every closed bar after that: indicators are recomputed with the shared library over the
  kept window, `on_bar` runs, and the orders it submitted go through
  `ExecutionCommands.submit_order` (same validation, risk engine, decision record and
  outbox as any order). A market order is sent once the market has printed past the bar,
  so it fills on the next bar's first trade: the backtest's default "next open" rule;
- client order ids are ``<instance>:<product>:<bar time>:<n>``, so a bar processed again
  after a restart resubmits the same ids and SubmitOrder's idempotency places nothing twice;
- fills come back from the orders/fills tables (woken by FILL events of the outbox) and go
  to `on_fill` once each; position, cash and realised P&L of the run are rebuilt from
  those fills after a restart.
- a risk refusal is recorded by SubmitOrder as a block (with the decision id); the run
  counts it and the strategy sees no new working order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

from opentelemetry import trace

from tradeplane.execution.adapters.sql_store import SqlStore
from tradeplane.execution.adapters.strategy_store import StrategyRecord, StrategyStore
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.events import EventType
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.orders import OrderRequest as ExecOrderRequest
from tradeplane.execution.domain.values import Side as ExecSide
from tradeplane.execution.domain.values import Venue
from tradeplane.execution.service_layer.commands import ExecutionCommands, new_id, utcnow
from tradeplane.execution.service_layer.event_stream import EventStream
from tradeplane.execution.service_layer.page_tokens import decode_token, encode_token, page_size
from tradeplane.execution.service_layer.ports import MarketData
from tradeplane.execution.service_layer.strategy_context import (
    ProductSession,
    exec_request,
)
from tradeplane.runtime.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from tradeplane.strategies import (
    Bar,
    Fill,
    OrderType,
    Side,
    StrategyDefinition,
    strategy_class,
    strategy_definitions,
)
from tradeplane.strategies.params import format_params

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

INTERVAL_SECONDS = 60
STATES = ("STARTING", "RUNNING", "STOPPED", "FAILED")


class CandleSource(Protocol):
    """Closed candles of the market service (adapters.market_candles.GrpcCandles)."""

    async def history(self, product_id: str, end: int, bars: int) -> list[Bar]: ...

    def stream(
        self, product_ids: Sequence[str], stop: asyncio.Event
    ) -> AsyncIterator[tuple[str, Bar, bool]]: ...


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    warmup_bars: int = 500  # closed bars loaded before the start for the indicators
    max_bars: int = 5000  # bars kept per product (indicators are recomputed over them)
    next_tick_wait_seconds: float = 5.0  # wait for the market to print past a signal bar
    fill_wait_seconds: float = 5.0  # wait for a market order to finish before the next bar


# -------------------------------------------------------------------------------------------
# One live instance


@dataclass
class LiveRun:
    record: StrategyRecord
    sessions: dict[str, ProductSession]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    seen_fills: set[str] = field(default_factory=set)
    order_ids: dict[str, str] = field(default_factory=dict)  # order id -> client order id
    blocks: int = 0


def _session_cash(rec: StrategyRecord) -> Decimal:
    return rec.initial_cash / len(rec.product_ids)


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


class StrategyRunner:
    """Starts, stops, lists and drives live strategy instances."""

    def __init__(
        self,
        commands: ExecutionCommands,
        market: MarketData,
        sql: SqlStore,
        store: StrategyStore,
        candles: CandleSource,
        events: EventStream,
        *,
        venue: Venue,
        config: RunnerConfig | None = None,
    ) -> None:
        self._commands = commands
        self._market = market
        self._sql = sql
        self._store = store
        self._candles = candles
        self._events = events
        self._venue = venue
        self._config = config or RunnerConfig()
        self._runs: dict[str, LiveRun] = {}
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle

    async def start(self) -> None:
        """Resume every instance that was running before the service stopped."""
        self._stop = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch_fills(), name="strategy-fills")
        for rec in await self._store.active():
            try:
                await self._launch(rec, resumed=True)
            except Exception as exc:  # one broken instance must not stop the others
                log.exception("strategy instance failed to resume")
                await self._store.save(rec.with_state("FAILED", f"resume failed: {exc}", utcnow()))

    async def stop(self) -> None:
        """Service shutdown: stop the tasks; instances stay RUNNING and resume on start."""
        self._stop.set()
        for run in list(self._runs.values()):
            await self._halt(run)
        self._runs.clear()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _halt(self, run: LiveRun) -> None:
        run.stop.set()
        if run.task is not None:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # -- use cases

    def definitions(self, size: int, token: str) -> tuple[list[StrategyDefinition], str]:
        n = page_size(size)
        after = decode_token(token, {"q": "definitions"})
        defs = strategy_definitions()
        if after is not None:
            defs = [d for d in defs if d.name > str(after.get("name", ""))]
        page = defs[:n]
        more = len(defs) > n
        return page, encode_token({"name": page[-1].name}, {"q": "definitions"}) if more else ""

    async def start_strategy(
        self,
        name: str,
        params: Mapping[str, str],
        product_ids: Sequence[str],
        account_id: str,
        venue: Venue | None,
    ) -> StrategyRecord:
        cls = strategy_class(name, field="strategy")
        strategy = cls(params)  # InvalidArgument("params.<name>") on a bad value
        if not product_ids:
            raise InvalidArgument("product_ids", "at least one product is required")
        if len(set(product_ids)) != len(product_ids):
            raise InvalidArgument("product_ids", "must not repeat a product")
        if venue is not None and venue is not self._venue:
            raise InvalidArgument(
                "venue",
                f"{venue.value} is not configured (this service trades on {self._venue.value})",
            )
        if not self._market.ready:
            raise Unavailable("market data is not connected yet; retry shortly")
        quotes = set()
        for pid in product_ids:
            rules = self._market.product(pid)
            if rules is None:
                raise InvalidArgument("product_ids", f"unknown product {pid!r}")
            quotes.add(rules.quote_currency)
        if len(quotes) != 1:
            raise InvalidArgument("product_ids", "all products must share one quote currency")
        account_id = account_id or self._commands.default_account_id
        account = await self._sql.account(account_id)
        if account is None and account_id == self._commands.default_account_id:
            await self._commands.ensure_default_account()
            account = await self._sql.account(account_id)
        if account is None:
            raise NotFound(f"account {account_id!r} not found")
        cash = account.cash.get(quotes.pop(), Decimal(0))
        if cash <= 0:
            raise FailedPrecondition(f"account {account_id} has no cash in the quote currency")
        rec = StrategyRecord(
            strategy_instance_id=new_id(),
            strategy=name,
            params=format_params(cls.parameters, strategy.params),
            product_ids=tuple(product_ids),
            account_id=account_id,
            venue=self._venue,
            state="STARTING",
            start_time=utcnow(),
            initial_cash=cash,
        )
        await self._store.insert(rec)
        return (await self._launch(rec, resumed=False)).record

    async def stop_strategy(self, instance_id: str, cancel_open_orders: bool) -> StrategyRecord:
        if not instance_id:
            raise InvalidArgument("strategy_instance_id", "required")
        run = self._runs.get(instance_id)
        rec = run.record if run is not None else await self._store.get(instance_id)
        if rec is None:
            raise NotFound(f"strategy instance {instance_id!r} not found")
        if not rec.active:
            raise FailedPrecondition(f"strategy instance {instance_id} is already {rec.state}")
        if run is not None:
            await self._halt(run)
            self._runs.pop(instance_id, None)
            async with run.lock:
                await self._sync_fills(run, notify=False)
                rec = self._counters(run)
        if cancel_open_orders:
            for order_id in await self._store.working_order_ids(instance_id):
                try:
                    await self._commands.cancel_order(order_id, "", "")
                except DomainError as exc:
                    log.warning("could not cancel a strategy order: %s", exc.message)
        rec = rec.with_state("STOPPED", "", utcnow())
        await self._store.save(rec)
        counts = await self._store.order_counts([instance_id])
        return replace(rec, order_count=counts.get(instance_id, 0))

    async def list_strategies(
        self, states: Sequence[str], size: int, token: str
    ) -> tuple[list[StrategyRecord], str]:
        n = page_size(size)
        filters = {"states": sorted(states)}
        after = decode_token(token, filters)
        cursor = None if after is None else (int(after["t"]), str(after["id"]))
        recs = await self._store.page(states, n + 1, cursor)
        more = len(recs) > n
        counts = await self._store.order_counts([r.strategy_instance_id for r in recs[:n]])
        recs = [
            replace(self._live(r), order_count=counts.get(r.strategy_instance_id, 0))
            for r in recs[:n]
        ]
        if not more:
            return recs, ""
        last = recs[-1]
        payload = {
            "t": int(last.start_time.timestamp() * 1_000_000),
            "id": last.strategy_instance_id,
        }
        return recs, encode_token(payload, filters)

    def _live(self, rec: StrategyRecord) -> StrategyRecord:
        """The in-memory view of a running instance (fresher counters than the row)."""
        run = self._runs.get(rec.strategy_instance_id)
        return self._counters(run) if run is not None else rec

    @staticmethod
    def _counters(run: LiveRun) -> StrategyRecord:
        realized = sum((s.realized for s in run.sessions.values()), Decimal(0))
        run.record = replace(run.record, realized_pnl=realized, order_count=len(run.order_ids))
        return run.record

    # -- running

    async def _launch(self, rec: StrategyRecord, *, resumed: bool) -> LiveRun:
        cls = strategy_class(rec.strategy)
        cash = _session_cash(rec)
        sessions = {}
        for pid in rec.product_ids:
            sessions[pid] = ProductSession(
                rec.strategy_instance_id, cls(rec.params), pid, cash, self._config.max_bars
            )
        run = LiveRun(rec, sessions)
        if resumed:
            # Rebuild the accounting from what really filled; `on_fill` saw those already.
            await self._sync_fills(run, notify=False)
        self._runs[rec.strategy_instance_id] = run
        run.task = asyncio.create_task(
            self._drive(run), name=f"strategy-{rec.strategy_instance_id}"
        )
        return run

    async def _drive(self, run: LiveRun) -> None:
        try:
            stream = self._candles.stream(list(run.sessions), run.stop)
            async for product_id, bar, closed in stream:
                session = run.sessions.get(product_id)
                if session is None:
                    continue
                async with run.lock:
                    if not session.warm:
                        await self._warm_up(run, session, bar)
                    last = session.last_time
                    done = run.record.last_bar_times.get(product_id, -1)  # before a restart
                    if closed and (last is None or bar.time > last) and bar.time > done:
                        await self._on_bar(run, session, bar)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "strategy instance failed", extra={"instance": run.record.strategy_instance_id}
            )
            self._runs.pop(run.record.strategy_instance_id, None)
            rec = self._counters(run).with_state("FAILED", f"{type(exc).__name__}: {exc}", utcnow())
            await self._store.save(rec)

    async def _warm_up(self, run: LiveRun, session: ProductSession, first: Bar) -> None:
        """History up to the first streamed bar feeds the indicators; no `on_bar` for it."""
        history = await self._candles.history(
            session.product_id, first.time, self._config.warmup_bars
        )
        session.add_bars([b for b in history if b.time < first.time])
        session.warm = True
        if not session.started:
            session.started = True
            session.strategy.on_start(session)
            session.actions.clear()  # orders need a bar to be stamped with
        if run.record.state == "STARTING" and all(s.warm for s in run.sessions.values()):
            run.record = replace(run.record, state="RUNNING")
            await self._store.save(self._counters(run))

    async def _on_bar(self, run: LiveRun, session: ProductSession, bar: Bar) -> None:
        await self._sync_fills(run, notify=True)
        await self._refresh_working(run, session)
        session.add_bars([bar])
        session.seq = 0
        with tracer.start_as_current_span("strategy.on_bar") as span:
            span.set_attribute("strategy.instance_id", run.record.strategy_instance_id)
            span.set_attribute("product_id", session.product_id)
            span.set_attribute("bar_time", bar.time)
            session.strategy.on_bar(session, bar)
            if session.actions:
                await self._market_past(session.product_id, bar.time + INTERVAL_SECONDS)
                await self._act(run, session)
        run.record = replace(
            run.record, last_bar_times={**run.record.last_bar_times, session.product_id: bar.time}
        )
        await self._store.save(self._counters(run))

    async def _refresh_working(self, run: LiveRun, session: ProductSession) -> None:
        """Drop orders that ended without a fill to report (cancelled, expired, rejected)
        from the strategy's `open_orders`."""
        if not session.working:
            return
        ids = {c: o for o, c in run.order_ids.items() if c in session.working}
        for coid, order_id in ids.items():
            order = await self._sql.order(order_id)
            if order is None or order.status.is_final:
                session.working.pop(coid, None)

    async def _market_past(self, product_id: str, moment: int) -> None:
        """Wait (bounded) until the market printed at or after `moment` (the next bar's
        first trade), so a market order fills there and not on the closed bar's last
        trade."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.next_tick_wait_seconds
        while loop.time() < deadline:
            tick = self._market.last_tick(product_id)
            if tick is not None and tick.time.timestamp() >= moment:
                return
            await asyncio.sleep(0.01)

    async def _act(self, run: LiveRun, session: ProductSession) -> None:
        rec = run.record
        actions, session.actions = session.actions, []
        market_orders: list[str] = []
        for action in actions:
            if action.kind == "cancel":
                order_id = next(
                    (o for o, c in run.order_ids.items() if c == action.client_order_id), ""
                )
                try:
                    if order_id:
                        await self._commands.cancel_order(order_id, "", "")
                except DomainError as exc:
                    log.info("strategy cancel refused: %s", exc.message)
                continue
            request = action.request
            assert request is not None
            rules = self._market.product(session.product_id)
            if rules is None:
                raise Unavailable(f"product {session.product_id} is not available")
            decision = Decision(
                decision_id=new_id(),
                strategy=rec.strategy,
                account_id=rec.account_id,
                product_id=session.product_id,
                create_time=utcnow(),
                reason=request.reason or f"{rec.strategy} signal",
                strategy_instance_id=rec.strategy_instance_id,
                inputs=session.inputs(),
                trace_id=_trace_id(),
            )
            try:
                order = await self._submit(
                    exec_request(rec, rules, action.client_order_id, request), decision
                )
            except DomainError as exc:
                # A risk refusal is already recorded as a block with this decision id.
                session.working.pop(action.client_order_id, None)
                run.blocks += 1
                log.warning(
                    "strategy order refused: %s",
                    exc.message,
                    extra={
                        "instance": rec.strategy_instance_id,
                        "client_order_id": action.client_order_id,
                    },
                )
                continue
            run.order_ids[order.order_id] = action.client_order_id
            if order.status.is_final:
                session.working.pop(action.client_order_id, None)
            if request.type is OrderType.MARKET:
                market_orders.append(order.order_id)
        if market_orders:
            await self._wait_final(market_orders)
            await self._sync_fills(run, notify=True)

    async def _submit(self, request: ExecOrderRequest, decision: Decision) -> Order:
        """SubmitOrder, retried a few times while market data reconnects (UNAVAILABLE); the
        client order id makes a retry of an order that did get through harmless."""
        for attempt in range(3):
            try:
                return await self._commands.submit_order(request, decision)
            except Unavailable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _wait_final(self, order_ids: Sequence[str]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.fill_wait_seconds
        pending = list(order_ids)
        while pending and loop.time() < deadline:
            order = await self._sql.order(pending[0])
            if order is None or order.status.is_final:
                pending.pop(0)
                continue
            await asyncio.sleep(0.01)

    async def _sync_fills(self, run: LiveRun, *, notify: bool) -> None:
        """Apply the run's fills not seen yet (exactly once each, by fill id)."""
        for f in await self._store.fills(run.record.strategy_instance_id):
            if f.fill_id in run.seen_fills:
                continue
            run.seen_fills.add(f.fill_id)
            run.order_ids.setdefault(f.order_id, f.client_order_id)
            session = run.sessions.get(f.product_id)
            if session is None:
                continue
            session.apply_fill(f)
            order = await self._sql.order(f.order_id)
            if order is None or order.status.is_final:
                session.working.pop(f.client_order_id, None)
            if notify:
                session.strategy.on_fill(
                    session,
                    Fill(
                        f.client_order_id,
                        Side.BUY if f.side is ExecSide.BUY else Side.SELL,
                        float(f.price),
                        float(f.size),
                        float(f.fee),
                        session.bar_index,
                        int(f.time.timestamp()),
                    ),
                )
                if session.actions:  # orders placed from on_fill go out at once
                    await self._act(run, session)

    async def _watch_fills(self) -> None:
        """Fills that arrive between bars (resting limit orders): woken by FILL events."""
        while not self._stop.is_set():
            try:
                async for batch in self._events.follow(
                    None, [], [EventType.FILL.value], self._stop
                ):
                    accounts = {e.account_id for e in batch.events}
                    for run in list(self._runs.values()):
                        if run.record.account_id in accounts and not run.lock.locked():
                            async with run.lock:
                                await self._sync_fills(run, notify=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("strategy fill watcher failed; restarting")
                await asyncio.sleep(1.0)
