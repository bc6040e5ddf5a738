"""One browser WebSocket on `/ws/market` or `/ws/live`: frames in, a bounded queue out.

Tasks per connection: the reader (frames from the browser), the writer (drains the queue into
the socket; when the socket does not drain, the queue fills) and the heartbeat. Slow-consumer
policy when the queue is full (GATEWAY_CLIENT_QUEUE_SIZE frames):
- market data (ticks, candles): the frame is dropped and its (subscription, product) marked;
  further frames of it are dropped until the queue is half empty, then the browser gets `reset`
  (SLOW_CONSUMER) and a fresh snapshot of that product;
- everything on `/ws/live` is never dropped: the connection is closed with 4409 and the browser
  reconnects and `resume`s from its last seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from starlette.websockets import WebSocket, WebSocketDisconnect

from tradeplane.gateway import frames, metrics
from tradeplane.gateway.auth import Caller
from tradeplane.gateway.errors import ApiError
from tradeplane.gateway.feeds import (
    CHANNEL_BACKTEST_PROGRESS,
    CHANNEL_CANDLES,
    CHANNEL_LIVE,
    CHANNEL_ORDER_BOOK,
    CHANNEL_RECONCILIATIONS,
    CHANNEL_TICKS,
    LIVE_CHANNELS,
    MARKET_CHANNELS,
    Feed,
    Item,
    live_event_matches,
)
from tradeplane.gateway.frames import DataBody
from tradeplane.gateway.hub import Topic
from tradeplane.gateway.snapshots import live_snapshot, reconciliations_snapshot
from tradeplane.gateway.upstreams import method
from tradeplane.runtime.auth import Scope
from tradeplane.runtime.errors import DomainError
from trading.backtest.v1 import backtest_pb2
from trading.gateway.v1 import gateway_pb2

if TYPE_CHECKING:
    from tradeplane.gateway.app import Gateway

log = logging.getLogger(__name__)

E = gateway_pb2  # enums: E.ERROR_CODE_*, E.CLOSE_CODE_*, E.RESET_REASON_*
_CLOSE_TIMEOUT = 3.0


@dataclass(eq=False)
class Subscription:
    """A browser's subscription: one or more topics (one per product for market channels)."""

    conn: Connection
    id: str
    channel: int
    head: str
    accounts: frozenset[str] | None = None  # LIVE filter (None: every account)
    products: frozenset[str] = frozenset()  # LIVE filter
    topics: list[Topic] = field(default_factory=list)
    gated: bool = False  # waiting for its snapshot: updates are held in `pending`
    pending: list[tuple[Topic, DataBody]] = field(default_factory=list)
    closed: bool = False

    @property
    def filtered(self) -> bool:
        return self.channel == CHANNEL_LIVE and (self.accounts is not None or bool(self.products))

    def deliver(self, topic: Topic, body: DataBody, items: list[Item]) -> None:
        if self.closed:
            return
        if self.filtered:
            kept = [i for i in items if live_event_matches(i[1], self.accounts, self.products)]
            if not kept:
                return
            if len(kept) != len(items):
                body = topic.encode(kept)
        if self.gated:
            self.pending.append((topic, body))
            if len(self.pending) > self.conn.queue_max:
                if topic.feed.droppable:
                    del self.pending[0]  # superseded by the snapshot being made
                    metrics.DROPS.labels(self.conn.endpoint, "queue_full").inc()
                else:
                    self.conn.slow_consumer()
            return
        self.conn.enqueue_data(self, topic, body)

    def upstream_reset(self, topic: Topic, reason: int) -> None:
        self.conn.resync(self, topic, reason)

    def resnapshot(self, topic: Topic) -> None:
        if not self.closed and not self.gated:
            self.conn.sync_snapshot(self, topic)

    def upstream_error(self, topic: Topic, code: int, message: str, fatal: bool) -> None:
        self.conn.send(frames.error(code, message, subscription_id=self.id))
        if fatal:
            self.conn.spawn(self.conn.drop_subscription(self.id))


class Connection:
    def __init__(self, ws: WebSocket, endpoint: str, gateway: Gateway, caller: Caller | None):
        self.ws = ws
        self.endpoint = endpoint  # "market" | "live"
        self.gw = gateway
        self.caller = caller
        settings = gateway.settings
        self.id = uuid.uuid4().hex[:12]
        self.queue_max = settings.gateway_client_queue_size
        self.heartbeat = settings.gateway_heartbeat_seconds
        self.max_subscriptions = settings.gateway_max_subscriptions
        self.channels = MARKET_CHANNELS if endpoint == "market" else LIVE_CHANNELS
        self.subs: dict[str, Subscription] = {}
        self._queue: deque[str | tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._dirty: dict[tuple[str, str], tuple[Subscription, Topic]] = {}
        self._closed = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_received = self._opened = time.monotonic()
        self._sub_counter = itertools.count(1)
        self.subject: str | None = None  # counted against the per-caller connection limit

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        metrics.CONNECTIONS.labels(self.endpoint).inc()
        metrics.CONNECTIONS_OPENED.labels(self.endpoint).inc()
        self.send(
            frames.hello(
                self.id,
                int(self.heartbeat * 1000),
                self.max_subscriptions,
                self.caller is not None,
            )
        )
        workers = [
            asyncio.create_task(self._reader(), name=f"ws-reader {self.id}"),
            asyncio.create_task(self._writer(), name=f"ws-writer {self.id}"),
            asyncio.create_task(self._heartbeat(), name=f"ws-heartbeat {self.id}"),
        ]
        try:
            await self._closed.wait()
        finally:
            for task in [*workers, *self._tasks]:
                task.cancel()
            for task in [*workers, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._close_code is not None:
                await self._send_close(self._close_code, self._close_reason)
            log.info(
                "websocket closed",
                extra={
                    "conn": self.id,
                    "endpoint": self.endpoint,
                    "code": self._close_code or "peer",
                    "reason": self._close_reason,
                    "seconds": round(time.monotonic() - self._opened, 3),
                    "subject": self.caller.principal.subject if self.caller else None,
                },
            )
            for sub_id in list(self.subs):
                await self.drop_subscription(sub_id, notify=False)
            metrics.CONNECTIONS.labels(self.endpoint).dec()

    def close(self, code: int | None, reason: str = "") -> None:
        """Ask for the connection to end (`None`: the peer already closed)."""
        if self._closed.is_set():
            return
        self._close_code = code
        self._close_reason = reason
        self._closed.set()

    async def _send_close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                while self._queue:  # what was queued before (hello, an error...) goes first
                    item = self._queue.popleft()
                    text = item if isinstance(item, str) else item[0] + item[1] + frames.DATA_TAIL
                    await self.ws.send_text(text)
                await self.ws.send_text(frames.closing(code, reason))
                await self.ws.close(code, reason[:120])
        except Exception as exc:  # the peer is gone or stalled: nothing more to tell it
            log.debug("close not delivered", extra={"conn": self.id, "error": repr(exc)})

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        log.error("websocket task failed", exc_info=task.exception(), extra={"conn": self.id})
        self.send(frames.error(E.ERROR_CODE_INTERNAL, "internal error"))

    # -- outbound ----------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Queue a control frame (never dropped; a client that lets them pile up is closed)."""
        if len(self._queue) >= 2 * self.queue_max:
            self.slow_consumer()
            return
        self._queue.append(text)
        self._wake.set()

    def enqueue_data(self, sub: Subscription, topic: Topic, body: DataBody) -> None:
        if self._closed.is_set():
            return
        if topic.feed.droppable:
            key = (sub.id, topic.key)
            if key in self._dirty:
                metrics.DROPS.labels(self.endpoint, "resync_pending").inc()
                return
            if len(self._queue) >= self.queue_max:
                self._dirty[key] = (sub, topic)
                metrics.DROPS.labels(self.endpoint, "queue_full").inc()
                return
        elif len(self._queue) >= self.queue_max:
            self.slow_consumer()
            return
        self._queue.append((sub.head, body.text))
        self._wake.set()

    def slow_consumer(self) -> None:
        if self._closed.is_set():
            return
        metrics.SLOW_CONSUMER_CLOSES.labels(self.endpoint).inc()
        log.info("slow consumer closed", extra={"conn": self.id, "queued": len(self._queue)})
        self._queue.clear()
        self.close(
            E.CLOSE_CODE_SLOW_CONSUMER,
            "client could not keep up; reconnect and resume from the last seq",
        )

    async def _writer(self) -> None:
        queue = self._queue
        sent = metrics.MESSAGES_SENT.labels(self.endpoint)
        tail = frames.DATA_TAIL
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = queue.popleft()
            text = item if isinstance(item, str) else item[0] + item[1] + tail
            await self.ws.send_text(text)
            sent.inc()
            if self._dirty and len(queue) <= self.queue_max // 2:
                dirty, self._dirty = self._dirty, {}
                for sub, topic in dirty.values():
                    self.resync(sub, topic, E.RESET_REASON_SLOW_CONSUMER)

    def resync(self, sub: Subscription, topic: Topic, reason: int) -> None:
        """`reset` then a fresh snapshot of one topic of `sub`."""
        if sub.closed:
            return
        products = [topic.feed.product_id] if topic.feed.product_id else []
        self.send(frames.reset(sub.id, reason, products, _RESET_TEXT.get(reason, "")))
        if topic.feed.channel in (CHANNEL_LIVE, CHANNEL_RECONCILIATIONS):
            sub.gated = True
            self.spawn(self._async_snapshot(sub, topic))
        else:
            self.sync_snapshot(sub, topic)

    def sync_snapshot(self, sub: Subscription, topic: Topic) -> None:
        feed = topic.feed
        seq = topic.last_seq or 0
        by_product = {feed.product_id: seq} if feed.product_id and seq else None
        if feed.channel == CHANNEL_ORDER_BOOK and topic.book is None:
            return  # sent when the upstream's first book arrives (Topic.resnapshot)
        if feed.channel == CHANNEL_BACKTEST_PROGRESS:
            state_field, state = "progress", (topic.buffer[-1][1] if topic.buffer else {})
        else:
            state_field, state = topic.market_snapshot()
        self.send(frames.snapshot(sub.id, feed.channel, seq, by_product, state_field, state))

    async def _async_snapshot(self, sub: Subscription, topic: Topic) -> None:
        # Read the state only once the upstream stream is requested, so an update committed
        # after the read is streamed (maybe both in the snapshot and streamed: apply
        # idempotently). Services send stream headers with the first update, so "requested" is
        # as far as the gateway can know; a narrow window remains for the first subscriber.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.gw.settings.gateway_upstream_timeout_seconds):
                await topic.connected.wait()
        seq = topic.last_seq or 0  # the snapshot reflects at least every update up to here
        token = self.caller.token if self.caller else None
        recent = self.gw.settings.gateway_snapshot_recent
        if topic.feed.channel == CHANNEL_LIVE:
            state_field, state = (
                "live",
                await live_snapshot(self.gw.upstreams, token, recent, sub.accounts),
            )
        else:
            state_field, state = (
                "reconciliations",
                await reconciliations_snapshot(self.gw.upstreams, token, recent),
            )
        if sub.closed:
            return
        self.send(frames.snapshot(sub.id, topic.feed.channel, seq, None, state_field, state))
        self._release_gate(sub)

    def _release_gate(self, sub: Subscription, covered_seq: int = -1) -> None:
        """Send what arrived while the snapshot was made, minus what it already covers."""
        pending, sub.pending, sub.gated = sub.pending, [], False
        for t, body in pending:
            if body.last_seq > covered_seq:
                self.enqueue_data(sub, t, body)

    # -- inbound -----------------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                text = await self.ws.receive_text()
                self._last_received = time.monotonic()
                metrics.MESSAGES_RECEIVED.labels(self.endpoint).inc()
                try:
                    frame = json_format.Parse(text, gateway_pb2.ClientFrame())
                except json_format.ParseError as exc:
                    self.close(E.CLOSE_CODE_BAD_FRAME, f"invalid frame: {exc}"[:120])
                    return
                await self._handle(frame)
        except WebSocketDisconnect:
            self.close(None)
        except KeyError:  # a binary message
            self.close(E.CLOSE_CODE_BAD_FRAME, "frames are JSON text messages")

    async def _handle(self, frame: gateway_pb2.ClientFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "auth":
            try:
                caller = self.gw.authenticator.authenticate(frame.auth.token)
            except DomainError as exc:
                self.close(E.CLOSE_CODE_UNAUTHENTICATED, str(exc))
                return
            if self.subject is not None and caller.principal.subject != self.subject:
                self.close(E.CLOSE_CODE_FORBIDDEN, "a connection cannot change its caller")
                return
            if not self.gw.admit(self, caller):
                self.close(E.CLOSE_CODE_TOO_MANY_REQUESTS, "too many connections for this caller")
                return
            self.caller = caller
            return
        if self.caller is None:
            self.close(E.CLOSE_CODE_UNAUTHENTICATED, "send an auth frame first")
            return
        if kind == "ping":
            self.send(frames.pong(frame.ping.nonce))
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self.spawn(self.subscribe(frame.request_id, frame.subscribe))
        elif kind == "resume":
            for sub in frame.resume.subscriptions:
                self.spawn(self.subscribe(frame.request_id, sub))
        elif kind == "unsubscribe":
            sub_id = frame.unsubscribe.subscription_id
            if sub_id not in self.subs:
                self.send(
                    frames.error(
                        E.ERROR_CODE_NOT_FOUND,
                        f"subscription_id: no subscription {sub_id!r}",
                        frame.request_id,
                        sub_id,
                    )
                )
                return
            await self.drop_subscription(sub_id, request_id=frame.request_id)
        else:
            self.close(E.CLOSE_CODE_BAD_FRAME, "empty frame")

    async def _heartbeat(self) -> None:
        nonce = itertools.count(1)
        while True:
            await asyncio.sleep(self.heartbeat)
            silent = time.monotonic() - self._last_received
            expires = self.caller.expires_at if self.caller else None
            if expires is not None and time.time() >= expires:
                # A browser keeps its socket by sending a fresh token in an `auth` frame.
                self.close(E.CLOSE_CODE_UNAUTHENTICATED, "token expired; reconnect with a new one")
                return
            if self.caller is None and silent > 3 * self.heartbeat:
                self.close(E.CLOSE_CODE_UNAUTHENTICATED, "no auth frame")
                return
            if silent > 3 * self.heartbeat:
                self.close(E.CLOSE_CODE_HEARTBEAT_TIMEOUT, "no frame for three intervals")
                return
            if len(self._queue) < self.queue_max:
                self.send(frames.ping(str(next(nonce))))

    # -- subscriptions -----------------------------------------------------------------------

    def _error(self, code: int, message: str, request_id: str, sub_id: str = "") -> None:
        self.send(frames.error(code, message, request_id, sub_id))

    async def subscribe(self, request_id: str, msg: gateway_pb2.Subscribe) -> None:
        channel = msg.channel
        if channel == gateway_pb2.CHANNEL_UNSPECIFIED:
            self._error(E.ERROR_CODE_INVALID_FRAME, "channel: is required", request_id)
            return
        if channel not in self.channels:
            self._error(
                E.ERROR_CODE_UNSUPPORTED_CHANNEL,
                f"channel: {frames.CHANNEL_NAME.get(int(channel), channel)} is not served on "
                f"/ws/{self.endpoint}",
                request_id,
            )
            return
        assert self.caller is not None
        if not self.caller.principal.allows(Scope.READ):
            self._error(E.ERROR_CODE_PERMISSION_DENIED, "the 'read' scope is required", request_id)
            return
        if len(self.subs) >= self.max_subscriptions:
            self._error(
                E.ERROR_CODE_TOO_MANY_SUBSCRIPTIONS,
                f"at most {self.max_subscriptions} subscriptions per connection",
                request_id,
            )
            return
        sub_id = (
            msg.subscription_id
            or f"{frames.CHANNEL_NAME[channel][8:].lower()}-{next(self._sub_counter)}"
        )
        if sub_id in self.subs:
            self._error(
                E.ERROR_CODE_INVALID_FRAME,
                f"subscription_id: {sub_id!r} is already in use",
                request_id,
                sub_id,
            )
            return
        accounts: frozenset[str] | None = None
        if channel == CHANNEL_LIVE:
            try:  # an account-scoped token sees its own accounts only
                accounts = self.caller.account_filter(msg.account_ids)
            except DomainError as exc:
                self._error(E.ERROR_CODE_PERMISSION_DENIED, str(exc), request_id)
                return
        feeds = await self._feeds(msg, request_id)
        if feeds is None:
            return
        accepted = gateway_pb2.Subscribe()
        accepted.CopyFrom(msg)
        accepted.subscription_id = sub_id
        sub = Subscription(
            self,
            sub_id,
            channel,
            frames.data_head(sub_id),
            accounts=accounts,
            products=frozenset(msg.product_ids) if channel == CHANNEL_LIVE else frozenset(),
        )
        self.subs[sub_id] = sub
        metrics.SUBSCRIPTIONS.labels(frames.CHANNEL_NAME[channel]).inc()
        self.send(frames.subscribed(request_id, sub_id, json_format.MessageToDict(accepted)))
        for feed in feeds:
            if feed.product_id:
                cursor = msg.since_seq_by_product.get(feed.product_id)
                if cursor is None and msg.HasField("since_seq") and len(feeds) == 1:
                    cursor = msg.since_seq
            else:
                cursor = msg.since_seq if msg.HasField("since_seq") else None
            await self._attach(sub, feed, cursor)

    async def _feeds(self, msg: gateway_pb2.Subscribe, request_id: str) -> list[Feed] | None:
        channel = msg.channel
        if channel in MARKET_CHANNELS:
            products = list(dict.fromkeys(p.strip() for p in msg.product_ids if p.strip()))
            if not products:
                self._error(E.ERROR_CODE_INVALID_FRAME, "product_ids: at least one", request_id)
                return None
            if channel == CHANNEL_CANDLES and not msg.interval:
                self._error(E.ERROR_CODE_INVALID_FRAME, "interval: is required", request_id)
                return None
            if channel == CHANNEL_ORDER_BOOK:
                if msg.depth < 0:
                    self._error(E.ERROR_CODE_INVALID_FRAME, "depth: must be >= 0", request_id)
                    return None
                depth = msg.depth or 50
                return [
                    Feed(channel, "market", "StreamOrderBook", product_id=p, depth=depth)
                    for p in products
                ]
            rpc = "StreamTicks" if channel == CHANNEL_TICKS else "StreamCandles"
            interval = msg.interval if channel == CHANNEL_CANDLES else 0
            return [Feed(channel, "market", rpc, product_id=p, interval=interval) for p in products]
        if channel == CHANNEL_LIVE:
            return [Feed(channel, "execution", "StreamEvents")]
        if channel == CHANNEL_RECONCILIATIONS:
            return [Feed(channel, "wallets", "StreamReconciliations")]
        target = msg.target_id.strip()
        if not target:
            self._error(E.ERROR_CODE_INVALID_FRAME, "target_id: is required", request_id)
            return None
        is_sweep = await self._is_sweep(target, request_id)
        if is_sweep is None:
            return None
        return [
            Feed(channel, "backtest", "StreamProgress", target_id=target, target_is_sweep=is_sweep)
        ]

    async def _is_sweep(self, target: str, request_id: str) -> bool | None:
        """Whether `target_id` names a sweep (else a backtest); None after an error frame."""
        token = self.caller.token if self.caller else None
        upstreams = self.gw.upstreams
        try:
            await upstreams.call(
                method("backtest", "GetBacktest"),
                backtest_pb2.GetBacktestRequest(backtest_id=target),
                token,
            )
            return False
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                self._error(E.ERROR_CODE_UPSTREAM_UNAVAILABLE, exc.details() or "", request_id)
                return None
        except ApiError as exc:  # the service is not configured
            self._error(E.ERROR_CODE_UPSTREAM_UNAVAILABLE, str(exc), request_id)
            return None
        try:
            await upstreams.call(
                method("backtest", "GetSweep"), backtest_pb2.GetSweepRequest(sweep_id=target), token
            )
            return True
        except grpc.aio.AioRpcError:
            self._error(
                E.ERROR_CODE_NOT_FOUND, f"target_id: no backtest or sweep {target!r}", request_id
            )
            return None

    async def _attach(self, sub: Subscription, feed: Feed, cursor: int | None) -> None:
        token = self.caller.token if self.caller else None
        if feed.channel == CHANNEL_ORDER_BOOK:
            cursor = None  # a book is not resumed: a fresh snapshot replaces it
        async_snapshot = feed.channel in (CHANNEL_LIVE, CHANNEL_RECONCILIATIONS)
        seed = feed.channel == CHANNEL_CANDLES and cursor is None
        if (async_snapshot or seed) and cursor is None:
            sub.gated = True  # updates after this point wait behind the snapshot
        topic, created = self.gw.hub.acquire(feed, sub, cursor, token)
        sub.topics.append(topic)
        if cursor is None:
            if async_snapshot:
                await self._async_snapshot(sub, topic)
            else:
                if seed:
                    await topic.seed_candles(token)
                self.sync_snapshot(sub, topic)
                self._release_gate(sub, topic.last_seq or 0)
            return
        if created:
            metrics.RESUMES.labels("upstream").inc()  # the upstream replays after the cursor
            return
        items = topic.replay_after(cursor)
        if items is None:
            metrics.RESUMES.labels("reset").inc()
            self.resync(sub, topic, E.RESET_REASON_CURSOR_TOO_OLD)
            return
        metrics.RESUMES.labels("replayed").inc()
        step = 1 if feed.one_item_per_frame else self.gw.settings.gateway_frame_max_items
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            if sub.filtered:
                chunk = [
                    it for it in chunk if live_event_matches(it[1], sub.accounts, sub.products)
                ]
                if not chunk:
                    continue
            self.enqueue_data(sub, topic, topic.encode(chunk))

    async def drop_subscription(
        self, sub_id: str, *, request_id: str = "", notify: bool = True
    ) -> None:
        sub = self.subs.pop(sub_id, None)
        if sub is None:
            return
        sub.closed = True
        metrics.SUBSCRIPTIONS.labels(frames.CHANNEL_NAME[sub.channel]).dec()
        for key in [k for k in self._dirty if k[0] == sub_id]:
            del self._dirty[key]
        for topic in sub.topics:
            await self.gw.hub.release(topic, sub)
        if notify:
            self.send(frames.unsubscribed(request_id, sub_id))


_RESET_TEXT: dict[int, str] = {
    E.RESET_REASON_CURSOR_TOO_OLD: "since_seq is older than the retained updates",
    E.RESET_REASON_SLOW_CONSUMER: "updates were dropped because the client fell behind",
    E.RESET_REASON_UPSTREAM_RESTARTED: "the upstream stream restarted",
}
