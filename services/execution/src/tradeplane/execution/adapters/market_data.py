"""Market data from the market service: the product catalog (ListProducts) and live ticks
(StreamTicks), reconnecting with exponential backoff and resuming with ``since_seq`` so no
tick is missed across a reconnect (a reset from the market is logged; live ticks follow).

The market being down is never fatal: ``ready`` is False meanwhile (orders then get
UNAVAILABLE and health reports NOT_SERVING) and the client keeps retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC as _UTC
from decimal import Decimal

import grpc

from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.service_layer.ports import MarketTick
from tradeplane.runtime.client import create_channel
from trading.market.v1 import market_pb2, market_pb2_grpc

log = logging.getLogger(__name__)


def _dec(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


class GrpcMarketData:
    """Implements service_layer.ports.MarketData against MarketService at ``target``."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self._target = target
        self._token = token
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._products: dict[str, ProductRules] = {}
        self._last: dict[str, MarketTick] = {}
        self._since: dict[str, int] = {}
        self._listeners: list[Callable[[MarketTick], None]] = []
        self._connected = False
        self._ready_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._state_listeners: list[Callable[[bool], None]] = []
        self.reconnects = 0

    # -- MarketData

    @property
    def ready(self) -> bool:
        return self._connected and bool(self._products)

    def product(self, product_id: str) -> ProductRules | None:
        return self._products.get(product_id)

    def last_tick(self, product_id: str) -> MarketTick | None:
        return self._last.get(product_id)

    def last_price(self, product_id: str) -> Decimal | None:
        tick = self._last.get(product_id)
        return None if tick is None else tick.price

    def add_listener(self, listener: Callable[[MarketTick], None]) -> None:
        self._listeners.append(listener)

    def on_state(self, listener: Callable[[bool], None]) -> None:
        self._state_listeners.append(listener)

    def rates(self, valuation_currency: str) -> dict[str, Decimal]:
        """currency -> price in ``valuation_currency`` from the last ticks of BASE-<valuation>."""
        out: dict[str, Decimal] = {}
        for product_id, tick in self._last.items():
            base, _, quote = product_id.partition("-")
            if quote == valuation_currency:
                out[base] = tick.price
        return out

    # -- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="market-data")

    async def wait_ready(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the first connection; True when ready."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._ready_event.wait()
        return self.ready

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            if connected:
                self._ready_event.set()
            else:
                self._ready_event = asyncio.Event()
            for listener in self._state_listeners:
                listener(connected)

    async def _run(self) -> None:
        delay = self._backoff_initial
        while True:
            channel = create_channel(self._target, token=self._token)
            try:
                stub = market_pb2_grpc.MarketServiceStub(channel)
                await self._load_products(stub)
                request = market_pb2.StreamTicksRequest(
                    product_ids=sorted(self._products), since_seq=self._since
                )
                stream = stub.StreamTicks(request)
                self._set_connected(True)
                async for response in stream:
                    delay = self._backoff_initial  # data flows: the next failure retries fast
                    if response.reset_product_ids:
                        log.warning(
                            "market tick stream reset; ticks were missed",
                            extra={"products": list(response.reset_product_ids)},
                        )
                    for t in response.ticks:
                        self._on_tick(t)
                log.warning("market tick stream ended; reconnecting")
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "market service unavailable; retrying",
                    extra={"code": exc.code().name, "retry_in": delay},
                )
            except Exception:
                log.exception("market data client failed; retrying")
            finally:
                self._set_connected(False)
                await channel.close()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _load_products(self, stub: market_pb2_grpc.MarketServiceStub) -> None:
        products: dict[str, ProductRules] = {}
        token = ""
        while True:
            resp = await stub.ListProducts(
                market_pb2.ListProductsRequest(page_size=1000, page_token=token), timeout=5
            )
            for p in resp.products:
                products[p.product_id] = ProductRules(
                    product_id=p.product_id,
                    base_currency=p.base_currency,
                    quote_currency=p.quote_currency,
                    base_increment=_dec(p.base_increment),
                    quote_increment=_dec(p.quote_increment),
                    min_size=_dec(p.min_size),
                )
            token = resp.next_page_token
            if not token:
                break
        self._products = products

    def _on_tick(self, t: market_pb2.Tick) -> None:
        tick = MarketTick(
            product_id=t.product_id,
            seq=t.seq,
            time=t.time.ToDatetime(tzinfo=_UTC),
            price=Decimal(t.price),
            size=Decimal(t.size),
            best_bid=_dec(t.best_bid) or Decimal(t.price),
            best_ask=_dec(t.best_ask) or Decimal(t.price),
        )
        self._since[tick.product_id] = tick.seq
        self._last[tick.product_id] = tick
        for listener in self._listeners:
            listener(tick)
