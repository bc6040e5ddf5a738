"""ServerFrame encoding (protobuf's JSON mapping of `trading.gateway.v1`).

Data frames are encoded ONCE per upstream message: `DataBody.text` is the frame without its
subscription id, and each subscriber's frame is `head + body + "}}"`, where `head` (built once per
subscription) carries the id. Ticks and candles use hand-written encoders that produce exactly
the JSON mapping (fields at their default value omitted, uint64 as strings, Timestamps as RFC
3339) because they are the hot path; the rarer messages go through `json_format`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from trading.common.v1 import common_pb2
from trading.gateway.v1 import gateway_pb2
from trading.market.v1 import market_pb2

Json = dict[str, Any]

_SIDE: dict[int, str] = {v.number: v.name for v in common_pb2.Side.DESCRIPTOR.values}
_INTERVAL: dict[int, str] = {v.number: v.name for v in market_pb2.CandleInterval.DESCRIPTOR.values}
CHANNEL_NAME: dict[int, str] = {v.number: v.name for v in gateway_pb2.Channel.DESCRIPTOR.values}
_ERROR_CODE: dict[int, str] = {v.number: v.name for v in gateway_pb2.ErrorCode.DESCRIPTOR.values}
_RESET_REASON: dict[int, str] = {
    v.number: v.name for v in gateway_pb2.ResetReason.DESCRIPTOR.values
}
_CLOSE_CODE: dict[int, str] = {v.number: v.name for v in gateway_pb2.CloseCode.DESCRIPTOR.values}


def rfc3339(ts: Timestamp) -> str:
    return ts.ToJsonString()


def now_rfc3339() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def tick_json(t: market_pb2.Tick) -> Json:
    d: Json = {}
    if t.product_id:
        d["productId"] = t.product_id
    if t.seq:
        d["seq"] = str(t.seq)
    if t.HasField("time"):
        d["time"] = t.time.ToJsonString()
    if t.price:
        d["price"] = t.price
    if t.size:
        d["size"] = t.size
    if t.side:
        d["side"] = _SIDE.get(t.side, t.side)
    if t.best_bid:
        d["bestBid"] = t.best_bid
    if t.best_ask:
        d["bestAsk"] = t.best_ask
    if t.trade_id:
        d["tradeId"] = t.trade_id
    return d


def candle_json(c: market_pb2.Candle) -> Json:
    d: Json = {}
    if c.product_id:
        d["productId"] = c.product_id
    if c.interval:
        d["interval"] = _INTERVAL.get(c.interval, c.interval)
    if c.HasField("start"):
        d["start"] = c.start.ToJsonString()
    for name, key in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close")):
        value = getattr(c, name)
        if value:
            d[key] = value
    if c.volume:
        d["volume"] = c.volume
    if c.trade_count:
        d["tradeCount"] = c.trade_count
    if c.closed:
        d["closed"] = True
    if c.seq:
        d["seq"] = str(c.seq)
    return d


def message_dict(message: Message) -> Json:
    return json_format.MessageToDict(message)


def encode(frame: Json) -> str:
    return orjson.dumps(frame).decode()


# -- control frames ------------------------------------------------------------------------


def hello(connection_id: str, heartbeat_ms: int, max_subs: int, authenticated: bool) -> str:
    body: Json = {
        "connectionId": connection_id,
        "heartbeatIntervalMs": heartbeat_ms,
        "maxSubscriptions": max_subs,
        "serverTime": now_rfc3339(),
    }
    if authenticated:
        body["authenticated"] = True
    return encode({"hello": body})


def subscribed(request_id: str, subscription_id: str, subscription: Json) -> str:
    body: Json = {"subscriptionId": subscription_id, "subscription": subscription}
    if request_id:
        body["requestId"] = request_id
    return encode({"subscribed": body})


def unsubscribed(request_id: str, subscription_id: str) -> str:
    body: Json = {"subscriptionId": subscription_id}
    if request_id:
        body["requestId"] = request_id
    return encode({"unsubscribed": body})


def error(code: int, message: str, request_id: str = "", subscription_id: str = "") -> str:
    body: Json = {"code": _ERROR_CODE[code], "message": message}
    if request_id:
        body["requestId"] = request_id
    if subscription_id:
        body["subscriptionId"] = subscription_id
    return encode({"error": body})


def reset(subscription_id: str, reason: int, product_ids: list[str], message: str) -> str:
    body: Json = {"subscriptionId": subscription_id, "reason": _RESET_REASON[reason]}
    if product_ids:
        body["productIds"] = product_ids
    if message:
        body["message"] = message
    return encode({"reset": body})


def closing(code: int, reason: str) -> str:
    return encode({"closing": {"code": _CLOSE_CODE[code], "reason": reason}})


def ping(nonce: str) -> str:
    return encode({"ping": {"nonce": nonce, "time": now_rfc3339()}})


def pong(nonce: str) -> str:
    body: Json = {"time": now_rfc3339()}
    if nonce:
        body["nonce"] = nonce
    return encode({"pong": body})


def snapshot(
    subscription_id: str,
    channel: int,
    seq: int,
    seq_by_product: dict[str, int] | None,
    state_field: str,
    state: Json,
) -> str:
    body: Json = {"subscriptionId": subscription_id, "channel": CHANNEL_NAME[channel]}
    if seq:
        body["seq"] = str(seq)
    if seq_by_product:
        body["seqByProduct"] = {p: str(s) for p, s in seq_by_product.items()}
    body[state_field] = state
    return encode({"snapshot": body})


# -- data frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataBody:
    """A data frame minus its subscription id: encoded once, shared by every subscriber."""

    text: str  # `"channel":...,"seq":...,"<payload>":{...}` (no braces)
    last_seq: int
    count: int
    created: float


def data_body(
    channel: int, seq: int, product_id: str | None, payload_field: str, payload: Json
) -> DataBody:
    body: Json = {"channel": CHANNEL_NAME[channel]}
    if seq:
        body["seq"] = str(seq)
    if product_id:
        body["seqByProduct"] = {product_id: str(seq)}
    body["sendTime"] = now_rfc3339()
    body[payload_field] = payload
    text = orjson.dumps(body).decode()[1:-1]
    items = next(iter(payload.values())) if payload else []
    return DataBody(text, seq, len(items) if isinstance(items, list) else 1, time.monotonic())


def data_head(subscription_id: str) -> str:
    return '{"data":{"subscriptionId":' + orjson.dumps(subscription_id).decode() + ","


DATA_TAIL = "}}"
