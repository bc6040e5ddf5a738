"""The platform's processes: what runs, on which default ports, with which embedded settings.

A later service plugs itself into ``make up`` by adding one entry here; the launcher skips an
entry whose package is not installed, so the list may name services that do not exist yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Kind = Literal["grpc", "http"]


@dataclass(frozen=True)
class ServiceSpec:
    """One process of the platform.

    ``port`` is the gRPC port for ``kind="grpc"`` (passed to the child as ``GRPC_PORT``) and
    the HTTP port for ``kind="http"`` (passed as ``HTTP_PORT``); the launcher's environment
    overrides them with ``<NAME>_GRPC_PORT`` / ``<NAME>_HTTP_PORT`` and
    ``<NAME>_METRICS_PORT``.
    """

    name: str
    module: str
    kind: Kind
    port: int
    metrics_port: int
    # Embedded-default settings for this process; a value already in the launcher's
    # environment wins, so `AUTH_MODE=jwt JWT_SECRET=... make up` works.
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Services to wait for (SERVING) before starting this one. The services need none: like
    # pods in Kubernetes they start in any order and connect (and reconnect) to their peers
    # lazily, so the launcher starts them all at once (a chain of four waits took 17-33 s
    # here). The gateway comes last so the first browser request finds its backends up.
    depends_on: tuple[str, ...] = ()

    @property
    def env_prefix(self) -> str:
        return self.name.upper()

    @property
    def port_env(self) -> str:
        return f"{self.env_prefix}_{'GRPC' if self.kind == 'grpc' else 'HTTP'}_PORT"

    @property
    def metrics_port_env(self) -> str:
        return f"{self.env_prefix}_METRICS_PORT"

    @property
    def addr_env(self) -> str:
        """The variable other processes read this service's address from, e.g. MARKET_ADDR."""
        return f"{self.env_prefix}_ADDR"


def _env(**values: str) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "market",
        "tradeplane.market",
        "grpc",
        50051,
        9101,
        _env(MARKET_FEED="simulated"),
    ),
    ServiceSpec(
        "execution",
        "tradeplane.execution",
        "grpc",
        50052,
        9102,
        _env(EXECUTION_VENUE="paper"),
    ),
    ServiceSpec(
        "wallets",
        "tradeplane.wallets",
        "grpc",
        50053,
        9103,
    ),
    ServiceSpec(
        "backtest",
        "tradeplane.backtest",
        "grpc",
        50054,
        9104,
    ),
    ServiceSpec(
        "gateway",
        "tradeplane.gateway",
        "http",
        8080,
        9105,
        depends_on=("market", "execution", "wallets", "backtest"),
    ),
)

# Settings every process gets unless the launcher's environment says otherwise. Auth is off in
# the embedded default, so the ports listen on loopback only (GRPC_HOST=0.0.0.0 to expose them).
COMMON_DEFAULTS: Mapping[str, str] = _env(AUTH_MODE="disabled", GRPC_HOST="127.0.0.1")
