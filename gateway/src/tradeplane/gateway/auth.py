"""Who is calling: bearer JWTs (the services' tokens and scopes) and the Origin allow-list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from tradeplane.gateway.settings import GatewaySettings
from tradeplane.runtime.auth import ANONYMOUS_ALL_SCOPES, Principal, Scope, TokenVerifier
from tradeplane.runtime.errors import PermissionDenied, Unauthenticated

# JWT claim naming the trading accounts a token may see (a list, or a space-separated string).
ACCOUNTS_CLAIM = "accounts"


@dataclass(frozen=True)
class Caller:
    principal: Principal
    token: str | None  # forwarded to the services
    expires_at: float | None = None  # Unix time the token expires (None: never / auth off)
    # Accounts this caller may see; None = every account (admin scope, a token without the
    # `accounts` claim, or auth off).
    accounts: frozenset[str] | None = None

    def account_filter(self, requested: Iterable[str]) -> frozenset[str] | None:
        """The accounts a live subscription or request may cover: `requested` (empty: every
        account the caller may see; None = all). Raises PermissionDenied for another's."""
        wanted = frozenset(a for a in requested if a)
        if self.accounts is None:
            return wanted or None
        foreign = sorted(wanted - self.accounts)
        if foreign:
            raise PermissionDenied(f"account_ids: this token may not see account {foreign[0]!r}")
        return wanted or self.accounts


def token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <jwt>`, else `?access_token=<jwt>` (browsers cannot set headers
    on a WebSocket upgrade)."""
    header = headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = query.get("access_token", "").strip()
    return token or None


class Authenticator:
    def __init__(self, settings: GatewaySettings) -> None:
        self.disabled = settings.auth_mode == "disabled"
        self._verifier = None if self.disabled else TokenVerifier(settings)
        self._origins = settings.allowed_origins

    def authenticate(self, token: str | None) -> Caller:
        """The caller for `token`; raises Unauthenticated. With AUTH_MODE=disabled everyone is
        an anonymous caller with every scope (a token, if any, is still forwarded)."""
        if self._verifier is None:
            return Caller(ANONYMOUS_ALL_SCOPES, token)
        if not token:
            raise Unauthenticated("a bearer token is required")
        principal = self._verifier.verify(token)
        # Verified just above; read `exp` so long-lived sockets end when their token does.
        claims = jwt.decode(token, options={"verify_signature": False})
        exp = claims.get("exp")
        return Caller(
            principal,
            token,
            float(exp) if isinstance(exp, int | float) else None,
            None if principal.allows(Scope.ADMIN) else _accounts_of(claims),
        )

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if not origin:
            return True  # not a browser (browsers always send Origin on a WebSocket upgrade)
        origin = origin.rstrip("/")
        if "*" in self._origins or origin in self._origins:
            return True
        return bool(host) and urlsplit(origin).netloc.lower() == (host or "").lower()


def _accounts_of(claims: dict[str, object]) -> frozenset[str] | None:
    raw = claims.get(ACCOUNTS_CLAIM)
    if raw is None:
        return None
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(a) for a in raw if a)
    raise Unauthenticated(f"invalid token: the {ACCOUNTS_CLAIM!r} claim must be a list")
