"""MarketService over real gRPC, backed by SQLite and Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.indicators import INDICATORS, validate_spec
from tradeplane.market.adapters.candle_repository import SqlCandleRepository
from tradeplane.market.domain.candles import CandleArrays
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.market.service_layer import metrics
from trading.market.v1 import market_pb2 as pb

from .conftest import RunningMarket

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOUR = 3600


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def history_range(hours: int) -> tuple[int, int]:
    """A range inside the backfilled history (ends an hour ago: no live candles in it)."""
    end = Interval.ONE_HOUR.floor(int(time.time())) - HOUR
    return end - hours * HOUR, end


async def test_health_is_serving(market: RunningMarket) -> None:
    health = health_pb2_grpc.HealthStub(market.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_list_products_is_sorted_and_paged(market: RunningMarket) -> None:
    reply = await market.stub.ListProducts(pb.ListProductsRequest())
    ids = [p.product_id for p in reply.products]
    assert ids == ["BTC-USD", "ETH-USD", "SOL-USD"] and reply.next_page_token == ""
    btc = reply.products[0]
    assert (btc.base_currency, btc.quote_currency, btc.quote_increment) == ("BTC", "USD", "0.01")
    assert btc.base_increment == "0.00000001" and btc.status == pb.PRODUCT_STATUS_ONLINE
    async with asyncio.timeout(5):
        while not btc.last_price:  # set once the live feed has ticked
            await asyncio.sleep(0.05)
            btc = (await market.stub.ListProducts(pb.ListProductsRequest())).products[0]
    first = await market.stub.ListProducts(pb.ListProductsRequest(page_size=2))
    rest = await market.stub.ListProducts(
        pb.ListProductsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [p.product_id for p in [*first.products, *rest.products]] == ids
    assert rest.next_page_token == ""


SPECS = [
    ("sma", {"period": 20}),
    ("ema", {"period": 10}),
    ("rsi", {}),
    ("macd", {}),
    ("bollinger", {"period": 20, "stddev": 2.5}),
    ("atr", {}),
]


def request_specs(specs: Sequence[tuple[str, dict[str, float]]]) -> list[pb.IndicatorSpec]:
    return [pb.IndicatorSpec(name=n, params=p) for n, p in specs]


async def test_get_candles_indicators_equal_direct_computation(market: RunningMarket) -> None:
    start, end = history_range(6)
    request = pb.GetCandlesRequest(
        product_id="ETH-USD",
        interval=pb.CANDLE_INTERVAL_ONE_MINUTE,
        start=ts(start),
        end=ts(end),
        page_size=5000,
        indicators=request_specs(SPECS),
    )
    reply = await market.stub.GetCandles(request)
    assert len(reply.candles) == 6 * 60 and reply.next_page_token == ""
    assert reply.candles[0].start.seconds == start and reply.candles[-1].start.seconds == end - 60
    assert all(c.closed and c.interval == pb.CANDLE_INTERVAL_ONE_MINUTE for c in reply.candles)

    # Direct computation over every stored candle up to the range end.
    repo = SqlCandleRepository(market.app.engine)
    _, everything = await repo.page_with_warmup("ETH-USD", Interval.ONE_MINUTE, 0, end, 10**6, 0)
    arrays = CandleArrays.from_candles(everything)
    offset = arrays.index_of(start)
    assert [float(c.close) for c in reply.candles] == arrays.close[offset:].tolist()
    served = {(s.spec.name, s.output): np.array(s.values) for s in reply.indicators}
    for name, params in SPECS:
        full = validate_spec(name, params)
        expected = INDICATORS[name].compute(arrays, full)
        for output, values in expected.items():
            got = served[(name, output)]
            assert len(got) == len(reply.candles)
            np.testing.assert_allclose(got, values[offset:], rtol=1e-9, atol=1e-9)
            assert not np.isnan(got).any(), f"{name}.{output} lacks warm-up"

    hits = metrics.INDICATOR_CACHE.labels("hit")._value.get()
    again = await market.stub.GetCandles(request)
    assert again == reply
    assert metrics.INDICATOR_CACHE.labels("hit")._value.get() - hits == len(SPECS)


async def test_paging_covers_the_range_exactly_once(market: RunningMarket) -> None:
    start, end = history_range(30)

    def request(page_size: int, page_token: str = "") -> pb.GetCandlesRequest:
        return pb.GetCandlesRequest(
            product_id="BTC-USD",
            interval=pb.CANDLE_INTERVAL_FIVE_MINUTES,
            start=ts(start),
            end=ts(end),
            indicators=request_specs([("ema", {"period": 12}), ("vwap", {"period": 20})]),
            page_size=page_size,
            page_token=page_token,
        )

    whole = await market.stub.GetCandles(request(5000))
    assert len(whole.candles) == 30 * 12
    starts: list[int] = []
    values: dict[str, list[float]] = {"ema": [], "vwap": []}
    token, pages = "", 0
    while True:
        page = await market.stub.GetCandles(request(37, token))
        pages += 1
        assert len(page.candles) <= 37
        starts += [c.start.seconds for c in page.candles]
        for series in page.indicators:
            values[series.spec.name] += list(series.values)
        token = page.next_page_token
        if not token:
            break
    assert pages == -(-len(whole.candles) // 37)
    assert starts == [c.start.seconds for c in whole.candles]
    assert len(set(starts)) == len(starts)
    for series in whole.indicators:
        np.testing.assert_allclose(values[series.spec.name], series.values, rtol=1e-9)


async def test_higher_intervals_aggregate_the_minutes(market: RunningMarket) -> None:
    start, end = history_range(2)
    hours = await market.stub.GetCandles(
        pb.GetCandlesRequest(
            product_id="SOL-USD",
            interval=pb.CANDLE_INTERVAL_ONE_HOUR,
            start=ts(start),
            end=ts(end),
        )
    )
    minutes = await market.stub.GetCandles(
        pb.GetCandlesRequest(
            product_id="SOL-USD",
            interval=pb.CANDLE_INTERVAL_ONE_MINUTE,
            start=ts(start),
            end=ts(start + HOUR),
        )
    )
    first = hours.candles[0]
    assert first.open == minutes.candles[0].open and first.close == minutes.candles[-1].close
    assert float(first.high) == max(float(c.high) for c in minutes.candles)
    assert first.trade_count == sum(c.trade_count for c in minutes.candles)


def _bad(**fields: object) -> pb.GetCandlesRequest:
    start, end = history_range(1)
    values: dict[str, object] = {
        "product_id": "BTC-USD",
        "interval": pb.CANDLE_INTERVAL_ONE_MINUTE,
        "start": ts(start),
        "end": ts(end),
    }
    values.update(fields)
    return pb.GetCandlesRequest(**{k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize(
    ("request_fields", "code", "field"),
    [
        ({"product_id": "DOGE-EUR"}, grpc.StatusCode.NOT_FOUND, "DOGE-EUR"),
        ({"product_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "product_id:"),
        ({"interval": None}, grpc.StatusCode.INVALID_ARGUMENT, "interval:"),
        ({"start": None}, grpc.StatusCode.INVALID_ARGUMENT, "start:"),
        ({"end": ts(1000)}, grpc.StatusCode.INVALID_ARGUMENT, "end:"),
        ({"page_size": 5001}, grpc.StatusCode.INVALID_ARGUMENT, "page_size:"),
        ({"page_size": -1}, grpc.StatusCode.INVALID_ARGUMENT, "page_size:"),
        ({"page_token": "not a token!"}, grpc.StatusCode.INVALID_ARGUMENT, "page_token:"),
        (
            {"indicators": [pb.IndicatorSpec(name="ichimoku")]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "indicators[0].name:",
        ),
        (
            {
                "indicators": [
                    pb.IndicatorSpec(name="sma"),
                    pb.IndicatorSpec(name="sma", params={"period": 0}),
                ]
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "indicators[1].params.period:",
        ),
    ],
)
async def test_bad_candle_requests_name_the_field(
    market: RunningMarket, request_fields: dict[str, object], code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await market.stub.GetCandles(_bad(**request_fields))
    assert error.value.code() == code
    assert (error.value.details() or "").startswith(field) or field in (error.value.details() or "")


async def test_page_token_of_another_query_is_rejected(market: RunningMarket) -> None:
    first = await market.stub.GetCandles(_bad(page_size=10))
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await market.stub.GetCandles(
            _bad(product_id="ETH-USD", page_size=10, page_token=first.next_page_token)
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("page_token:")


async def _collect_ticks(
    market: RunningMarket, request: pb.StreamTicksRequest, count: int
) -> tuple[list[pb.Tick], list[str]]:
    ticks: list[pb.Tick] = []
    resets: list[str] = []
    call = market.stub.StreamTicks(request)
    async with asyncio.timeout(10):
        async for message in call:
            resets += list(message.reset_product_ids)
            ticks += list(message.ticks)
            if len(ticks) >= count:
                break
    call.cancel()
    return ticks, resets


async def test_stream_ticks_have_increasing_seq_per_product(market: RunningMarket) -> None:
    ticks, resets = await _collect_ticks(
        market, pb.StreamTicksRequest(product_ids=["BTC-USD", "SOL-USD"]), 20
    )
    assert resets == []
    for product in ("BTC-USD", "SOL-USD"):
        seqs = [t.seq for t in ticks if t.product_id == product]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert {t.product_id for t in ticks} == {"BTC-USD", "SOL-USD"}
    assert all(float(t.best_bid) < float(t.best_ask) for t in ticks)
    assert all(t.side in (1, 2) and t.price and t.size and t.trade_id for t in ticks)


async def test_stream_ticks_resume_replays_missed_and_resets_too_old(
    market: RunningMarket,
) -> None:
    seen, _ = await _collect_ticks(market, pb.StreamTicksRequest(product_ids=["ETH-USD"]), 3)
    last = seen[-1].seq
    await asyncio.sleep(0.5)  # ticks flow on while the client is away (20/s)
    head = market.app.tick_hub.last_seq("ETH-USD")
    assert head > last
    replayed, resets = await _collect_ticks(
        market,
        pb.StreamTicksRequest(product_ids=["ETH-USD"], since_seq={"ETH-USD": last}),
        head - last,
    )
    assert resets == []
    assert [t.seq for t in replayed[: head - last]] == list(range(last + 1, head + 1))

    # Once more ticks than the replay buffer holds have passed, the old cursor is gone.
    replay_size = market.app.settings.market_tick_replay_size
    for _ in range(200):
        if market.app.tick_hub.last_seq("ETH-USD") > last + replay_size + 1:
            break
        await asyncio.sleep(0.05)
    ticks, resets = await _collect_ticks(
        market,
        pb.StreamTicksRequest(product_ids=["ETH-USD"], since_seq={"ETH-USD": last}),
        1,
    )
    assert resets == ["ETH-USD"]
    assert ticks[0].seq > last + replay_size


async def test_stream_ticks_reset_when_cursor_is_gone(market: RunningMarket) -> None:
    # A cursor from a previous process (ahead of this one) cannot be replayed either.
    _, resets = await _collect_ticks(
        market,
        pb.StreamTicksRequest(product_ids=["BTC-USD"], since_seq={"BTC-USD": 10**12}),
        1,
    )
    assert resets == ["BTC-USD"]


async def test_stream_ticks_bad_requests(market: RunningMarket) -> None:
    for request, code, detail in [
        (pb.StreamTicksRequest(), grpc.StatusCode.INVALID_ARGUMENT, "product_ids:"),
        (
            pb.StreamTicksRequest(product_ids=["BTC-USD", "NOPE-USD"]),
            grpc.StatusCode.NOT_FOUND,
            "NOPE-USD",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in market.stub.StreamTicks(request):
                pass
        assert error.value.code() == code
        assert detail in (error.value.details() or "")


async def test_stream_candles_sends_updates(market: RunningMarket) -> None:
    call = market.stub.StreamCandles(
        pb.StreamCandlesRequest(product_ids=["BTC-USD"], interval=pb.CANDLE_INTERVAL_ONE_MINUTE)
    )
    async with asyncio.timeout(10):
        message = await call.read()
    call.cancel()
    candle = message.candles[0]
    assert candle.product_id == "BTC-USD" and candle.seq >= 1
    assert candle.start.seconds == Interval.ONE_MINUTE.floor(candle.start.seconds)
    assert float(candle.low) <= float(candle.close) <= float(candle.high)


async def test_live_candles_reach_storage(market: RunningMarket) -> None:
    now = int(time.time())
    repo = SqlCandleRepository(market.app.engine)
    async with asyncio.timeout(10):
        while True:
            latest = await repo.latest("BTC-USD", Interval.ONE_MINUTE)
            if latest is not None and epoch_seconds(latest.start) >= Interval.ONE_MINUTE.floor(now):
                break
            await asyncio.sleep(0.1)
    assert latest.trade_count >= 1


async def test_order_book(market: RunningMarket) -> None:
    reply = await market.stub.GetOrderBook(pb.GetOrderBookRequest(product_id="BTC-USD", depth=5))
    book = reply.book
    assert len(book.bids) == 5 and len(book.asks) == 5
    bids = [float(level.price) for level in book.bids]
    asks = [float(level.price) for level in book.asks]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await market.stub.GetOrderBook(pb.GetOrderBookRequest(product_id="BTC-USD", depth=5000))
    assert (error.value.details() or "").startswith("depth:")


async def test_stream_order_book_snapshot_then_deltas(market: RunningMarket) -> None:
    call = market.stub.StreamOrderBook(pb.StreamOrderBookRequest(product_id="ETH-USD", depth=10))
    messages = []
    async with asyncio.timeout(10):
        async for message in call:
            messages.append(message)
            if len(messages) == 4:
                break
    call.cancel()
    assert messages[0].WhichOneof("update") == "snapshot"
    seq = messages[0].snapshot.seq
    for message in messages[1:]:
        if message.WhichOneof("update") == "delta":
            assert message.delta.seq == seq + 1
            seq = message.delta.seq
