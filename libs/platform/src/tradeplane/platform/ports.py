"""Checks that the ports the plan needs are free before anything starts."""

from __future__ import annotations

import socket

from tradeplane.platform.plan import LaunchPlan, PlanError


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``port``. The services bind 0.0.0.0; gRPC sets
    SO_REUSEPORT, so only a bind without it reliably detects a second instance."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(plan: LaunchPlan) -> None:
    """Raise PlanError naming every busy port and the variable that moves it."""
    busy = []
    for svc in plan.services:
        for port, env_name in (
            (svc.port, svc.spec.port_env),
            (svc.metrics_port, svc.spec.metrics_port_env),
        ):
            if port > 0 and not port_is_free(port):
                busy.append(f"  port {port} ({svc.name}) is in use: set {env_name} to a free port")
    if busy:
        raise PlanError(
            "cannot start: ports already in use (is tradeplane already running?)\n"
            + "\n".join(busy)
        )
