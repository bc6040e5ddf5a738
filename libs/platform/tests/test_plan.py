"""The launch plan: which services run, on which ports, with which environment (pure, no
processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeplane.platform.plan import PlanError, build_plan, is_installed
from tradeplane.platform.registry import SERVICES


def _installed(*names: str):  # type: ignore[no-untyped-def]
    modules = {f"tradeplane.{n}" for n in names}
    return lambda module: None if module in modules else f"package {module} is not installed"


def test_defaults_are_the_embedded_platform(tmp_path: Path) -> None:
    plan = build_plan(SERVICES, {}, tmp_path, installed=_installed("market", "execution"))
    market, execution = plan.services
    assert (market.port, market.metrics_port) == (50051, 9101)
    assert (execution.port, execution.metrics_port) == (50052, 9102)
    assert [s.spec.name for s in plan.skipped] == ["wallets", "backtest", "gateway"]

    env = market.env
    assert env["GRPC_PORT"] == "50051" and env["METRICS_PORT"] == "9101"
    assert env["DATABASE_URL"] == f"sqlite:///{tmp_path.resolve()}/data/market.db"
    assert "REDIS_URL" not in env
    assert env["AUTH_MODE"] == "disabled"
    assert env["GRPC_HOST"] == "127.0.0.1"  # auth is off: loopback only
    assert env["MARKET_FEED"] == "simulated"
    assert execution.env["EXECUTION_VENUE"] == "paper"
    # Upstream addresses of every launched gRPC service, for the services that call them.
    assert execution.env["MARKET_ADDR"] == "127.0.0.1:50051"
    assert execution.env["EXECUTION_ADDR"] == "127.0.0.1:50052"
    assert "WALLETS_ADDR" not in execution.env  # not running, so not advertised
    assert market.log_path == tmp_path.resolve() / "logs" / "market.log"


def test_ports_and_stores_are_overridable_per_service(tmp_path: Path) -> None:
    environ = {
        "MARKET_GRPC_PORT": "6001",
        "MARKET_METRICS_PORT": "6002",
        "MARKET_DATABASE_URL": "postgresql://postgres@127.0.0.1/market",
        "MARKET_REDIS_URL": "redis://127.0.0.1:6379/3",
        "GATEWAY_HTTP_PORT": "6080",
        "GRPC_PORT": "1",  # a stray generic value must not reach every child
        "DATABASE_URL": "postgresql://elsewhere/x",
        "AUTH_MODE": "jwt",  # the user's explicit choice wins over the embedded default
        "LOG_LEVEL": "DEBUG",
    }
    plan = build_plan(SERVICES, environ, tmp_path, installed=_installed("market", "gateway"))
    market, gateway = plan.services
    assert market.env["GRPC_PORT"] == "6001" and market.env["METRICS_PORT"] == "6002"
    assert market.env["DATABASE_URL"] == "postgresql://postgres@127.0.0.1/market"
    assert market.env["REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert market.env["AUTH_MODE"] == "jwt" and market.env["LOG_LEVEL"] == "DEBUG"
    assert "MARKET_GRPC_PORT" not in market.env
    assert gateway.env["HTTP_PORT"] == "6080" and "GRPC_PORT" not in gateway.env
    assert gateway.env["MARKET_ADDR"] == "127.0.0.1:6001"
    assert gateway.env["DATABASE_URL"].endswith("/data/gateway.db")
    assert gateway.web_url == "http://127.0.0.1:6080/"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MARKET_GRPC_PORT": "abc"}, "MARKET_GRPC_PORT='abc' is not a port number"),
        ({"MARKET_GRPC_PORT": "0"}, "MARKET_GRPC_PORT=0 is out of range"),
        ({"MARKET_METRICS_PORT": "70000"}, "MARKET_METRICS_PORT=70000 is out of range"),
        (
            {"EXECUTION_GRPC_PORT": "50051"},
            "port 50051 is configured twice (MARKET_GRPC_PORT and EXECUTION_GRPC_PORT)",
        ),
    ],
)
def test_bad_ports_name_the_variable(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(PlanError) as excinfo:
        build_plan(SERVICES, environ, tmp_path, installed=_installed("market", "execution"))
    assert message in str(excinfo.value)


def test_metrics_can_be_disabled(tmp_path: Path) -> None:
    plan = build_plan(
        SERVICES, {"MARKET_METRICS_PORT": "-1"}, tmp_path, installed=_installed("market")
    )
    (market,) = plan.services
    assert market.env["METRICS_PORT"] == "-1" and market.metrics_url is None


def test_is_installed_tells_why_not() -> None:
    assert is_installed("tradeplane.platform") is None  # has __main__
    assert is_installed("tradeplane.nonexistent_service") is not None
    reason = is_installed("tradeplane.platform.registry")  # a module, not a runnable package
    assert reason is not None
