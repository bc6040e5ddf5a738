"""FeedRunner with fakes: publishing, candle building and batched writes, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.hub import StreamHub
from tradeplane.market.domain.intervals import Interval
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.ticks import Side, Tick
from tradeplane.market.service_layer import metrics
from tradeplane.market.service_layer.feed_runner import FeedRunner, candle_stream_key


class ScriptedFeed:
    """Each start yields the next run of batches, then raises `fail_with` (or ends)."""

    name = "scripted"

    def __init__(self, runs: list[list[list[Tick]]], fail_with: Exception | None = None) -> None:
        self.runs = runs
        self.fail_with = fail_with
        self.started = 0

    async def ticks(self) -> AsyncIterator[list[Tick]]:
        run = self.runs[min(self.started, len(self.runs) - 1)]
        self.started += 1
        for batch in run:
            yield batch
        if self.fail_with is not None:
            raise self.fail_with


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRODUCTS = catalog_products(["BTC-USD"])


def tick(i: int, price: str, at: datetime) -> Tick:
    return Tick(
        "BTC-USD",
        str(i),
        at,
        Decimal(price),
        Decimal("0.5"),
        Side.BUY,
        Decimal(price) - 1,
        Decimal(price),
    )


def make_runner(feed: ScriptedFeed, repo: Any, clock: list[datetime]) -> FeedRunner:
    return FeedRunner(
        feed,
        PRODUCTS,
        StreamHub("ticks", replay_size=100, queue_size=100),
        StreamHub("candles", replay_size=100, queue_size=100),
        repo,
        publish_seconds=0.01,
        flush_seconds=0.0,
        max_backoff_seconds=0.05,
        clock=lambda: clock[0],
    )


async def test_ingest_publishes_ticks_and_builds_candles_written_in_batches(repo: Any) -> None:
    clock = [T0]
    runner = make_runner(ScriptedFeed([[]]), repo, clock)
    ticks_sub = runner.tick_hub.subscribe(["BTC-USD"])
    candles_sub = runner.candle_hub.subscribe([candle_stream_key("BTC-USD", Interval.ONE_MINUTE)])
    runner.ingest([tick(1, "100", T0), tick(2, "105", T0 + timedelta(seconds=10))])
    runner.ingest([tick(3, "99", T0 + timedelta(seconds=70))])
    batch = await ticks_sub.next_batch()
    assert batch is not None and [m.seq for m in batch.items] == [1, 2, 3]

    clock[0] = T0 + timedelta(seconds=120)
    runner.close_ended(clock[0])
    runner.publish_changed()
    await runner.flush()
    assert repo.writes == 1  # one batch for everything that changed
    minutes = repo.series("BTC-USD", Interval.ONE_MINUTE)
    assert [(c.open, c.high, c.close, c.trade_count, c.closed) for c in minutes] == [
        (Decimal(100), Decimal(105), Decimal(105), 2, True),
        (Decimal(99), Decimal(99), Decimal(99), 1, True),
    ]
    updates = await candles_sub.next_batch()
    assert updates is not None and {m.item.closed for m in updates.items} == {True}


async def test_stored_open_candle_is_continued_not_overwritten(repo: Any) -> None:
    hour = T0.replace(minute=0)
    stored = Candle(
        "BTC-USD",
        Interval.ONE_HOUR,
        hour,
        Decimal(90),
        Decimal(120),
        Decimal(80),
        Decimal(95),
        Decimal(10),
        40,
        False,
    )
    await repo.upsert([stored])
    clock = [T0]
    runner = make_runner(ScriptedFeed([[[tick(1, "100", T0)]]]), repo, clock)
    await runner.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if repo.series("BTC-USD", Interval.ONE_MINUTE):
                break
    finally:
        await runner.stop()
    merged = repo.series("BTC-USD", Interval.ONE_HOUR)[-1]
    assert (merged.open, merged.high, merged.low, merged.close) == (90, 120, 80, 100)
    assert (merged.volume, merged.trade_count, merged.closed) == (Decimal("10.5"), 41, False)


async def test_dying_feed_is_restarted_and_counted(repo: Any) -> None:
    feed = ScriptedFeed([[[tick(1, "100", T0)]], [[tick(2, "101", T0)]]], RuntimeError("boom"))
    runner = make_runner(feed, repo, [T0])
    restarts_before = metrics.FEED_RESTARTS._value.get()
    await runner.start()
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if feed.started >= 3:
                break
    finally:
        await runner.stop()
    assert feed.started >= 3
    assert runner.restarts >= 2
    assert runner.last_error == "RuntimeError: boom"
    assert metrics.FEED_RESTARTS._value.get() - restarts_before >= 2
    assert runner.tick_hub.last_seq("BTC-USD") >= 3  # ticks kept flowing after each restart


async def test_restart_continues_every_interval_and_late_trades_still_correct(repo: Any) -> None:
    """Candles after a restart equal those of one uninterrupted run over the same trades:
    every interval's open candle is continued, and a late trade after the restart corrects a
    candle closed before it (joined with its stored part, not overwriting it)."""
    from tradeplane.market.domain.candles import Trade, candles_from_trades
    from tradeplane.market.domain.intervals import ALL_INTERVALS

    at = [T0 + timedelta(seconds=s) for s in (5, 30, 75, 130, 200, 230)]
    before = [tick(i, str(100 + i * 3 % 7), t) for i, t in enumerate(at, start=1)]
    after = [
        tick(10, "97", T0 + timedelta(seconds=240)),  # same 1m bucket as the last one before
        tick(11, "111", T0 + timedelta(seconds=390)),
        tick(12, "90", T0 + timedelta(seconds=80)),  # late: its 1m candle closed in run 1
        tick(13, "104", T0 + timedelta(seconds=420)),
    ]
    clock = [T0 + timedelta(seconds=235)]
    first = make_runner(ScriptedFeed([[]]), repo, clock)
    first.ingest(before)
    first.close_ended(clock[0])  # closes the 1m candles up to 12:03
    await first.flush()
    open_before = {c.interval for c in repo.rows.values() if not c.closed}
    assert open_before == set(ALL_INTERVALS)  # every interval has a stored open candle

    second = make_runner(ScriptedFeed([[]]), repo, clock)
    await second.start()
    try:
        second.ingest(after[:2])
        clock[0] = T0 + timedelta(seconds=400)
        second.close_ended(clock[0])
        second.ingest(after[2:])
        clock[0] = T0 + timedelta(days=1, hours=1)  # every bucket of the trades has ended
        second.close_ended(clock[0])
        await second.flush()
    finally:
        await second.stop()

    trades = [
        Trade(t.product_id, t.trade_id, t.time, t.price, t.size, str(t.side))
        for t in before + after
    ]
    for interval in ALL_INTERVALS:
        expected = candles_from_trades(trades, interval)
        assert repo.series("BTC-USD", interval) == expected, interval
