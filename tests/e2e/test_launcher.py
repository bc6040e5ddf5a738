"""The launcher's supervision, against stand-in service processes (tests/e2e/standin): start in
order, endpoints.json, status, clean stop on SIGTERM, crash and port-conflict reports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import health_status, stop_launcher, wait_for_endpoints

from tradeplane.testing import free_port

STANDIN_DIR = Path(__file__).parent / "standin"
STANDIN_LAUNCHER = STANDIN_DIR / "standin_launcher.py"


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STANDIN_DIR), env.get("PYTHONPATH")]))
    env["TRADEPLANE_VAR_DIR"] = str(var_dir)
    env["SHUTDOWN_GRACE_SECONDS"] = "2"
    for name in ("ALPHA", "BETA"):
        env[f"{name}_GRPC_PORT"] = str(free_port())
        env[f"{name}_METRICS_PORT"] = str(free_port())
    env.update(extra)
    return env


_LAUNCHED: list[subprocess.Popen[bytes]] = []


def _launch(
    tmp_path: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    output = tmp_path / "console.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(STANDIN_LAUNCHER), *(args or ("up",))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _LAUNCHED.append(proc)
    return proc, output


@pytest.fixture(autouse=True)
def _no_leftover_launchers() -> Iterator[None]:
    """A failed assertion must not leave a launcher (and its children) running: two signals
    make it kill its children at once, then it is killed itself if needed."""
    yield
    while _LAUNCHED:
        proc = _LAUNCHED.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def running(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    env = _env(tmp_path / "var")
    proc, output = _launch(tmp_path, env)
    return proc, output, env


@pytest.mark.slow
def test_up_writes_endpoints_and_stops_cleanly_on_sigterm(running) -> None:  # type: ignore[no-untyped-def]
    proc, output, env = running
    var_dir = Path(env["TRADEPLANE_VAR_DIR"])
    doc = wait_for_endpoints(proc, var_dir / "endpoints.json", output, 30)

    alpha, beta = doc["services"]["alpha"], doc["services"]["beta"]
    assert alpha["grpc"] == f"127.0.0.1:{env['ALPHA_GRPC_PORT']}"
    assert alpha["metrics"] == f"http://127.0.0.1:{env['ALPHA_METRICS_PORT']}/metrics"
    assert beta["grpc"] == f"127.0.0.1:{env['BETA_GRPC_PORT']}"
    assert "ghost" not in doc["services"]
    assert doc["launcher_pid"] == proc.pid
    for entry in (alpha, beta):
        assert health_status(entry["grpc"]) == "SERVING"

    # Each child got its own port pair and its own SQLite file under the var dir.
    alpha_log = (var_dir / "logs" / "alpha.log").read_text()
    assert f'\\"GRPC_PORT\\": \\"{env["ALPHA_GRPC_PORT"]}\\"' in alpha_log
    assert f"sqlite:///{var_dir.resolve()}/data/alpha.db" in alpha_log

    status = subprocess.run(
        [sys.executable, "-m", "tradeplane.platform", "--var-dir", str(var_dir), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "alpha" in status.stdout and "SERVING" in status.stdout

    # A second launcher on the same var dir (even on other ports) refuses to start.
    second = subprocess.run(
        [sys.executable, str(STANDIN_LAUNCHER), "up"],
        env=_env(var_dir),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"already runs from {var_dir.resolve()} (launcher pid {proc.pid})" in second.stderr
    assert (var_dir / "endpoints.json").exists()

    assert stop_launcher(proc, output) == 0, output.read_text()
    assert not (var_dir / "endpoints.json").exists()
    for entry in (alpha, beta):
        assert not _pid_alive(entry["pid"])

    console = output.read_text()
    assert "skipping ghost: package tradeplane_no_such_service is not installed" in console
    assert f"-plaintext 127.0.0.1:{env['ALPHA_GRPC_PORT']} list" in console
    assert "[alpha] ERROR standin says hello on the error channel" in console  # errors echoed
    assert "standin env" not in console  # INFO lines stay in the log file
    assert "stopping alpha, beta ..." in console and "stopped." in console


@pytest.mark.slow
def test_a_dying_child_stops_the_platform_with_its_log_tail(tmp_path: Path) -> None:
    env = _env(tmp_path / "var", STANDIN_EXIT_AFTER="1.5")
    proc, output = _launch(tmp_path, env)
    code = proc.wait(timeout=30)
    console = output.read_text()
    assert code == 1, console
    assert "exited with code 3 unexpectedly" in console
    assert "standin crashing on purpose" in console  # the log tail
    assert "alpha.log" in console or "beta.log" in console


def test_busy_port_fails_fast_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(tmp_path / "var", BETA_METRICS_PORT=str(port))
        proc, output = _launch(tmp_path, env)
        code = proc.wait(timeout=30)
    console = output.read_text()
    assert code == 2, console
    assert f"port {port} (beta) is in use: set BETA_METRICS_PORT to a free port" in console
    assert "starting" not in console  # nothing was started


@pytest.mark.slow
def test_service_that_never_gets_ready_times_out_pointing_at_its_log(tmp_path: Path) -> None:
    env = _env(tmp_path / "var", STANDIN_NEVER_READY="1")
    proc, output = _launch(tmp_path, env, "up", "--start-timeout", "2")
    code = proc.wait(timeout=30)
    console = output.read_text()
    assert code == 1, console
    assert "alpha did not report SERVING within 2s (health: NOT_SERVING)" in console
    assert "logs/alpha.log" in console
    assert "starting beta" not in console  # it waits for alpha, which never got ready
    assert not (tmp_path / "var" / "endpoints.json").exists()


@pytest.mark.slow
def test_children_die_with_a_killed_launcher(running) -> None:  # type: ignore[no-untyped-def]
    proc, output, env = running
    doc = wait_for_endpoints(proc, Path(env["TRADEPLANE_VAR_DIR"]) / "endpoints.json", output, 30)
    pids = [entry["pid"] for entry in doc["services"].values()]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_pid_alive(pid) for pid in pids)

    status = subprocess.run(
        [sys.executable, "-m", "tradeplane.platform", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 3 and "is stale" in status.stdout, status.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_child_ignoring_sigterm_is_killed_and_reported(tmp_path: Path) -> None:
    env = _env(tmp_path / "var", STANDIN_IGNORE_SIGTERM="1")
    proc, output = _launch(tmp_path, env)
    doc = wait_for_endpoints(proc, tmp_path / "var" / "endpoints.json", output, 30)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the children got SIGTERM and ignore it; a second signal means "now"
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    console = output.read_text()
    assert code == 1, console
    assert "alpha did not stop (second interrupt); killing it" in console
    assert not any(_pid_alive(entry["pid"]) for entry in doc["services"].values())
