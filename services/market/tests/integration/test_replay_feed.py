"""MARKET_FEED=replay: a recorded day of trades or candles (CSV or Parquet) replays in seconds
into exact candles."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.market.adapters.replay_feed import (
    ReplayFeed,
    ReplayFormatError,
    read_candles,
    read_recording,
    read_trades,
)
from tradeplane.market.domain.candles import Trade, candles_from_trades
from tradeplane.market.domain.intervals import Interval
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.entrypoints.settings import MarketSettings
from trading.market.v1 import market_pb2 as pb

from .conftest import market_settings, start_market, stop_market

DAY = datetime(2025, 6, 1, tzinfo=UTC)


def write_recording(path: Path, trades_per_minute: int = 3) -> list[Trade]:
    rng = random.Random(7)
    price = 60_000.0
    trades: list[Trade] = []
    lines = ["time,product_id,trade_id,price,size,side"]
    for i in range(1440 * trades_per_minute):
        at = DAY + timedelta(seconds=i * 60 / trades_per_minute + rng.random())
        price *= 1 + rng.gauss(0, 0.0005)
        trade = Trade(
            "BTC-USD",
            str(1000 + i),
            at,
            Decimal(f"{price:.2f}"),
            Decimal(f"{rng.uniform(0.001, 0.5):.8f}"),
            rng.choice(["buy", "sell"]),
        )
        trades.append(trade)
        stamp = at.isoformat().replace("+00:00", "Z")
        lines.append(f"{stamp},BTC-USD,{trade.trade_id},{trade.price},{trade.size},{trade.side}")
        lines.append(f"{stamp},ETH-USD,{i},3000.00,1.0,buy")  # not configured: skipped
    path.write_text("\n".join(lines) + "\n")
    return trades


async def test_replayed_day_gives_exactly_the_candles_of_its_trades(tmp_path: Path) -> None:
    recording = tmp_path / "trades.csv"
    trades = write_recording(recording)
    market = await start_market(
        market_settings(
            f"sqlite:///{tmp_path / 'market.db'}",
            market_feed="replay",
            market_replay_path=str(recording),
            market_products="BTC-USD",
            market_backfill_days=7,  # ignored: a recording brings its own history
        )
    )
    try:
        feed = market.app.runner.feed
        assert isinstance(feed, ReplayFeed)
        for _ in range(600):
            if feed.finished:
                break
            await asyncio.sleep(0.05)
        assert feed.replayed == len(trades)
        await asyncio.sleep(3 * market.app.runner.publish_seconds)  # closes the last candles
        await market.app.runner.flush()
        for interval, proto_interval in [
            (Interval.ONE_MINUTE, pb.CANDLE_INTERVAL_ONE_MINUTE),
            (Interval.ONE_HOUR, pb.CANDLE_INTERVAL_ONE_HOUR),
            (Interval.ONE_DAY, pb.CANDLE_INTERVAL_ONE_DAY),
        ]:
            expected = candles_from_trades(trades, interval)
            reply = await market.stub.GetCandles(
                pb.GetCandlesRequest(
                    product_id="BTC-USD",
                    interval=proto_interval,
                    start=Timestamp(seconds=int(DAY.timestamp())),
                    end=Timestamp(seconds=int((DAY + timedelta(days=1)).timestamp())),
                    page_size=5000,
                )
            )
            got = [
                (c.start.seconds, c.open, c.high, c.low, c.close, c.volume, c.trade_count, c.closed)
                for c in reply.candles
            ]
            assert got == [
                (
                    int(c.start.timestamp()),
                    str(c.open),
                    str(c.high),
                    str(c.low),
                    str(c.close),
                    format(c.volume, "f"),
                    c.trade_count,
                    True,
                )
                for c in expected
            ]
    finally:
        await stop_market(market)


def test_bad_recordings_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,product_id,trade_id,price,size\n")
    with pytest.raises(ReplayFormatError, match="missing columns"):
        list(read_trades(path, {"BTC-USD"}))
    path.write_text(
        "time,product_id,trade_id,price,size,side\n2025-01-01T00:00:00Z,BTC-USD,1,abc,1,buy\n"
    )
    with pytest.raises(ReplayFormatError, match=":2:"):
        list(read_trades(path, {"BTC-USD"}))


# -- candles and Parquet ------------------------------------------------------------------


def minute_bars(count: int, seed: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    bars, close = [], 60_000.0
    for i in range(count):
        open_ = close
        close = open_ * (1 + rng.gauss(0, 0.001))
        high = max(open_, close) * (1 + rng.uniform(0, 0.0005))
        low = min(open_, close) * (1 - rng.uniform(0, 0.0005))
        bars.append(
            {
                "start": DAY + timedelta(minutes=i),
                "product_id": "BTC-USD",
                "open": f"{open_:.2f}",
                "high": f"{high:.2f}",
                "low": f"{low:.2f}",
                "close": f"{close:.2f}",
                "volume": f"{rng.uniform(0.01, 5):.8f}",
            }
        )
    return bars


def write_bars_csv(path: Path, bars: list[dict[str, object]]) -> None:
    lines = ["start,product_id,open,high,low,close,volume"]
    for b in bars:
        stamp = b["start"].isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]
        lines.append(f"{stamp},{b['product_id']},{b['open']},{b['high']},{b['low']},"
                     f"{b['close']},{b['volume']}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def write_bars_parquet(path: Path, bars: list[dict[str, object]]) -> None:
    """A timestamp column and float prices, the way most candle data sets are stored."""
    table = pa.table(
        {
            "start": pa.array([b["start"] for b in bars], pa.timestamp("ms", tz="UTC")),
            "product_id": [b["product_id"] for b in bars],
            **{c: [float(str(b[c])) for b in bars] for c in ("open", "high", "low", "close")},
            "volume": [float(str(b["volume"])) for b in bars],
        }
    )
    pq.write_table(table, path)


def test_each_bar_replays_open_first_then_extremes_in_its_direction_then_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "start,product_id,open,high,low,close,volume\n"
        "2025-06-01T00:00:00Z,BTC-USD,100,110,95,105,4\n"  # rose: open, low, high, close
        "2025-06-01T00:01:00Z,BTC-USD,105,107,90,92,2\n"  # fell: open, high, low, close
        "2025-06-01T00:02:00Z,ETH-USD,5,6,4,5,1\n"  # not configured
        "2025-06-01T00:03:00Z,BTC-USD,92,92,92,92,0\n"  # no volume: skipped
    )
    ticks = list(read_candles(path, {"BTC-USD"}))
    assert [(t.time - DAY).total_seconds() for t in ticks] == [0, 15, 30, 45, 60, 75, 90, 105]
    prices = ["100", "95", "110", "105", "105", "107", "90", "92"]
    assert [t.price for t in ticks] == [Decimal(p) for p in prices]
    assert [t.size for t in ticks] == [Decimal(1)] * 4 + [Decimal("0.5")] * 4
    ids = [int(t.trade_id) for t in ticks]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_csv_and_parquet_candles_give_the_same_ticks(tmp_path: Path) -> None:
    bars = minute_bars(120)
    write_bars_csv(tmp_path / "bars.csv", bars)
    write_bars_parquet(tmp_path / "bars.parquet", bars)
    from_csv = list(read_recording([tmp_path / "bars.csv"], {"BTC-USD"}))
    from_parquet = list(read_recording([tmp_path / "bars.parquet"], {"BTC-USD"}))
    assert len(from_csv) == 4 * 120
    assert from_csv == from_parquet


def test_trades_parquet_reads_like_the_csv(tmp_path: Path) -> None:
    trades = write_recording(tmp_path / "trades.csv", trades_per_minute=1)
    table = pa.table(
        {
            "time": pa.array([t.time for t in trades], pa.timestamp("us", tz="UTC")),
            "product_id": [t.product_id for t in trades],
            "trade_id": [int(t.trade_id) for t in trades],
            "price": [str(t.price) for t in trades],
            "size": [str(t.size) for t in trades],
            "side": [t.side for t in trades],
        }
    )
    pq.write_table(table, tmp_path / "trades.parquet")
    assert list(read_trades(tmp_path / "trades.parquet", {"BTC-USD"})) == list(
        read_trades(tmp_path / "trades.csv", {"BTC-USD"})
    )


def test_settings_check_the_files_at_start_up(tmp_path: Path) -> None:
    bars = tmp_path / "bars.parquet"
    write_bars_parquet(bars, minute_bars(3))
    ok = MarketSettings(
        database_url="sqlite://",
        auth_mode="disabled",
        market_feed="replay",
        market_replay_path=f"{bars},{bars}",
    )
    assert ok.replay_paths == [bars, bars]
    with pytest.raises(ValueError, match="is not a file"):
        MarketSettings(
            database_url="sqlite://",
            auth_mode="disabled",
            market_feed="replay",
            market_replay_path=f"{bars},nope.csv",
        )
    (tmp_path / "x.txt").write_text("a,b\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        MarketSettings(
            database_url="sqlite://",
            auth_mode="disabled",
            market_feed="replay",
            market_replay_path=str(tmp_path / "x.txt"),
        )
    with pytest.raises(ValueError, match="missing columns"):
        MarketSettings(
            database_url="sqlite://",
            auth_mode="disabled",
            market_feed="replay",
            market_replay_path=str(bars),
            market_replay_data="trades",
        )


async def test_replayed_candle_files_give_back_the_same_candles(tmp_path: Path) -> None:
    """A day of 1-minute bars split over a Parquet and a CSV file replays (speed 0) into
    exactly those 1-minute candles, and into their resampled hours."""
    bars = minute_bars(1440)
    write_bars_parquet(tmp_path / "morning.parquet", bars[:720])
    write_bars_csv(tmp_path / "afternoon.csv", bars[720:])
    market = await start_market(
        market_settings(
            f"sqlite:///{tmp_path / 'market.db'}",
            market_feed="replay",
            market_replay_path=f"{tmp_path / 'morning.parquet'},{tmp_path / 'afternoon.csv'}",
            market_products="BTC-USD",
        )
    )
    try:
        feed = market.app.runner.feed
        assert isinstance(feed, ReplayFeed)
        began = asyncio.get_running_loop().time()
        for _ in range(600):
            if feed.finished:
                break
            await asyncio.sleep(0.05)
        assert feed.finished and feed.replayed == 4 * 1440
        assert asyncio.get_running_loop().time() - began < 30  # a day in seconds
        await asyncio.sleep(3 * market.app.runner.publish_seconds)  # closes the last candles
        await market.app.runner.flush()

        async def candles(interval: int) -> list[tuple[object, ...]]:
            reply = await market.stub.GetCandles(
                pb.GetCandlesRequest(
                    product_id="BTC-USD",
                    interval=interval,  # type: ignore[arg-type]
                    start=Timestamp(seconds=int(DAY.timestamp())),
                    end=Timestamp(seconds=int((DAY + timedelta(days=1)).timestamp())),
                    page_size=5000,
                )
            )
            return [
                (c.start.seconds, Decimal(c.open), Decimal(c.high), Decimal(c.low),
                 Decimal(c.close), Decimal(c.volume), c.trade_count, c.closed)
                for c in reply.candles
            ]  # fmt: skip

        expected = [
            (int(b["start"].timestamp()), *(Decimal(str(b[c])) for c in  # type: ignore[attr-defined]
             ("open", "high", "low", "close", "volume")), 4, True)
            for b in bars
        ]  # fmt: skip
        assert await candles(pb.CANDLE_INTERVAL_ONE_MINUTE) == expected
        hours = await candles(pb.CANDLE_INTERVAL_ONE_HOUR)
        assert len(hours) == 24
        for h, hour in enumerate(hours):
            part = expected[60 * h : 60 * h + 60]
            assert hour[1:7] == (
                part[0][1],
                max(p[2] for p in part),
                min(p[3] for p in part),
                part[-1][4],
                sum((p[5] for p in part), Decimal(0)),
                240,
            )
    finally:
        await stop_market(market)


async def test_candles_replay_at_recorded_speed(tmp_path: Path) -> None:
    """Speed N: the bars' time passes N times faster, not as fast as possible."""
    path = tmp_path / "bars.csv"
    write_bars_csv(path, minute_bars(3))
    feed = ReplayFeed(path, {"BTC-USD"}, speed=120.0)  # 3 minutes of bars in 1.5 s
    seen: list[Tick] = []
    began = asyncio.get_running_loop().time()
    async for batch in feed.ticks():
        seen.extend(batch)
        if len(seen) >= 12:
            break
    elapsed = asyncio.get_running_loop().time() - began
    assert len(seen) == 12
    # The last tick (the third bar's close) is due 2 min 45 s after the first: 1.375 s.
    assert 1.3 < elapsed < 5.0
