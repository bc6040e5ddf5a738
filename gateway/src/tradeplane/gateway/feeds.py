"""What each subscription key streams from upstream: request, item extraction, snapshot.

A feed is the description of one subscription key (channel + product / interval / target):
the topic that runs it opens ONE upstream gRPC stream for every browser that subscribes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from tradeplane.gateway.frames import Json, candle_json, message_dict, tick_json
from trading.backtest.v1 import backtest_pb2
from trading.execution.v1 import execution_pb2
from trading.gateway.v1 import gateway_pb2
from trading.market.v1 import market_pb2
from trading.wallets.v1 import wallets_pb2

Item = tuple[int, Json]  # (seq, the update in protobuf's JSON mapping)

CHANNEL_TICKS = gateway_pb2.CHANNEL_TICKS
CHANNEL_CANDLES = gateway_pb2.CHANNEL_CANDLES
CHANNEL_LIVE = gateway_pb2.CHANNEL_LIVE
CHANNEL_RECONCILIATIONS = gateway_pb2.CHANNEL_RECONCILIATIONS
CHANNEL_BACKTEST_PROGRESS = gateway_pb2.CHANNEL_BACKTEST_PROGRESS
CHANNEL_ORDER_BOOK = gateway_pb2.CHANNEL_ORDER_BOOK
BOOK_SNAPSHOT = "_snapshot"  # marks an item that is a full book, not a delta

_INTERVAL_NAME: dict[int, str] = {
    v.number: v.name for v in market_pb2.CandleInterval.DESCRIPTOR.values
}
_PAYLOAD_FIELD: dict[int, str] = {
    CHANNEL_TICKS: "ticks",
    CHANNEL_CANDLES: "candles",
    CHANNEL_LIVE: "live",
    CHANNEL_RECONCILIATIONS: "reconciliations",
    CHANNEL_BACKTEST_PROGRESS: "progress",
    CHANNEL_ORDER_BOOK: "orderBookDelta",
}

MARKET_CHANNELS = frozenset({CHANNEL_TICKS, CHANNEL_CANDLES, CHANNEL_ORDER_BOOK})
LIVE_CHANNELS = frozenset({CHANNEL_LIVE, CHANNEL_RECONCILIATIONS, CHANNEL_BACKTEST_PROGRESS})


@dataclass(frozen=True)
class Feed:
    channel: int
    service: str
    rpc: str
    product_id: str = ""
    interval: int = 0
    target_id: str = ""
    target_is_sweep: bool = False
    depth: int = 0

    @property
    def key(self) -> str:
        """Subscription key (also the `key` label of gateway_upstream_streams)."""
        if self.channel == CHANNEL_TICKS:
            return f"ticks:{self.product_id}"
        if self.channel == CHANNEL_CANDLES:
            return f"candles:{self.product_id}:{_INTERVAL_NAME[self.interval]}"
        if self.channel == CHANNEL_ORDER_BOOK:
            return f"book:{self.product_id}:{self.depth}"
        if self.channel == CHANNEL_LIVE:
            return "live"
        if self.channel == CHANNEL_RECONCILIATIONS:
            return "reconciliations"
        return f"progress:{'sweep' if self.target_is_sweep else 'backtest'}:{self.target_id}"

    @property
    def payload_field(self) -> str:
        return _PAYLOAD_FIELD[self.channel]

    @property
    def droppable(self) -> bool:
        """Market data may be dropped (and resynced); the rest is never dropped."""
        return self.channel in MARKET_CHANNELS

    def request(self, since_seq: int | None) -> Message:
        if self.channel == CHANNEL_TICKS:
            return market_pb2.StreamTicksRequest(
                product_ids=[self.product_id],
                since_seq={} if since_seq is None else {self.product_id: since_seq},
            )
        if self.channel == CHANNEL_CANDLES:
            return market_pb2.StreamCandlesRequest(
                product_ids=[self.product_id],
                interval=self.interval,  # type: ignore[arg-type]
                since_seq={} if since_seq is None else {self.product_id: since_seq},
            )
        if self.channel == CHANNEL_ORDER_BOOK:  # no cursor: a book always starts with a snapshot
            return market_pb2.StreamOrderBookRequest(product_id=self.product_id, depth=self.depth)
        if self.channel == CHANNEL_LIVE:
            return execution_pb2.StreamEventsRequest(since_seq=since_seq)
        if self.channel == CHANNEL_RECONCILIATIONS:
            return wallets_pb2.StreamReconciliationsRequest(since_seq=since_seq)
        if self.target_is_sweep:
            return backtest_pb2.StreamProgressRequest(sweep_id=self.target_id, since_seq=since_seq)
        return backtest_pb2.StreamProgressRequest(backtest_id=self.target_id, since_seq=since_seq)

    def parse(self, response: Any) -> tuple[list[Item], bool]:
        """(items in seq order, whether the upstream reset the sequence)."""
        if self.channel == CHANNEL_TICKS:
            items = [(t.seq, tick_json(t)) for t in response.ticks]
            return items, self.product_id in response.reset_product_ids
        if self.channel == CHANNEL_CANDLES:
            items = [(c.seq, candle_json(c)) for c in response.candles]
            return items, self.product_id in response.reset_product_ids
        if self.channel == CHANNEL_ORDER_BOOK:
            if response.WhichOneof("update") == "snapshot":
                book = message_dict(response.snapshot)
                book[BOOK_SNAPSHOT] = True
                return [(response.snapshot.seq, book)], False
            return [(response.delta.seq, message_dict(response.delta))], False
        if self.channel == CHANNEL_LIVE:
            return [(e.seq, message_dict(e)) for e in response.events], bool(response.reset)
        if self.channel == CHANNEL_RECONCILIATIONS:
            return [(r.seq, message_dict(r)) for r in response.runs], bool(response.reset)
        update = response.update
        return [(update.seq, message_dict(update))], False

    def payload(self, items: list[Json]) -> Json:
        """The DataFrame payload (`ticks` / `candles` / `live` / ... field value)."""
        if self.channel == CHANNEL_TICKS:
            return {"ticks": items}
        if self.channel == CHANNEL_CANDLES:
            return {"candles": items}
        if self.channel == CHANNEL_LIVE:
            return {"events": items}
        if self.channel == CHANNEL_RECONCILIATIONS:
            return {"runs": items}
        return items[-1]  # one ProgressUpdate / OrderBookDelta per frame

    @property
    def one_item_per_frame(self) -> bool:
        return self.channel in (CHANNEL_BACKTEST_PROGRESS, CHANNEL_ORDER_BOOK)


# An async snapshot loader: (token) -> (state field, state JSON).
SnapshotLoader = Callable[[str | None], Awaitable[tuple[str, Json]]]


def live_event_matches(
    event: Json, accounts: frozenset[str] | None, products: frozenset[str]
) -> bool:
    """Filter of a CHANNEL_LIVE subscription (accounts None = every account); events without
    an account are global (kept)."""
    account = event.get("accountId")
    if accounts is not None and account and account not in accounts:
        return False
    if products:
        for value in event.values():
            if isinstance(value, dict) and "productId" in value:
                return value["productId"] in products
    return True
