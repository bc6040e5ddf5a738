"""Shared pieces of the Coinbase chaos tests (issue 11, items 1 and 3).

A `CoinbaseStack`: the fake Coinbase (HTTPS + WSS, JWTs checked) in the test's event loop,
a FaultProxy on the venue's REST edge, a market process, and an execution process
(`python -m tradeplane.execution`, coinbase venue, PostgreSQL) that tests SIGKILL and start
again, each restart timed until the trading health (`TRADING_HEALTH_NAME`) is SERVING.
Invariants are read straight from execution's database and the fake's own records, never
through the service under test.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.execution.service_layer.venue_reconciliation import TRADING_HEALTH_NAME
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.fakes.coinbase_keys import CoinbaseKeys, make_keys
from tradeplane.testing.faultproxy import FaultProxy
from tradeplane.testing.processes import ServiceFactory, ServiceProcess
from trading.execution.v1 import execution_pb2_grpc

START_TIMEOUT = 60.0
# A client (and the health probe) finds a restarted process quickly: gRPC's default
# reconnect backoff grows to minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# What a client sees while the process is down or starting: retried with the same request.
RETRIABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,  # the connection went away under the call
)


@dataclass
class Recovery:
    since_spawn: float  # seconds from the process start until trading SERVING
    since_listening: float  # ... from its gRPC port being bound (interpreter start excluded)


@dataclass
class ExecutionProcess:
    """One execution service, killed and started again on the same port and database."""

    svc: ServiceProcess
    channel: grpc.aio.Channel
    recoveries: list[Recovery] = field(default_factory=list)
    kills: int = 0

    @property
    def stub(self) -> execution_pb2_grpc.ExecutionServiceStub:
        return execution_pb2_grpc.ExecutionServiceStub(self.channel)

    def _spawn(self) -> int:
        """Start the process (without waiting); returns the log offset of this run."""
        offset = self.svc.log_path.stat().st_size if self.svc.log_path.exists() else 0
        with self.svc.log_path.open("ab") as log:
            self.svc.proc = subprocess.Popen(
                [sys.executable, "-m", self.svc.module],
                env=self.svc.env,
                stdout=log,
                stderr=log,
            )
        return offset

    def _listening_at(self, offset: int) -> float | None:
        with self.svc.log_path.open("rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                if '"msg":"listening"' in line:
                    return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
        return None

    async def start(self) -> Recovery:
        """Start (or restart) and wait until trading is SERVING; the recovery is recorded."""
        spawned_wall, spawned = time.time(), time.monotonic()
        offset = self._spawn()
        health = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=TRADING_HEALTH_NAME)
        while True:
            proc = self.svc.proc
            assert proc is not None
            if proc.poll() is not None:
                raise AssertionError(
                    f"execution exited {proc.returncode}:\n{self.svc.log()[-6000:]}"
                )
            try:
                answer = await health.Check(request, timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() - spawned > START_TIMEOUT:
                raise AssertionError(
                    f"trading not SERVING {START_TIMEOUT}s after start:\n{self.svc.log()[-6000:]}"
                )
            await asyncio.sleep(0.05)
        now_wall = time.time()
        listening = self._listening_at(offset)
        recovery = Recovery(
            since_spawn=time.monotonic() - spawned,
            since_listening=now_wall - listening if listening else now_wall - spawned_wall,
        )
        self.recoveries.append(recovery)
        return recovery

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever was in flight is cut."""
        self.svc.kill()
        self.kills += 1

    @property
    def alive(self) -> bool:
        return self.svc.proc is not None and self.svc.proc.poll() is None


@dataclass
class CoinbaseStack:
    fake: FakeCoinbase
    proxy: FaultProxy  # on the venue's REST edge (execution -> fake Coinbase)
    keys: CoinbaseKeys
    market: ServiceProcess
    execution: ExecutionProcess
    database_url: str  # execution's (postgresql://)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on execution's database (the invariant checkers' view)."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def recovery_summary(self) -> str:
        times = self.execution.recoveries[1:]  # the first start is not a recovery
        if not times:
            return "no restart"
        spawn = [r.since_spawn for r in times]
        up = [r.since_listening for r in times]
        return (
            f"{len(times)} restarts: trading SERVING {min(spawn):.2f}-{max(spawn):.2f}s "
            f"after spawn (max {max(spawn):.2f}s), {min(up):.2f}-{max(up):.2f}s after the port "
            "was bound"
        )


def execution_env(
    keys: CoinbaseKeys,
    *,
    rest_url: str,
    ws_url: str,
    market_addr: str,
    database_url: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "MARKET_ADDR": market_addr,
        "EXECUTION_VENUE": "coinbase",
        "COINBASE_API_KEY": keys.name,
        "COINBASE_API_SECRET": keys.private_pem,
        "EXECUTION_COINBASE_REST_URL": rest_url,
        "EXECUTION_COINBASE_WS_URL": ws_url,
        "EXECUTION_COINBASE_CA_FILE": keys.ca_file,
        "EXECUTION_COINBASE_TIMEOUT_SECONDS": "2",
        "EXECUTION_COINBASE_MAX_ATTEMPTS": "4",
        "EXECUTION_COINBASE_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "EXECUTION_RECONCILE_INTERVAL_SECONDS": "5",
        "EXECUTION_RECONCILE_CONFIRM_SECONDS": "0.2",
        "EXECUTION_EVENT_POLL_SECONDS": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra or {})
    return env


async def start_fake_coinbase(keys: CoinbaseKeys) -> FakeCoinbase:
    """The fake Coinbase over HTTPS/WSS, checking JWTs signed by `keys`."""
    fake = FakeCoinbase(
        heartbeat_interval=0.5,
        ssl_context=keys.server_tls,
        jwt_public_key=keys.public_pem,
        jwt_key_name=keys.name,
    )
    await fake.start()
    return fake


@asynccontextmanager
async def coinbase_stack(
    directory: Path,
    factory: ServiceFactory,
    database_url: str,
    *,
    seed: int,
    execution_extra: Mapping[str, str] | None = None,
) -> AsyncIterator[CoinbaseStack]:
    """The fake Coinbase, the proxy, market and execution (started, trading SERVING)."""
    keys = make_keys(directory)
    fake = await start_fake_coinbase(keys)
    proxy = await FaultProxy("127.0.0.1", fake.port, seed=seed).start()
    channel: grpc.aio.Channel | None = None
    execution: ExecutionProcess | None = None
    try:
        market = factory.create(
            "market", "tradeplane.market", {"MARKET_BACKFILL_DAYS": "0", "MARKET_TICK_RATE": "5"}
        )
        await asyncio.to_thread(market.start)
        env = execution_env(
            keys,
            rest_url=f"https://127.0.0.1:{proxy.port}",
            ws_url=fake.ws_url,
            market_addr=market.address,
            database_url=database_url,
            extra=execution_extra,
        )
        svc = factory.create("execution", "tradeplane.execution", env)
        channel = grpc.aio.insecure_channel(svc.address, options=CHANNEL_OPTIONS)
        execution = ExecutionProcess(svc, channel)
        await execution.start()
        yield CoinbaseStack(fake, proxy, keys, market, execution, database_url)
    finally:
        if execution is not None:
            execution.svc.kill()
        if channel is not None:
            await channel.close()
        fake.orders.release_held()
        await proxy.stop()
        await fake.stop()
