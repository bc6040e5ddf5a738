"""StreamOrderBook / GetOrderBook from the Coinbase level2 channel, against the fake server:
snapshot then deltas with increasing seqs, and after a sequence gap (lost messages) the feed
resubscribes level2 for a fresh snapshot, so the book the client holds is the venue's again."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from tradeplane.market.adapters.venues.coinbase.websocket import CoinbaseFeed
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from trading.market.v1 import market_pb2 as pb

from .conftest import start_market, stop_market
from .test_coinbase_feed import coinbase_settings, eventually, metric, scripted_trades

DEPTH = 10  # more than the fake's levels: the whole book is compared


class BookClient:
    """A StreamOrderBook client: applies snapshots and deltas as a client would."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.snapshots = 0
        self.seqs: list[int] = []

    def apply(self, message: pb.StreamOrderBookResponse) -> None:
        if message.HasField("snapshot"):
            self.snapshots += 1
            self.bids = {Decimal(lv.price): Decimal(lv.size) for lv in message.snapshot.bids}
            self.asks = {Decimal(lv.price): Decimal(lv.size) for lv in message.snapshot.asks}
            self.seqs.append(message.snapshot.seq)
            return
        for levels, side in ((message.delta.bids, self.bids), (message.delta.asks, self.asks)):
            for lv in levels:
                if Decimal(lv.size) == 0:
                    side.pop(Decimal(lv.price), None)
                else:
                    side[Decimal(lv.price)] = Decimal(lv.size)
        self.seqs.append(message.delta.seq)

    def matches(self, fake: FakeCoinbase, product_id: str) -> bool:
        book = fake.book(product_id)
        return self.bids == book["bid"] and self.asks == book["offer"]


async def test_level2_book_streams_snapshot_then_deltas_and_resyncs_after_a_gap(
    tmp_path: Path,
) -> None:
    trades = [t for t in scripted_trades(300) if t.product_id == "BTC-USD"]
    async with FakeCoinbase(heartbeat_interval=0.2, book_levels=5) as fake:
        settings = coinbase_settings(
            f"sqlite:///{tmp_path / 'market.db'}",
            fake,
            market_coinbase_channels="heartbeats,market_trades,level2",
        )
        market = await start_market(settings)
        stream = None
        try:
            feed = market.app.runner.feed
            assert isinstance(feed, CoinbaseFeed)
            await fake.wait_subscribed("level2", 1)
            with pytest.raises(grpc.aio.AioRpcError) as no_book:
                await market.stub.GetOrderBook(pb.GetOrderBookRequest(product_id="BTC-USD"))
            assert no_book.value.code() == grpc.StatusCode.UNAVAILABLE

            await fake.publish(trades[:20], per_message=1)
            client = BookClient()
            stream = market.stub.StreamOrderBook(
                pb.StreamOrderBookRequest(product_id="BTC-USD", depth=DEPTH)
            )

            async def read() -> None:
                async for message in stream:
                    client.apply(message)

            reader = asyncio.create_task(read())

            async def in_sync() -> bool:
                return client.matches(fake, "BTC-USD")

            await eventually(in_sync, within=5)
            assert client.snapshots == 1
            await fake.publish(trades[20:60], per_message=1)
            await eventually(in_sync, within=5)
            assert client.snapshots == 1  # deltas only
            assert client.seqs == sorted(set(client.seqs))  # increasing

            # Lost messages: the price moves without the book updates reaching the feed, so
            # its book is wrong until level2 is resubscribed and a fresh snapshot arrives.
            resyncs = metric("market_book_resyncs_total")
            fake.publish_skipped(trades[60:70])
            await fake.publish(trades[70:90], per_message=1)
            await fake.wait_subscribed("level2", 2)
            await eventually(in_sync, within=5)
            assert feed.book_resyncs == 1
            assert metric("market_book_resyncs_total") - resyncs == 1
            assert client.snapshots == 2  # the stream resynced its client too
            assert client.seqs == sorted(set(client.seqs))

            await fake.publish(trades[90:], per_message=3)
            await eventually(in_sync, within=5)
            reply = await market.stub.GetOrderBook(
                pb.GetOrderBookRequest(product_id="BTC-USD", depth=2)
            )
            book = fake.book("BTC-USD")
            assert [Decimal(lv.price) for lv in reply.book.bids] == sorted(book["bid"])[::-1][:2]
            assert [Decimal(lv.price) for lv in reply.book.asks] == sorted(book["offer"])[:2]
            assert reply.book.seq == market.app.streams.book_hub.last_seq("BTC-USD")  # type: ignore[union-attr]
            reader.cancel()
        finally:
            if stream is not None:
                stream.cancel()
            await stop_market(market)
