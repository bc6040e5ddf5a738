"""Query strings and JSON bodies -> request messages (protobuf's JSON mapping), and responses
-> JSON. Query keys are proto field names (snake_case or lowerCamelCase, dotted for nested
messages: `time_range.start`); repeated fields take repeated keys or comma-separated values;
enums take their full name (`CANDLE_INTERVAL_ONE_MINUTE`) or the short one (`one_minute`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from tradeplane.gateway.errors import ApiError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


def _field(descriptor: Any, name: str) -> FieldDescriptor | None:
    found: FieldDescriptor | None = descriptor.fields_by_name.get(name)
    if found is None:
        found = descriptor.fields_by_camelcase_name.get(name)
    return found


def _enum_value(enum: EnumDescriptor, text: str, key: str) -> str | int:
    if text in enum.values_by_name:
        return text
    if text.lstrip("-").isdigit():
        return int(text)
    # Short names: CANDLE_INTERVAL_ONE_MINUTE may be given as one_minute / ONE-MINUTE.
    names = list(enum.values_by_name)
    prefix = names[0].removesuffix("UNSPECIFIED") if names[0].endswith("UNSPECIFIED") else ""
    candidate = prefix + text.strip().upper().replace("-", "_")
    if candidate in enum.values_by_name:
        return candidate
    allowed = ", ".join(n.removeprefix(prefix).lower() for n in names[1:])
    raise invalid(key, f"unknown value {text!r} (one of: {allowed})")


def _timestamp(text: str, key: str) -> str:
    try:
        seconds = float(text)
    except ValueError:
        return text  # RFC 3339; json_format checks it
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def indicator_spec(text: str, key: str) -> dict[str, Any]:
    """`sma:period=20;source=close` -> IndicatorSpec JSON."""
    name, _, rest = text.partition(":")
    params: dict[str, float] = {}
    for part in filter(None, rest.split(";")):
        param, sep, value = part.partition("=")
        try:
            params[param.strip()] = float(value)
        except ValueError:
            raise invalid(key, f"indicator parameter {part!r} is not name=number") from None
        if not sep:
            raise invalid(key, f"indicator parameter {part!r} is not name=number")
    return {"name": name.strip(), "params": params}


# Message types given as one text value in a query string.
_TEXT_MESSAGES = {"trading.market.v1.IndicatorSpec": indicator_spec}


def _scalar(fd: FieldDescriptor, text: str, key: str) -> Any:
    if fd.type == FieldDescriptor.TYPE_BOOL:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise invalid(key, f"{text!r} is not a boolean")
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        return _enum_value(fd.enum_type, text, key)
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(text)
        except ValueError:
            raise invalid(key, f"{text!r} is not a number") from None
    if fd.type in _INTEGER_TYPES:
        if not text.strip().lstrip("-").isdigit():
            raise invalid(key, f"{text!r} is not an integer")
        return int(text)
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        assert fd.message_type is not None
        full_name = fd.message_type.full_name
        if full_name == "google.protobuf.Timestamp":
            return _timestamp(text, key)
        if full_name in _TEXT_MESSAGES:
            return _TEXT_MESSAGES[full_name](text, key)
        raise invalid(key, "a message field cannot be given as one query value")
    return text


def query_to_dict(descriptor: Any, items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key == "access_token":
            continue
        parts = key.split(".")
        target = out
        desc: Any = descriptor
        for i, part in enumerate(parts):
            fd = _field(desc, part)
            if fd is None:
                raise invalid(key, "unknown parameter")
            last = i == len(parts) - 1
            if not last:
                if fd.type != FieldDescriptor.TYPE_MESSAGE or fd.is_repeated:
                    raise invalid(key, "unknown parameter")
                target = target.setdefault(fd.name, {})
                assert fd.message_type is not None
                desc = fd.message_type
                continue
            if fd.is_repeated:
                if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                    raise invalid(key, "map fields are only accepted in a JSON body")
                values = [v for v in value.split(",") if v] if value else []
                target.setdefault(fd.name, []).extend(_scalar(fd, v, key) for v in values)
            else:
                target[fd.name] = _scalar(fd, value, key)
    return out


def build_request(
    cls: type[Message],
    *,
    path_params: Mapping[str, Any],
    query: Iterable[tuple[str, str]],
    body: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None = None,
    defaults_unless: tuple[str, ...] = (),
) -> Message:
    doc = query_to_dict(cls.DESCRIPTOR, query)
    if body:
        doc.update(body)
    doc.update(path_params)
    given = {n for n in defaults_unless if n in doc or _camel(n) in doc}
    for name, value in (defaults or {}).items():
        if not given:
            _set_default(cls.DESCRIPTOR, doc, name, value)
    request = cls()
    try:
        json_format.ParseDict(doc, request)
    except json_format.ParseError as exc:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    return request


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _set_default(descriptor: Any, doc: dict[str, Any], name: str, value: Any) -> None:
    """Set `name` unless it, or another field of its oneof, was given."""
    fd = descriptor.fields_by_name[name]
    group = fd.containing_oneof.fields if fd.containing_oneof is not None else [fd]
    if any(f.name in doc or f.json_name in doc for f in group):
        return
    doc[name] = value


def message_json(message: Message) -> bytes:
    return orjson.dumps(json_format.MessageToDict(message))
