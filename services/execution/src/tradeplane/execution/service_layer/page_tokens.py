"""Opaque page tokens: URL-safe base64 of a small JSON object, bound to the query it pages
(a token used with other filters is INVALID_ARGUMENT)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from tradeplane.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    if value > MAX_PAGE_SIZE:
        raise InvalidArgument(field, f"at most {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


def query_hash(filters: Any) -> str:
    raw = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_token(payload: dict[str, Any], filters: Any) -> str:
    body = {**payload, "q": query_hash(filters)}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, filters: Any, field: str = "page_token") -> dict[str, Any] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument(field, "malformed page token") from None
    if not isinstance(payload, dict):
        raise InvalidArgument(field, "malformed page token")
    if payload.get("q") != query_hash(filters):
        raise InvalidArgument(field, "page token belongs to a query with other filters")
    return payload
