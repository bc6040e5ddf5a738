"""The Coinbase feed's pure parts: documented message shapes, sequence gaps, backoff, refill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from pydantic import SecretStr

from tradeplane.market.adapters.venues.coinbase import parsing
from tradeplane.market.adapters.venues.coinbase.config import CoinbaseConfig
from tradeplane.market.adapters.venues.coinbase.parsing import VenueCandle
from tradeplane.market.adapters.venues.coinbase.refill import GapRefiller
from tradeplane.market.adapters.venues.coinbase.websocket import Backoff, CoinbaseFeed
from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import Interval, epoch_seconds, from_epoch_seconds
from tradeplane.market.domain.ticks import Side

from .conftest import FakeCandleRepository

# Examples in the shapes of the Advanced Trade WebSocket documentation.
MARKET_TRADES = {
    "channel": "market_trades",
    "client_id": "",
    "timestamp": "2023-02-09T20:19:35.39625135Z",
    "sequence_num": 7,
    "events": [
        {
            "type": "snapshot",
            "trades": [
                {
                    "trade_id": "000000002",
                    "product_id": "ETH-USD",
                    "price": "1260.01",
                    "size": "0.3",
                    "side": "BUY",
                    "time": "2019-08-14T20:42:27.265Z",
                },
                {
                    "trade_id": "000000001",
                    "product_id": "ETH-USD",
                    "price": "1260.00",
                    "size": "0.1",
                    "side": "SELL",
                    "time": "2019-08-14T20:42:27.101Z",
                },
            ],
        }
    ],
}
TICKER = {
    "channel": "ticker",
    "client_id": "",
    "timestamp": "2023-02-09T20:30:37.167359596Z",
    "sequence_num": 0,
    "events": [
        {
            "type": "snapshot",
            "tickers": [
                {
                    "type": "ticker",
                    "product_id": "ETH-USD",
                    "price": "21932.98",
                    "volume_24_h": "16038.28770938",
                    "low_24_h": "21835.29",
                    "high_24_h": "23011.18",
                    "low_52_w": "15460",
                    "high_52_w": "48240",
                    "price_percent_chg_24_h": "-4.15775596190603",
                    "best_bid": "21931.98",
                    "best_bid_quantity": "8000.21",
                    "best_ask": "21933.98",
                    "best_ask_quantity": "8038.07770938",
                }
            ],
        }
    ],
}
L2_DATA = {
    "channel": "l2_data",
    "client_id": "",
    "timestamp": "2023-02-09T20:32:50.714964855Z",
    "sequence_num": 0,
    "events": [
        {
            "type": "snapshot",
            "product_id": "ETH-USD",
            "updates": [
                {
                    "side": "bid",
                    "event_time": "1970-01-01T00:00:00Z",
                    "price_level": "21921.73",
                    "new_quantity": "0.06317902",
                },
                {
                    "side": "bid",
                    "event_time": "1970-01-01T00:00:00Z",
                    "price_level": "21921.3",
                    "new_quantity": "0.02",
                },
                {
                    "side": "offer",
                    "event_time": "1970-01-01T00:00:00Z",
                    "price_level": "21921.74",
                    "new_quantity": "1.5",
                },
            ],
        }
    ],
}
CANDLES = {
    "channel": "candles",
    "client_id": "",
    "timestamp": "2023-06-09T20:19:35.39625135Z",
    "sequence_num": 0,
    "events": [
        {
            "type": "snapshot",
            "candles": [
                {
                    "start": "1688998200",
                    "high": "1867.72",
                    "low": "1865.63",
                    "open": "1867.38",
                    "close": "1866.81",
                    "volume": "0.20269406",
                    "product_id": "ETH-USD",
                }
            ],
        }
    ],
}
HEARTBEATS = {
    "channel": "heartbeats",
    "client_id": "",
    "timestamp": "2023-06-23T20:31:26.122969572Z",
    "sequence_num": 0,
    "events": [
        {
            "current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",
            "heartbeat_counter": "3049",
        }
    ],
}


def raw(message: dict[str, object], **changes: object) -> bytes:
    return orjson.dumps(message | changes)


def test_envelope_and_market_trades() -> None:
    envelope = parsing.parse_message(raw(MARKET_TRADES))
    assert envelope.channel == "market_trades"
    assert envelope.sequence_num == 7
    assert envelope.timestamp == datetime(2023, 2, 9, 20, 19, 35, 396251, tzinfo=UTC)
    trades = parsing.market_trades(envelope)
    assert [t.trade_id for t in trades] == ["000000002", "000000001"]
    first = trades[0]
    assert first.price == Decimal("1260.01") and first.size == Decimal("0.3")
    assert first.side is Side.BUY and trades[1].side is Side.SELL
    assert first.time == datetime(2019, 8, 14, 20, 42, 27, 265000, tzinfo=UTC)


def test_ticker_book_candles_heartbeats() -> None:
    (ticker,) = parsing.tickers(parsing.parse_message(raw(TICKER)))
    assert (ticker.best_bid, ticker.best_ask) == (Decimal("21931.98"), Decimal("21933.98"))
    (book,) = parsing.book_events(parsing.parse_message(raw(L2_DATA)))
    assert book.snapshot and book.product_id == "ETH-USD"
    assert [lvl.side for lvl in book.levels] == ["bid", "bid", "offer"]
    (candle,) = parsing.ws_candles(parsing.parse_message(raw(CANDLES)))
    assert candle.start == 1688998200 and candle.close == Decimal("1866.81")
    assert parsing.heartbeat_counter(parsing.parse_message(raw(HEARTBEATS))) == 3049


def test_rest_candles_are_returned_oldest_first() -> None:
    body = {
        "candles": [
            {"start": "120", "low": "1", "high": "3", "open": "2", "close": "2", "volume": "5"},
            {"start": "60", "low": "1", "high": "2", "open": "1", "close": "2", "volume": "1.5"},
        ]
    }
    candles = parsing.rest_candles(body, "BTC-USD")
    assert [c.start for c in candles] == [60, 120]
    assert candles[0].volume == Decimal("1.5") and candles[0].product_id == "BTC-USD"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"not json", parsing.CoinbaseProtocolError),
        (b"[1, 2]", parsing.CoinbaseProtocolError),
        (b'{"type": "error", "message": "authentication failure"}', parsing.CoinbaseErrorMessage),
        (b'{"events": []}', parsing.CoinbaseProtocolError),
    ],
)
def test_bad_messages_raise(message: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parsing.parse_message(message)


def test_a_trade_missing_a_field_names_it() -> None:
    broken = orjson.loads(raw(MARKET_TRADES))
    del broken["events"][0]["trades"][0]["price"]
    with pytest.raises(parsing.CoinbaseProtocolError, match="price"):
        parsing.market_trades(parsing.parse_message(orjson.dumps(broken)))


def test_subscribe_message_is_one_channel_with_optional_jwt() -> None:
    assert parsing.subscribe_message("level2", ["BTC-USD"]) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channel": "level2",
    }
    assert parsing.subscribe_message("ticker", ["BTC-USD"], "tok")["jwt"] == "tok"


def test_config_rejects_unknown_channels_and_half_credentials() -> None:
    with pytest.raises(ValueError, match="unknown"):
        CoinbaseConfig(product_ids=["BTC-USD"], channels=("market_trades", "nope"))
    with pytest.raises(ValueError, match="market_trades"):
        CoinbaseConfig(product_ids=["BTC-USD"], channels=("ticker",))
    with pytest.raises(ValueError, match="together"):
        CoinbaseConfig(product_ids=["BTC-USD"], api_key=SecretStr("k"))


def test_backoff_grows_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=lambda lo, hi: hi)  # the top of each jitter range
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    low = Backoff(0.5, 4.0, rng=lambda lo, hi: lo)
    assert [low.next_delay() for _ in range(3)] == [0.25, 0.5, 1.0]
    assert backoff.next_delay() == 0.5


class RecordingRefiller(GapRefiller):
    def __init__(self) -> None:
        super().__init__(StaticCandles([]), FakeCandleRepository(), ["ETH-USD"])
        self.gaps: list[tuple[datetime, datetime]] = []

    def add_gap(self, begin: datetime, end: datetime) -> None:
        self.gaps.append((begin, end))


def trades_message(seq: int, trade_id: int, at: datetime) -> parsing.Envelope:
    trade = {
        "trade_id": str(trade_id),
        "product_id": "ETH-USD",
        "price": "100",
        "size": "1",
        "side": "BUY",
        "time": at.isoformat(),
    }
    events = [{"type": "update", "trades": [trade]}]
    return parsing.parse_message(raw(MARKET_TRADES, sequence_num=seq, events=events))


def test_sequence_gap_marks_the_span_until_the_next_trade() -> None:
    refiller = RecordingRefiller()
    feed = CoinbaseFeed(CoinbaseConfig(product_ids=["ETH-USD"]), refiller)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert len(feed.handle(trades_message(1, 1, t0))) == 1
    feed.handle(parsing.parse_message(raw(HEARTBEATS, sequence_num=2)))
    assert feed.sequence_gaps == 0 and refiller.gaps == []
    later = t0 + timedelta(minutes=3)
    ticks = feed.handle(trades_message(9, 5, later))  # 3..8 lost
    assert feed.sequence_gaps == 1
    assert refiller.gaps == [(t0, later)]
    assert [t.trade_id for t in ticks] == ["5"]
    # A repeated trade (e.g. a snapshot after reconnecting) is not a new tick.
    assert feed.handle(trades_message(10, 5, later)) == []


def test_ticks_take_the_top_of_book_from_ticker_or_level2() -> None:
    feed = CoinbaseFeed(CoinbaseConfig(product_ids=["ETH-USD"], channels=("market_trades",)))
    at = datetime(2025, 1, 1, tzinfo=UTC)
    (bare,) = feed.handle(trades_message(1, 1, at))
    assert bare.best_bid == bare.best_ask == Decimal("100")  # nothing known: the trade price
    feed.handle(parsing.parse_message(raw(TICKER, sequence_num=2)))
    (quoted,) = feed.handle(trades_message(3, 2, at))
    assert (quoted.best_bid, quoted.best_ask) == (Decimal("21931.98"), Decimal("21933.98"))
    feed.handle(parsing.parse_message(raw(L2_DATA, sequence_num=4)))
    (booked,) = feed.handle(trades_message(5, 3, at))
    assert (booked.best_bid, booked.best_ask) == (Decimal("21921.73"), Decimal("21921.74"))


class StaticCandles:
    def __init__(self, candles: list[VenueCandle]) -> None:
        self.candles_by_start = {c.start: c for c in candles}
        self.calls: list[tuple[str, Interval, int, int]] = []

    async def candles(
        self, product_id: str, interval: Interval, start: int, end: int
    ) -> list[VenueCandle]:
        self.calls.append((product_id, interval, start, end))
        return [c for s, c in sorted(self.candles_by_start.items()) if start <= s < end]


async def test_refiller_rewrites_final_buckets_keeping_the_live_trade_count() -> None:
    base = 1_700_000_000 - 1_700_000_000 % 3600
    venue = VenueCandle("ETH-USD", base + 60, *(Decimal(v) for v in ("10", "12", "9", "11", "7")))
    source = StaticCandles([venue])
    repo = FakeCandleRepository()
    live = Candle(
        "ETH-USD",
        Interval.ONE_MINUTE,
        from_epoch_seconds(base + 60),
        Decimal("10"),
        Decimal("10"),
        Decimal("10"),
        Decimal("10"),
        Decimal("1"),
        trade_count=2,
        closed=True,
    )
    await repo.upsert([live])
    refiller = GapRefiller(
        source,
        repo,
        ["ETH-USD"],
        intervals=(Interval.ONE_MINUTE,),
        delay_seconds=0.0,
        wall_clock=lambda: base + 10_000,
    )
    refiller.add_gap(from_epoch_seconds(base + 70), from_epoch_seconds(base + 130))
    assert refiller.pending == 2  # buckets base+60 and base+120
    assert refiller._due() == []  # no later trade seen yet, and not quiet long enough
    refiller.observe_trade_time(from_epoch_seconds(base + 200))
    due = refiller._due()
    assert sorted(k[2] for k in due) == [base + 60, base + 120]
    await refiller.refill(due)
    assert source.calls == [("ETH-USD", Interval.ONE_MINUTE, base + 60, base + 180)]
    (stored,) = repo.series("ETH-USD", Interval.ONE_MINUTE)
    assert (stored.open, stored.high, stored.low, stored.close, stored.volume) == (
        Decimal("10"),
        Decimal("12"),
        Decimal("9"),
        Decimal("11"),
        Decimal("7"),
    )
    assert stored.trade_count == 2 and stored.closed
    assert refiller.pending == 0 and refiller.refilled == 1


async def test_refiller_waits_for_open_buckets_and_retries_errors() -> None:
    now = [float(1_700_000_000 - 1_700_000_000 % 86400 + 3600)]

    class Failing(StaticCandles):
        async def candles(
            self, product_id: str, interval: Interval, start: int, end: int
        ) -> list[VenueCandle]:
            raise OSError("venue down")

    refiller = GapRefiller(
        Failing([]),
        FakeCandleRepository(),
        ["ETH-USD"],
        intervals=(Interval.ONE_DAY,),
        delay_seconds=0.0,
        quiet_seconds=60,
        wall_clock=lambda: now[0],
    )
    moment = from_epoch_seconds(int(now[0]) - 60)
    refiller.add_gap(moment, moment)
    refiller.observe_trade_time(from_epoch_seconds(int(now[0])))
    assert refiller._due() == []  # today's 1d candle is still open
    now[0] += 86400
    due = refiller._due()
    assert len(due) == 1
    await refiller.refill(due)
    assert refiller.pending == 1  # kept for a retry, not before RETRY_SECONDS
    assert refiller._due() == []
    assert epoch_seconds(moment) // 86400 * 86400 == due[0][2]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradeplane.market.entrypoints.settings import MarketSettings
    from tradeplane.runtime.config import load_settings

    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/data/market.db")
    monkeypatch.setenv("AUTH_MODE", "disabled")
    monkeypatch.setenv("MARKET_FEED", "coinbase")
    monkeypatch.setenv("MARKET_COINBASE_CHANNELS", "heartbeats, market_trades,level2")
    monkeypatch.setenv("COINBASE_API_KEY", "organizations/o/apiKeys/k")
    monkeypatch.setenv("COINBASE_API_SECRET", "-----BEGIN EC PRIVATE KEY-----TOPSECRETVALUE")
    settings = load_settings(MarketSettings)
    assert settings.coinbase_channels == ["heartbeats", "market_trades", "level2"]
    assert settings.market_coinbase_ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert settings.market_coinbase_rest_url == "https://api.coinbase.com"
    assert "TOPSECRETVALUE" not in repr(settings) and "TOPSECRETVALUE" not in str(settings)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"market_coinbase_channels": "ticker"}, "MARKET_COINBASE_CHANNELS"),
        ({"market_coinbase_channels": "market_trades,user"}, "MARKET_COINBASE_CHANNELS"),
        ({"coinbase_api_key": "k"}, "COINBASE_API_SECRET"),
        ({"market_coinbase_refill_delay_seconds": 0.5}, "MARKET_CANDLE_FLUSH_SECONDS"),
        (
            {"market_coinbase_backoff_min_seconds": 5, "market_coinbase_backoff_max_seconds": 1},
            "MARKET_COINBASE_BACKOFF_MIN_SECONDS",
        ),
    ],
)
def test_bad_coinbase_settings_name_the_variable(overrides: dict[str, object], named: str) -> None:
    from pydantic import ValidationError

    from tradeplane.market.entrypoints.settings import MarketSettings

    values: dict[str, object] = {
        "database_url": "sqlite:///x.db",
        "auth_mode": "disabled",
        "market_feed": "coinbase",
        "market_candle_flush_seconds": 1.0,
    }
    with pytest.raises(ValidationError, match=named):
        MarketSettings(**(values | overrides))  # type: ignore[arg-type]


def test_jwts_carry_the_documented_claims_for_ec_and_ed25519_keys() -> None:
    import base64

    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from tradeplane.market.adapters.venues.coinbase.auth.jwt import rest_jwt, ws_jwt

    name = SecretStr("organizations/o/apiKeys/k")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    token = ws_jwt(name, SecretStr(pem.replace("\n", "\\n")))  # as an .env file holds it
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, ec_key.public_key(), algorithms=["ES256"], issuer="cdp")
    assert header["alg"] == "ES256" and header["kid"] == name.get_secret_value()
    assert len(header["nonce"]) == 64
    assert claims["sub"] == name.get_secret_value() and claims["exp"] - claims["nbf"] == 120
    assert "uri" not in claims

    ed_key = ed25519.Ed25519PrivateKey.generate()
    raw = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    url = "https://api.coinbase.com/api/v3/brokerage/market/products/BTC-USD/candles"
    token = rest_jwt(name, SecretStr(base64.b64encode(raw).decode()), "get", url)
    claims = pyjwt.decode(token, ed_key.public_key(), algorithms=["EdDSA"], issuer="cdp")
    assert pyjwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert claims["uri"] == "GET api.coinbase.com/api/v3/brokerage/market/products/BTC-USD/candles"

    with pytest.raises(ValueError, match="neither PEM nor base64"):
        ws_jwt(name, SecretStr("not a key!"))
