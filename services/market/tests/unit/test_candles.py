"""Intervals, trade-to-candle aggregation (live and batch, late trades) and resampling."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest

from tradeplane.market.domain.candles import (
    Candle,
    CandleAggregator,
    CandleArrays,
    Trade,
    TradeTooLate,
    candles_from_trades,
    resample,
)
from tradeplane.market.domain.intervals import (
    ALL_INTERVALS,
    Interval,
    epoch_seconds,
    from_epoch_seconds,
)

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def trade(
    seconds: float, price: str, size: str = "1", trade_id: str = "1", product: str = "BTC-USD"
) -> Trade:
    return Trade(
        product_id=product,
        trade_id=trade_id,
        time=T0 + timedelta(seconds=seconds),
        price=Decimal(price),
        size=Decimal(size),
        side="buy",
    )


# ---------------------------------------------------------------------------------------------
# Intervals


def test_interval_codes_and_seconds() -> None:
    assert [i.code for i in ALL_INTERVALS] == ["1m", "5m", "15m", "1h", "6h", "1d"]
    assert [i.seconds for i in ALL_INTERVALS] == [60, 300, 900, 3600, 21600, 86400]
    assert Interval.parse("15m") is Interval.FIFTEEN_MINUTES
    with pytest.raises(ValueError, match="expected one of 1m, 5m"):
        Interval.parse("2m")


def test_one_day_floors_to_utc_midnight() -> None:
    moment = datetime(2026, 3, 10, 23, 59, 59, 999_999, tzinfo=UTC)
    assert Interval.ONE_DAY.floor_datetime(moment) == datetime(2026, 3, 10, tzinfo=UTC)
    # A non-UTC offset is the same instant: still UTC midnight of that instant's UTC day.
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2026, 3, 11, 8, 30, tzinfo=tokyo)  # 2026-03-10 23:30 UTC
    assert Interval.ONE_DAY.floor_datetime(local) == datetime(2026, 3, 10, tzinfo=UTC)
    ts = epoch_seconds(moment)
    assert Interval.ONE_DAY.floor(ts) % 86400 == 0


@pytest.mark.parametrize(
    ("hour", "bucket"), [(0, 0), (5, 0), (6, 6), (11, 6), (12, 12), (17, 12), (18, 18), (23, 18)]
)
def test_six_hours_aligned_to_00_06_12_18(hour: int, bucket: int) -> None:
    moment = datetime(2026, 3, 10, hour, 42, 7, tzinfo=UTC)
    assert Interval.SIX_HOURS.floor_datetime(moment) == datetime(2026, 3, 10, bucket, tzinfo=UTC)


def test_minute_floors() -> None:
    moment = datetime(2026, 3, 10, 10, 17, 59, tzinfo=UTC)
    got = [i.floor_datetime(moment).strftime("%H:%M") for i in ALL_INTERVALS]
    assert got == ["10:17", "10:15", "10:15", "10:00", "06:00", "00:00"]
    # Before the epoch too (floor, not truncation).
    assert Interval.ONE_MINUTE.floor(-1) == -60


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_seconds(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Trade("BTC-USD", "1", datetime(2026, 1, 1), Decimal(1), Decimal(1), "buy")


def test_trade_time_is_normalised_to_utc_and_fields_checked() -> None:
    tokyo = timezone(timedelta(hours=9))
    t = Trade("BTC-USD", "1", datetime(2026, 1, 1, 9, tzinfo=tokyo), Decimal(1), Decimal(1), "buy")
    assert t.time == datetime(2026, 1, 1, tzinfo=UTC)
    assert t.time.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="side"):
        Trade("BTC-USD", "1", T0, Decimal(1), Decimal(1), "hold")
    with pytest.raises(ValueError, match="price"):
        Trade("BTC-USD", "1", T0, Decimal(0), Decimal(1), "buy")
    with pytest.raises(ValueError, match="size"):
        Trade("BTC-USD", "1", T0, Decimal(1), Decimal("-1"), "sell")


# ---------------------------------------------------------------------------------------------
# Brute-force oracle: sort every bucket's trades, read OHLCV off the sorted list


def oracle(trades: list[Trade], interval: Interval) -> dict[tuple[str, datetime], tuple]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    groups: dict[tuple[str, datetime], list[Trade]] = defaultdict(list)
    for t in trades:
        seconds = (t.time - epoch) // timedelta(seconds=1)
        start = epoch + timedelta(seconds=seconds - seconds % interval.seconds)
        groups[(t.product_id, start)].append(t)
    result = {}
    for key, group in groups.items():
        ordered = sorted(group, key=lambda t: (t.time, int(t.trade_id)))
        prices = [t.price for t in group]
        result[key] = (
            ordered[0].price,
            max(prices),
            min(prices),
            ordered[-1].price,
            sum((t.size for t in group), Decimal(0)),
            len(group),
        )
    return result


def as_table(candles: list[Candle]) -> dict[tuple[str, datetime], tuple]:
    return {
        (c.product_id, c.start): (c.open, c.high, c.low, c.close, c.volume, c.trade_count)
        for c in candles
    }


def random_trades(count: int, seed: int, span_hours: float = 60.0) -> list[Trade]:
    rng = random.Random(seed)
    trades = []
    for i in range(count):
        # Whole-second times so several trades share a timestamp and the id breaks the tie.
        offset = rng.randrange(int(span_hours * 3600))
        trades.append(
            Trade(
                product_id=rng.choice(["BTC-USD", "ETH-USD", "SOL-USD"]),
                trade_id=str(i + 1),
                time=T0 + timedelta(seconds=offset),
                price=Decimal(rng.randrange(9_000, 11_000)) / 100,
                size=Decimal(rng.randrange(1, 10_000)) / 1000,
                side=rng.choice(["buy", "sell"]),
            )
        )
    return trades


def test_random_trades_in_any_order_match_the_oracle_for_every_interval() -> None:
    trades = random_trades(4000, seed=1)
    shuffled = trades[:]
    random.Random(2).shuffle(shuffled)
    agg = CandleAggregator()
    for t in shuffled:
        changed = agg.add(t)
        assert [c.interval for c in changed] == list(ALL_INTERVALS)
        assert all(not c.closed for c in changed)
    for interval in ALL_INTERVALS:
        expected = oracle(trades, interval)
        held = [c for p in ("BTC-USD", "ETH-USD", "SOL-USD") for c in agg.recent(p, interval)]
        assert as_table(held) == expected, interval
        assert as_table(candles_from_trades(shuffled, interval)) == expected, interval


def test_live_feed_with_bounded_lateness_matches_the_oracle_and_closes_in_time() -> None:
    # Trades arrive up to 3 minutes late; the clock (close_until) follows arrival time.
    trades = random_trades(3000, seed=3, span_hours=8)
    rng = random.Random(4)
    arrivals = sorted(
        ((t.time + timedelta(seconds=rng.uniform(0, 180)), t) for t in trades),
        key=lambda pair: pair[0],
    )
    agg = CandleAggregator(retention=timedelta(hours=1))
    closed_seen: dict[tuple[str, Interval, datetime], Candle] = {}
    for arrived, t in arrivals:
        for c in agg.close_until(arrived):
            assert c.closed and c.end <= arrived
            closed_seen[(c.product_id, c.interval, c.start)] = c
        for c in agg.add(t):
            assert c.closed == (c.end <= arrived)
            if c.closed:  # a late trade corrected a closed candle
                closed_seen[(c.product_id, c.interval, c.start)] = c
    end = arrivals[-1][0] + timedelta(days=1)
    for c in agg.close_until(end):
        closed_seen[(c.product_id, c.interval, c.start)] = c
    assert agg.too_late == 0
    for interval in ALL_INTERVALS:
        got = [c for (p, i, s), c in closed_seen.items() if i is interval]
        assert as_table(got) == oracle(trades, interval), interval
    assert all(c.closed for c in closed_seen.values())


def test_late_trade_corrects_the_closed_candle() -> None:
    agg = CandleAggregator()
    agg.add(trade(10, "100", trade_id="2"))
    agg.add(trade(50, "101", trade_id="3"))
    closed = agg.close_until(T0 + timedelta(seconds=65))
    assert [(c.interval, c.start) for c in closed] == [(Interval.ONE_MINUTE, T0)]
    assert (closed[0].open, closed[0].close, closed[0].trade_count) == (
        Decimal(100),
        Decimal(101),
        2,
    )

    changed = agg.add(trade(5, "99", size="2", trade_id="1"))  # earlier than the open
    by_interval = {c.interval: c for c in changed}
    minute = by_interval[Interval.ONE_MINUTE]
    assert minute.closed
    assert (minute.open, minute.high, minute.low, minute.close) == (
        Decimal(99),
        Decimal(101),
        Decimal(99),
        Decimal(101),
    )
    assert (minute.volume, minute.trade_count) == (Decimal(4), 3)
    five = by_interval[Interval.FIVE_MINUTES]
    assert not five.closed and five.open == Decimal(99) and five.trade_count == 3


def test_late_trade_into_an_empty_closed_bucket_creates_a_closed_candle() -> None:
    agg = CandleAggregator()
    agg.add(trade(200, "100"))
    agg.close_until(T0 + timedelta(seconds=240))
    changed = agg.add(trade(30, "98", trade_id="2"))
    minute = changed[0]
    assert (minute.interval, minute.start, minute.closed) == (Interval.ONE_MINUTE, T0, True)
    assert changed[1].start == T0 and not changed[1].closed  # the 5m bucket is still open


def test_trades_older_than_the_window_are_too_late() -> None:
    agg = CandleAggregator(retention=timedelta(hours=1))
    agg.add(trade(0, "100"))
    now = T0 + timedelta(hours=3)
    agg.close_until(now)
    assert agg.horizon == now - timedelta(hours=1)
    with pytest.raises(TradeTooLate) as caught:
        agg.add(trade(2 * 3600 - 1, "100", trade_id="2"))
    assert caught.value.trade.trade_id == "2"
    assert caught.value.horizon == now - timedelta(hours=1)
    assert agg.too_late == 1
    # At the horizon it is still accepted: its candles are still held.
    changed = agg.add(trade(2 * 3600, "100", trade_id="3"))
    assert changed[0].closed and changed[0].trade_count == 1


def test_closed_candles_beyond_the_window_are_dropped() -> None:
    agg = CandleAggregator(retention=timedelta(days=2))
    agg.add(trade(0, "100"))
    agg.close_until(T0 + timedelta(days=1))
    assert len(agg.recent("BTC-USD", Interval.ONE_MINUTE)) == 1
    agg.close_until(T0 + timedelta(days=2, minutes=1))
    assert agg.recent("BTC-USD", Interval.ONE_MINUTE) == []
    assert agg.recent("BTC-USD", Interval.ONE_DAY) != []  # its day ended less than 2 days ago
    agg.close_until(T0 + timedelta(days=3))
    assert agg.current("BTC-USD", Interval.ONE_DAY) is None


def test_close_until_closes_each_interval_when_it_ends() -> None:
    agg = CandleAggregator()
    agg.add(trade(0, "100"))
    assert agg.close_until(T0 + timedelta(seconds=59)) == []
    assert [c.interval for c in agg.close_until(T0 + timedelta(seconds=60))] == [
        Interval.ONE_MINUTE
    ]
    assert agg.close_until(T0 + timedelta(seconds=30)) == []  # time does not go back
    later = agg.close_until(T0 + timedelta(days=1))
    assert [c.interval for c in later] == [
        Interval.FIVE_MINUTES,
        Interval.FIFTEEN_MINUTES,
        Interval.ONE_HOUR,
        Interval.SIX_HOURS,
        Interval.ONE_DAY,
    ]
    assert all(c.closed for c in later)


def test_equal_times_are_ordered_by_trade_id_numerically() -> None:
    a = trade(5, "100", trade_id="99")
    b = trade(5, "200", trade_id="100")  # same time, later id ("100" > "99" as numbers)
    for order in ([a, b], [b, a]):
        agg = CandleAggregator([Interval.ONE_MINUTE])
        for t in order:
            agg.add(t)
        c = agg.current("BTC-USD", Interval.ONE_MINUTE)
        assert c is not None
        assert (c.open, c.close) == (Decimal(100), Decimal(200))
        batch = candles_from_trades(order, Interval.ONE_MINUTE)[0]
        assert (batch.open, batch.close) == (Decimal(100), Decimal(200))


def test_non_numeric_trade_ids_order_lexically() -> None:
    a = trade(5, "100", trade_id="a-1")
    b = trade(5, "200", trade_id="b-1")
    c = candles_from_trades([b, a], Interval.ONE_MINUTE)[0]
    assert (c.open, c.close) == (Decimal(100), Decimal(200))


def test_duplicate_trades_are_ignored() -> None:
    agg = CandleAggregator()
    agg.add(trade(5, "100", trade_id="7"))
    assert agg.add(trade(5, "100", trade_id="7")) == []
    assert agg.duplicates == 1
    c = agg.current("BTC-USD", Interval.ONE_MINUTE)
    assert c is not None and c.trade_count == 1 and c.volume == Decimal(1)
    # The same id on another product is a different trade.
    assert agg.add(trade(5, "100", trade_id="7", product="ETH-USD")) != []
    assert len(candles_from_trades([trade(5, "1"), trade(5, "1")], Interval.ONE_MINUTE)) == 1


def test_batch_closed_flag_follows_now() -> None:
    trades = [trade(0, "1", trade_id="1"), trade(130, "2", trade_id="2")]
    got = candles_from_trades(trades, Interval.ONE_MINUTE, now=T0 + timedelta(seconds=120))
    assert [c.closed for c in got] == [True, False]
    assert all(c.closed for c in candles_from_trades(trades, Interval.ONE_MINUTE))


# ---------------------------------------------------------------------------------------------
# Columns and resampling


def test_candle_arrays_from_candles_and_slicing() -> None:
    candles = candles_from_trades(random_trades(500, seed=9), Interval.ONE_MINUTE)
    btc = [c for c in candles if c.product_id == "BTC-USD"]
    arrays = CandleArrays.from_candles(btc)
    assert len(arrays) == len(btc)
    assert arrays.start.dtype == np.int64 and arrays.close.dtype == np.float64
    assert arrays.start[0] == epoch_seconds(btc[0].start)
    assert arrays.high[3] == float(btc[3].high)
    part = arrays[10:20]
    assert len(part) == 10 and part.volume[0] == float(btc[10].volume)
    assert arrays.index_of(epoch_seconds(btc[10].start)) == 10
    assert arrays.index_of(epoch_seconds(btc[10].start) - 1) == 10
    assert len(CandleArrays.empty()) == 0
    with pytest.raises(ValueError, match="rows"):
        CandleArrays.from_columns([1, 2], [1.0], [1.0], [1.0], [1.0], [1.0])


@pytest.mark.parametrize("interval", ALL_INTERVALS[1:], ids=lambda i: i.code)
def test_resample_equals_aggregating_trades_directly(interval: Interval) -> None:
    trades = [t for t in random_trades(6000, seed=12) if t.product_id == "ETH-USD"]
    minutes = CandleArrays.from_candles(candles_from_trades(trades, Interval.ONE_MINUTE))
    direct = CandleArrays.from_candles(candles_from_trades(trades, interval))
    got = resample(minutes, interval)
    for column in ("start", "open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(got, column), getattr(direct, column), column)
    np.testing.assert_allclose(got.volume, direct.volume, rtol=1e-12)
    assert set(got.start % interval.seconds) == {0}


def test_resample_rejects_unsorted_input_and_handles_empty() -> None:
    assert len(resample(CandleArrays.empty(), Interval.ONE_HOUR)) == 0
    bad = CandleArrays.from_columns([120, 60], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="sorted"):
        resample(bad, Interval.FIVE_MINUTES)


def test_from_epoch_seconds_round_trip() -> None:
    assert epoch_seconds(from_epoch_seconds(1_700_000_000)) == 1_700_000_000
    assert from_epoch_seconds(0).tzinfo is UTC
