"""JWTs for Coinbase Advanced Trade (CDP API keys), signed with pyjwt.

The documented claims, as the official SDK (`coinbase-advanced-py`, `coinbase.jwt_generator`)
builds them: sub = key name, iss = "cdp", nbf = now, exp = now + 120 s; header kid = key
name and a random nonce; REST JWTs add uri = "METHOD host/path". ES256 for EC (P-256) keys in
PEM, EdDSA for Ed25519 keys (PEM or the base64 form CDP hands out). A JWT expires after two
minutes, so one is built per message or request.

The SDK itself is not a dependency: it pins websockets<14, which the rest of the workspace
(the gateway) cannot live with, for what is these few lines.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import SecretStr

LIFETIME_SECONDS = 120


def _private_key(secret: str) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if secret.lstrip().startswith("-----BEGIN"):
        # .env files often carry the PEM with literal "\n"s.
        pem = secret.replace("\\n", "\n").encode()
        key = serialization.load_pem_private_key(pem, password=None)
    else:
        try:
            raw = base64.b64decode("".join(secret.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("COINBASE_API_SECRET is neither PEM nor base64") from None
        if len(raw) not in (32, 64):
            raise ValueError("a base64 Ed25519 COINBASE_API_SECRET must be 32 or 64 bytes")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("COINBASE_API_SECRET must be an EC (P-256) or Ed25519 private key")
    return key


def build_jwt(api_key: SecretStr, api_secret: SecretStr, uri: str | None = None) -> str:
    key = _private_key(api_secret.get_secret_value())
    name = api_key.get_secret_value()
    now = int(time.time())
    claims: dict[str, Any] = {"sub": name, "iss": "cdp", "nbf": now, "exp": now + LIFETIME_SECONDS}
    if uri is not None:
        claims["uri"] = uri
    algorithm = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    headers = {"kid": name, "nonce": secrets.token_hex()}
    return pyjwt.encode(claims, key, algorithm=algorithm, headers=headers)


def ws_jwt(api_key: SecretStr, api_secret: SecretStr) -> str:
    """A JWT for one WebSocket subscribe message."""
    return build_jwt(api_key, api_secret)


def rest_jwt(api_key: SecretStr, api_secret: SecretStr, method: str, url: str) -> str:
    """A JWT for one REST request (`Authorization: Bearer <jwt>`), bound to method+host+path."""
    parts = urlsplit(url)
    return build_jwt(api_key, api_secret, uri=f"{method.upper()} {parts.netloc}{parts.path}")
