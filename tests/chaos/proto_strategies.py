"""Hypothesis strategies for any protobuf message, built from its descriptor: every field
type with boundary values (empty, huge, negative, NaN/inf, unknown enum numbers, hostile
strings), repeated and map fields, oneofs, nested messages to a bounded depth."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_HOSTILE_TEXT = [
    "",
    " ",
    "BTC-USD",
    "btc-usd",
    "-1",
    "0",
    "1e309",
    "NaN",
    "Infinity",
    "0.000000000000000000000000001",
    "99999999999999999999999999999999999999",
    "' OR 1=1 --",
    "../../etc/passwd",
    "\x00",
    "é\u202e\ud7ff",
    "x" * 10_000,
]


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        lo, hi = _I32
        return st.one_of(st.sampled_from([0, -1, 1, lo, hi]), st.integers(lo, hi))
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        lo, hi = _I64
        return st.one_of(st.sampled_from([0, -1, 1, lo, hi]), st.integers(lo, hi))
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.one_of(st.sampled_from([0, 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.one_of(st.sampled_from([0, 1, 2**64 - 1]), st.integers(0, 2**64 - 1))
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.one_of(
            st.sampled_from([0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e308]),
            st.floats(width=32 if t == F.TYPE_FLOAT else 64),
        )
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_STRING:
        return st.one_of(st.sampled_from(_HOSTILE_TEXT), st.text(max_size=40))
    if t == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == F.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-1, max(numbers) + 3))
    raise AssertionError(f"unhandled field type {t} of {field.full_name}")


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """A strategy of instances of `descriptor`'s class; fields are set at random."""
    cls = GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    if descriptor.full_name == "google.protobuf.Timestamp":
        seconds = st.one_of(
            st.sampled_from([0, -1, 253402300799, 253402300800, -62135596801]),
            st.integers(0, 4_102_444_800),
        )
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, st.integers(-1, 10**9))

    fields = [f for f in descriptor.fields if f.containing_oneof is None]
    oneofs = list(descriptor.oneofs)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field in fields:
            if not draw(st.booleans()):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_f = field.message_type.fields_by_name["key"]
                value_f = field.message_type.fields_by_name["value"]
                entries = draw(st.dictionaries(_scalar(key_f), _value(value_f, depth), max_size=3))
                target = getattr(message, field.name)
                for key, value in entries.items():
                    if value_f.type == F.TYPE_MESSAGE:
                        target[key].CopyFrom(value)
                    else:
                        target[key] = value
            elif field.is_repeated:
                values = draw(st.lists(_value(field, depth), max_size=4))
                target = getattr(message, field.name)
                if field.type == F.TYPE_MESSAGE:
                    for value in values:
                        target.add().CopyFrom(value)
                else:
                    target.extend(values)
            elif field.type == F.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(draw(_value(field, depth)))
            else:
                setattr(message, field.name, draw(_value(field, depth)))
        for oneof in oneofs:
            choice = draw(st.sampled_from([None, *oneof.fields]))
            if choice is None:
                continue
            value = draw(_value(choice, depth))
            if choice.type == F.TYPE_MESSAGE:
                getattr(message, choice.name).CopyFrom(value)
            else:
                setattr(message, choice.name, value)
        return message

    return build()
