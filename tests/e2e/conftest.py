"""End-to-end fixtures: the real launcher (`python -m tradeplane.platform up`) and separately
started market processes, all on free ports with temporary var dirs and SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The tests import e2e_support by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from e2e_support import (
    LAUNCHER_START_TIMEOUT,
    Platform,
    ServiceProcess,
    health_status,
    launcher_env,
    requires_market,
    stop_launcher,
    wait_for_endpoints,
)

from tradeplane.testing import free_port


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`python -m tradeplane.platform up` on free ports; stopped with SIGTERM at the end, which
    must be a clean exit 0 (every child stopped gracefully)."""
    requires_market()
    var_dir = tmp_path_factory.mktemp("platform-var")
    output = var_dir.parent / "launcher-console.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.platform", "up"],
            env=launcher_env(var_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        doc = wait_for_endpoints(proc, var_dir / "endpoints.json", output, LAUNCHER_START_TIMEOUT)
        yield Platform(proc, var_dir, output, doc)
    finally:
        if proc.poll() is None:
            code = stop_launcher(proc, output)
            assert code == 0, f"launcher exited {code} on SIGTERM:\n{output.read_text()}"


@pytest.fixture
def start_market(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `python -m tradeplane.market` alone (own ports, own SQLite file) with extra env,
    waiting until it reports SERVING. Killed at the end if a test left it running."""
    requires_market()
    started: list[ServiceProcess] = []

    def start(**extra: str) -> ServiceProcess:
        grpc_port, metrics_port = free_port(), free_port()
        log_path = tmp_path / f"market-{len(started)}.log"
        env = {
            **os.environ,
            "GRPC_PORT": str(grpc_port),
            "METRICS_PORT": str(metrics_port),
            "DATABASE_URL": f"sqlite:///{tmp_path / f'market-{len(started)}.db'}",
            "AUTH_MODE": "disabled",
            "MARKET_FEED": "simulated",
        }
        env.pop("REDIS_URL", None)
        env.update(extra)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tradeplane.market"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        svc = ServiceProcess(proc, f"127.0.0.1:{grpc_port}", metrics_port, log_path)
        started.append(svc)
        deadline = time.monotonic() + 60
        while health_status(svc.address) != "SERVING":
            if proc.poll() is not None:
                pytest.fail(f"market exited with {proc.returncode}:\n{svc.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"market not SERVING after 60s:\n{svc.log()}")
            time.sleep(0.1)
        return svc

    yield start
    for svc in started:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
