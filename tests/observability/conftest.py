"""Fixtures for the observability tests: a real market service process, the whole platform
(`make up`), and real Prometheus servers started by `make observe`'s code
(tradeplane.platform.observe), all on free loopback ports."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The tests import observability_support by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from observability_support import (
    BackgroundLoop,
    MarketProcess,
    Observe,
    PlatformProcess,
    PromApi,
    binary,
)

from tradeplane.platform.registry import SERVICES
from tradeplane.testing import free_port
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from tradeplane.testing.processes import with_bytecode_cache

START_TIMEOUT = 30.0
PLATFORM_START_TIMEOUT = 90.0


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketProcess]:
    """`python -m tradeplane.market` on free ports with a throwaway SQLite file."""
    if importlib.util.find_spec("tradeplane.market") is None:
        pytest.skip("the market service (tradeplane.market) is not installed")
    work = tmp_path_factory.mktemp("market")
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "METRICS_PORT": str(metrics_port),
        "DATABASE_URL": f"sqlite:///{work / 'market.db'}",
        "AUTH_MODE": "disabled",
        "MARKET_FEED": "simulated",
        "MARKET_BACKFILL_DAYS": "1",
    }
    env.pop("REDIS_URL", None)
    log_path = work / "market.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.market"], env=env, stdout=log, stderr=log
        )
    svc = MarketProcess(
        proc, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{metrics_port}/metrics", log_path
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _serving(svc.grpc_address):
            if proc.poll() is not None:
                pytest.fail(f"market exited with {proc.returncode}:\n{svc.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"market not SERVING after {START_TIMEOUT}s:\n{svc.log()}")
            time.sleep(0.1)
        yield svc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return binary("prometheus")


def _start_observe(var_dir: Path) -> Iterator[Observe]:
    """`make observe` (tradeplane.platform.observe) on the endpoints.json in `var_dir`: a real
    Prometheus on a free port, scraping every second, evaluating the rules every second."""
    listen = f"127.0.0.1:{free_port()}"
    output = var_dir / "observe-console.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradeplane.platform.observe",
                "--var-dir",
                str(var_dir),
                "--listen",
                listen,
                "--scrape-interval",
                "1s",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Prometheus: http://" not in output.read_text():
            if proc.poll() is not None:
                pytest.fail(f"observe exited with {proc.returncode}:\n{output.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus not ready after {START_TIMEOUT}s:\n{output.read_text()}")
            time.sleep(0.1)
        yield Observe(proc, PromApi(f"http://{listen}"), var_dir, output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # observe stops its Prometheus, then exits
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"observe did not stop on SIGTERM:\n{output.read_text()}")
            assert code == 0, f"observe exited {code} on SIGTERM:\n{output.read_text()}"


@pytest.fixture(scope="module")
def observe(
    prometheus_bin: str, market: MarketProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observe]:
    """`make observe` against an endpoints.json naming the lone market process. (prometheus_bin
    comes first so a machine without Prometheus skips before starting the market.)"""
    var_dir = tmp_path_factory.mktemp("observe-var")
    (var_dir / "endpoints.json").write_text(
        json.dumps(
            {
                "services": {
                    "market": {
                        "grpc": market.grpc_address,
                        "metrics": market.metrics_url,
                        "pid": market.proc.pid,
                    }
                }
            }
        )
    )
    yield from _start_observe(var_dir)


@pytest.fixture(scope="module")
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def coinbase(background_loop: BackgroundLoop) -> Iterator[FakeCoinbase]:
    """The local fake Coinbase (accounts API) for wallets' Coinbase venue: USD 1,000 available
    and 50 on hold."""
    fake = FakeCoinbase()
    background_loop.run(fake.start())
    fake.accounts.set_balance("USD", "1000", hold="50")
    yield fake
    background_loop.run(fake.stop())


@pytest.fixture(scope="module")
def platform(
    prometheus_bin: str, coinbase: FakeCoinbase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformProcess]:
    """The whole platform as `make up` starts it (`python -m tradeplane.platform up`), on free
    ports with a temporary var dir, wallets also reconciling against the fake Coinbase;
    stopped with SIGTERM at the end."""
    for name in ("market", "execution", "wallets", "backtest", "gateway"):
        if importlib.util.find_spec(f"tradeplane.{name}") is None:
            pytest.skip(f"tradeplane.{name} is not installed")
    var_dir = tmp_path_factory.mktemp("platform-var")
    env = with_bytecode_cache(dict(os.environ))
    env["TRADEPLANE_VAR_DIR"] = str(var_dir)
    for spec in SERVICES:
        env[spec.port_env] = str(free_port())
        env[spec.metrics_port_env] = str(free_port())
    env.pop("REDIS_URL", None)  # the embedded default: in-process caches
    env["WALLETS_COINBASE_REST_URL"] = coinbase.rest_url
    output = var_dir / "launcher-console.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.platform", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoints = var_dir / "endpoints.json"
    try:
        deadline = time.monotonic() + PLATFORM_START_TIMEOUT
        while not endpoints.exists():
            if proc.poll() is not None:
                pytest.fail(f"launcher exited with {proc.returncode}:\n{output.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no endpoints.json after {PLATFORM_START_TIMEOUT}s:\n{output.read_text()}"
                )
            time.sleep(0.1)
        yield PlatformProcess(proc, var_dir, output, json.loads(endpoints.read_text()))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def platform_observe(platform: PlatformProcess) -> Iterator[Observe]:
    """`make observe` scraping every process of the running platform."""
    yield from _start_observe(platform.var_dir)
