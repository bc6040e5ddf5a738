"""``python -m tradeplane.platform up | status``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tradeplane.platform import endpoints
from tradeplane.platform.console import banner
from tradeplane.platform.plan import LaunchPlan, PlanError, build_plan, default_var_dir
from tradeplane.platform.ports import check_ports_free
from tradeplane.platform.readiness import SERVING, grpc_health, http_listening
from tradeplane.platform.registry import SERVICES, ServiceSpec
from tradeplane.platform.supervisor import Interrupted, LaunchError, Supervisor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tradeplane.platform",
        description="Run every tradeplane service on one machine (the embedded default).",
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=None,
        help="where SQLite files, logs and endpoints.json go (env TRADEPLANE_VAR_DIR; ./var)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything in the foreground; Ctrl-C stops it")
    up.add_argument(
        "--start-timeout",
        type=float,
        default=float(os.environ.get("TRADEPLANE_START_TIMEOUT", "60")),
        help="seconds each service may take to report SERVING (env TRADEPLANE_START_TIMEOUT)",
    )
    sub.add_parser("status", help="health-check the platform described by endpoints.json")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    registry: Sequence[ServiceSpec] = SERVICES,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    var_dir: Path = args.var_dir or default_var_dir()
    if args.command == "status":
        return status(var_dir.resolve(), out)
    try:
        plan = build_plan(registry, os.environ, var_dir)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return up(plan, out, start_timeout=args.start_timeout)


def up(plan: LaunchPlan, out: TextIO, *, start_timeout: float) -> int:
    for skipped in plan.skipped:
        print(f"skipping {skipped.spec.name}: {skipped.reason}", file=out, flush=True)
    if not plan.services:
        print("error: no service is installed; run `make up` (it installs them)", file=sys.stderr)
        return 2
    other = _running_launcher(plan)
    if other is not None:
        print(
            f"error: tradeplane already runs from {plan.var_dir} (launcher pid {other}); "
            "stop it first, or use another --var-dir / TRADEPLANE_VAR_DIR",
            file=sys.stderr,
        )
        return 2
    try:
        check_ports_free(plan)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (plan.var_dir / "data").mkdir(parents=True, exist_ok=True)
    endpoints.remove(plan.endpoints_path)

    sup = Supervisor(out, start_timeout=start_timeout)
    sup.install_signal_handlers()
    code = 0
    try:
        for svc in plan.services:
            for dep in svc.spec.depends_on:
                child = sup.find(dep)
                if child is not None and not child.ready:
                    sup.wait_ready(child)
            print(f"starting {svc.name} ({svc.spec.module}) ...", file=out, flush=True)
            sup.start(svc)
        for child in sup.children:
            if not child.ready:
                sup.wait_ready(child)
        pids = {c.name: c.proc.pid for c in sup.children}
        endpoints.write(plan.endpoints_path, endpoints.render(plan, pids, launcher_pid=os.getpid()))
        print(banner(plan), file=out, flush=True)
        sup.watch()
    except Interrupted:
        pass
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in exc.details:
            print(f"  | {line}", file=sys.stderr)
        code = 1
    finally:
        endpoints.remove(plan.endpoints_path)
        clean = sup.stop_all()
    if code == 0 and not clean:
        code = 1
    print("stopped." if code == 0 else "stopped (with errors).", file=out, flush=True)
    return code


def _running_launcher(plan: LaunchPlan) -> int | None:
    """The pid of a live launcher using the same var dir (its SQLite files, its
    endpoints.json), which a second one must not touch even on other ports."""
    doc = endpoints.read(plan.endpoints_path)
    pid = doc.get("launcher_pid") if doc else None
    if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
        return pid
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(var_dir: Path, out: TextIO) -> int:
    """Print each service's health; 0 when all are SERVING, 1 otherwise, 3 when not running."""
    path = var_dir / "endpoints.json"
    doc = endpoints.read(path)
    if doc is None:
        print(f"tradeplane is not running (no {path})", file=out)
        return 3
    pid = doc.get("launcher_pid")
    if isinstance(pid, int) and not _alive(pid):
        print(f"tradeplane is not running (launcher pid {pid} is gone; {path} is stale)", file=out)
        return 3
    healthy = True
    for name, entry in doc.get("services", {}).items():
        if entry.get("grpc"):
            where, state = entry["grpc"], grpc_health(entry["grpc"], timeout=2.0)
        else:
            where = entry.get("http", "")
            port = int(where.rstrip("/").rsplit(":", 1)[-1])
            state = http_listening(port)
        healthy = healthy and state == SERVING
        print(f"{name:<10} {where:<24} {state:<12} pid {entry.get('pid')}", file=out)
    if doc.get("web"):
        print(f"web: {doc['web']}", file=out)
    return 0 if healthy else 1
