"""``var/endpoints.json``: where the running platform's processes listen, for scripts.

Written atomically once every process is SERVING; removed when the platform stops.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradeplane.platform.plan import LaunchPlan


def render(plan: LaunchPlan, pids: Mapping[str, int], *, launcher_pid: int) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = {}
    web = None
    for svc in plan.services:
        entry: dict[str, Any] = {}
        if svc.spec.kind == "grpc":
            entry["grpc"] = svc.address
        else:
            entry["http"] = svc.web_url
            web = svc.web_url
        entry["metrics"] = svc.metrics_url
        entry["pid"] = pids.get(svc.name)
        entry["log"] = str(svc.log_path)
        services[svc.name] = entry
    return {
        "services": services,
        "web": web,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "launcher_pid": launcher_pid,
    }


def write(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)  # readers never see half a file


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
