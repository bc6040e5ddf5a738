"""The Coinbase Advanced Trade public REST candles endpoint (httpx).

    GET {rest_url}/api/v3/brokerage/market/products/{product_id}/candles
        ?start=<unix s>&end=<unix s>&granularity=ONE_MINUTE&limit=<n>

Public: no authentication needed; when an API key is configured the request carries a JWT
anyway (higher rate limits). At most 350 candles per response, so longer ranges are paged.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from pydantic import SecretStr

from tradeplane.market.adapters.venues.coinbase.auth.jwt import rest_jwt
from tradeplane.market.adapters.venues.coinbase.parsing import VenueCandle, rest_candles
from tradeplane.market.adapters.venues.coinbase.symbols import (
    GRANULARITY,
    MAX_CANDLES_PER_REQUEST,
    to_venue_product,
)
from tradeplane.market.domain.intervals import Interval

CANDLES_PATH = "/api/v3/brokerage/market/products/{product_id}/candles"


class CoinbaseRestClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        api_key: SecretStr | None = None,
        api_secret: SecretStr | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        verify: ssl.SSLContext | bool = True
        if ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client = httpx.AsyncClient(timeout=timeout_seconds, verify=verify)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def candles(
        self, product_id: str, interval: Interval, start: int, end: int
    ) -> list[VenueCandle]:
        """Candles of `interval` with start in [start, end) (epoch seconds), oldest first."""
        # One bucket less than the maximum: whether `end` is inclusive is not documented.
        step = interval.seconds * (MAX_CANDLES_PER_REQUEST - 1)
        out: dict[int, VenueCandle] = {}
        page_start = interval.floor(start)
        while page_start < end:
            page_end = min(end, page_start + step)
            for candle in await self._page(product_id, interval, page_start, page_end):
                if start <= candle.start < end:
                    out[candle.start] = candle
            page_start = page_end
        return [out[k] for k in sorted(out)]

    async def _page(
        self, product_id: str, interval: Interval, start: int, end: int
    ) -> list[VenueCandle]:
        url = self._base_url + CANDLES_PATH.format(product_id=to_venue_product(product_id))
        params: dict[str, Any] = {
            "start": str(start),
            "end": str(end),
            "granularity": GRANULARITY[interval],
            "limit": MAX_CANDLES_PER_REQUEST,
        }
        headers = {}
        if self._api_key is not None and self._api_secret is not None:
            jwt = rest_jwt(self._api_key, self._api_secret, "GET", url)
            headers["Authorization"] = f"Bearer {jwt}"
        response = await self._client.get(url, params=params, headers=headers)
        response.raise_for_status()
        return rest_candles(response.json(), product_id)
