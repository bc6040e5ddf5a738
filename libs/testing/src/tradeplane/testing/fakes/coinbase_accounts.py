"""The Advanced Trade accounts endpoint of FakeCoinbase (`fake.accounts`), counting its calls.

    GET /api/v3/brokerage/accounts?limit=<n, default 49, max 250>&cursor=<c>
    -> {"accounts": [{"uuid", "name", "currency", "available_balance": {"value", "currency"},
                      "default", "active", "created_at", "updated_at", "deleted_at", "type",
                      "ready", "hold": {"value", "currency"}, "retail_portfolio_id"}],
        "has_next": bool, "cursor": str, "size": int}

Private: needs a valid bearer JWT when the fake checks JWTs. Fault controls: `down = True`
(503), `rate_limited_for = s` (429 with `Retry-After: s`, then back to normal), `delay`
(seconds before each answer, so concurrent callers overlap).

    fake.accounts.set_balance("BTC", "0.5", hold="0.1")
    ... fake.accounts.calls  -> answered 200s; fake.accounts.requests -> every request
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from tradeplane.testing.fakes.coinbase import FakeCoinbase, RestRequest

ACCOUNTS_PATH = "/api/v3/brokerage/accounts"
DEFAULT_LIMIT = 49
MAX_LIMIT = 250
DEFAULT_PORTFOLIO = "default"


@dataclass
class FakeAccount:
    currency: str
    available: Decimal
    hold: Decimal
    portfolio: str = DEFAULT_PORTFOLIO
    uuid: str = ""

    def to_json(self) -> dict[str, Any]:
        crypto = self.currency not in ("USD", "EUR", "GBP")
        return {
            "uuid": self.uuid,
            "name": f"{self.currency} Wallet",
            "currency": self.currency,
            "available_balance": {"value": str(self.available), "currency": self.currency},
            "default": True,
            "active": True,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "deleted_at": None,
            "type": "ACCOUNT_TYPE_CRYPTO" if crypto else "ACCOUNT_TYPE_FIAT",
            "ready": True,
            "hold": {"value": str(self.hold), "currency": self.currency},
            "retail_portfolio_id": self.portfolio,
        }


class FakeAccounts:
    def __init__(self) -> None:
        self.accounts: list[FakeAccount] = []
        self.down = False
        self.rate_limited_for: float | None = None
        self.delay = 0.0
        self.calls = 0  # answered with 200
        self.requests: list[dict[str, str]] = []  # query of every request, whatever the answer
        self._blocked_until = 0.0

    def mount(self, fake: FakeCoinbase) -> None:
        fake.add_route("GET", ACCOUNTS_PATH, self._handle)

    def set_balance(
        self,
        currency: str,
        available: str | Decimal,
        hold: str | Decimal = "0",
        *,
        portfolio: str = DEFAULT_PORTFOLIO,
    ) -> None:
        for account in self.accounts:
            if account.currency == currency and account.portfolio == portfolio:
                account.available, account.hold = Decimal(available), Decimal(hold)
                return
        self.accounts.append(
            FakeAccount(currency, Decimal(available), Decimal(hold), portfolio, str(uuid.uuid4()))
        )

    def reset_counts(self) -> None:
        self.calls = 0
        self.requests.clear()

    async def _handle(self, request: RestRequest) -> tuple[int, Any]:
        self.requests.append(dict(request.query))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.rate_limited_for is not None:
            self._blocked_until = time.monotonic() + self.rate_limited_for
            self.rate_limited_for = None
        remaining = self._blocked_until - time.monotonic()
        if remaining > 0:
            body = {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"}
            headers = {"Retry-After": str(math.ceil(remaining))}
            return 429, JSONResponse(body, status_code=429, headers=headers)
        if self.down:
            return 503, {"error": "UNAVAILABLE", "message": "service unavailable"}
        try:
            limit = int(request.query.get("limit", DEFAULT_LIMIT))
            start = int(request.query.get("cursor") or 0)
        except ValueError:
            return 400, {"error": "INVALID_ARGUMENT", "message": "bad limit or cursor"}
        if not 1 <= limit <= MAX_LIMIT or start < 0:
            return 400, {"error": "INVALID_ARGUMENT", "message": "limit must be 1..250"}
        page = self.accounts[start : start + limit]
        has_next = start + limit < len(self.accounts)
        self.calls += 1
        return 200, {
            "accounts": [a.to_json() for a in page],
            "has_next": has_next,
            "cursor": str(start + limit) if has_next else "",
            "size": len(page),
        }
