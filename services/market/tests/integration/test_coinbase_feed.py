"""MARKET_FEED=coinbase against a local fake Coinbase server (WebSocket + REST, real sockets).

The must-show: a disconnect and a sequence gap lose trades; the feed detects both, refills
the affected candles from the REST candles endpoint, and the stored candles end up exactly
the candles of every trade the fake published.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import REGISTRY

from tradeplane.market.adapters.venues.coinbase.websocket import CoinbaseFeed
from tradeplane.market.domain.candles import Candle, Trade, candles_from_trades
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.testing.fakes.coinbase import FakeCoinbase, ScriptedTrade
from tradeplane.testing.fakes.coinbase_keys import ec_key_pair

from .conftest import RunningMarket, market_settings, start_market, stop_market

PRODUCTS = ("BTC-USD", "ETH-USD")
COMPARED = (Interval.ONE_MINUTE, Interval.FIVE_MINUTES, Interval.FIFTEEN_MINUTES)


def scripted_trades(count: int, *, minutes: int = 20, seed: int = 11) -> list[ScriptedTrade]:
    """`count` trades of two products over `minutes` ending at a past quarter hour, the last
    one just after it (so every 1m/5m/15m bucket is over and a later trade was seen), with
    increasing numeric trade ids."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = now - timedelta(minutes=15 + now.minute % 15)
    begin = end - timedelta(minutes=minutes)
    prices = {"BTC-USD": 60_000.0, "ETH-USD": 3_000.0}
    trades = []
    for i in range(count):
        product = PRODUCTS[i % 2]
        prices[product] *= 1 + rng.gauss(0, 0.001)
        offset = (i + rng.random()) * minutes * 60 / (count - 1)
        at = begin + timedelta(seconds=offset) if i < count - 1 else end + timedelta(seconds=30)
        trades.append(
            ScriptedTrade(
                product_id=product,
                trade_id=str(10_000 + i),
                time=at,
                price=Decimal(f"{prices[product]:.2f}"),
                size=Decimal(f"{rng.uniform(0.0001, 0.5):.8f}"),
                side=rng.choice(["BUY", "SELL"]),
            )
        )
    return trades


def as_domain(trades: Sequence[ScriptedTrade]) -> list[Trade]:
    return [
        Trade(t.product_id, t.trade_id, t.time, t.price, t.size, t.side.lower()) for t in trades
    ]


def coinbase_settings(database_url: str, fake: FakeCoinbase, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "market_feed": "coinbase",
        "market_products": ",".join(PRODUCTS),
        "market_coinbase_ws_url": fake.ws_url,
        "market_coinbase_rest_url": fake.rest_url,
        "market_coinbase_heartbeat_timeout_seconds": 2.0,
        "market_coinbase_backoff_min_seconds": 0.05,
        "market_coinbase_backoff_max_seconds": 0.5,
        "market_coinbase_refill_delay_seconds": 1.0,
    }
    values.update(overrides)
    return market_settings(database_url, **values)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.1)


async def received(market: RunningMarket, trade: ScriptedTrade) -> bool:
    tick = market.app.runner.last_ticks.get(trade.product_id)
    return tick is not None and tick.trade_id == trade.trade_id


async def stored(market: RunningMarket, product: str, interval: Interval) -> list[Candle]:
    _, candles = await market.app.runner.repo.page_with_warmup(
        product, interval, 0, 2**40, limit=100_000, warmup=0
    )
    return candles


def ohlcv(c: Candle) -> tuple[Any, ...]:
    return (epoch_seconds(c.start), c.open, c.high, c.low, c.close, c.volume, c.closed)


async def test_disconnect_and_sequence_gap_are_refilled_into_exact_candles(
    database_url: str,
) -> None:
    trades = scripted_trades(600)
    async with FakeCoinbase(heartbeat_interval=0.2, snapshot_size=50) as fake:
        market = await start_market(coinbase_settings(database_url, fake))
        try:
            feed = market.app.runner.feed
            assert isinstance(feed, CoinbaseFeed)
            refills_before = metric("market_feed_gap_refills_total", interval="1m")
            reconnects_before = metric("market_feed_reconnects_total")
            await fake.wait_subscribed("market_trades", 1)

            await fake.publish(trades[:200])
            # Sequence gap: 60 trades happen, their messages are lost; then trades flow again.
            fake.publish_skipped(trades[200:260])
            await fake.publish(trades[260:300])
            await eventually(lambda: received(market, trades[299]), within=5)
            assert feed.sequence_gaps == 1
            # Disconnect: 100 trades happen while the feed is away; the snapshot a new
            # subscription gets holds only the last 50 of them.
            fake.refuse_connections = True
            await fake.drop_connections()
            await fake.publish(trades[300:400])
            fake.refuse_connections = False
            await fake.wait_subscribed("market_trades", 2)
            await fake.publish(trades[400:])

            lost = {t.trade_id for t in trades[200:260] + trades[300:350]}
            domain = as_domain(trades)

            mismatches: list[str] = []

            async def candles_are_exact() -> bool:
                mismatches.clear()
                for product in PRODUCTS:
                    mine = [t for t in domain if t.product_id == product]
                    for interval in COMPARED:
                        want = {ohlcv(c) for c in candles_from_trades(mine, interval)}
                        have = {ohlcv(c) for c in await stored(market, product, interval)}
                        for c in sorted(want ^ have):
                            side = "missing" if c in want else "unexpected"
                            mismatches.append(f"{product} {interval.code} {side} {c}")
                return not mismatches

            try:
                await eventually(candles_are_exact)
            except AssertionError:
                raise AssertionError("\n".join(mismatches[:20])) from None

            assert feed.reconnects == 1
            assert metric("market_feed_reconnects_total") > reconnects_before
            assert metric("market_feed_gap_refills_total", interval="1m") > refills_before
            assert any("/candles" in path for path in fake.rest_requests)
            # Trade counts: exact where nothing was lost; REST candles carry no count, so a
            # refilled candle keeps the trades received live (a lower bound).
            for product in PRODUCTS:
                mine = [t for t in domain if t.product_id == product]
                expected = candles_from_trades(mine, Interval.ONE_MINUTE)
                got = await stored(market, product, Interval.ONE_MINUTE)
                for want, have in zip(expected, got, strict=True):
                    start, end = want.start, want.end
                    missed = [t for t in mine if start <= t.time < end and t.trade_id in lost]
                    if missed:
                        assert have.trade_count == want.trade_count - len(missed)
                    else:
                        assert have.trade_count == want.trade_count
        finally:
            await stop_market(market)


async def test_reconnects_after_a_drop_and_ticks_flow_again(tmp_path: Path) -> None:
    trades = scripted_trades(60, minutes=2)
    async with FakeCoinbase(heartbeat_interval=0.2) as fake:
        market = await start_market(coinbase_settings(f"sqlite:///{tmp_path / 'm.db'}", fake))
        try:
            feed = market.app.runner.feed
            assert isinstance(feed, CoinbaseFeed)
            await fake.wait_subscribed("market_trades", 1)
            await fake.publish(trades[:20])
            await fake.drop_connections()
            # Every channel is subscribed again on the new connection.
            for channel in ("heartbeats", "market_trades", "ticker"):
                await fake.wait_subscribed(channel, 2)
            assert fake.connections_total == 2
            await fake.publish(trades[20:])

            await eventually(lambda: received(market, trades[-1]), within=5)
            assert feed.reconnects == 1
            # The top of book comes from the ticker channel, not the trade price.
            tick = market.app.runner.last_ticks[trades[-1].product_id]
            assert tick.best_bid == trades[-1].price - Decimal("0.01")
            assert tick.best_ask == trades[-1].price + Decimal("0.01")
            # The snapshot after the reconnect repeats trades: none is published twice.
            assert market.app.runner.aggregator.duplicates == 0
        finally:
            await stop_market(market)


async def test_heartbeat_timeout_replaces_a_silent_connection(tmp_path: Path) -> None:
    async with FakeCoinbase(heartbeat_interval=0.1) as fake:
        settings = coinbase_settings(
            f"sqlite:///{tmp_path / 'm.db'}",
            fake,
            market_coinbase_heartbeat_timeout_seconds=0.5,
        )
        market = await start_market(settings)
        try:
            feed = market.app.runner.feed
            assert isinstance(feed, CoinbaseFeed)
            timeouts_before = metric("market_feed_heartbeat_timeouts_total")
            await fake.wait_subscribed("heartbeats", 1)
            await asyncio.sleep(0.8)  # heartbeats keep a quiet connection alive
            assert feed.heartbeat_timeouts == 0
            fake.silent = True  # the connection stays open but nothing arrives
            await fake.wait_for(lambda: fake.connections_total >= 2, within=5)
            fake.silent = False
            await fake.wait_subscribed("heartbeats", 2)
            assert feed.heartbeat_timeouts >= 1
            assert metric("market_feed_heartbeat_timeouts_total") > timeouts_before
            assert feed.last_error is not None and "no message" in feed.last_error
        finally:
            await stop_market(market)


async def test_subscriptions_carry_a_jwt_the_server_verifies(tmp_path: Path) -> None:
    private, public = ec_key_pair()
    key_name = "organizations/org-1/apiKeys/key-1"
    async with FakeCoinbase(jwt_public_key=public) as fake:
        settings = coinbase_settings(
            f"sqlite:///{tmp_path / 'm.db'}",
            fake,
            coinbase_api_key=key_name,
            coinbase_api_secret=private,
        )
        assert private not in repr(settings) and private not in str(settings.model_dump())
        market = await start_market(settings)
        try:
            for channel in ("heartbeats", "market_trades", "ticker"):
                await fake.wait_subscribed(channel, 1)
            assert all("jwt" in m for m in fake.subscribe_messages)
            assert fake.auth_failures == 0
            tokens = {m["jwt"] for m in fake.subscribe_messages}
            assert len(tokens) == 3  # a fresh JWT per message
        finally:
            await stop_market(market)

    other_private, _ = ec_key_pair()  # signed by a key the server does not know
    async with FakeCoinbase(jwt_public_key=public) as fake:
        settings = coinbase_settings(
            f"sqlite:///{tmp_path / 'm2.db'}",
            fake,
            coinbase_api_key=key_name,
            coinbase_api_secret=other_private,
        )
        market = await start_market(settings)
        try:
            feed = market.app.runner.feed
            assert isinstance(feed, CoinbaseFeed)
            await fake.wait_for(lambda: fake.auth_failures >= 2, within=5)

            async def rejected_twice() -> bool:
                # Rejected connections back off further each time (no reset on an error).
                error = feed.last_error or ""
                return "authentication" in error and feed.backoff.attempt >= 2

            await eventually(rejected_twice, within=5)
            assert fake.subscribe_messages == []  # nothing was accepted
        finally:
            await stop_market(market)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake coinbase")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_fake_serves_wss_and_https_when_given_a_certificate(tmp_path: Path) -> None:
    import ssl

    from tradeplane.market.adapters.venues.coinbase.config import CoinbaseConfig
    from tradeplane.market.adapters.venues.coinbase.http import CoinbaseRestClient

    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trades = scripted_trades(40, minutes=2)
    async with FakeCoinbase(ssl_context=server_tls) as fake:
        assert fake.ws_url.startswith("wss://") and fake.rest_url.startswith("https://")
        await fake.publish(trades)
        config = CoinbaseConfig(product_ids=list(PRODUCTS), ws_url=fake.ws_url, ca_file=str(cert))
        feed = CoinbaseFeed(config)
        ticks = feed.ticks()
        first = await asyncio.wait_for(anext(ticks), 5)  # the market_trades snapshot
        await ticks.aclose()
        assert {t.trade_id for t in first} == {t.trade_id for t in trades}

        rest = CoinbaseRestClient(fake.rest_url, ca_file=str(cert))
        try:
            start = epoch_seconds(Interval.ONE_MINUTE.floor_datetime(trades[0].time))
            candles = await rest.candles("BTC-USD", Interval.ONE_MINUTE, start, start + 600)
        finally:
            await rest.aclose()
        expected = candles_from_trades(
            [t for t in as_domain(trades) if t.product_id == "BTC-USD"], Interval.ONE_MINUTE
        )
        assert [(c.start, c.open, c.close, c.volume) for c in candles] == [
            (epoch_seconds(c.start), c.open, c.close, c.volume) for c in expected
        ]


async def test_rest_candles_page_past_the_350_candle_limit() -> None:
    from tradeplane.market.adapters.venues.coinbase.http import CoinbaseRestClient

    trades = scripted_trades(2 * 480, minutes=480)  # about one trade per product per minute
    async with FakeCoinbase() as fake:
        await fake.publish(trades, per_message=100)
        rest = CoinbaseRestClient(fake.rest_url)
        try:
            start = epoch_seconds(Interval.ONE_MINUTE.floor_datetime(trades[0].time))
            end = epoch_seconds(trades[-1].time) + 60
            candles = await rest.candles("ETH-USD", Interval.ONE_MINUTE, start, end)
        finally:
            await rest.aclose()
    expected = candles_from_trades(
        [t for t in as_domain(trades) if t.product_id == "ETH-USD"], Interval.ONE_MINUTE
    )
    assert len(expected) > 350
    assert [(c.start, c.high, c.low, c.volume) for c in candles] == [
        (epoch_seconds(c.start), c.high, c.low, c.volume) for c in expected
    ]
    assert len(fake.rest_requests) == 2  # 349 buckets per request


async def test_trades_missed_while_the_service_was_down_are_refilled(tmp_path: Path) -> None:
    trades = scripted_trades(300)
    database_url = f"sqlite:///{tmp_path / 'm.db'}"
    async with FakeCoinbase(heartbeat_interval=0.2, snapshot_size=20) as fake:
        market = await start_market(coinbase_settings(database_url, fake))
        try:
            await fake.wait_subscribed("market_trades", 1)
            await fake.publish(trades[:100])
            await eventually(lambda: received(market, trades[99]), within=5)
            await asyncio.sleep(3 * market.app.runner.publish_seconds)  # closes past candles
        finally:
            await stop_market(market)  # writes what it has
        await fake.publish(trades[100:200])  # nobody listens: only the last 20 come back
        market = await start_market(coinbase_settings(database_url, fake))
        try:
            await fake.wait_subscribed("market_trades", 2)
            await fake.publish(trades[200:])
            domain = as_domain(trades)

            mismatches: list[str] = []

            async def candles_are_exact() -> bool:
                mismatches.clear()
                for product in PRODUCTS:
                    mine = [t for t in domain if t.product_id == product]
                    want = {ohlcv(c) for c in candles_from_trades(mine, Interval.ONE_MINUTE)}
                    have = {ohlcv(c) for c in await stored(market, product, Interval.ONE_MINUTE)}
                    for c in sorted(want ^ have):
                        mismatches.append(f"{product} {'missing' if c in want else 'extra'} {c}")
                return not mismatches

            try:
                await eventually(candles_are_exact)
            except AssertionError:
                raise AssertionError("\n".join(mismatches[:20])) from None
        finally:
            await stop_market(market)
