"""Bearer-token (JWT) authentication and scope-based authorisation.

Scopes are ordered ``read < trade < admin``: a token with ``trade`` may call ``read`` methods.
The scope an RPC needs is the ``trading.common.v1.required_scope`` option on its proto method;
a method without the option needs ``admin``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import functools
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from google.protobuf import descriptor_pool

from tradeplane.runtime.config import ServiceSettings
from tradeplane.runtime.errors import PermissionDenied, Unauthenticated

# Registers the `required_scope` extension in the default descriptor pool.
from trading.common.v1 import common_pb2


class Scope(enum.IntEnum):
    READ = 1
    TRADE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and the scopes it carries."""

    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False

    def allows(self, required: Scope) -> bool:
        levels = (Scope.parse(s) for s in self.scopes)
        return any(level is not None and level >= required for level in levels)


ANONYMOUS_ALL_SCOPES = Principal(
    subject="anonymous", scopes=frozenset(s.label for s in Scope), anonymous=True
)

_current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "tradeplane_principal", default=None
)
_current_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tradeplane_bearer_token", default=None
)


def current_principal() -> Principal | None:
    """The authenticated caller of the RPC being handled (None outside an RPC)."""
    return _current_principal.get()


def current_token() -> str | None:
    """The caller's raw bearer token, forwarded by `create_channel` on downstream calls."""
    return _current_token.get()


def set_current_caller(principal: Principal | None, token: str | None) -> None:
    # Not reset afterwards on purpose: every RPC runs in its own task (own context copy), and
    # the logging interceptor reads the principal after the handler returned.
    _current_principal.set(principal)
    _current_token.set(token)


# Services that never need a token: probes and grpcurl discovery.
PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


@functools.lru_cache(maxsize=1024)
def required_scope(full_method_name: str) -> Scope:
    """Scope needed for e.g. ``trading.market.v1.MarketService.ListProducts`` (proto dotted
    name); ADMIN when the method is unknown or has no ``required_scope`` option."""
    try:
        method = descriptor_pool.Default().FindMethodByName(full_method_name)
    except KeyError:
        return Scope.ADMIN
    options = method.GetOptions()
    value = int(options.Extensions[common_pb2.required_scope])
    if value == common_pb2.SCOPE_UNSPECIFIED:
        return Scope.ADMIN
    return Scope(value)


def _read_key(text: str) -> str:
    """PEM text, or the path of a PEM file."""
    if "-----BEGIN" in text:
        return text.replace("\\n", "\n")  # PEM squeezed into one env line with literal \n
    return pathlib.Path(text).read_text()


class TokenVerifier:
    """Verifies bearer tokens according to the service settings."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        key: Any
        if self.algorithm == "HS256":
            if settings.jwt_secret is None:
                raise ValueError("JWT_SECRET is required for HS256")
            key = settings.jwt_secret.get_secret_value()
        else:
            if settings.jwt_public_key is None:
                raise ValueError("JWT_PUBLIC_KEY is required for ES256")
            key = _read_key(settings.jwt_public_key)
        self._key = key

    def verify(self, token: str) -> Principal:
        """The token's principal; raises Unauthenticated when it is invalid or expired."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return Principal(subject=str(claims["sub"]), scopes=_scopes_of(claims))


def _scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    # OAuth 2 style space-separated "scope", or a "scopes" list.
    raw = claims.get("scope", claims.get("scopes", ""))
    items = raw.split() if isinstance(raw, str) else [str(s) for s in raw or ()]
    return frozenset(s.lower() for s in items)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the `authorization: Bearer <token>` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def authorize(principal: Principal, required: Scope) -> None:
    if not principal.allows(required):
        raise PermissionDenied(f"this method requires the '{required.label}' scope")


def issue_token(
    subject: str,
    scopes: Iterable[str],
    *,
    secret: str | None = None,
    algorithm: str = "HS256",
    ttl_seconds: float = 3600,
    private_key: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A signed token for `subject` with `scopes` (HS256 with `secret`, ES256 with the PEM
    `private_key`). A negative ttl gives an already expired token (for tests)."""
    now = dt.datetime.now(tz=dt.UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl_seconds),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    if algorithm == "HS256":
        if secret is None:
            raise ValueError("issue_token: HS256 needs secret=")
        return jwt.encode(claims, secret, algorithm="HS256")
    if algorithm == "ES256":
        if private_key is None:
            raise ValueError("issue_token: ES256 needs private_key=")
        return jwt.encode(claims, _read_key(private_key), algorithm="ES256")
    raise ValueError(f"issue_token: unsupported algorithm {algorithm!r}")
