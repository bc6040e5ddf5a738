"""Wallets benchmark on real Postgres (issue 5's figures that exist so far): with W wallets x
C currencies, ListWallets latency and the SQL statements it issues; Reconcile(all) latency and
venue calls (paper venue), cold and warm; 100 concurrent Reconcile calls.

    .venv/bin/python services/wallets/bench/wallets_bench.py [--wallets 1000] [--currencies 5]

The service runs in-process on a free port (real gRPC over loopback); the ledger is filled
with one deposit per (wallet, currency) in bulk before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from sqlalchemy import event

from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.testing import find_postgres, postgres_database
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
            Venue.PAPER,
            now,
            account_id=f"bench-{i}",
        )
        for i in range(wallets)
    ]
    async with store.write() as s:
        for w in rows:
            await s.insert_wallet(w)
        entries = [
            transfer_entry(
                TransferRequest(
                    f"seed:{w.wallet_id}:{c}", TransferKind.DEPOSIT, w.wallet_id, c, Decimal("1.5")
                ),
                wallet=w,
                currency=catalog.get(c),
                now=now,
            )
            for w in rows
            for c in currencies
        ]
        await s.insert_entries(entries)
    await engine.dispose()


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p95 {ordered[int(len(ordered) * 0.95) - 1] * 1000:.1f} ms"
    )


async def bench(url: str, wallets: int, currencies: int) -> None:
    await asyncio.to_thread(run_migrations, url, MIGRATIONS_DIR)
    began = time.perf_counter()
    await seed(url, wallets, CURRENCIES[:currencies])
    print(
        f"seeded {wallets} wallets x {currencies} currencies in {time.perf_counter() - began:.1f} s"
    )
    settings = WalletsSettings(
        database_url=url,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        auth_mode="disabled",
        wallets_default_wallet=False,
    )
    app = build(settings)
    await app.server.start()
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(statement)

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.server.grpc_port}") as channel:
            stub = wallets_pb2_grpc.WalletsServiceStub(channel)
            request = pb.ListWalletsRequest(page_size=1000)
            await stub.ListWallets(request)  # warm the pool
            event.listen(app.engine.sync_engine, "before_cursor_execute", count)
            reply = await stub.ListWallets(request)
            event.remove(app.engine.sync_engine, "before_cursor_execute", count)
            balances = sum(len(w.balances) for w in reply.wallets)
            samples = []
            for _ in range(20):
                t = time.perf_counter()
                await stub.ListWallets(request)
                samples.append(time.perf_counter() - t)
            print(
                f"ListWallets(page_size=1000): {len(reply.wallets)} wallets, {balances} balances, "
                f"{len(statements)} SQL statements, {ms(samples)}"
            )
            for label in ("cold", "warm"):
                t = time.perf_counter()
                run = (await stub.Reconcile(pb.ReconcileRequest(all=True))).run
                took = time.perf_counter() - t
                print(
                    f"Reconcile(all) {label}: {took * 1000:.0f} ms, checked {run.checked_count}, "
                    f"venue calls {run.venue_calls} (paper venue: one SQL query, no cache)"
                )
            t = time.perf_counter()
            runs = await asyncio.gather(
                *(stub.Reconcile(pb.ReconcileRequest(all=True)) for _ in range(100))
            )
            took = time.perf_counter() - t
            calls = sum(r.run.venue_calls for r in runs)
            print(f"100 concurrent Reconcile(all): {took:.2f} s, venue calls {calls}")
    finally:
        await app.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--currencies", type=int, default=5, choices=range(1, 6))
    args = parser.parse_args()
    server = find_postgres()
    try:
        with postgres_database(server.url) as url:
            asyncio.run(bench(url, args.wallets, args.currencies))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
