"""Helpers for the observability tests: the Prometheus binaries, the rule files, the
dashboards, docs/operations.md anchors, and PromQL through Prometheus's HTTP API."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "deploy" / "prometheus" / "tests"
STATIC_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

INSTALL_HINT = "apt-get install prometheus"

# Grafana's built-in variables, as Grafana would expand them for a 1-hour view. Our own
# variables ($service, $instance, ...) all mean "All" (their allValue, `.*`).
BUILTIN_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}
OWN_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


def binary(name: str) -> str:
    """/usr/bin/<name> from Debian's `prometheus` package (or one on PATH); skip without it."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        pytest.skip(f"{name} is not installed; install it with `{INSTALL_HINT}` (Debian package)")
    return found


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


def rule_tests() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yaml"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("alert") or self.body.get("record"))

    @property
    def is_alert(self) -> bool:
        return "alert" in self.body


def all_rules() -> list[Rule]:
    return [
        Rule(path.name, group["name"], rule)
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, expr) for every query target of every panel."""
    return [
        (f"{panel['title']} / {t['refId']}", t["expr"])
        for panel in panels(dashboard)
        for t in panel.get("targets", [])
    ]


def expand(expr: str) -> str:
    """A panel expression as Grafana sends it: built-ins expanded, our variables at "All"."""
    for name, value in BUILTIN_VARIABLES.items():
        expr = expr.replace(name, value)
    return OWN_VARIABLE.sub(".*", expr)


def contract_metrics() -> set[str]:
    """The metric names in docs/observability.md's "Metrics contract" tables."""
    text = (REPO / "docs" / "observability.md").read_text()
    section = text[text.index("## Metrics contract") :]
    return set(re.findall(r"^\| `(\w+)` \|", section, re.M))


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def doc_anchors(path: Path) -> set[str]:
    text = path.read_text()
    anchors = {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}
    anchors |= set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
    return anchors


class PromApi:
    """Prometheus's HTTP API (instant queries, rules, targets) over plain urllib."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as reply:
                doc: dict[str, Any] = json.load(reply)
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            doc = json.load(exc)
        return doc

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)

    def result(self, expr: str) -> list[dict[str, Any]]:
        reply = self.query(expr)
        assert reply["status"] == "success", f"{expr}\n-> {reply.get('error')}"
        data: list[dict[str, Any]] = reply["data"]["result"]
        return data


@dataclass
class MarketProcess:
    proc: subprocess.Popen[bytes]
    grpc_address: str
    metrics_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Observe:
    """A running `python -m tradeplane.platform.observe` and its Prometheus."""

    proc: subprocess.Popen[bytes]
    api: PromApi
    var_dir: Path
    output: Path


@dataclass
class PlatformProcess:
    """A running `python -m tradeplane.platform up` and its endpoints.json."""

    proc: subprocess.Popen[bytes]
    var_dir: Path
    output: Path
    endpoints: dict[str, Any]

    def service(self, name: str) -> dict[str, Any]:
        services: dict[str, dict[str, Any]] = self.endpoints["services"]
        return services[name]

    def console(self) -> str:
        return self.output.read_text(errors="replace")


class BackgroundLoop:
    """An asyncio loop in a daemon thread, for async fakes and clients next to sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
