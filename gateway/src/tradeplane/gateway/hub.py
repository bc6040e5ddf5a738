"""Topics: one upstream gRPC stream per subscription key, shared by every browser subscribed.

A topic is opened by its first subscriber and closed after its last one leaves. It keeps the
last `GATEWAY_REPLAY_SIZE` updates so a reconnecting browser resumes from its cursor, encodes
each upstream message once (`frames.DataBody`) and hands the same body to every subscriber.
When the upstream stream breaks it reconnects with backoff from the last seq it saw (no gap);
when the upstream reports a reset, subscribers get `reset` + a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import grpc
import grpc.aio

from tradeplane.gateway import frames, metrics
from tradeplane.gateway.errors import ApiError
from tradeplane.gateway.feeds import (
    BOOK_SNAPSHOT,
    CHANNEL_CANDLES,
    CHANNEL_ORDER_BOOK,
    CHANNEL_TICKS,
    Feed,
    Item,
)
from tradeplane.gateway.frames import DataBody, Json
from tradeplane.gateway.upstreams import Upstreams, bearer_metadata, method
from tradeplane.runtime import tracing
from trading.gateway.v1 import gateway_pb2
from trading.market.v1 import market_pb2

log = logging.getLogger(__name__)

# Errors after which retrying the same stream cannot help: subscribers get an error frame.
_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT: gateway_pb2.ERROR_CODE_INVALID_FRAME,
    grpc.StatusCode.NOT_FOUND: gateway_pb2.ERROR_CODE_NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED: gateway_pb2.ERROR_CODE_PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: gateway_pb2.ERROR_CODE_UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED: gateway_pb2.ERROR_CODE_UPSTREAM_UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: gateway_pb2.ERROR_CODE_INVALID_FRAME,
}


_INTERVAL_SECONDS: dict[int, int] = {
    market_pb2.CANDLE_INTERVAL_ONE_MINUTE: 60,
    market_pb2.CANDLE_INTERVAL_FIVE_MINUTES: 300,
    market_pb2.CANDLE_INTERVAL_FIFTEEN_MINUTES: 900,
    market_pb2.CANDLE_INTERVAL_ONE_HOUR: 3600,
    market_pb2.CANDLE_INTERVAL_SIX_HOURS: 21600,
    market_pb2.CANDLE_INTERVAL_ONE_DAY: 86400,
}


class Subscriber(Protocol):
    """One browser subscription attached to a topic (implemented by connection.Subscription)."""

    def deliver(self, topic: Topic, body: DataBody, items: list[Item]) -> None: ...
    def upstream_reset(self, topic: Topic, reason: int) -> None: ...
    def resnapshot(self, topic: Topic) -> None: ...
    def upstream_error(self, topic: Topic, code: int, message: str, fatal: bool) -> None: ...


class Topic:
    def __init__(
        self,
        feed: Feed,
        upstreams: Upstreams,
        *,
        replay_size: int,
        frame_max_items: int,
        snapshot_candles: int,
        retry_max_seconds: float,
        batch_seconds: float,
        token: Callable[[], str | None],
    ) -> None:
        self.feed = feed
        self.key = feed.key
        self.subscribers: set[Subscriber] = set()
        self.last_seq: int | None = None
        # All updates with seq > covered_from are in `buffer` (None: nothing known yet).
        self.covered_from: int | None = None
        self.buffer: deque[Item] = deque(maxlen=replay_size)
        self.recent_candles: OrderedDict[str, Json] = OrderedDict()
        self.book: dict[str, dict[str, str]] | None = None  # ORDER_BOOK: price -> size per side
        self.book_meta: Json = {}
        self._upstreams = upstreams
        self._frame_max = frame_max_items
        self._snapshot_candles = snapshot_candles
        self._retry_max = retry_max_seconds
        self._token = token
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.failed: str | None = None
        self._seed: asyncio.Task[None] | None = None
        self._batch = batch_seconds
        self._pending: list[Item] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, since_seq: int | None) -> None:
        if since_seq is not None:
            self.covered_from = since_seq
        self._task = asyncio.get_running_loop().create_task(
            # shared by every subscriber: not part of the first one's trace
            tracing.detached(self._run(since_seq)),
            name=f"upstream {self.key}",
        )

    async def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._seed is not None:
            self._seed.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(KeyError):
            metrics.UPSTREAM_STREAMS.remove(self.key)

    async def _run(self, since_seq: int | None) -> None:
        m = method(self.feed.service, self.feed.rpc)
        backoff = 0.2
        cursor = since_seq
        reported_down = False
        while True:
            call = None
            try:
                call = self._upstreams.stream(m)(
                    self.feed.request(cursor), metadata=bearer_metadata(self._token())
                )
                metrics.UPSTREAM_STREAMS.labels(self.key).set(1)
                self.connected.set()
                async for response in call:
                    if reported_down:
                        reported_down = False
                    backoff = 0.2
                    items, reset = self.feed.parse(response)
                    self.publish(items, reset)
            except asyncio.CancelledError:
                self.connected.set()  # nobody waits on a topic that is gone
                if call is not None:
                    call.cancel()
                raise
            except ApiError as exc:  # the service is not configured
                self.connected.set()
                self._fail(gateway_pb2.ERROR_CODE_UPSTREAM_UNAVAILABLE, exc.message)
                return
            except grpc.aio.AioRpcError as exc:
                self.connected.set()  # snapshots go ahead (the stream is retried)
                code = exc.code()
                if code in _FATAL:
                    self._fail(_FATAL[code], exc.details() or code.name)
                    return
                if not reported_down:
                    reported_down = True
                    log.warning(
                        "upstream stream broken; retrying",
                        extra={"key": self.key, "code": code.name, "details": exc.details()},
                    )
                    for sub in list(self.subscribers):
                        sub.upstream_error(
                            self,
                            gateway_pb2.ERROR_CODE_UPSTREAM_UNAVAILABLE,
                            f"the {self.feed.service} service is unavailable; retrying",
                            fatal=False,
                        )
            finally:
                metrics.UPSTREAM_STREAMS.labels(self.key).set(0)
            self.flush()  # so the reconnect cursor covers every update received
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._retry_max)
            cursor = self.last_seq if self.last_seq is not None else since_seq

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()

    def _fail(self, code: int, message: str) -> None:
        self.failed = message
        for sub in list(self.subscribers):
            sub.upstream_error(self, code, message, fatal=True)

    # -- updates -----------------------------------------------------------------------------

    def publish(self, items: list[Item], reset: bool) -> None:
        """Take an upstream message. At most one frame per batch window: an update after a
        quiet window goes out at once; updates arriving within the window after a frame are
        held and go out together at its end (fewer, larger frames per browser at high rates,
        no added latency at low ones)."""
        if self._batch <= 0 or reset or self.feed.one_item_per_frame:
            self.flush()
            self._apply(items, reset)
            return
        self._pending.extend(items)
        if self._flush_handle is not None:
            if len(self._pending) >= self._frame_max:
                self.flush()
            return
        loop = asyncio.get_running_loop()
        wait = self._last_flush + self._batch - loop.time()
        if wait <= 0:
            self.flush()
        else:
            self._flush_handle = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self._last_flush = asyncio.get_running_loop().time()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending:
            items, self._pending = self._pending, []
            self._apply(items, False)

    def _apply(self, items: list[Item], reset: bool) -> None:
        if reset:
            self.buffer.clear()
            self.recent_candles.clear()
            self.covered_from = None
            reason = (
                gateway_pb2.RESET_REASON_CURSOR_TOO_OLD
                if self.last_seq is None
                else gateway_pb2.RESET_REASON_UPSTREAM_RESTARTED
            )
            self.last_seq = None
            for sub in list(self.subscribers):
                sub.upstream_reset(self, reason)
        if not items:
            return
        if self.last_seq is not None:
            items = [item for item in items if item[0] > self.last_seq]  # replay overlap
            if not items:
                return
        if self.covered_from is None:
            self.covered_from = items[0][0] - 1
        for item in items:
            if len(self.buffer) == self.buffer.maxlen:
                self.covered_from = self.buffer[0][0]
            self.buffer.append(item)
        self.last_seq = items[-1][0]
        if self.feed.channel == CHANNEL_CANDLES:
            for _, candle in items:
                start = candle.get("start", "")
                self.recent_candles[start] = candle
                self.recent_candles.move_to_end(start)
            while len(self.recent_candles) > self._snapshot_candles:
                self.recent_candles.popitem(last=False)
        step = 1 if self.feed.one_item_per_frame else self._frame_max
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            # A full book (first, or the service's resync): subscribers get a snapshot.
            if self.feed.channel == CHANNEL_ORDER_BOOK and self._book_update(chunk[0][1]):
                for sub in list(self.subscribers):
                    sub.resnapshot(self)
                continue
            body = self.encode(chunk)
            for sub in list(self.subscribers):
                sub.deliver(self, body, chunk)

    def _book_update(self, item: Json) -> bool:
        """Apply a book snapshot or delta to the topic's book; True for a snapshot."""
        if item.get(BOOK_SNAPSHOT):
            self.book = {"bids": {}, "asks": {}}
        if self.book is None:
            return False
        for side in ("bids", "asks"):
            levels = self.book[side]
            for level in item.get(side, ()):
                price, size = level["price"], level.get("size", "0")
                if Decimal(size) == 0:
                    levels.pop(price, None)
                else:
                    levels[price] = size
        self.book_meta = {k: item[k] for k in ("productId", "seq", "time") if k in item}
        return bool(item.get(BOOK_SNAPSHOT))

    def book_json(self) -> Json:
        assert self.book is not None
        bids = sorted(self.book["bids"].items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(self.book["asks"].items(), key=lambda kv: Decimal(kv[0]))
        depth = self.feed.depth
        return {
            **self.book_meta,
            "bids": [{"price": p, "size": s} for p, s in bids[:depth]],
            "asks": [{"price": p, "size": s} for p, s in asks[:depth]],
        }

    def encode(self, chunk: list[Item]) -> DataBody:
        feed = self.feed
        return frames.data_body(
            feed.channel,
            chunk[-1][0],
            feed.product_id or None,
            feed.payload_field,
            feed.payload([item for _, item in chunk]),
        )

    async def seed_candles(self, token: str | None) -> None:
        """Fill `recent_candles` from GetCandles once per topic, so the first snapshot of a
        CANDLES key has history (stream updates that arrived meanwhile win)."""
        if self._seed is None:
            self._seed = asyncio.get_running_loop().create_task(self._load_candles(token))
        with contextlib.suppress(Exception):
            await asyncio.shield(self._seed)

    async def _load_candles(self, token: str | None) -> None:
        seconds = _INTERVAL_SECONDS.get(self.feed.interval, 60)
        end = int(time.time())
        request = market_pb2.GetCandlesRequest(
            product_id=self.feed.product_id,
            interval=self.feed.interval,  # type: ignore[arg-type]
            page_size=self._snapshot_candles,
        )
        request.start.FromSeconds(end - seconds * self._snapshot_candles)
        request.end.FromSeconds(end + seconds)
        try:
            response: Any = await self._upstreams.call(
                method("market", "GetCandles"), request, token
            )
        except grpc.aio.AioRpcError as exc:
            log.info("candle history unavailable", extra={"key": self.key, "code": exc.code().name})
            return
        history: OrderedDict[str, Json] = OrderedDict()
        for candle in response.candles[-self._snapshot_candles :]:
            item = frames.candle_json(candle)
            history[item.get("start", "")] = item
        history.update(self.recent_candles)  # live updates are newer
        while len(history) > self._snapshot_candles:
            history.popitem(last=False)
        self.recent_candles = history

    def replay_after(self, since_seq: int) -> list[Item] | None:
        """Updates with seq > since_seq, or None when they are no longer all retained."""
        if self.covered_from is None or since_seq < self.covered_from:
            return None
        return [item for item in self.buffer if item[0] > since_seq]

    def market_snapshot(self) -> tuple[str, Json]:
        """(state field, state) of a market key: the latest tick, the recent candles, or the
        book."""
        if self.feed.channel == CHANNEL_ORDER_BOOK:
            return "orderBook", self.book_json() if self.book is not None else {}
        if self.feed.channel == CHANNEL_TICKS:
            last = [self.buffer[-1][1]] if self.buffer else []
            return "ticks", {"ticks": last}
        return "candles", {"candles": list(self.recent_candles.values())}


class Hub:
    """The topics by key."""

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        replay_size: int,
        frame_max_items: int,
        snapshot_candles: int,
        retry_max_seconds: float,
        batch_seconds: float,
        service_token: str | None,
    ) -> None:
        self.upstreams = upstreams
        self.topics: dict[str, Topic] = {}
        self._options = {
            "replay_size": replay_size,
            "frame_max_items": frame_max_items,
            "snapshot_candles": snapshot_candles,
            "retry_max_seconds": retry_max_seconds,
            "batch_seconds": batch_seconds,
        }
        self._service_token = service_token
        self._tokens: dict[str, str | None] = {}

    def acquire(
        self, feed: Feed, subscriber: Subscriber, since_seq: int | None, token: str | None
    ) -> tuple[Topic, bool]:
        """The topic of `feed` with `subscriber` attached; True when it was just opened (then
        its upstream stream starts from `since_seq`)."""
        topic = self.topics.get(feed.key)
        if topic is not None and topic.ended:
            del self.topics[feed.key]  # failed for good (e.g. unknown product): try afresh
            topic = None
        created = topic is None
        if topic is None:
            key = feed.key
            topic = Topic(
                feed,
                self.upstreams,
                token=lambda: self._service_token or self._tokens.get(key),
                **self._options,  # type: ignore[arg-type]
            )
            self.topics[key] = topic
            self._tokens[key] = token
            topic.subscribers.add(subscriber)
            topic.start(since_seq)
        else:
            topic.subscribers.add(subscriber)
            if token:
                self._tokens[feed.key] = token  # the newest subscriber's, for reconnects
        return topic, created

    async def release(self, topic: Topic, subscriber: Subscriber) -> None:
        topic.subscribers.discard(subscriber)
        if not topic.subscribers and self.topics.get(topic.key) is topic:
            del self.topics[topic.key]
            self._tokens.pop(topic.key, None)
            await topic.stop()

    async def close(self) -> None:
        for topic in list(self.topics.values()):
            await topic.stop()
        self.topics.clear()
