"""Turns the registry and the launcher's environment into a launch plan: which services run,
on which ports, with which environment. Pure: no processes, no sockets."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tradeplane.platform.registry import COMMON_DEFAULTS, ServiceSpec

# The launcher decides these per child; inherited values (e.g. a DATABASE_URL exported for
# something else) must not leak into every service.
_OWNED_BY_LAUNCHER = ("GRPC_PORT", "METRICS_PORT", "HTTP_PORT", "DATABASE_URL", "REDIS_URL")


class PlanError(Exception):
    """A configuration problem the user fixes by changing an environment variable."""


@dataclass(frozen=True)
class PlannedService:
    spec: ServiceSpec
    port: int
    metrics_port: int  # -1 = no metrics endpoint
    env: Mapping[str, str]
    log_path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port < 0:
            return None
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def web_url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}/" if self.spec.kind == "http" else None


@dataclass(frozen=True)
class Skipped:
    spec: ServiceSpec
    reason: str


@dataclass(frozen=True)
class LaunchPlan:
    var_dir: Path
    services: tuple[PlannedService, ...]
    skipped: tuple[Skipped, ...]

    @property
    def endpoints_path(self) -> Path:
        return self.var_dir / "endpoints.json"

    def get(self, name: str) -> PlannedService | None:
        return next((s for s in self.services if s.name == name), None)


def is_installed(module: str) -> str | None:
    """None when ``python -m <module>`` can run, else a short reason."""
    try:
        if importlib.util.find_spec(module) is None:
            return f"package {module} is not installed"
        if importlib.util.find_spec(f"{module}.__main__") is None:
            return f"{module} has no __main__ module"
    except ImportError as exc:  # a parent package is missing or broken
        return f"package {module} is not importable ({exc})"
    return None


def _port(environ: Mapping[str, str], name: str, default: int, *, allow_disabled: bool) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PlanError(f"{name}={raw!r} is not a port number") from None
    if allow_disabled and value == -1:
        return -1
    if not 1 <= value <= 65535:
        hint = " (or -1 to disable metrics)" if allow_disabled else ""
        raise PlanError(f"{name}={value} is out of range: use a port between 1 and 65535{hint}")
    return value


def build_plan(
    registry: Sequence[ServiceSpec],
    environ: Mapping[str, str],
    var_dir: Path,
    *,
    installed: Callable[[str], str | None] = is_installed,
) -> LaunchPlan:
    """Resolve ports and child environments. Raises PlanError naming the variable to change."""
    var_dir = var_dir.resolve()
    chosen: list[tuple[ServiceSpec, int, int]] = []
    skipped: list[Skipped] = []
    for spec in registry:
        reason = installed(spec.module)
        if reason is not None:
            skipped.append(Skipped(spec, reason))
            continue
        port = _port(environ, spec.port_env, spec.port, allow_disabled=False)
        metrics = _port(environ, spec.metrics_port_env, spec.metrics_port, allow_disabled=True)
        chosen.append((spec, port, metrics))

    owners: dict[int, str] = {}
    for spec, port, metrics in chosen:
        for value, env_name in ((port, spec.port_env), (metrics, spec.metrics_port_env)):
            if value < 0:
                continue
            if value in owners:
                raise PlanError(
                    f"port {value} is configured twice ({owners[value]} and {env_name}); "
                    f"set one of them to another port"
                )
            owners[value] = env_name

    # Every grpc service's address, for the services and the gateway that call them.
    addresses = {
        spec.addr_env: f"127.0.0.1:{port}" for spec, port, _ in chosen if spec.kind == "grpc"
    }
    launcher_only = {
        f"{spec.env_prefix}_{suffix}"
        for spec in registry
        for suffix in ("GRPC_PORT", "HTTP_PORT", "METRICS_PORT", "DATABASE_URL", "REDIS_URL")
    }

    planned = []
    for spec, port, metrics in chosen:
        dropped = launcher_only.union(_OWNED_BY_LAUNCHER)
        env = {k: v for k, v in environ.items() if k not in dropped}
        for key, default in {**COMMON_DEFAULTS, **spec.defaults}.items():
            env.setdefault(key, default)
        env.update(addresses)
        env["GRPC_PORT" if spec.kind == "grpc" else "HTTP_PORT"] = str(port)
        env["METRICS_PORT"] = str(metrics)
        # Per-service overrides (MARKET_DATABASE_URL=postgresql://...) else the embedded default.
        db_file = var_dir / "data" / f"{spec.name}.db"
        env["DATABASE_URL"] = (
            environ.get(f"{spec.env_prefix}_DATABASE_URL") or f"sqlite:///{db_file}"
        )
        redis_url = environ.get(f"{spec.env_prefix}_REDIS_URL")
        if redis_url:
            env["REDIS_URL"] = redis_url
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach var/logs/ as they happen
        planned.append(
            PlannedService(spec, port, metrics, env, var_dir / "logs" / f"{spec.name}.log")
        )
    return LaunchPlan(var_dir, tuple(planned), tuple(skipped))


def default_var_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("TRADEPLANE_VAR_DIR") or "var")
