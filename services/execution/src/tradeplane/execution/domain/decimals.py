"""Decimal strings in and out: the API carries prices and sizes as decimal strings."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from tradeplane.runtime.errors import InvalidArgument

ZERO = Decimal(0)


def parse_decimal(field: str, text: str) -> Decimal | None:
    """``""`` -> None; a finite decimal string -> Decimal; anything else -> InvalidArgument
    naming ``field``."""
    text = text.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidArgument(field, f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise InvalidArgument(field, f"not a finite number: {text!r}")
    return value


def format_decimal(value: Decimal | None) -> str:
    """Plain notation without exponent or trailing zeros ("0.015", "100", "0"); None -> ""."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def is_multiple(value: Decimal, increment: Decimal) -> bool:
    """True when ``value`` is a whole number of ``increment`` (increment > 0)."""
    return value % increment == 0
