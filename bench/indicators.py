"""GetCandles with five indicators over 1,000,000 one-minute candles, first pass vs cached pass,
against a per-candle Python loop of the same maths.

    .venv/bin/python bench/indicators.py [--candles 1000000] [--backend postgres|sqlite]

What the figures are (GetCandles returns at most 5,000 candles per call, so "GetCandles over
1M candles" means paging through all of them):

- plain pass: every page of the 1M candles over gRPC WITHOUT indicators: the storage + proto
  floor that any pass pays. Each page is requested three times in a row (plain, first,
  cached) so the three passes are measured under the same load; the sums are printed.
- first pass: every page WITH sma(20), ema(20), rsi(14), macd(12,26,9), bollinger(20,2); the
  cache is empty, so each page computes its indicators with numpy over the page plus each
  indicator's warm-up (cache misses; the warm-up candles are read only then).
- cached pass: the same pages again: every indicator of every page is a cache hit (checked
  from market_indicator_cache_requests_total{result}); only the page's candles are read.
- numpy: the five indicators in-process over the whole 1M-candle series at once.
- loop: a plain per-candle Python loop of the same maths (bench/indicators_math.py) over 1M.

Ratios printed: loop / numpy (the maths alone), and "plain pass + loop" (what a server that
ran the Python loop per request would cost) over the first and the cached pass.
The service runs in this process (a real gRPC server on a loopback port, client in the same
event loop) with the in-process indicator cache (REDIS_URL unset; --redis-url to use Redis).
Candles are seeded with COPY into a fresh Postgres database (or executemany into SQLite).
The machine is shared: compare ratios inside one run; the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indicators_math import LOOPS, random_walk

from tradeplane.indicators import INDICATORS, validate_spec
from tradeplane.market.entrypoints.bootstrap import build
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.market.service_layer import metrics
from tradeplane.testing.isolation import postgres_database
from tradeplane.testing.servers import LOCAL_POSTGRES_URL
from trading.market.v1 import market_pb2 as pb
from trading.market.v1 import market_pb2_grpc

PRODUCT = "BTC-USD"
FIRST_START = 1_577_836_800  # 2020-01-01T00:00:00Z, long before any live candle
SPECS = [
    ("sma", {"period": 20.0}),
    ("ema", {"period": 20.0}),
    ("rsi", {"period": 14.0}),
    ("macd", {}),
    ("bollinger", {}),
]
COLUMNS = '(product_id, "interval", start, open, high, low, close, volume, trade_count, closed)'


def candle_rows(count: int) -> str:
    """The seeded candles as tab-separated rows (COPY text format), closed 1m candles."""
    arrays = random_walk(count)
    cols = [[f"{v:.2f}" for v in a.tolist()] for a in (arrays.open, arrays.high, arrays.low)]
    close = [f"{v:.2f}" for v in arrays.close.tolist()]
    volume = [f"{v:.8f}" for v in arrays.volume.tolist()]
    starts = (FIRST_START + 60 * i for i in range(count))
    lines = (
        f"{PRODUCT}\t1m\t{s}\t{o}\t{h}\t{lo}\t{c}\t{v}\t1\tt\n"
        for s, o, h, lo, c, v in zip(starts, *cols, close, volume, strict=True)
    )
    return "".join(lines)


def seed_postgres(url: str, rows: str) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY candles {COLUMNS} FROM STDIN") as copy:
            copy.write(rows)
        cur.execute("ANALYZE candles")


def seed_sqlite(path: str, rows: str) -> None:
    def parsed() -> Iterator[tuple[object, ...]]:
        for line in io.StringIO(rows):
            f = line.rstrip("\n").split("\t")
            yield (f[0], f[1], int(f[2]), *f[3:8], int(f[8]), True)

    with sqlite3.connect(path) as conn:
        conn.executemany(f"INSERT INTO candles {COLUMNS} VALUES (?,?,?,?,?,?,?,?,?,?)", parsed())


@contextmanager
def database(backend: str, admin_url: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-indicators-") as d:
            yield f"sqlite:///{d}/market.db"
    else:
        with postgres_database(admin_url) as url:
            yield url


def cache_counts() -> tuple[float, float]:
    hit = metrics.INDICATOR_CACHE.labels("hit")._value.get()
    miss = metrics.INDICATOR_CACHE.labels("miss")._value.get()
    return hit, miss


async def page_through(
    stub: market_pb2_grpc.MarketServiceStub, count: int, page_size: int
) -> tuple[dict[str, float], int, int]:
    """Read every candle of the range page by page, each page three times in a row: without
    indicators, with them (a cache miss), with them again (a hit). Interleaving the three
    per page puts them under the same machine load. Returns (seconds by kind, candles,
    indicator values per pass)."""
    plain = pb.GetCandlesRequest(
        product_id=PRODUCT,
        interval=pb.CANDLE_INTERVAL_ONE_MINUTE,
        start=Timestamp(seconds=FIRST_START),
        end=Timestamp(seconds=FIRST_START + 60 * count),
        page_size=page_size,
    )
    with_indicators = pb.GetCandlesRequest()
    with_indicators.CopyFrom(plain)
    with_indicators.indicators.extend(pb.IndicatorSpec(name=n, params=p) for n, p in SPECS)
    seconds = {"plain": 0.0, "first": 0.0, "cached": 0.0}
    candles = values = 0
    while True:
        for kind, request in (
            ("plain", plain),
            ("first", with_indicators),
            ("cached", with_indicators),
        ):
            began = time.perf_counter()
            response = await stub.GetCandles(request, timeout=600)
            seconds[kind] += time.perf_counter() - began
            if kind == "first":
                values += sum(len(s.values) for s in response.indicators)
        candles += len(response.candles)
        if not response.next_page_token:
            break
        plain.page_token = with_indicators.page_token = response.next_page_token
    return seconds, candles, values


def numpy_and_loop(count: int) -> tuple[float, float]:
    arrays = random_walk(count)
    began = time.perf_counter()
    for name, params in SPECS:
        INDICATORS[name].compute(arrays, validate_spec(name, dict(params)))
    numpy_s = time.perf_counter() - began
    close = arrays.close.tolist()
    began = time.perf_counter()
    for loop in LOOPS.values():
        loop(close)
    return numpy_s, time.perf_counter() - began


async def run(args: argparse.Namespace) -> None:
    count, size = args.candles, args.page_size
    print(f"{count:,} one-minute candles, {args.backend}, pages of {size}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows = candle_rows(count)
    with database(args.backend, args.admin_url) as url:
        settings = MarketSettings(
            database_url=url,
            grpc_host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            auth_mode="disabled",
            market_products=PRODUCT,
            market_backfill_days=0,
            market_tick_rate=1,
            redis_url=args.redis_url,
        )
        app = build(settings)
        await app.server.start()  # runs the migrations: the table exists now
        try:
            began = time.perf_counter()
            if args.backend == "sqlite":
                await asyncio.to_thread(seed_sqlite, url.removeprefix("sqlite:///"), rows)
            else:
                await asyncio.to_thread(seed_postgres, url, rows)
            print(f"seeded in {time.perf_counter() - began:.1f} s")
            target = f"127.0.0.1:{app.server.grpc_port}"
            options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            async with grpc.aio.insecure_channel(target, options=options) as channel:
                stub = market_pb2_grpc.MarketServiceStub(channel)
                h0, m0 = cache_counts()
                seconds, n, values = await page_through(stub, count, size)
                h1, m1 = cache_counts()
                assert n == count, f"read {n} candles, seeded {count}"
                # Each page: 5 misses on the first request, 5 hits on the second.
                pages = -(-count // size)
                assert (m1 - m0, h1 - h0) == (5 * pages, 5 * pages), (m1 - m0, h1 - h0)
        finally:
            await app.server.stop()
    numpy_s, loop_s = numpy_and_loop(count)
    plain_s, first_s, cached_s = seconds["plain"], seconds["first"], seconds["cached"]
    print(f"indicator values returned per pass: {values:,} (9 series x {n:,} candles)")
    print(f"cache over both passes: {m1 - m0:.0f} misses, {h1 - h0:.0f} hits "
          f"({pages} pages x 5 indicators each)")  # fmt: skip
    print(f"{'what':<44} {'seconds':>8}")
    for label, seconds in [
        ("GetCandles plain pass (no indicators)", plain_s),
        ("GetCandles first pass (5 indicators, misses)", first_s),
        ("GetCandles cached pass (5 indicators, hits)", cached_s),
        (f"numpy: 5 indicators over {count:,} in-process", numpy_s),
        (f"Python loop: same maths over {count:,}", loop_s),
    ]:
        print(f"{label:<44} {seconds:8.2f}")
    print(f"ratio loop / numpy:                        {loop_s / numpy_s:8.0f}x")
    print(f"ratio (plain + loop) / first pass:         {(plain_s + loop_s) / first_s:8.2f}x")
    print(f"ratio (plain + loop) / cached pass:        {(plain_s + loop_s) / cached_s:8.2f}x")
    print(f"indicator cost in the first pass:  {max(first_s - plain_s, 0):.2f} s; "
          f"in the cached pass: {max(cached_s - plain_s, 0):.2f} s")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--admin-url", default=os.environ.get("TEST_DATABASE_URL", LOCAL_POSTGRES_URL)
    )
    parser.add_argument("--redis-url", default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
