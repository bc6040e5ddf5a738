"""`make up`'s market service driven with the real grpcurl binary through server reflection,
as a user would from another shell, and its /metrics read over HTTP."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import urllib.request
from decimal import Decimal

import pytest
from e2e_support import Platform, grpcurl, grpcurl_json, json_stream
from prometheus_client.parser import text_string_to_metric_families

MARKET = "trading.market.v1.MarketService"

pytestmark = pytest.mark.slow  # starts the whole platform (once per session)


@pytest.fixture(scope="module")
def market(platform: Platform) -> str:
    address: str = platform.service("market")["grpc"]
    return address


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_reflection_lists_market_and_health(market: str) -> None:
    result = grpcurl("-plaintext", market, "list")
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert "trading.market.v1.MarketService" in services
    assert "grpc.health.v1.Health" in services


def test_reflection_describes_the_market_methods(market: str) -> None:
    result = grpcurl("-plaintext", market, "describe", MARKET)
    assert result.returncode == 0, result.stderr
    for method in ("ListProducts", "GetCandles", "StreamTicks"):
        assert f"rpc {method} (" in result.stdout


def test_health_check_answers_serving(market: str) -> None:
    assert grpcurl_json("-plaintext", market, "grpc.health.v1.Health/Check") == {
        "status": "SERVING"
    }
    reply = grpcurl_json(
        "-plaintext", "-d", json.dumps({"service": MARKET}), market, "grpc.health.v1.Health/Check"
    )
    assert reply == {"status": "SERVING"}


# grpcurl prints JSON with the proto field names (product_id, not productId).


def test_list_products_returns_the_simulated_products(market: str) -> None:
    reply = grpcurl_json("-plaintext", market, f"{MARKET}/ListProducts")
    ids = [p["product_id"] for p in reply["products"]]
    assert "BTC-USD" in ids
    assert ids == sorted(ids)
    btc = next(p for p in reply["products"] if p["product_id"] == "BTC-USD")
    assert btc["base_currency"] == "BTC" and btc["quote_currency"] == "USD"
    assert Decimal(btc["quote_increment"]) > 0


def test_stream_ticks_streams_ticks_in_sequence(market: str) -> None:
    result = grpcurl(
        "-plaintext",
        "-max-time",
        "3",
        "-d",
        '{"product_ids":["BTC-USD"]}',
        market,
        f"{MARKET}/StreamTicks",
    )
    # -max-time ends the stream from the client side: grpcurl reports DeadlineExceeded.
    assert "DeadlineExceeded" in result.stderr, result.stderr
    messages = json_stream(result.stdout)
    ticks = [tick for message in messages for tick in message.get("ticks", [])]
    assert len(ticks) >= 3, result.stdout
    assert {t["product_id"] for t in ticks} == {"BTC-USD"}
    seqs = [int(t["seq"]) for t in ticks]  # uint64 is a JSON string
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq must increase by one"
    for tick in ticks:
        assert Decimal(tick["price"]) > 0 and Decimal(tick["size"]) > 0
        assert Decimal(tick["best_bid"]) <= Decimal(tick["best_ask"])
        assert tick["side"] in ("SIDE_BUY", "SIDE_SELL")


def test_get_candles_with_an_indicator(market: str) -> None:
    now = dt.datetime.now(dt.UTC)
    request = {
        "product_id": "BTC-USD",
        "interval": "CANDLE_INTERVAL_ONE_MINUTE",
        "start": _rfc3339(now - dt.timedelta(hours=2)),
        "end": _rfc3339(now),
        "indicators": [{"name": "sma", "params": {"period": 5}}],
        "page_size": 60,
    }
    reply = grpcurl_json("-plaintext", "-d", json.dumps(request), market, f"{MARKET}/GetCandles")
    candles = reply["candles"]
    assert len(candles) == 60 and reply.get("next_page_token")
    starts = [dt.datetime.fromisoformat(c["start"].replace("Z", "+00:00")) for c in candles]
    assert all(b - a == dt.timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    for c in candles:
        assert Decimal(c["low"]) <= min(Decimal(c["open"]), Decimal(c["close"]))
        assert Decimal(c["high"]) >= max(Decimal(c["open"]), Decimal(c["close"]))
    (series,) = reply["indicators"]
    assert series["spec"]["name"] == "sma"
    values = [float(v) for v in series["values"]]  # NaN is the string "NaN" in JSON
    assert len(values) == len(candles)
    # Warm-up candles before `start` come from the stored history, so even the first value
    # is defined; each value is the mean of the last 5 closes.
    closes = [float(c["close"]) for c in candles]
    assert not any(math.isnan(v) for v in values)
    assert values[4] == pytest.approx(sum(closes[:5]) / 5)
    assert values[-1] == pytest.approx(sum(closes[-5:]) / 5)


def _grpcurl_error(market: str, method: str, request: dict[str, object]) -> str:
    result = grpcurl("-plaintext", "-d", json.dumps(request), market, f"{MARKET}/{method}")
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_unknown_product_is_not_found(market: str) -> None:
    now = dt.datetime.now(dt.UTC)
    stderr = _grpcurl_error(
        market,
        "GetCandles",
        {
            "product_id": "NOPE-USD",
            "interval": "CANDLE_INTERVAL_ONE_MINUTE",
            "start": _rfc3339(now - dt.timedelta(hours=1)),
            "end": _rfc3339(now),
        },
    )
    assert "Code: NotFound" in stderr
    assert "NOPE-USD" in stderr


def test_end_before_start_is_invalid_argument_naming_end(market: str) -> None:
    now = dt.datetime.now(dt.UTC)
    stderr = _grpcurl_error(
        market,
        "GetCandles",
        {
            "product_id": "BTC-USD",
            "interval": "CANDLE_INTERVAL_ONE_MINUTE",
            "start": _rfc3339(now),
            "end": _rfc3339(now - dt.timedelta(hours=1)),
        },
    )
    assert "Code: InvalidArgument" in stderr
    assert "Message: end:" in stderr


def test_page_size_over_the_limit_is_invalid_argument_naming_page_size(market: str) -> None:
    now = dt.datetime.now(dt.UTC)
    stderr = _grpcurl_error(
        market,
        "GetCandles",
        {
            "product_id": "BTC-USD",
            "interval": "CANDLE_INTERVAL_ONE_MINUTE",
            "start": _rfc3339(now - dt.timedelta(hours=1)),
            "end": _rfc3339(now),
            "page_size": 100000,
        },
    )
    assert "Code: InvalidArgument" in stderr
    assert "Message: page_size:" in stderr
    stderr = _grpcurl_error(market, "ListProducts", {"page_size": 100000})
    assert "Code: InvalidArgument" in stderr and "page_size" in stderr


def _handled(metrics_url: str) -> dict[tuple[str, str], float]:
    """grpc_server_handled_total for MarketService by (method, code), read like `curl` would."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "grpc_server_handled_total"
                and sample.labels.get("grpc_service") == MARKET
            ):
                counts[(sample.labels["grpc_method"], sample.labels["grpc_code"])] = sample.value
    return counts


def test_metrics_count_the_calls_made(platform: Platform, market: str) -> None:
    metrics_url = platform.service("market")["metrics"]
    before = _handled(metrics_url)
    for _ in range(3):
        grpcurl_json("-plaintext", market, f"{MARKET}/ListProducts")
    _grpcurl_error(market, "ListProducts", {"page_size": 100000})
    after = _handled(metrics_url)

    def delta(method: str, code: str) -> float:
        return after.get((method, code), 0) - before.get((method, code), 0)

    assert delta("ListProducts", "OK") == 3
    assert delta("ListProducts", "InvalidArgument") == 1

    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    for series in (
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
    ):
        assert f"{series}{{" in text, f"{series} missing from /metrics"
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="ListProducts",'
        f'grpc_service="{MARKET}",grpc_type="unary"}}'
    ) in text
