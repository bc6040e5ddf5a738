"""The events a unit of work adds, written to the outbox with its changes (SqlTx, PgTx)."""

from __future__ import annotations

import contextvars
from datetime import datetime

from tradeplane.execution.domain.events import ExecutionEvent
from tradeplane.execution.service_layer.ports import EventEncoder


class PendingEvents:
    def __init__(self) -> None:
        self.events: list[tuple[ExecutionEvent, datetime]] = []
        self._origins: list[contextvars.Context | None] = []

    def add_event(
        self, event: ExecutionEvent, time: datetime, origin: contextvars.Context | None = None
    ) -> None:
        """``origin``: the context of the caller the change is for (a batch serves several),
        so the event carries that caller's trace; default: the current one."""
        self.events.append((event, time))
        self._origins.append(origin)

    def _payloads(
        self, encode: EventEncoder, first: int = 0, last: int | None = None
    ) -> list[bytes]:
        """The encoded events ``first:last``, each in its caller's context."""
        return [
            encode(event) if origin is None else origin.run(encode, event)
            for (event, _), origin in zip(
                self.events[first:last], self._origins[first:last], strict=True
            )
        ]
