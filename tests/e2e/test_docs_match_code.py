"""docs/configuration.md names every setting the code reads, so the reference cannot drift."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tradeplane.platform.registry import SERVICES
from tradeplane.runtime.config import ServiceSettings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"

# (settings class, its module); a service that is not installed yet is skipped.
SETTINGS = [
    ("tradeplane.runtime.config", "ServiceSettings"),
    ("tradeplane.market.entrypoints.settings", "MarketSettings"),
    ("tradeplane.wallets.entrypoints.settings", "WalletsSettings"),
    ("tradeplane.execution.entrypoints.settings", "ExecutionSettings"),
    ("tradeplane.gateway.settings", "GatewaySettings"),
    ("tradeplane.backtest.entrypoints.settings", "BacktestServiceSettings"),
]


@pytest.mark.parametrize(("module", "name"), SETTINGS)
def test_every_setting_is_documented(module: str, name: str) -> None:
    try:
        cls: type[ServiceSettings] = getattr(importlib.import_module(module), name)
    except ImportError:
        pytest.skip(f"{module} is not installed")
    text = DOC.read_text()
    prefix = str(cls.model_config.get("env_prefix") or "")
    missing = [
        f"{prefix}{field}".upper()
        for field in cls.model_fields
        if f"`{prefix}{field}`".upper() not in text.upper()
    ]
    assert not missing, f"{DOC.name} does not document {missing}"


def test_every_launcher_variable_is_documented() -> None:
    text = DOC.read_text()
    names = ["TRADEPLANE_VAR_DIR", "TRADEPLANE_START_TIMEOUT"]
    for spec in SERVICES:
        names += [spec.port_env, spec.metrics_port_env]
        if spec.kind == "grpc":
            names.append(spec.addr_env)
    missing = [n for n in names if n not in text]
    assert not missing, f"{DOC.name} does not document {missing}"
