"""The documented JSON of Coinbase Advanced Trade market data -> plain values.

Every WebSocket message is an envelope
    {"channel": ..., "client_id": "", "timestamp": "<RFC 3339, ns>", "sequence_num": N,
     "events": [...]}
where `sequence_num` counts every message of the connection (all channels), so a jump means
messages were lost. The level2 channel answers on channel "l2_data". Errors come as
    {"type": "error", "message": ...}.
Numbers are decimal strings; they stay Decimal here (never float).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tradeplane.market.adapters.venues.coinbase.symbols import from_venue_product
from tradeplane.market.domain.ticks import Side


class CoinbaseProtocolError(ValueError):
    """A message that does not have the documented shape."""


class CoinbaseErrorMessage(Exception):
    """The server sent {"type": "error"} (e.g. a bad subscription or a rejected JWT)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    channel: str
    timestamp: datetime | None
    sequence_num: int | None
    events: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class MarketTrade:
    product_id: str
    trade_id: str
    time: datetime
    price: Decimal
    size: Decimal
    side: Side


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    product_id: str
    price: Decimal
    best_bid: Decimal | None
    best_ask: Decimal | None


@dataclass(frozen=True, slots=True)
class BookLevel:
    side: str  # "bid" or "offer"
    price: Decimal
    quantity: Decimal  # 0 removes the level


@dataclass(frozen=True, slots=True)
class BookEvent:
    product_id: str
    snapshot: bool
    levels: list[BookLevel]


@dataclass(frozen=True, slots=True)
class VenueCandle:
    """One candle as Coinbase serves it (WebSocket `candles` channel or REST)."""

    product_id: str
    start: int  # epoch seconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def parse_time(value: str) -> datetime:
    """RFC 3339 with up to nanoseconds ("2023-02-09T20:19:35.39625135Z") -> aware UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise CoinbaseProtocolError(f"bad time {value!r}") from None
    if moment.tzinfo is None:
        raise CoinbaseProtocolError(f"time {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def _decimal(obj: Mapping[str, Any], key: str) -> Decimal:
    try:
        return Decimal(str(obj[key]))
    except (KeyError, InvalidOperation):
        raise CoinbaseProtocolError(f"field {key!r} missing or not a number in {obj}") from None


def _optional_decimal(obj: Mapping[str, Any], key: str) -> Decimal | None:
    value = obj.get(key)
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise CoinbaseProtocolError(f"field {key!r} is not a number in {obj}") from None


def parse_message(raw: str | bytes) -> Envelope:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CoinbaseProtocolError("message is not JSON") from None
    if not isinstance(data, dict):
        raise CoinbaseProtocolError("message is not a JSON object")
    if data.get("type") == "error":
        raise CoinbaseErrorMessage(str(data.get("message") or data))
    channel = data.get("channel")
    if not isinstance(channel, str):
        raise CoinbaseProtocolError(f"message without channel: {data}")
    events = data.get("events") or []
    if not isinstance(events, list):
        raise CoinbaseProtocolError(f"events is not a list: {data}")
    seq = data.get("sequence_num")
    stamp = data.get("timestamp")
    return Envelope(
        channel=channel,
        timestamp=parse_time(stamp) if isinstance(stamp, str) and stamp else None,
        sequence_num=int(seq) if seq is not None else None,
        events=[e for e in events if isinstance(e, dict)],
    )


def _side(value: Any) -> Side:
    # Advanced Trade reports the side in capitals ("BUY"/"SELL"): the taker's side.
    text = str(value).lower()
    if text not in ("buy", "sell"):
        raise CoinbaseProtocolError(f"bad trade side {value!r}")
    return Side(text)


def market_trades(envelope: Envelope) -> list[MarketTrade]:
    """The trades of a `market_trades` message (events of type snapshot or update)."""
    trades: list[MarketTrade] = []
    for event in envelope.events:
        for t in event.get("trades") or []:
            try:
                trades.append(
                    MarketTrade(
                        product_id=from_venue_product(str(t["product_id"])),
                        trade_id=str(t["trade_id"]),
                        time=parse_time(str(t["time"])),
                        price=_decimal(t, "price"),
                        size=_decimal(t, "size"),
                        side=_side(t.get("side")),
                    )
                )
            except KeyError as exc:
                raise CoinbaseProtocolError(f"trade without {exc}: {t}") from None
    return trades


def tickers(envelope: Envelope) -> list[TickerUpdate]:
    out: list[TickerUpdate] = []
    for event in envelope.events:
        for t in event.get("tickers") or []:
            if "product_id" not in t:
                raise CoinbaseProtocolError(f"ticker without product_id: {t}")
            out.append(
                TickerUpdate(
                    product_id=from_venue_product(str(t["product_id"])),
                    price=_decimal(t, "price"),
                    best_bid=_optional_decimal(t, "best_bid"),
                    best_ask=_optional_decimal(t, "best_ask"),
                )
            )
    return out


def book_events(envelope: Envelope) -> list[BookEvent]:
    """The level2 channel's `l2_data` events: a snapshot, then updates (new quantity per
    price level; 0 removes it). Sides are "bid" and "offer"."""
    out: list[BookEvent] = []
    for event in envelope.events:
        if "product_id" not in event:
            raise CoinbaseProtocolError(f"l2_data event without product_id: {event}")
        levels = []
        for u in event.get("updates") or []:
            side = str(u.get("side", "")).lower()
            if side not in ("bid", "offer"):
                raise CoinbaseProtocolError(f"bad book side in {u}")
            levels.append(BookLevel(side, _decimal(u, "price_level"), _decimal(u, "new_quantity")))
        out.append(
            BookEvent(
                product_id=from_venue_product(str(event["product_id"])),
                snapshot=event.get("type") == "snapshot",
                levels=levels,
            )
        )
    return out


def _candle(c: Mapping[str, Any], product_id: str | None = None) -> VenueCandle:
    try:
        start = int(str(c["start"]))
    except (KeyError, ValueError):
        raise CoinbaseProtocolError(f"candle without a numeric start: {c}") from None
    product = product_id or c.get("product_id")
    if not product:
        raise CoinbaseProtocolError(f"candle without product_id: {c}")
    return VenueCandle(
        product_id=from_venue_product(str(product)),
        start=start,
        open=_decimal(c, "open"),
        high=_decimal(c, "high"),
        low=_decimal(c, "low"),
        close=_decimal(c, "close"),
        volume=_decimal(c, "volume"),
    )


def ws_candles(envelope: Envelope) -> list[VenueCandle]:
    """The `candles` channel: five-minute candles, updated every second."""
    return [_candle(c) for event in envelope.events for c in event.get("candles") or []]


def heartbeat_counter(envelope: Envelope) -> int | None:
    for event in envelope.events:
        if "heartbeat_counter" in event:
            return int(str(event["heartbeat_counter"]))
    return None


def rest_candles(body: Mapping[str, Any], product_id: str) -> list[VenueCandle]:
    """`GET /api/v3/brokerage/market/products/{id}/candles` -> {"candles": [...]}, newest
    first on the wire; returned oldest first."""
    raw = body.get("candles")
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise CoinbaseProtocolError(f"candles response without a candles list: {body}")
    return sorted((_candle(c, product_id) for c in raw), key=lambda c: c.start)


def subscribe_message(
    channel: str, product_ids: Sequence[str], jwt: str | None = None, *, kind: str = "subscribe"
) -> dict[str, Any]:
    """One subscribe (or `kind="unsubscribe"`) message: one channel per message, as documented."""
    message: dict[str, Any] = {
        "type": kind,
        "product_ids": list(product_ids),
        "channel": channel,
    }
    if jwt is not None:
        message["jwt"] = jwt
    return message
