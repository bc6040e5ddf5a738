"""Rejects requests whose Timestamp or Duration fields are outside what protobuf defines,
before any handler sees them: one check for every method instead of a range check (or an
INTERNAL from a datetime overflow) in each service's mapping code.

Timestamp: seconds within 0001-01-01..9999-12-31, nanos 0..999,999,999. Duration: seconds
within +-315,576,000,000 (10,000 years), nanos within +-999,999,999 with the sign of seconds.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

_MIN_TS, _MAX_TS = -62_135_596_800, 253_402_300_799
_MAX_DURATION = 315_576_000_000
_NANOS = 999_999_999


def _timestamp_problem(message: Any) -> str | None:
    if not _MIN_TS <= message.seconds <= _MAX_TS:
        return "must be between 0001-01-01 and 9999-12-31"
    if not 0 <= message.nanos <= _NANOS:
        return "nanos must be between 0 and 999999999"
    return None


def _duration_problem(message: Any) -> str | None:
    seconds, nanos = message.seconds, message.nanos
    if not -_MAX_DURATION <= seconds <= _MAX_DURATION:
        return "must be within 10000 years"
    if not -_NANOS <= nanos <= _NANOS or (seconds and nanos and (seconds < 0) != (nanos < 0)):
        return "nanos must be within 999999999 and have the sign of seconds"
    return None


_CHECKS = {
    "google.protobuf.Timestamp": _timestamp_problem,
    "google.protobuf.Duration": _duration_problem,
}


def invalid_field(message: Message, prefix: str = "") -> str | None:
    """'field.path: problem' for the first out-of-range Timestamp/Duration, else None."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        path = f"{prefix}{field.name}"
        if field.message_type.GetOptions().map_entry:
            has_messages = field.message_type.fields_by_name["value"].message_type is not None
            values = list(value.values()) if has_messages else []
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            check = _CHECKS.get(item.DESCRIPTOR.full_name)
            problem = check(item) if check else invalid_field(item, f"{path}.")
            if problem is not None:
                return problem if check is None else f"{path}: {problem}"
    return None


def problem_in(request: Any) -> str | None:
    """What `invalid_field` finds in a unary request; skips the walk for a message type that
    can hold no Timestamp or Duration at all (most requests)."""
    if not isinstance(request, Message):
        return None
    cls = type(request)
    holds = _HOLDS_CHECKED.get(cls)
    if holds is None:
        holds = _HOLDS_CHECKED[cls] = _can_hold_checked(request.DESCRIPTOR)
    return invalid_field(request) if holds else None


_HOLDS_CHECKED: dict[type, bool] = {}


def _can_hold_checked(descriptor: Any) -> bool:
    """Whether a Timestamp or Duration is reachable through the message's fields (the
    message itself is never checked, as in `invalid_field`)."""
    if descriptor.extension_ranges:
        return True  # extensions are not among `fields`: always walk
    seen: set[str] = set()
    pending = [f.message_type for f in descriptor.fields if f.message_type is not None]
    while pending:
        current = pending.pop()
        if current.full_name in _CHECKS or current.extension_ranges:
            return True
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        pending.extend(f.message_type for f in current.fields if f.message_type is not None)
    return False
