"""The `replay` feed: trades recorded in a CSV file, at recorded speed or as fast as possible.

CSV columns (header required): time, product_id, trade_id, price, size, side, and optionally
best_bid, best_ask. `time` is ISO 8601 (with a UTC offset or "Z") or epoch seconds; `side` is
the taker's side, "buy" or "sell". Rows must be in time order. Products not configured are
skipped. The feed's clock is the replay cursor, so candles close as the recording's time moves
on, and a day replays in seconds with speed 0. When the file is done the feed stays idle (it
does not loop: the trades would be duplicates).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator, Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tradeplane.market.domain.ticks import Side, Tick

BATCH_SIZE = 500  # ticks per batch when replaying as fast as possible
REQUIRED_COLUMNS = ("time", "product_id", "trade_id", "price", "size", "side")


class ReplayFormatError(ValueError):
    pass


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ReplayFormatError(f"time {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def read_trades(path: Path, products: Collection[str]) -> Iterator[Tick]:
    """The ticks of a trades CSV, lazily, in file order."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ReplayFormatError(f"{path}: missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            if row["product_id"] not in products:
                continue
            try:
                price = Decimal(row["price"])
                yield Tick(
                    product_id=row["product_id"],
                    trade_id=row["trade_id"],
                    time=_parse_time(row["time"]),
                    price=price,
                    size=Decimal(row["size"]),
                    side=Side(row["side"].lower()),
                    best_bid=Decimal(row.get("best_bid") or price),
                    best_ask=Decimal(row.get("best_ask") or price),
                )
            except (InvalidOperation, ValueError) as exc:
                raise ReplayFormatError(f"{path}:{line}: {exc}") from None


class ReplayFeed:
    """Implements TickFeed. `speed` 0 replays as fast as possible; 1 at recorded speed; N
    N times faster."""

    name = "replay"

    def __init__(self, path: Path, products: Collection[str], *, speed: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self.path = path
        self.products = set(products)
        self.speed = speed
        self.finished = False
        self.replayed = 0
        self._cursor: datetime | None = None

    def now(self) -> datetime:
        return self._cursor if self._cursor is not None else datetime.now(UTC)

    async def ticks(self) -> AsyncIterator[list[Tick]]:
        trades = read_trades(self.path, self.products)
        # Resume after what was already replayed (the feed is restarted after a failure).
        for _ in range(self.replayed):
            next(trades, None)
        began_wall = time.monotonic()
        began_feed: datetime | None = None
        batch: list[Tick] = []
        for tick in trades:
            if self.speed > 0:
                began_feed = began_feed or tick.time
                due = (tick.time - began_feed).total_seconds() / self.speed
                delay = began_wall + due - time.monotonic()
                if delay > 0.002:  # flush what is due now, then wait for this tick
                    if batch:
                        yield self._emit(batch)
                        batch = []
                    await asyncio.sleep(delay)
            batch.append(tick)
            if len(batch) >= BATCH_SIZE:
                yield self._emit(batch)
                batch = []
                await asyncio.sleep(0)  # let streams and queries run between batches
        if batch:
            yield self._emit(batch)
        self.finished = True
        self._cursor = datetime.now(UTC)  # the recording is over: close its last candles
        await asyncio.Event().wait()  # idle, not ended: an ended feed would be restarted

    def _emit(self, batch: list[Tick]) -> list[Tick]:
        self.replayed += len(batch)
        self._cursor = batch[-1].time
        return batch
