"""Coinbase wallets' venue balances from the Advanced Trade accounts API, through the cache.

    GET {rest_url}/api/v3/brokerage/accounts?limit=<n>[&cursor=<c>]   (bearer CDP JWT)
    -> {"accounts": [{"uuid", "currency", "available_balance": {"value", "currency"},
                      "hold": {"value", "currency"}, "retail_portfolio_id", ...}],
        "has_next": bool, "cursor": str, "size": int}

Each page is one cache key (its cursor), so N concurrent reconciliations of a cold cache make
exactly one call per page. One API key lists one user's accounts; a Coinbase wallet gets the
accounts of the portfolio named by its `account_id` when any account carries that
`retail_portfolio_id`, else every account of the key. 429 answers honour Retry-After.
"""

from __future__ import annotations

import ssl
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from tradeplane.runtime.errors import Unavailable
from tradeplane.wallets.adapters.venue_cache import RateLimited, VenueCache, VenueError
from tradeplane.wallets.domain.currencies import ledger_context
from tradeplane.wallets.domain.reconciliation import VenueBalance
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.service_layer.ports import VenueSnapshot

ACCOUNTS_PATH = "/api/v3/brokerage/accounts"
ENDPOINT = "accounts"
MAX_PAGES = 100  # 250 accounts a page: far beyond any real user; stops a looping cursor

# (method, url) -> bearer token; None = unauthenticated (the fake without keys).
Signer = Callable[[str, str], str]


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default  # an HTTP date: rare enough to just wait the default


class CoinbaseAccountsClient:
    """One page of the accounts list per call (no caching here)."""

    def __init__(
        self,
        rest_url: str,
        *,
        signer: Signer | None = None,
        page_limit: int = 250,
        timeout_seconds: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        self._url = rest_url.rstrip("/") + ACCOUNTS_PATH
        self._signer = signer
        self._page_limit = page_limit
        verify: ssl.SSLContext | bool = True
        if ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        self._http = httpx.AsyncClient(timeout=timeout_seconds, verify=verify)

    async def page(self, cursor: str) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": self._page_limit}
        if cursor:
            params["cursor"] = cursor
        headers = {}
        if self._signer is not None:
            headers["Authorization"] = f"Bearer {self._signer('GET', self._url)}"
        try:
            response = await self._http.get(self._url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise VenueError(f"coinbase accounts: {type(exc).__name__}") from exc
        if response.status_code == 429:
            raise RateLimited(retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code != 200:
            raise VenueError(f"coinbase accounts: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise VenueError("coinbase accounts: response is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("accounts"), list):
            raise VenueError("coinbase accounts: no `accounts` list in the response")
        return body

    async def aclose(self) -> None:
        await self._http.aclose()


def _amount(account: dict[str, Any], field: str) -> Decimal:
    raw = account.get(field)
    value = raw.get("value", "0") if isinstance(raw, dict) else "0"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unavailable(f"coinbase accounts: {field} {value!r} is not a decimal") from None
    if not number.is_finite():
        raise Unavailable(f"coinbase accounts: {field} {value!r} is not finite")
    return number


class CoinbaseVenueBalances:
    """VenueBalances for Coinbase venue-account wallets."""

    def __init__(
        self, client: CoinbaseAccountsClient, cache: VenueCache, *, ttl_seconds: float
    ) -> None:
        self._client = client
        self._cache = cache
        self._ttl = ttl_seconds

    def handles(self, wallet: Wallet) -> bool:
        return wallet.kind is WalletKind.VENUE_ACCOUNT and wallet.venue is Venue.COINBASE

    async def fetch(self, wallets: Sequence[Wallet], *, force_refresh: bool) -> VenueSnapshot:
        accounts: list[dict[str, Any]] = []
        calls, stale, cursor = 0, False, ""
        fetched_at = None
        for _ in range(MAX_PAGES):

            async def load(c: str = cursor) -> Any:
                return await self._client.page(c)

            got = await self._cache.get(
                ENDPOINT,
                cursor or "first",
                self._ttl,
                load,
                force_refresh=force_refresh,
                stale_only=stale,  # a page failed: the rest from the stale copies
            )
            calls += got.calls
            stale = stale or got.stale
            fetched_at = got.fetched_at if fetched_at is None else min(fetched_at, got.fetched_at)
            page = got.value
            accounts.extend(a for a in page["accounts"] if isinstance(a, dict))
            cursor = str(page.get("cursor") or "")
            if not page.get("has_next") or not cursor:
                break
        else:
            raise Unavailable("coinbase accounts: more pages than MAX_PAGES")
        assert fetched_at is not None
        # Totals per portfolio, and for the whole key when a wallet names no portfolio; only
        # the accounts the asked wallets need are parsed (one wallet: a handful, not all).
        portfolio_of = [str(a.get("retail_portfolio_id") or "") for a in accounts]
        present = set(portfolio_of)
        wanted = {w.account_id for w in wallets if w.account_id in present}
        need_all = any(w.account_id not in present for w in wallets)
        zero = (Decimal(0), Decimal(0))
        by_portfolio: dict[str, dict[str, tuple[Decimal, Decimal]]] = defaultdict(dict)
        everything: dict[str, tuple[Decimal, Decimal]] = {}
        with ledger_context():
            for a, portfolio_id in zip(accounts, portfolio_of, strict=True):
                mine = portfolio_id in wanted
                if not (mine or need_all):
                    continue
                currency = str(a.get("currency") or "").upper()
                if not currency:
                    continue
                amounts = (_amount(a, "available_balance"), _amount(a, "hold"))
                targets = [by_portfolio[portfolio_id]] if mine else []
                if need_all:
                    targets.append(everything)
                for totals in targets:
                    avail, hold = totals.get(currency, zero)
                    totals[currency] = (avail + amounts[0], hold + amounts[1])
        balances: list[VenueBalance] = []
        for wallet in wallets:
            totals = by_portfolio.get(wallet.account_id, everything)
            # Coinbase lists an account for every currency; empty ones say nothing.
            balances.extend(
                VenueBalance(wallet.wallet_id, cur, avail, hold, fetched_at, stale)
                for cur, (avail, hold) in sorted(totals.items())
                if avail or hold
            )
        return VenueSnapshot(tuple(balances), calls)

    async def aclose(self) -> None:
        await self._client.aclose()
