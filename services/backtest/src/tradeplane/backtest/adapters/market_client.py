"""Candles from the market service (MarketService.GetCandles, paged), cached per range.

A run reads its candles once; the same (product, interval, range) asked again (a sweep, a
re-run) comes from the runtime cache. The market being down raises `Unavailable`, which the
worker retries with backoff.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import cast

import grpc
import grpc.aio
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.backtest.domain import BarSeries
from tradeplane.runtime.cache import Cache
from tradeplane.runtime.client import create_channel
from tradeplane.runtime.errors import InvalidArgument, Unavailable
from trading.market.v1 import market_pb2 as mpb
from trading.market.v1 import market_pb2_grpc

PAGE_SIZE = 5000  # the market's maximum page
CALL_TIMEOUT_SECONDS = 30.0
PRODUCTS_TTL_SECONDS = 60.0

INTERVAL_TO_PROTO = {
    "1m": mpb.CANDLE_INTERVAL_ONE_MINUTE,
    "5m": mpb.CANDLE_INTERVAL_FIVE_MINUTES,
    "15m": mpb.CANDLE_INTERVAL_FIFTEEN_MINUTES,
    "1h": mpb.CANDLE_INTERVAL_ONE_HOUR,
    "6h": mpb.CANDLE_INTERVAL_SIX_HOURS,
    "1d": mpb.CANDLE_INTERVAL_ONE_DAY,
}
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _timestamp(seconds: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(seconds, UTC))
    return ts


def _encode(bars: BarSeries) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, time=bars.time, **bars.columns())  # type: ignore[arg-type]
    return buffer.getvalue()


def _decode(body: bytes) -> BarSeries:
    with np.load(io.BytesIO(body)) as data:
        return BarSeries.from_arrays(
            data["time"], data["open"], data["high"], data["low"], data["close"], data["volume"]
        )


class MarketCandleSource:
    def __init__(
        self, market_addr: str, cache: Cache, *, ttl_seconds: float, token: str | None = None
    ) -> None:
        # `token`: the workers' own; a RunBacktest caller's token is forwarded when there is one.
        self._channel = create_channel(market_addr, token=token)
        self._stub = market_pb2_grpc.MarketServiceStub(self._channel)
        self._cache = cache
        self._ttl = ttl_seconds or None

    async def close(self) -> None:
        await self._channel.close()

    def _unavailable(self, error: grpc.aio.AioRpcError) -> Exception:
        if error.code() in _RETRYABLE:
            return Unavailable(f"market service unavailable: {error.details()}")
        return cast(Exception, error)

    async def product_ids(self) -> set[str]:
        """Products the market serves (cached for a minute)."""

        async def load() -> bytes:
            ids: list[str] = []
            token = ""
            while True:
                try:
                    response = await self._stub.ListProducts(
                        mpb.ListProductsRequest(page_size=1000, page_token=token),
                        timeout=CALL_TIMEOUT_SECONDS,
                    )
                except grpc.aio.AioRpcError as error:
                    raise self._unavailable(error) from None
                ids.extend(p.product_id for p in response.products)
                token = response.next_page_token
                if not token:
                    return "\n".join(ids).encode()

        body = await self._cache.get_or_load("products", PRODUCTS_TTL_SECONDS, load)
        return set(body.decode().split("\n")) if body else set()

    async def bars(self, product_id: str, interval: str, start: int, end: int) -> BarSeries:
        """Closed candles with start in [start, end), as a BarSeries."""
        key = f"candles:{product_id}:{interval}:{start}:{end}"

        async def load() -> bytes:
            return _encode(await self._fetch(product_id, interval, start, end))

        return _decode(await self._cache.get_or_load(key, self._ttl, load))

    async def _fetch(self, product_id: str, interval: str, start: int, end: int) -> BarSeries:
        cols: dict[str, list[float]] = {k: [] for k in ("open", "high", "low", "close", "volume")}
        times: list[int] = []
        token = ""
        while True:
            request = mpb.GetCandlesRequest(
                product_id=product_id,
                interval=INTERVAL_TO_PROTO[interval],
                start=_timestamp(start),
                end=_timestamp(end),
                page_size=PAGE_SIZE,
                page_token=token,
            )
            try:
                response = await self._stub.GetCandles(request, timeout=CALL_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    raise InvalidArgument("config.product_id", error.details() or "") from None
                raise self._unavailable(error) from None
            for candle in response.candles:
                if not candle.closed:
                    continue  # the bar still forming is not history yet
                times.append(candle.start.seconds)
                cols["open"].append(float(candle.open))
                cols["high"].append(float(candle.high))
                cols["low"].append(float(candle.low))
                cols["close"].append(float(candle.close))
                cols["volume"].append(float(candle.volume))
            token = response.next_page_token
            if not token:
                break
        return BarSeries.from_arrays(times, **cols)
