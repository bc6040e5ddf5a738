"""Wallets benchmark (issue 5) on real Postgres and Redis, against the local fake Coinbase:

- ListWallets(page_size=1000) with 1,000 wallets x 5 currencies: latency and SQL statements
  (target: at most 3 statements, under 50 ms);
- Reconcile(all) cold and warm: Coinbase calls made (warm, within the TTL: zero) and latency;
- 100 concurrent Reconcile calls (one wallet each) on a cold cache: Coinbase calls (= the
  pages needed, not 100x).

    .venv/bin/python bench/wallets.py [--wallets 1000] [--currencies 5] [--page-limit 250]

Every wallet is a Coinbase wallet whose account_id names a Coinbase portfolio; the fake lists
wallets x currencies accounts, `--page-limit` a page, so a listing is ceil(W*C/limit) calls.
The service runs in-process on a free port (real gRPC over loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import redis.asyncio as aioredis
from sqlalchemy import event, text

from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.testing import find_postgres, find_redis, postgres_database, redis_database
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.fakes.coinbase_accounts import FakeAccount
from tradeplane.wallets.adapters.ledger_repository import SqlLedgerStore
from tradeplane.wallets.domain.currencies import default_catalog
from tradeplane.wallets.domain.transfers import TransferKind, TransferRequest, transfer_entry
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.entrypoints.bootstrap import build
from tradeplane.wallets.entrypoints.settings import WalletsSettings
from tradeplane.wallets.migrations import MIGRATIONS_DIR
from trading.wallets.v1 import wallets_pb2 as pb
from trading.wallets.v1 import wallets_pb2_grpc

CURRENCIES = ["USD", "BTC", "ETH", "SOL", "USDC"]
AMOUNT = Decimal("1.5")


async def seed(url: str, wallets: int, currencies: list[str]) -> None:
    engine = create_engine(url)
    store = SqlLedgerStore(engine)
    catalog = default_catalog()
    now = datetime.now(UTC)
    rows = [
        Wallet(
            f"bench-{i:05d}",
            f"bench {i}",
            WalletKind.VENUE_ACCOUNT,
            Venue.COINBASE,
            now,
            account_id=f"portfolio-{i:05d}",
        )
        for i in range(wallets)
    ]
    async with store.write() as s:
        for w in rows:
            await s.insert_wallet(w)
        entries = [
            transfer_entry(
                TransferRequest(
                    f"seed:{w.wallet_id}:{c}", TransferKind.DEPOSIT, w.wallet_id, c, AMOUNT
                ),
                wallet=w,
                currency=catalog.get(c),
                now=now,
            )
            for w in rows
            for c in currencies
        ]
        await s.insert_entries(entries)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:  # what autovacuum would have done by now
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    await engine.dispose()


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def bench(db_url: str, redis_url: str, wallets: int, currencies: int, limit: int) -> None:
    names = CURRENCIES[:currencies]
    await asyncio.to_thread(run_migrations, db_url, MIGRATIONS_DIR)
    began = time.perf_counter()
    await seed(db_url, wallets, names)
    print(
        f"seeded {wallets} wallets x {currencies} currencies in {time.perf_counter() - began:.1f} s"
    )
    async with FakeCoinbase() as fake:
        fake.accounts.accounts = [
            FakeAccount(c, AMOUNT, Decimal(0), f"portfolio-{i:05d}", str(uuid.uuid4()))
            for i in range(wallets)
            for c in names
        ]
        pages = math.ceil(len(fake.accounts.accounts) / limit)
        settings = WalletsSettings(
            database_url=db_url,
            redis_url=redis_url,
            grpc_host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            auth_mode="disabled",
            log_level="WARNING",
            wallets_default_wallet=False,
            wallets_coinbase_rest_url=fake.rest_url,
            wallets_coinbase_page_limit=limit,
            wallets_coinbase_accounts_ttl_seconds=300,
        )
        app = build(settings)
        await app.server.start()
        statements: list[str] = []

        def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            statements.append(statement)

        try:
            target = f"127.0.0.1:{app.server.grpc_port}"
            async with grpc.aio.insecure_channel(target) as channel:
                stub = wallets_pb2_grpc.WalletsServiceStub(channel)
                request = pb.ListWalletsRequest(page_size=1000)
                await stub.ListWallets(request)  # warm the pool
                event.listen(app.engine.sync_engine, "before_cursor_execute", count)
                reply = await stub.ListWallets(request)
                event.remove(app.engine.sync_engine, "before_cursor_execute", count)
                balances = sum(len(w.balances) for w in reply.wallets)
                samples = []
                for _ in range(30):
                    t = time.perf_counter()
                    await stub.ListWallets(request)
                    samples.append(time.perf_counter() - t)
                print(
                    f"ListWallets(page_size=1000): {len(reply.wallets)} wallets, {balances} "
                    f"balances, {len(statements)} SQL statements, {ms(samples)}  ({load()})"
                )

                fake.accounts.reset_counts()
                for label in ("cold", "warm"):
                    before = fake.accounts.calls
                    t = time.perf_counter()
                    run = (await stub.Reconcile(pb.ReconcileRequest(all=True))).run
                    took = time.perf_counter() - t
                    print(
                        f"Reconcile(all) {label}: {took * 1000:.0f} ms, checked "
                        f"{run.checked_count}, status {pb.ReconciliationStatus.Name(run.status)}, "
                        f"Coinbase calls {fake.accounts.calls - before} (pages needed {pages}), "
                        f"venue_calls {run.venue_calls}  ({load()})"
                    )

                client = aioredis.Redis.from_url(redis_url)
                await client.flushdb()  # cold again
                await client.aclose()
                fake.accounts.reset_counts()
                fake.accounts.delay = 0.02  # a real round trip: the calls overlap
                # 100 concurrent Reconcile calls, one wallet each (the listing every one of
                # them needs is the same 20 pages), so the figure is about the cache, not
                # about writing 100 runs of 1,000 wallets.
                t = time.perf_counter()
                runs = await asyncio.gather(
                    *(
                        stub.Reconcile(pb.ReconcileRequest(wallet_ids=[f"bench-{i:05d}"]))
                        for i in range(0, wallets, max(1, wallets // 100))[:100]
                    )
                )
                took = time.perf_counter() - t
                matched = sum(r.run.status == pb.RECONCILIATION_STATUS_MATCHED for r in runs)
                print(
                    f"{len(runs)} concurrent Reconcile(one wallet each), cold: {took:.2f} s, "
                    f"Coinbase calls {fake.accounts.calls} (pages needed {pages}), venue_calls "
                    f"summed {sum(r.run.venue_calls for r in runs)}, matched {matched}  ({load()})"
                )
        finally:
            await app.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--currencies", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--page-limit", type=int, default=250)
    args = parser.parse_args()
    postgres, redis_server = find_postgres(), find_redis()
    try:
        with postgres_database(postgres.url) as db_url, redis_database(redis_server.url) as r_url:
            asyncio.run(bench(db_url, r_url, args.wallets, args.currencies, args.page_limit))
    finally:
        postgres.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
