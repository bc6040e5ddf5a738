"""execution's StreamEvents as a FillSource: one gRPC stream per connection, fill events only,
mapped to domain Fills. A fill event that cannot be parsed is counted in the batch, logged and
skipped (its seq still advances the cursor: replaying it would fail the same way)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from decimal import Decimal, InvalidOperation

from tradeplane.runtime.client import create_channel
from tradeplane.runtime.errors import DomainError
from tradeplane.wallets.domain.fills import Fill, Side
from tradeplane.wallets.domain.wallets import Venue
from tradeplane.wallets.service_layer.ports import FillBatch
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb
from trading.execution.v1 import execution_pb2_grpc

log = logging.getLogger(__name__)

VENUE_FROM_PROTO = {
    common_pb2.VENUE_PAPER: Venue.PAPER,
    common_pb2.VENUE_COINBASE: Venue.COINBASE,
}
SIDE_FROM_PROTO = {common_pb2.SIDE_BUY: Side.BUY, common_pb2.SIDE_SELL: Side.SELL}


class BadFill(ValueError):
    pass


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadFill(f"{field}: {text!r} is not a decimal") from None
    if not value.is_finite():
        raise BadFill(f"{field}: {text!r} is not finite")
    return value


def fill_from_proto(f: pb.Fill) -> Fill:
    venue = VENUE_FROM_PROTO.get(f.venue)
    if venue is None:
        raise BadFill(f"venue: {f.venue} is not a trading venue")
    side = SIDE_FROM_PROTO.get(f.side)
    if side is None:
        raise BadFill("side: unspecified")
    if not f.HasField("time"):
        raise BadFill("time: unset")
    try:
        return Fill(
            fill_id=f.fill_id,
            venue_trade_id=f.venue_trade_id,
            order_id=f.order_id,
            account_id=f.account_id,
            venue=venue,
            product_id=f.product_id,
            side=side,
            size=_decimal(f.size, "size"),
            price=_decimal(f.price, "price"),
            fee=_decimal(f.fee.amount or "0", "fee.amount"),
            fee_currency=f.fee.currency,
            time=f.time.ToDatetime(tzinfo=UTC),
        )
    except DomainError as exc:
        raise BadFill(exc.status_message()) from None


class ExecutionFillSource:
    """Implements service_layer.ports.FillSource over execution's gRPC API."""

    def __init__(
        self, target: str, *, token: str | None = None, connect_timeout: float = 5.0
    ) -> None:
        self._target = target
        self._token = token
        self._connect_timeout = connect_timeout

    async def fill_pages(self, page_size: int = 1000) -> AsyncIterator[tuple[Fill, ...]]:
        """Every fill execution keeps (ListFills, all accounts, paged), a page at a time:
        what the consumer re-posts after a reset (events it never saw are gone)."""
        channel = create_channel(self._target, token=self._token)
        try:
            stub = execution_pb2_grpc.ExecutionServiceStub(channel)
            token = ""
            while True:
                reply = await stub.ListFills(
                    pb.ListFillsRequest(page_size=page_size, page_token=token),
                    timeout=self._connect_timeout * 6,
                )
                fills = []
                for f in reply.fills:
                    try:
                        fills.append(fill_from_proto(f))
                    except BadFill as exc:
                        log.error(
                            "unreadable fill skipped in recovery",
                            extra={"fill_id": f.fill_id, "error": str(exc)},
                        )
                yield tuple(fills)
                token = reply.next_page_token
                if not token:
                    return
        finally:
            await channel.close()

    async def batches(
        self, since_seq: int, on_connected: Callable[[], None]
    ) -> AsyncIterator[FillBatch]:
        channel = create_channel(self._target, token=self._token)
        try:
            stub = execution_pb2_grpc.ExecutionServiceStub(channel)
            # READY within the timeout or it counts as a failed attempt (the consumer backs off);
            # a server-streaming call alone would not tell us until the first event arrives.
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the channel becomes ready.
            async with asyncio.timeout(self._connect_timeout):
                await channel.channel_ready()
            call = stub.StreamEvents(
                pb.StreamEventsRequest(since_seq=since_seq, event_types=[pb.EVENT_TYPE_FILL])
            )
            on_connected()
            async for message in call:
                if not message.events:
                    if message.reset:
                        yield FillBatch(since_seq, (), reset=True)
                    continue
                fills = []
                contexts = []
                rejected = 0
                for event in message.events:
                    if event.WhichOneof("payload") != "fill":
                        continue
                    if event.trace_context:
                        contexts.append(dict(event.trace_context))
                    try:
                        fills.append(fill_from_proto(event.fill))
                    except BadFill as exc:
                        rejected += 1
                        log.error(
                            "unreadable fill event skipped",
                            extra={"seq": event.seq, "error": str(exc)},
                        )
                yield FillBatch(
                    message.events[-1].seq, tuple(fills), message.reset, rejected, tuple(contexts)
                )
        finally:
            await channel.close()
