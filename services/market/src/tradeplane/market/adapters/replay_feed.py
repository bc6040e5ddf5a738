"""The `replay` feed: recorded trades or candles from CSV or Parquet files, at recorded speed or
as fast as possible.

Files (MARKET_REPLAY_PATH, comma-separated, played one after the other in the given order):
the format is `csv` or `parquet` (MARKET_REPLAY_FORMAT, `auto` = by the file's extension), the
content `trades` or `candles` (MARKET_REPLAY_DATA, `auto` = candles when the file has open,
high, low and close columns). Rows must be in time order; products not configured are skipped.

- Trades: columns time, product_id, trade_id, price, size, side (the taker's, "buy"/"sell"),
  optionally best_bid, best_ask. One tick per row.
- Candles: columns start (or time), product_id, open, high, low, close, volume; each bar is
  MARKET_REPLAY_BAR_SECONDS wide (60). Each bar becomes four ticks, each with a quarter of
  its volume, in this order and at these times (w = the bar's width):
      open at start, then low and high in the bar's direction (low first when close >= open,
      high first when it fell) at start + w/4 and start + w/2, then close at start + 3w/4.
  So the first tick of every bar is its open (a consumer filling "at the next bar's open"
  sees exactly that price first), the bar's extremes are visited before its close, and the
  candles rebuilt from the ticks have the bar's exact open, high, low, close and volume.
  Trade ids are numeric and increase per product. Bars with no volume are skipped.

`time`/`start` is ISO 8601 (with a UTC offset or "Z") or epoch seconds in CSV; in Parquet
also a timestamp column (naive timestamps are taken as UTC). Prices and sizes may be strings,
decimals or floats (a float is read by its shortest repr, e.g. 0.1 -> "0.1").

The feed's clock is the replay cursor, so candles close as the recording's time moves on, and
a day replays in seconds with speed 0. When the files are done the feed stays idle (it does
not loop: the trades would be duplicates).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from tradeplane.market.domain.ticks import Side, Tick

BATCH_SIZE = 500  # ticks per batch when replaying as fast as possible
PARQUET_BATCH_ROWS = 10_000
TRADE_COLUMNS = ("time", "product_id", "trade_id", "price", "size", "side")
CANDLE_COLUMNS = ("product_id", "open", "high", "low", "close", "volume")

ReplayFormat = Literal["auto", "csv", "parquet"]
ReplayData = Literal["auto", "trades", "candles"]


class ReplayFormatError(ValueError):
    pass


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ReplayFormatError(f"time {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        value = repr(value)
    return value if isinstance(value, Decimal) else Decimal(value)


def file_format(path: Path, declared: ReplayFormat = "auto") -> Literal["csv", "parquet"]:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ReplayFormatError(f"{path}: cannot tell the format from {suffix!r}; set it")


def _columns(path: Path, fmt: Literal["csv", "parquet"]) -> list[str]:
    if fmt == "csv":
        with path.open(newline="") as f:
            return next(csv.reader(f), [])
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # only replay needs it

    return list(pq.read_schema(path).names)


def _rows(path: Path, fmt: Literal["csv", "parquet"]) -> Iterator[Mapping[str, Any]]:
    """The file's rows as mappings, lazily (Parquet is read in record batches)."""
    if fmt == "csv":
        with path.open(newline="") as f:
            yield from csv.DictReader(f)
        return
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from batch.to_pylist()


def data_kind(path: Path, fmt: Literal["csv", "parquet"], declared: ReplayData = "auto") -> str:
    columns = set(_columns(path, fmt))
    kind = declared
    if kind == "auto":
        kind = "candles" if {"open", "high", "low", "close"} <= columns else "trades"
    required = CANDLE_COLUMNS if kind == "candles" else TRADE_COLUMNS
    missing = [c for c in required if c not in columns]
    if kind == "candles" and not {"start", "time"} & columns:
        missing.insert(0, "start")
    if missing:
        raise ReplayFormatError(f"{path}: missing columns {missing}")
    return kind


def read_trades(
    path: Path, products: Collection[str], fmt: ReplayFormat = "auto"
) -> Iterator[Tick]:
    """The ticks of a trades file, lazily, in file order."""
    resolved = file_format(path, fmt)
    data_kind(path, resolved, "trades")
    for line, row in enumerate(_rows(path, resolved), start=2):
        if row["product_id"] not in products:
            continue
        try:
            price = _decimal(row["price"])
            best_bid, best_ask = row.get("best_bid"), row.get("best_ask")
            yield Tick(
                product_id=row["product_id"],
                trade_id=str(row["trade_id"]),
                time=_parse_time(row["time"]),
                price=price,
                size=_decimal(row["size"]),
                side=Side(str(row["side"]).lower()),
                best_bid=price if best_bid in (None, "") else _decimal(best_bid),
                best_ask=price if best_ask in (None, "") else _decimal(best_ask),
            )
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise ReplayFormatError(f"{path}:{line}: {exc}") from None


def bar_ticks(
    product_id: str,
    start: datetime,
    width: timedelta,
    ohlcv: Sequence[Decimal],
    first_id: int,
) -> list[Tick]:
    """The four ticks of one bar: open, low/high in the bar's direction, close (see above)."""
    open_, high, low, close, volume = ohlcv
    path = (open_, low, high, close) if close >= open_ else (open_, high, low, close)
    size = volume / 4
    quarter = width / 4
    return [
        Tick(
            product_id=product_id,
            trade_id=str(first_id + k),
            time=start + k * quarter,
            price=price,
            size=size,
            side=Side.BUY if k == 0 or price >= path[k - 1] else Side.SELL,
            best_bid=price,
            best_ask=price,
        )
        for k, price in enumerate(path)
    ]


def read_candles(
    path: Path,
    products: Collection[str],
    fmt: ReplayFormat = "auto",
    *,
    bar_seconds: float = 60.0,
) -> Iterator[Tick]:
    """The ticks of a candles file (four per bar), lazily, in file order."""
    resolved = file_format(path, fmt)
    data_kind(path, resolved, "candles")
    width = timedelta(seconds=bar_seconds)
    next_id: dict[str, int] = {}
    for line, row in enumerate(_rows(path, resolved), start=2):
        product_id = row["product_id"]
        if product_id not in products:
            continue
        try:
            start = _parse_time(row["start"] if "start" in row else row["time"])
            ohlcv = [_decimal(row[c]) for c in ("open", "high", "low", "close", "volume")]
            open_, high, low, close, volume = ohlcv
            if not (low <= min(open_, close) and max(open_, close) <= high and low > 0):
                raise ValueError("needs 0 < low <= open, close <= high")
        except (InvalidOperation, ValueError, TypeError, KeyError) as exc:
            raise ReplayFormatError(f"{path}:{line}: {exc}") from None
        if volume <= 0:
            continue
        # Ids from the bar's start: unique per product, increasing, the same on every replay.
        first_id = max(next_id.get(product_id, 0), int(start.timestamp()) * 4)
        next_id[product_id] = first_id + 4
        yield from bar_ticks(product_id, start, width, ohlcv, first_id)


def read_recording(
    paths: Sequence[Path],
    products: Collection[str],
    *,
    fmt: ReplayFormat = "auto",
    data: ReplayData = "auto",
    bar_seconds: float = 60.0,
) -> Iterator[Tick]:
    """Every file's ticks, one file after the other."""
    for path in paths:
        resolved = file_format(path, fmt)
        if data_kind(path, resolved, data) == "candles":
            yield from read_candles(path, products, resolved, bar_seconds=bar_seconds)
        else:
            yield from read_trades(path, products, resolved)


def check_recording(
    paths: Sequence[Path], fmt: ReplayFormat = "auto", data: ReplayData = "auto"
) -> None:
    """Fail fast (at start-up) on a missing file, an unknown format or missing columns."""
    for path in paths:
        if not path.is_file():
            raise ReplayFormatError(f"{path} is not a file")
        data_kind(path, file_format(path, fmt), data)


class ReplayFeed:
    """Implements TickFeed. `speed` 0 replays as fast as possible; 1 at recorded speed; N
    N times faster."""

    name = "replay"

    def __init__(
        self,
        paths: Path | Sequence[Path],
        products: Collection[str],
        *,
        speed: float = 0.0,
        fmt: ReplayFormat = "auto",
        data: ReplayData = "auto",
        bar_seconds: float = 60.0,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        if bar_seconds <= 0:
            raise ValueError("bar_seconds must be positive")
        self.paths = [paths] if isinstance(paths, Path) else list(paths)
        self.products = set(products)
        self.speed = speed
        self.fmt: ReplayFormat = fmt
        self.data: ReplayData = data
        self.bar_seconds = bar_seconds
        self.finished = False
        self.replayed = 0
        self._cursor: datetime | None = None

    @property
    def path(self) -> Path:
        return self.paths[0]

    def now(self) -> datetime:
        return self._cursor if self._cursor is not None else datetime.now(UTC)

    async def ticks(self) -> AsyncIterator[list[Tick]]:
        ticks = read_recording(
            self.paths, self.products, fmt=self.fmt, data=self.data, bar_seconds=self.bar_seconds
        )
        # Resume after what was already replayed (the feed is restarted after a failure).
        for _ in range(self.replayed):
            next(ticks, None)
        began_wall = time.monotonic()
        began_feed: datetime | None = None
        batch: list[Tick] = []
        for tick in ticks:
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
