"""MARKET_FEED=replay: a recorded day of trades replays in seconds into exact candles."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.market.adapters.replay_feed import ReplayFeed, ReplayFormatError, read_trades
from tradeplane.market.domain.candles import Trade, candles_from_trades
from tradeplane.market.domain.intervals import Interval
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
