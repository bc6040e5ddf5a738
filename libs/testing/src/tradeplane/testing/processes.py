"""Real service processes for process-level tests (`python -m tradeplane.<svc>`): free ports,
own log file, started until healthy, killed at the end whatever the test did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.testing.ports import free_port

START_TIMEOUT = 60.0
PYCACHE = Path(tempfile.gettempdir()) / "tradeplane-pycache"


def with_bytecode_cache(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child Python that keeps its compiled byte-code (outside the tree): with
    PYTHONDONTWRITEBYTECODE set, as on these machines, every process start would recompile
    the whole platform (tens of seconds of CPU on 2 cores)."""
    env = {**env, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def grpc_health(address: str, timeout: float = 1.0) -> str:
    """ "SERVING", "NOT_SERVING", ... or "DOWN" when nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return "DOWN"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def http_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@dataclass
class ServiceProcess:
    module: str
    env: dict[str, str]
    log_path: Path
    port: int
    metrics_port: int
    http: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready(self) -> bool:
        if self.http:
            return http_ready(f"{self.url}/healthz")
        return grpc_health(self.address) == "SERVING"

    def start(self, timeout: float = START_TIMEOUT) -> ServiceProcess:
        """Start (or restart after a kill) and wait until healthy."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.module} not ready in {timeout}s:\n{self.log()}")
            time.sleep(0.1)
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)


@contextmanager
def service_processes(directory: Path) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(directory)
    try:
        yield factory
    finally:
        for svc in factory.started:
            svc.kill()


class ServiceFactory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[ServiceProcess] = []

    def create(
        self, name: str, module: str, env: Mapping[str, str], *, http: bool = False
    ) -> ServiceProcess:
        """A process of `module` on free ports with the environment's defaults for tests
        (auth off, SQLite in the directory unless DATABASE_URL is given, no Redis)."""
        port, metrics_port = free_port(), free_port()
        full = {
            **with_bytecode_cache(dict(os.environ)),
            "AUTH_MODE": "disabled",
            "GRPC_HOST": "127.0.0.1",
            "METRICS_PORT": str(metrics_port),
            "DATABASE_URL": f"sqlite:///{self.directory / f'{name}.db'}",
            "SHUTDOWN_GRACE_SECONDS": "5",
        }
        full.pop("REDIS_URL", None)
        full["HTTP_PORT" if http else "GRPC_PORT"] = str(port)
        full.update(env)
        svc = ServiceProcess(
            module, full, self.directory / f"{name}.log", port, metrics_port, http=http
        )
        self.started.append(svc)
        return svc
