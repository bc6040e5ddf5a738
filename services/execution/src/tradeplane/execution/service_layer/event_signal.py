"""Wakes StreamEvents readers when events were committed in this process (readers also poll,
so events committed by another replica are seen within the poll interval)."""

from __future__ import annotations

import asyncio
import contextlib


class EventSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # Wake everyone holding the current ticket, and issue a fresh one for the next round.
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        """Take this BEFORE reading the outbox head, then wait on it: a commit in between
        sets it, so no wake-up is lost."""
        return self._event

    @staticmethod
    async def wait(ticket: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await ticket.wait()
