"""Candles for live strategies from the market service: history (GetCandles, paged) for the
indicator warm-up, and closed candles as they happen (StreamCandles, resumed with
``since_seq`` after a reconnect so no closed bar is missed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import grpc

from tradeplane.runtime.client import create_channel
from tradeplane.strategies import Bar
from trading.market.v1 import market_pb2, market_pb2_grpc

log = logging.getLogger(__name__)

INTERVAL = market_pb2.CANDLE_INTERVAL_ONE_MINUTE
INTERVAL_SECONDS = 60


def _bar(c: market_pb2.Candle) -> Bar:
    return Bar(
        int(c.start.seconds),
        float(c.open),
        float(c.high),
        float(c.low),
        float(c.close),
        float(c.volume or 0),
    )


class GrpcCandles:
    """Implements the runner's ``CandleSource`` against MarketService at ``target``."""

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
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> market_pb2_grpc.MarketServiceStub:
        if self._channel is None:
            self._channel = create_channel(self._target, token=self._token)
        return market_pb2_grpc.MarketServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def history(self, product_id: str, end: int, bars: int) -> list[Bar]:
        """Closed bars starting in [end - bars * interval, end), oldest first."""
        start = end - bars * INTERVAL_SECONDS
        request = market_pb2.GetCandlesRequest(
            product_id=product_id, interval=INTERVAL, page_size=5000
        )
        request.start.FromDatetime(datetime.fromtimestamp(start, UTC))
        request.end.FromDatetime(datetime.fromtimestamp(end, UTC))
        out: list[Bar] = []
        while True:
            response = await self._stub().GetCandles(request, timeout=10)
            out.extend(_bar(c) for c in response.candles)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    async def stream(
        self, product_ids: Sequence[str], stop: asyncio.Event
    ) -> AsyncIterator[tuple[str, Bar, bool]]:
        """(product, bar, closed) for every candle update, forever, reconnecting with backoff
        and resuming after the last update seen."""
        since: dict[str, int] = {}
        delay = self._backoff_initial
        while not stop.is_set():
            try:
                request = market_pb2.StreamCandlesRequest(
                    product_ids=list(product_ids), interval=INTERVAL, since_seq=since
                )
                async for response in self._stub().StreamCandles(request):
                    delay = self._backoff_initial
                    if response.reset_product_ids:
                        log.warning(
                            "candle stream reset; closed bars may have been missed",
                            extra={"products": list(response.reset_product_ids)},
                        )
                    for c in response.candles:
                        since[c.product_id] = c.seq
                        yield c.product_id, _bar(c), c.closed
                log.warning("candle stream ended; reconnecting")
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "candle stream unavailable; retrying",
                    extra={"code": exc.code().name, "retry_in": delay},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)
