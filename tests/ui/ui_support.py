"""Helpers for the browser tests: the platform launcher with the built UI, JSON API calls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradeplane.platform.registry import SERVICES
from tradeplane.testing import free_port

REPO = Path(__file__).resolve().parents[2]
WEB_DIR = REPO / "gateway" / "web"
BUILD_SCRIPT = REPO / "scripts" / "build_web.sh"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIME_ZONE = "Asia/Tokyo"
# Screenshots of every view, kept after the run to be looked at (UI_TEST_OUTPUT overrides).
OUTPUT_DIR = Path(os.environ.get("UI_TEST_OUTPUT", REPO / "test-output" / "ui"))
# Debian's chromium, never a downloaded browser; flags for a sandbox-less CI container.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launcher_env(var_dir: Path, web_dir: Path) -> dict[str, str]:
    """The test's environment with every service (and the gateway) on free ports."""
    env = dict(os.environ)
    env["TRADEPLANE_VAR_DIR"] = str(var_dir)
    env["TRADEPLANE_WEB_DIR"] = str(web_dir)
    env["SHUTDOWN_GRACE_SECONDS"] = "3"
    for spec in SERVICES:
        env[spec.port_env] = str(free_port())
        env[spec.metrics_port_env] = str(free_port())
    return env


def http_json(
    method: str, url: str, body: Any = None, timeout: float = 10.0, token: str | None = None
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {url} -> {err.code}: {err.read().decode()}") from err


def wait_healthy(
    base_url: str, proc: subprocess.Popen[bytes], console: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"launcher exited {proc.returncode}:\n{console.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway not healthy after {timeout}s:\n{console.read_text()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@contextmanager
def running_platform(
    var_dir: Path, web_dist: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """The whole platform started by its launcher (`python -m tradeplane.platform up`); yields
    the gateway's address and stops it afterwards."""
    env = launcher_env(var_dir, web_dist)
    env.update(extra_env or {})
    console = var_dir / "launcher-console.txt"
    with console.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.platform", "--var-dir", str(var_dir), "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{env['GATEWAY_HTTP_PORT']}"
    try:
        # Within pytest's 120 s per-test timeout, which the first test's setup counts against;
        # generous because a loaded machine starts five processes slowly.
        wait_healthy(url, proc, console, timeout=100)
    except BaseException:
        proc.kill()  # a launcher that never came up; its children die with it (PDEATHSIG)
        proc.wait()
        raise
    try:
        yield url
    finally:
        stop(proc)


def submit_market_order(
    base_url: str, client_order_id: str, size: str = "0.001", decision: Any = None
) -> dict[str, Any]:
    """A paper market order through the gateway's JSON API, as any client would place it
    (with `decision`, the agent's DecisionRecord stored with it)."""
    body: dict[str, Any] = {
        "accountId": "paper-main",
        "clientOrderId": client_order_id,
        "productId": "BTC-USD",
        "side": "SIDE_BUY",
        "type": "ORDER_TYPE_MARKET",
        "baseSize": size,
    }
    if decision is not None:
        body["decision"] = decision
    reply: dict[str, Any] = http_json("POST", f"{base_url}/api/live/orders", body)
    return reply["order"]


def wait_for_fill(base_url: str, client_order_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fills = http_json("GET", f"{base_url}/api/live/fills?page_size=50").get("fills", [])
        for fill in fills:
            if fill.get("clientOrderId") == client_order_id:
                return dict(fill)
        time.sleep(0.2)
    raise AssertionError(f"no fill for {client_order_id} within {timeout}s")


def screenshot(page: Any, name: str) -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
