"""What the launcher prints once the platform is up: addresses, commands to try, the web UI."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from tradeplane.platform.plan import LaunchPlan


def _display_path(path: Path) -> str:
    """Relative to the working directory when inside it (``var/logs/market.log``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def grpcurl_command() -> str:
    """``grpcurl`` when it is on PATH, else the copy `make up` installed into the venv."""
    if shutil.which("grpcurl"):
        return "grpcurl"
    candidate = Path(sys.executable).parent / "grpcurl"
    return _display_path(candidate) if candidate.exists() else "grpcurl"


def banner(plan: LaunchPlan) -> str:
    lines = [
        "",
        "tradeplane is up (embedded default: SQLite under "
        f"{_display_path(plan.var_dir / 'data')}, in-process cache, simulated feed, "
        "paper venue, auth disabled)",
        "",
    ]
    rows = [("service", "address", "metrics", "log")]
    for svc in plan.services:
        address = svc.address if svc.spec.kind == "grpc" else (svc.web_url or "")
        rows.append((svc.name, address, svc.metrics_url or "-", _display_path(svc.log_path)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        lines.append(
            "  "
            + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    if plan.skipped:
        names = ", ".join(s.spec.name for s in plan.skipped)
        lines.append(f"  (not installed, not started: {names})")

    market = plan.get("market")
    first_grpc = market or next((s for s in plan.services if s.spec.kind == "grpc"), None)
    if first_grpc is not None:
        g = grpcurl_command()
        addr = first_grpc.address
        lines += [
            "",
            "Try:",
            f"  {g} -plaintext {addr} list",
            f"  {g} -plaintext {addr} grpc.health.v1.Health/Check",
        ]
        if market is not None:
            ticks = shlex.quote('{"product_ids":["BTC-USD"]}')
            lines += [
                f"  {g} -plaintext {addr} trading.market.v1.MarketService/ListProducts",
                f"  {g} -plaintext -d {ticks} {addr} trading.market.v1.MarketService/StreamTicks",
            ]
        if first_grpc.metrics_url:
            lines.append(f"  curl -s {first_grpc.metrics_url} | grep grpc_server_handled_total")
    web = next((s.web_url for s in plan.services if s.web_url), None)
    if web:
        lines += ["", f"Web UI: {web}"]
    lines += [
        "",
        f"Addresses written to {_display_path(plan.endpoints_path)}. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)
