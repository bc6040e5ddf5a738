"""StreamEvents: replay the outbox after a cursor, then follow it live.

The reader only ever reads up to the counter's committed last seq, and a seq is handed out
only with its event committed and every earlier seq taken (see adapters.sql_store), so it
never skips an event that commits later (gapless). It wakes on the in-process signal when
events are numbered (which also tells the new head, and lets a reader filtering on event
types skip a range that holds none of them without a query), and polls every
``poll_seconds`` for events of another replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from tradeplane.execution.adapters.sql_store import SqlStore, StoredEvent
from tradeplane.execution.service_layer.event_signal import EventSignal


@dataclass(frozen=True, slots=True)
class EventBatch:
    events: list[StoredEvent]
    reset: bool = False


class EventStream:
    def __init__(
        self,
        store: SqlStore,
        signal: EventSignal,
        *,
        batch_max: int = 500,
        poll_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._signal = signal
        self._batch_max = batch_max
        self._poll = poll_seconds

    async def follow(
        self,
        since_seq: int | None,
        account_ids: Sequence[str],
        event_types: Sequence[str],
        stop: asyncio.Event,
    ) -> AsyncIterator[EventBatch]:
        oldest, last = await self._store.event_bounds()
        reset = False
        # The oldest seq still in the outbox (retention deletes old events).
        first = oldest if oldest else last + 1
        if since_seq is None:
            cursor = last
        elif since_seq == 0:
            cursor = first - 1  # "from the oldest retained event": nothing is missed on purpose
        elif since_seq < first - 1 or since_seq > last:
            # Older than the retained outbox (events after it were deleted), or from the future
            # (the outbox was recreated): the consumer missed events and must reload its state.
            reset, cursor = True, first - 1
        else:
            cursor = since_seq
        if reset:
            yield EventBatch([], reset=True)
        head, notified = last, True
        while not stop.is_set():
            ticket = self._signal.ticket()
            if not notified:  # the poll: events another replica numbered
                _, head = await self._store.event_bounds()
            # Numbered (and committed) in this process: no need to ask for the head.
            head = max(head, self._signal.last_seq)
            cursor = max(cursor, min(head, self._signal.skippable(cursor, event_types)))
            while cursor < head and not stop.is_set():
                upto = min(head, cursor + self._batch_max * 4)
                events = await self._store.events_after(
                    cursor, upto, account_ids, event_types, self._batch_max
                )
                # A full batch may stop short of `upto`; otherwise everything up to it is read.
                cursor = events[-1].seq if len(events) == self._batch_max else upto
                if events:
                    yield EventBatch(events)
            waiter = asyncio.ensure_future(self._signal.wait(ticket, self._poll))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            notified = ticket.is_set()
