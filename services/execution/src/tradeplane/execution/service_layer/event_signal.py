"""Wakes StreamEvents readers when events were numbered in this process (readers also poll,
so events numbered by another replica are seen within the poll interval).

It also remembers what this process numbered: the last seq (readers skip asking the database
for the head), and per event type the last seq that carried it, so a reader filtering on types
none of which was numbered since its cursor moves on without a query (the strategy runner's
fill watcher would otherwise query after every commit)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence


class EventSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.last_seq = 0  # the last seq numbered here (0: none yet)
        # Every seq from here to last_seq was numbered in this process (0: none).
        self._covered_from = 0
        self._last_of_type: dict[str, int] = {}

    def notify(
        self, first_seq: int = 0, last_seq: int = 0, event_types: Iterable[str] = ()
    ) -> None:
        """Seqs ``first_seq``..``last_seq`` (of ``event_types``) are committed and numbered."""
        if last_seq:
            if not self._covered_from or first_seq != self.last_seq + 1:
                # The first, or another replica numbered the seqs in between: what this
                # process knows starts again here.
                self._covered_from = first_seq
                self._last_of_type = {}
            for event_type in event_types:
                self._last_of_type[event_type] = last_seq
            self.last_seq = max(self.last_seq, last_seq)
        # Wake everyone holding the current ticket, and issue a fresh one for the next round.
        self._event.set()
        self._event = asyncio.Event()

    def skippable(self, cursor: int, event_types: Sequence[str]) -> int:
        """How far a reader at ``cursor`` that wants only ``event_types`` may move without
        reading: to last_seq when every seq after ``cursor`` was numbered here and none was
        of those types; otherwise ``cursor`` (it must read)."""
        if (
            not event_types
            or not self._covered_from
            or cursor + 1 < self._covered_from
            or cursor >= self.last_seq
            or any(self._last_of_type.get(t, 0) > cursor for t in event_types)
        ):
            return cursor
        return self.last_seq

    def ticket(self) -> asyncio.Event:
        """Take this BEFORE reading the outbox head, then wait on it: a commit in between
        sets it, so no wake-up is lost."""
        return self._event

    @staticmethod
    async def wait(ticket: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await ticket.wait()
