"""CoinbaseRest: an authenticated Advanced Trade REST client (httpx).

Every request carries a fresh CDP JWT bound to "METHOD host/path". Requests are paced to
`max_rate` per second per client (Coinbase allows 30/s on private endpoints), so bursts
(e.g. a reconciliation) do not run into 429s. Faults:
- 429: wait the server's Retry-After (seconds) or a jittered backoff, then retry;
- 5xx, connection errors and timeouts (the response may be lost after the server acted):
  retry the SAME request up to `max_attempts`; callers only send requests that are
  idempotent this way (order creation carries a client_order_id Coinbase dedupes on);
- other 4xx: CoinbaseHttpError at once (a retry would get the same answer).
When the attempts are used up, CoinbaseUnavailable (the caller decides later).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from tradeplane.coinbase.jwt import rest_jwt

log = logging.getLogger(__name__)


class CoinbaseHttpError(Exception):
    """A 4xx answer (not 429): the request is wrong or refused; retrying will not help."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("error_details") or body.get("error"))
        super().__init__(f"HTTP {status}: {message or body}")

    @property
    def not_found(self) -> bool:
        return self.status == 404


class CoinbaseUnavailable(Exception):
    """No usable answer after every attempt (5xx, 429, timeouts, connection errors)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_min_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    max_retry_after_seconds: float = 30.0  # a longer Retry-After is capped to this

    def delay(self, attempt: int) -> float:
        cap = min(self.backoff_max_seconds, self.backoff_min_seconds * 2**attempt)
        return random.uniform(cap / 2, cap)


class CoinbaseRest:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None,
        api_secret: SecretStr | None,
        timeout_seconds: float = 10.0,
        ca_file: str | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[str], None] | None = None,
        max_rate: float = 25.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self._retry = retry or RetryPolicy()
        self._on_retry = on_retry  # called with the reason ("429", "5xx", "transport")
        self._spacing = 1.0 / max_rate if max_rate > 0 else 0.0
        self._next_slot = 0.0
        verify: ssl.SSLContext | bool = True
        if ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client = httpx.AsyncClient(timeout=timeout_seconds, verify=verify)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, method: str, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None and self._api_secret is not None:
            headers["Authorization"] = (
                f"Bearer {rest_jwt(self._api_key, self._api_secret, method, url)}"
            )
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The decoded JSON body of a 2xx answer; see the module doc for the errors."""
        url = self._base_url + path
        last = ""
        for attempt in range(self._retry.max_attempts):
            if attempt:
                self._note_retry(last)
            await self._pace()
            try:
                response = await self._client.request(
                    method, url, params=params, json=json, headers=self._headers(method, url)
                )
            except httpx.TransportError as exc:  # incl. timeouts: the answer may be lost
                last = "transport"
                log.warning(
                    "coinbase request failed; retrying",
                    extra={"path": path, "error": type(exc).__name__, "attempt": attempt + 1},
                )
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            status = response.status_code
            if status == 429:
                last = "429"
                await asyncio.sleep(self._retry_after(response, attempt))
                continue
            if status >= 500:
                last = "5xx"
                log.warning(
                    "coinbase answered %s; retrying",
                    status,
                    extra={"path": path, "attempt": attempt + 1},
                )
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            body = _json(response)
            if status >= 400:
                raise CoinbaseHttpError(status, body)
            return body
        raise CoinbaseUnavailable(
            f"{method} {path}: no answer after {self._retry.max_attempts} attempts ({last})"
        )

    async def _pace(self) -> None:
        """Wait for this request's slot: starts are at least 1/max_rate apart."""
        if not self._spacing:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._spacing
        if slot > now:
            await asyncio.sleep(slot - now)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("retry-after")
        try:
            seconds = float(header) if header is not None else None
        except ValueError:
            seconds = None
        if seconds is None or seconds < 0:
            return self._retry.delay(attempt)
        return min(seconds, self._retry.max_retry_after_seconds)

    def _note_retry(self, reason: str) -> None:
        if self._on_retry is not None:
            self._on_retry(reason)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200]}
