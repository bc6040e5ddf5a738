"""Postgres killed (issue 11, item 4): every PostgreSQL process is SIGKILLed while a wallets
process takes a stream of transfers (deposits and withdrawals from several clients, each
retried with its idempotency key until acknowledged, as a real client does). After the
database restarts: every acknowledged write is present exactly once, none is half-applied
(every entry's postings sum to zero per currency), and the wallet's balance equals an
independent oracle of what was acknowledged.

Checked with SQL straight on the database, not through the service under test.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import grpc.aio
import psycopg
import pytest

from tradeplane.testing.crashable import CrashablePostgres
from tradeplane.testing.processes import ServiceFactory, service_processes
from tradeplane.testing.servers import ServerUnavailable
from trading.wallets.v1 import wallets_pb2 as pb
from trading.wallets.v1 import wallets_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 4
PER_CLIENT = 60
INITIAL_USD = Decimal(100_000)


@pytest.fixture
def crashable() -> Iterator[CrashablePostgres]:
    try:
        server = CrashablePostgres().start()
    except ServerUnavailable as exc:
        pytest.skip(f"cannot run a PostgreSQL server here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    with service_processes(tmp_path) as factory:
        yield factory


async def test_acknowledged_transfers_survive_a_postgres_crash(
    crashable: CrashablePostgres, services: ServiceFactory, chaos_seed: int | None
) -> None:
    seed = 5 if chaos_seed is None else chaos_seed
    rng = random.Random(seed)
    with psycopg.connect(crashable.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE wallets")
    database_url = crashable.url.rsplit("/", 1)[0] + "/wallets"
    wallets = services.create(
        "wallets",
        "tradeplane.wallets",
        {"DATABASE_URL": database_url, "WALLETS_INITIAL_DEPOSITS": f"USD={INITIAL_USD}"},
    )
    await asyncio.to_thread(wallets.start)

    acked: dict[str, Decimal] = {}  # idempotency key -> signed amount (the oracle)
    failures_seen = 0
    crashed = asyncio.Event()

    async def client(n: int, stub: wallets_pb2_grpc.WalletsServiceStub) -> None:
        nonlocal failures_seen
        for i in range(PER_CLIENT):
            amount = Decimal(rng.randint(1, 500)) / 100
            withdraw = i % 3 == 2  # the balance only grows overall: never refused
            request = pb.RecordTransferRequest(
                idempotency_key=f"crash-{seed}-{n}-{i}",
                kind=pb.TRANSFER_KIND_WITHDRAWAL if withdraw else pb.TRANSFER_KIND_DEPOSIT,
                wallet_id="paper",
                currency="USD",
                amount=str(amount),
            )
            while True:  # retried with the same key until acknowledged
                try:
                    await stub.RecordTransfer(request, timeout=5)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    ), f"{error.code().name}: {error.details()}"
                    failures_seen += 1
                    await asyncio.sleep(0.2)
            acked[request.idempotency_key] = -amount if withdraw else amount
            if i == PER_CLIENT // 3 and n == 0:
                crashed.set()

    async def chaos() -> float:
        await crashed.wait()
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        crashable.crash()
        down_at = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(crashable.start)
        return time.monotonic() - down_at

    async with grpc.aio.insecure_channel(wallets.address) as channel:
        stub = wallets_pb2_grpc.WalletsServiceStub(channel)
        began = time.monotonic()
        outage, *_ = await asyncio.gather(chaos(), *(client(n, stub) for n in range(CLIENTS)))
        took = time.monotonic() - began
    print(
        f"seed {seed}: {len(acked)} transfers acknowledged in {took:.1f}s; database down "
        f"{outage:.1f}s; {failures_seen} failed attempts retried"
    )
    assert failures_seen > 0, "the crash did not hit any request"

    with psycopg.connect(database_url) as conn:
        keys = {
            row[0]
            for row in conn.execute(
                "SELECT idempotency_key FROM journal_entries WHERE idempotency_key LIKE %s",
                (f"crash-{seed}-%",),
            )
        }
        unbalanced = conn.execute(
            "SELECT entry_id, currency, SUM(amount) FROM postings "
            "GROUP BY entry_id, currency HAVING SUM(amount) <> 0"
        ).fetchall()
        orphans = conn.execute(
            "SELECT e.entry_id FROM journal_entries e "
            "LEFT JOIN postings p ON p.entry_id = e.entry_id WHERE p.entry_id IS NULL"
        ).fetchall()
        total = conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM postings "
            "WHERE wallet_id = 'paper' AND currency = 'USD'"
        ).fetchone()
    assert keys == set(acked), f"missing {set(acked) - keys}, unexpected {keys - set(acked)}"
    assert unbalanced == [], f"half-applied entries: {unbalanced[:5]}"
    assert orphans == [], f"entries without postings: {orphans[:5]}"
    assert total is not None
    assert Decimal(total[0]) == INITIAL_USD + sum(acked.values())
