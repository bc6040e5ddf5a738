"""Auth across two real services with AUTH_MODE=jwt: execution forwards nothing it was not
given, checks scopes from the proto options (SubmitOrder needs `trade`), and reaches market
with its own read token. Driven with grpcurl as a user would."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import ServiceProcess, grpcurl, health_status

from tradeplane.runtime.auth import issue_token
from tradeplane.testing import free_port

EXECUTION = "trading.execution.v1.ExecutionService"

pytestmark = pytest.mark.slow


def _start_execution(tmp_path: Path, market: str, secret: str) -> ServiceProcess:
    pytest.importorskip("tradeplane.execution.entrypoints.bootstrap")
    grpc_port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "execution.log"
    env = {
        **os.environ,
        "GRPC_PORT": str(grpc_port),
        "METRICS_PORT": str(metrics_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'execution.db'}",
        "MARKET_ADDR": market,
        "AUTH_MODE": "jwt",
        "JWT_SECRET": secret,
        "EXECUTION_MARKET_TOKEN": issue_token(
            "execution", ["read"], secret=secret, ttl_seconds=3600
        ),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeplane.execution"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    svc = ServiceProcess(proc, f"127.0.0.1:{grpc_port}", metrics_port, log_path)
    deadline = time.monotonic() + 60
    while health_status(svc.address) != "SERVING":
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"execution not SERVING (exit {proc.poll()}):\n{svc.log()}")
        time.sleep(0.2)
    return svc


def test_read_token_cannot_trade_and_trade_token_can(
    start_market: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    secret = secrets.token_hex(32)
    market = start_market(AUTH_MODE="jwt", JWT_SECRET=secret, MARKET_BACKFILL_DAYS="0.1")
    execution = _start_execution(tmp_path, market.address, secret)
    try:
        order = json.dumps(
            {
                "client_order_id": "e2e-auth-1",
                "product_id": "BTC-USD",
                "side": "SIDE_BUY",
                "type": "ORDER_TYPE_MARKET",
                "base_size": "0.001",
            }
        )
        read = issue_token("viewer", ["read"], secret=secret)
        denied = grpcurl(
            "-plaintext", "-H", f"authorization: Bearer {read}", "-d", order,
            execution.address, f"{EXECUTION}/SubmitOrder",
        )  # fmt: skip
        assert "Code: PermissionDenied" in denied.stderr, denied.stderr
        assert "trade" in denied.stderr

        listed = grpcurl(
            "-plaintext", "-H", f"authorization: Bearer {read}",
            execution.address, f"{EXECUTION}/ListOrders",
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "e2e-auth-1" not in listed.stdout  # the refused call changed nothing

        trade = issue_token("trader", ["trade"], secret=secret)
        placed = grpcurl(
            "-plaintext", "-H", f"authorization: Bearer {trade}", "-d", order,
            execution.address, f"{EXECUTION}/SubmitOrder",
        )  # fmt: skip
        assert placed.returncode == 0, placed.stderr
        assert json.loads(placed.stdout)["order"]["client_order_id"] == "e2e-auth-1"
    finally:
        execution.proc.terminate()
        assert execution.proc.wait(timeout=30) == 0, execution.log()
