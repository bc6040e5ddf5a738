"""The fill consumer: execution's fills into the ledger, exactly once.

It reads the durable cursor (last execution event seq whose fills are in the ledger), opens
StreamEvents(since_seq=cursor), and for each message posts its fills AND moves the cursor in
one transaction. A crash or disconnect anywhere therefore resumes at the last committed batch;
a batch redelivered after a crash between commit and acknowledgement is recognised by the
fills' idempotency keys and posts nothing. When execution is unreachable it retries with
exponential backoff (quietly: one info line per outage), and nothing else in the service
depends on it: health stays SERVING. `wallets_fill_consumer_connected` shows the state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc

from tradeplane.runtime import tracing
from tradeplane.wallets.domain.fills import Fill
from tradeplane.wallets.service_layer import metrics
from tradeplane.wallets.service_layer.ledger import WalletsLedger
from tradeplane.wallets.service_layer.ports import FillBatch

log = logging.getLogger(__name__)

CONSUMER_NAME = "execution-fills"


class FillSource(Protocol):
    def batches(
        self, since_seq: int, on_connected: Callable[[], None]
    ) -> AsyncIterator[FillBatch]: ...

    def fill_pages(self) -> AsyncIterator[tuple[Fill, ...]]:
        """Every fill the source still has (ListFills), page by page."""
        ...


class FillConsumer:
    def __init__(
        self,
        ledger: WalletsLedger,
        source: FillSource,
        *,
        name: str = CONSUMER_NAME,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._ledger = ledger
        self._source = source
        self._name = name
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connected = False
        self.posted = 0  # fills newly posted by this process

    def _set_connected(self, value: bool) -> None:
        self.connected = value
        metrics.FILL_CONSUMER_CONNECTED.set(1 if value else 0)

    async def _recover(self, cursor: int) -> None:
        """Execution no longer has the events after our cursor: post every fill it still
        lists (ListFills). Idempotency keys (by venue trade id) make the ones already in the
        ledger replays, so exactly the missing ones are posted; the cursor stays put (the
        stream's next batch moves it)."""
        log.warning(
            "execution no longer retains events after our cursor; recovering from ListFills",
            extra={"cursor": cursor},
        )
        recovered = 0
        async for page in self._source.fill_pages():
            if page:
                recovered += await self._ledger.post_fills(
                    FillBatch(cursor, page), consumer=self._name
                )
        self.posted += recovered
        metrics.FILLS_RECOVERED.inc(recovered)
        log.info("fill recovery done", extra={"recovered": recovered})

    async def run(self) -> None:
        """Consume until cancelled."""
        backoff = self._backoff_initial
        outage_logged = False
        while True:
            try:
                cursor = await self._ledger.cursor(self._name) or 0
                metrics.FILL_CONSUMER_CURSOR.set(cursor)

                def connected(since: int = cursor) -> None:
                    nonlocal backoff, outage_logged
                    self._set_connected(True)
                    metrics.FILL_CONSUMER_RECONNECTS.inc()
                    log.info("fill consumer connected", extra={"since_seq": since})
                    backoff, outage_logged = self._backoff_initial, False

                async for batch in self._source.batches(cursor, connected):
                    if batch.reset:
                        metrics.FILL_STREAM_RESETS.inc()
                        await self._recover(cursor)
                    if batch.rejected:
                        metrics.FILLS_REJECTED.labels("unreadable").inc(batch.rejected)
                    if batch.last_seq <= cursor and not batch.fills:
                        continue
                    # Continues the trace of the fill (links to the others of the batch).
                    with tracing.continued_span(
                        "wallets.post_fills", batch.trace_contexts, fills=len(batch.fills)
                    ):
                        self.posted += await self._ledger.post_fills(batch, consumer=self._name)
                    cursor = max(cursor, batch.last_seq)
                    metrics.FILL_CONSUMER_CURSOR.set(cursor)
                log.info("execution ended the event stream; reconnecting")
            except asyncio.CancelledError:
                self._set_connected(False)
                raise
            except (grpc.aio.AioRpcError, TimeoutError) as exc:
                if not outage_logged:
                    detail = (
                        {"code": exc.code().name, "details": exc.details()}
                        if isinstance(exc, grpc.aio.AioRpcError)
                        else {"code": "CONNECT_TIMEOUT"}
                    )
                    log.info(
                        "execution not reachable; fill consumer retrying with backoff",
                        extra=detail,
                    )
                    outage_logged = True
            except Exception:
                log.exception("fill consumer failed; retrying")
            self._set_connected(False)
            await asyncio.sleep(backoff)
            # (the cursor is re-read from the ledger at the top of the loop)
            backoff = min(backoff * 2, self._backoff_max)
