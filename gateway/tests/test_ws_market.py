"""/ws/market against the real market service: ticks flow, upstream streams are shared and
closed after the last subscriber, and a stalled browser does not slow the others."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tradeplane.gateway.testing import Client

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _tick_seqs(client: Client, product: str, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        data = await client.recv_kind("data")
        assert data["channel"] == "CHANNEL_TICKS"
        for tick in data["ticks"]["ticks"]:
            assert tick["productId"] == product
            seqs.append(int(tick["seq"]))
        assert data["seqByProduct"] == {product: data["seq"]}
    return seqs


async def _eventually(predicate: object, wait: float = 5.0) -> None:
    deadline = time.monotonic() + wait
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_ticks_arrive_with_increasing_seq(market: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(market_addr=market.target)
    client = await Client.open(gw.ws("market"))
    assert client.hello["heartbeatIntervalMs"] == 5000
    sub = await client.subscribe(channel="CHANNEL_TICKS", productIds=["BTC-USD"])
    assert sub["subscriptionId"]
    snapshot = await client.recv_kind("snapshot")
    assert snapshot["channel"] == "CHANNEL_TICKS"
    assert snapshot["subscriptionId"] == sub["subscriptionId"]
    seqs = await _tick_seqs(client, "BTC-USD", 20)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] == len(seqs) - 1  # no gap for a client that keeps up
    await client.close()


async def test_two_browsers_share_one_upstream_stream_closed_after_the_last(
    market: Any, gateway_factory: Any
) -> None:
    gw = await gateway_factory(market_addr=market.target)
    before = market.tick_streams
    a = await Client.open(gw.ws("market"))
    b = await Client.open(gw.ws("market"))
    sub_a = await a.subscribe(channel="CHANNEL_TICKS", productIds=["ETH-USD"])
    sub_b = await b.subscribe(
        channel="CHANNEL_TICKS", productIds=["ETH-USD"], subscriptionId="mine"
    )
    assert sub_b["subscriptionId"] == "mine"
    await _tick_seqs(a, "ETH-USD", 3)
    await _tick_seqs(b, "ETH-USD", 3)
    # One upstream StreamTicks for both browsers, as the market service itself counts it.
    assert market.tick_streams == before + 1
    assert list(gw.hub.topics) == ["ticks:ETH-USD"]

    await a.send({"requestId": "u1", "unsubscribe": {"subscriptionId": sub_a["subscriptionId"]}})
    assert (await a.recv_kind("unsubscribed"))["requestId"] == "u1"
    await _tick_seqs(b, "ETH-USD", 2)  # b still served
    assert market.tick_streams == before + 1

    await b.send({"unsubscribe": {"subscriptionId": "mine"}})
    await b.recv_kind("unsubscribed")
    await _eventually(lambda: market.tick_streams == before)
    assert gw.hub.topics == {}
    await a.close()
    await b.close()


async def test_a_stalled_client_is_resynced_and_does_not_slow_another(
    market: Any, gateway_factory: Any
) -> None:
    from tradeplane.gateway import metrics

    gw = await gateway_factory(
        market_addr=market.target,
        gateway_client_queue_size=20,
        gateway_socket_send_buffer=4096,
    )
    # The stalled browser: a tiny receive buffer, and it stops reading after the snapshot.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    sock.setblocking(False)
    slow = Client(await connect(gw.ws("market"), sock=sock, max_queue=1, open_timeout=5))
    await slow.recv_kind("hello")
    await slow.subscribe(channel="CHANNEL_TICKS", productIds=["SOL-USD"], subscriptionId="slow")
    fast = await Client.open(gw.ws("market"))
    await fast.subscribe(channel="CHANNEL_TICKS", productIds=["SOL-USD"])
    await fast.recv_kind("snapshot")

    drops_before = metrics.DROPS.labels("market", "queue_full")._value.get()
    # The fast client keeps every tick, in order, without a gap, while the slow one stalls.
    lags: list[float] = []
    seqs: list[int] = []
    deadline = time.monotonic() + 20
    while metrics.DROPS.labels("market", "queue_full")._value.get() == drops_before:
        assert time.monotonic() < deadline, "the stalled client never overflowed its queue"
        data = await fast.recv_kind("data")
        seqs += [int(t["seq"]) for t in data["ticks"]["ticks"]]
    for _ in range(20):
        data = await fast.recv_kind("data")
        seqs += [int(t["seq"]) for t in data["ticks"]["ticks"]]
        lags.append(time.time() - _parse_time(data["sendTime"]))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert max(lags) < 0.5

    # When the slow client reads again it gets a reset (SLOW_CONSUMER) then a snapshot.
    frame = await slow.recv_kind("reset", wait=15)
    assert frame == {
        "subscriptionId": "slow",
        "reason": "RESET_REASON_SLOW_CONSUMER",
        "productIds": ["SOL-USD"],
        "message": frame["message"],
    }
    snapshot = await slow.recv_kind("snapshot")
    assert snapshot["subscriptionId"] == "slow"
    assert int(snapshot["seq"]) > 0
    data = await slow.recv_kind("data")
    assert int(data["seq"]) > int(snapshot["seq"])
    await slow.close()
    await fast.close()


def _parse_time(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_candles_snapshot_has_history_then_updates(market: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(market_addr=market.target, gateway_snapshot_candles=30)
    client = await Client.open(gw.ws("market"))
    await client.subscribe(
        channel="CHANNEL_CANDLES", productIds=["BTC-USD"], interval="CANDLE_INTERVAL_ONE_MINUTE"
    )
    snapshot = await client.recv_kind("snapshot")
    candles = snapshot["candles"]["candles"]
    assert 10 <= len(candles) <= 30  # stored history from GetCandles (backfilled)
    starts = [c["start"] for c in candles]
    assert starts == sorted(starts)
    data = await client.recv_kind("data", wait=10)
    update = data["candles"]["candles"][-1]
    assert update["productId"] == "BTC-USD" and update["interval"] == "CANDLE_INTERVAL_ONE_MINUTE"
    assert update["start"] >= starts[-1]
    await client.close()


async def test_market_resume_replays_from_the_cursor(market: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(market_addr=market.target)
    watcher = await Client.open(gw.ws("market"))
    await watcher.subscribe(channel="CHANNEL_TICKS", productIds=["LTC-USD", "BTC-USD"])
    client = await Client.open(gw.ws("market"))
    await client.subscribe(channel="CHANNEL_TICKS", productIds=["BTC-USD"])
    seqs = await _tick_seqs(client, "BTC-USD", 3)
    await client.close()
    await asyncio.sleep(0.3)  # ticks happen meanwhile (kept by the watcher's shared stream)
    client = await Client.open(gw.ws("market"))
    await client.send(
        {
            "resume": {
                "subscriptions": [
                    {
                        "channel": "CHANNEL_TICKS",
                        "productIds": ["BTC-USD"],
                        "sinceSeqByProduct": {"BTC-USD": str(seqs[-1])},
                    }
                ]
            }
        }
    )
    await client.recv_kind("subscribed")
    resumed = await _tick_seqs(client, "BTC-USD", 20)
    assert resumed[:20] == list(range(seqs[-1] + 1, seqs[-1] + 21))
    await client.close()
    await watcher.close()


async def test_unknown_product_gets_an_error_frame(market: Any, gateway_factory: Any) -> None:
    gw = await gateway_factory(market_addr=market.target)
    client = await Client.open(gw.ws("market"))
    await client.subscribe(channel="CHANNEL_TICKS", productIds=["NOPE-USD"], subscriptionId="x")
    error = await client.recv_kind("error")
    assert error["subscriptionId"] == "x"
    assert error["code"] == "ERROR_CODE_NOT_FOUND"
    assert "NOPE-USD" in error["message"]
    assert (await client.recv_kind("unsubscribed"))["subscriptionId"] == "x"
    # The connection stays usable.
    await client.subscribe(channel="CHANNEL_TICKS", productIds=["BTC-USD"])
    await client.recv_kind("data")
    await client.close()


async def test_order_book_snapshot_then_deltas_that_apply(
    market: Any, gateway_factory: Any
) -> None:
    from decimal import Decimal

    gw = await gateway_factory(market_addr=market.target)
    client = await Client.open(gw.ws("market"))
    await client.subscribe(channel="CHANNEL_ORDER_BOOK", productIds=["ETH-USD"], depth=5)
    book = (await client.recv_kind("snapshot"))["orderBook"]
    assert book["productId"] == "ETH-USD"
    assert 0 < len(book["bids"]) <= 5 and 0 < len(book["asks"]) <= 5
    bids = {level["price"]: level["size"] for level in book["bids"]}
    seq = int(book["seq"])

    async def advance(until: int) -> None:
        nonlocal bids, seq
        while seq < until:
            frame = await client.recv()
            if "snapshot" in frame:  # the service resynced the book
                snap = frame["snapshot"]["orderBook"]
                bids = {lv["price"]: lv["size"] for lv in snap["bids"]}
                seq = int(snap["seq"])
                continue
            delta = frame["data"]["orderBookDelta"]
            assert int(delta["seq"]) > seq
            seq = int(delta["seq"])
            for level in delta.get("bids", []):
                if Decimal(level["size"]) == 0:
                    bids.pop(level["price"], None)
                else:
                    bids[level["price"]] = level["size"]

    await advance(seq + 10)
    # The client's book, kept from deltas, equals the snapshot a new subscriber gets.
    other = await Client.open(gw.ws("market"))
    await other.subscribe(channel="CHANNEL_ORDER_BOOK", productIds=["ETH-USD"], depth=5)
    fresh = (await other.recv_kind("snapshot"))["orderBook"]
    await advance(int(fresh["seq"]))
    assert seq == int(fresh["seq"])
    assert bids == {lv["price"]: lv["size"] for lv in fresh["bids"]}
    await other.close()
    await client.close()
