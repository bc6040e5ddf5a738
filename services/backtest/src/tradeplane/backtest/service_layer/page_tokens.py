"""Opaque page tokens: URL-safe base64 of a small JSON object, bound to the query it pages."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tradeplane.runtime.errors import InvalidArgument


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, field: str = "page_token") -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument(field, "malformed page token") from None
    if not isinstance(payload, dict):
        raise InvalidArgument(field, "malformed page token")
    return payload


def page_size(value: int, default: int, maximum: int, field: str = "page_size") -> int:
    """The page size to use: the default for 0, refused when negative, capped at `maximum`."""
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(value or default, maximum)
