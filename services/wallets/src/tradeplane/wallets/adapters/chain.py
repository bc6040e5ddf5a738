"""Read-only on-chain wallets' balances over JSON-RPC, through the same cache as Coinbase.

Solana:  getBalance(address) -> lamports (SOL = lamports / 1e9);
         getTokenAccountsByOwner(address, {programId: SPL Token}, {encoding: jsonParsed})
         -> token accounts with mint and tokenAmount {amount, decimals}; mints map to
         currencies by configuration (unknown mints are ignored).
EVM:     eth_getBalance(address, "latest") -> wei (native = wei / 1e18);
         ERC-20 balanceOf(address) via eth_call(to=token, data=0x70a08231 + address) -> units
         / 10^decimals, for each configured token.

Every call is one cache key (method + address [+ token]) with the chain TTL: a cold
reconciliation of N callers makes one call per key.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from tradeplane.runtime.errors import Unavailable
from tradeplane.wallets.adapters.coinbase_accounts import retry_after_seconds
from tradeplane.wallets.adapters.venue_cache import Cached, RateLimited, VenueCache, VenueError
from tradeplane.wallets.domain.currencies import ledger_context
from tradeplane.wallets.domain.reconciliation import VenueBalance
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.service_layer.ports import VenueSnapshot

SPL_TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
BALANCE_OF = "0x70a08231"  # keccak("balanceOf(address)")[:4]
LAMPORTS_PER_SOL = Decimal(10) ** 9
WEI_PER_ETH = Decimal(10) ** 18
FETCH_CONCURRENCY = 8


class JsonRpcClient:
    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        self._url = url
        self._ids = itertools.count(1)
        self._http = httpx.AsyncClient(timeout=timeout_seconds)

    async def call(self, method: str, params: list[Any]) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = await self._http.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise VenueError(f"{method}: {type(exc).__name__}") from exc
        if response.status_code == 429:
            raise RateLimited(retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code != 200:
            raise VenueError(f"{method}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise VenueError(f"{method}: response is not JSON") from exc
        if not isinstance(body, dict):
            raise VenueError(f"{method}: response is not a JSON-RPC object")
        if body.get("error") is not None:
            error = body["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise VenueError(f"{method}: node error {message}")
        return body.get("result")

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True, slots=True)
class EvmToken:
    currency: str
    contract: str  # 0x-prefixed, 20 bytes
    decimals: int


def _int(value: Any, what: str) -> int:
    try:
        if isinstance(value, str):
            return int(value, 16) if value.startswith("0x") else int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    except ValueError:
        pass
    raise Unavailable(f"{what}: {value!r} is not an integer")


class _ChainBalances:
    venue: Venue

    def __init__(self, client: JsonRpcClient, cache: VenueCache, *, ttl_seconds: float) -> None:
        self._client = client
        self._cache = cache
        self._ttl = ttl_seconds

    def handles(self, wallet: Wallet) -> bool:
        return wallet.kind is WalletKind.ONCHAIN_ADDRESS and wallet.venue is self.venue

    async def _rpc(self, method: str, key: str, params: list[Any], force_refresh: bool) -> Cached:
        async def load() -> Any:
            return await self._client.call(method, params)

        return await self._cache.get(method, key, self._ttl, load, force_refresh=force_refresh)

    async def _wallet(
        self, wallet: Wallet, force_refresh: bool
    ) -> tuple[list[tuple[str, Decimal]], list[Cached]]:
        raise NotImplementedError

    async def fetch(self, wallets: Sequence[Wallet], *, force_refresh: bool) -> VenueSnapshot:
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(w: Wallet) -> tuple[Wallet, list[tuple[str, Decimal]], list[Cached]]:
            async with gate:
                amounts, results = await self._wallet(w, force_refresh)
                return w, amounts, results

        balances: list[VenueBalance] = []
        calls = 0
        for wallet, amounts, results in await asyncio.gather(*(one(w) for w in wallets)):
            calls += sum(r.calls for r in results)
            stale = any(r.stale for r in results)
            as_of: datetime = min(r.fetched_at for r in results)
            totals: dict[str, Decimal] = {}
            with ledger_context():
                for currency, amount in amounts:
                    totals[currency] = totals.get(currency, Decimal(0)) + amount
            balances.extend(
                VenueBalance(wallet.wallet_id, c, a, Decimal(0), as_of, stale)
                for c, a in sorted(totals.items())
            )
        return VenueSnapshot(tuple(balances), calls)

    async def aclose(self) -> None:
        await self._client.aclose()


class SolanaVenueBalances(_ChainBalances):
    venue = Venue.SOLANA

    def __init__(
        self,
        client: JsonRpcClient,
        cache: VenueCache,
        *,
        ttl_seconds: float,
        tokens: Mapping[str, str],  # mint -> currency
        native_currency: str = "SOL",
    ) -> None:
        super().__init__(client, cache, ttl_seconds=ttl_seconds)
        self._tokens = dict(tokens)
        self._native = native_currency

    async def _wallet(
        self, wallet: Wallet, force_refresh: bool
    ) -> tuple[list[tuple[str, Decimal]], list[Cached]]:
        address = wallet.address
        native = await self._rpc(
            "getBalance", address, [address, {"commitment": "finalized"}], force_refresh
        )
        lamports = _int(_value(native.value, "getBalance"), "getBalance")
        amounts = [(self._native, Decimal(lamports) / LAMPORTS_PER_SOL)]
        results = [native]
        if self._tokens:
            params = [
                address,
                {"programId": SPL_TOKEN_PROGRAM},
                {"encoding": "jsonParsed", "commitment": "finalized"},
            ]
            tokens = await self._rpc("getTokenAccountsByOwner", address, params, force_refresh)
            results.append(tokens)
            for account in _value(tokens.value, "getTokenAccountsByOwner") or []:
                try:
                    info = account["account"]["data"]["parsed"]["info"]
                    mint, token_amount = info["mint"], info["tokenAmount"]
                    units = _int(token_amount["amount"], "tokenAmount.amount")
                    decimals = _int(token_amount["decimals"], "tokenAmount.decimals")
                except (KeyError, TypeError):
                    raise Unavailable("getTokenAccountsByOwner: unexpected account shape") from None
                currency = self._tokens.get(mint)
                if currency is not None:
                    amounts.append((currency, Decimal(units).scaleb(-decimals)))
        return amounts, results


class EvmVenueBalances(_ChainBalances):
    venue = Venue.EVM

    def __init__(
        self,
        client: JsonRpcClient,
        cache: VenueCache,
        *,
        ttl_seconds: float,
        tokens: Sequence[EvmToken],
        native_currency: str = "ETH",
    ) -> None:
        super().__init__(client, cache, ttl_seconds=ttl_seconds)
        self._tokens = list(tokens)
        self._native = native_currency

    async def _wallet(
        self, wallet: Wallet, force_refresh: bool
    ) -> tuple[list[tuple[str, Decimal]], list[Cached]]:
        address = wallet.address.lower()
        native = await self._rpc("eth_getBalance", address, [address, "latest"], force_refresh)
        amounts = [(self._native, Decimal(_int(native.value, "eth_getBalance")) / WEI_PER_ETH)]
        results = [native]
        for token in self._tokens:
            data = BALANCE_OF + address.removeprefix("0x").rjust(64, "0")
            got = await self._rpc(
                "eth_call",
                f"{token.contract.lower()}:{address}",
                [{"to": token.contract, "data": data}, "latest"],
                force_refresh,
            )
            results.append(got)
            units = _int(got.value if got.value != "0x" else "0x0", "balanceOf")
            amounts.append((token.currency, Decimal(units).scaleb(-token.decimals)))
        return amounts, results


def _value(result: Any, method: str) -> Any:
    """Solana wraps results as {"context": {...}, "value": ...}."""
    if not isinstance(result, dict) or "value" not in result:
        raise Unavailable(f"{method}: unexpected result shape")
    return result["value"]
