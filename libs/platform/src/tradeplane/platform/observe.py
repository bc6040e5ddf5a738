"""``make observe`` (``python -m tradeplane.platform.observe``): a real Prometheus scraping the
platform that ``make up`` runs, with the alert and recording rules of deploy/prometheus/rules.

It reads ``var/endpoints.json`` (written by ``make up``), writes ``var/prometheus/prometheus.yml``
with one scrape job per service (job = service name, as the dashboards and alerts expect) and
runs Debian's ``/usr/bin/prometheus`` on 127.0.0.1:9090 with its data under
``var/prometheus/data`` until Ctrl-C. The config is written as JSON, which is valid YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from tradeplane.platform import endpoints
from tradeplane.platform.plan import default_var_dir

DEFAULT_LISTEN = "127.0.0.1:9090"
DEFAULT_SCRAPE_INTERVAL = "5s"
READY_TIMEOUT_SECONDS = 60.0
INSTALL_HINT = "install it with `apt-get install prometheus` (Debian package)"


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port
    scheme: str
    metrics_path: str


class ObserveError(Exception):
    """A problem the user can fix; the message says how."""


def scrape_targets(document: Mapping[str, Any]) -> list[ScrapeTarget]:
    """One target per service of an endpoints.json document that has a metrics URL."""
    services = document.get("services")
    if not isinstance(services, Mapping):
        raise ObserveError("endpoints.json has no `services` object")
    found = []
    for name, entry in sorted(services.items()):
        url = entry.get("metrics") if isinstance(entry, Mapping) else None
        if not url:
            continue
        parts = urlsplit(str(url))
        if not parts.netloc:
            raise ObserveError(f"service {name}: metrics URL {url!r} has no host:port")
        found.append(ScrapeTarget(name, parts.netloc, parts.scheme or "http", parts.path or "/"))
    if not found:
        raise ObserveError("endpoints.json lists no service with a metrics URL")
    return found


def render_config(
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[str],
    *,
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
    evaluation_interval: str | None = None,
) -> dict[str, Any]:
    """The prometheus.yml document (see deploy/prometheus/prometheus.yml for the same shape
    with the default ports)."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval or scrape_interval,
            "external_labels": {"platform": "tradeplane-embedded"},
        },
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": t.job,
                "scheme": t.scheme,
                "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [t.address]}],
            }
            for t in targets
        ],
    }


def find_rules_dir(start: Path | None = None) -> Path:
    """deploy/prometheus/rules of the checkout: from the working directory (``make observe``
    runs in the repo root) or else from this file's location (an editable install)."""
    candidates = [(start or Path.cwd()) / "deploy" / "prometheus" / "rules"]
    candidates += [p / "deploy" / "prometheus" / "rules" for p in Path(__file__).parents]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise ObserveError("deploy/prometheus/rules not found: run from the repository root")


def find_prometheus(explicit: str | None) -> str:
    binary = explicit or shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        raise ObserveError(f"no Prometheus binary at {binary}; {INSTALL_HINT}")
    return binary


def prometheus_command(binary: str, config: Path, data_dir: Path, listen: str) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={listen}",
        "--web.enable-lifecycle",  # POST /-/reload after editing rules
        "--storage.tsdb.retention.time=7d",
    ]


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise ObserveError(f"prometheus exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ObserveError(f"prometheus not ready at {url} after {timeout:.0f}s (log: {log})")
        time.sleep(0.2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tradeplane.platform.observe",
        description="Run a real Prometheus scraping the `make up` platform, rules loaded.",
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=None,
        help="the platform's var dir holding endpoints.json (env TRADEPLANE_VAR_DIR; ./var)",
    )
    parser.add_argument(
        "--listen",
        default=os.environ.get("PROMETHEUS_LISTEN", DEFAULT_LISTEN),
        help=f"Prometheus web address (env PROMETHEUS_LISTEN; {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--scrape-interval",
        default=os.environ.get("PROMETHEUS_SCRAPE_INTERVAL", DEFAULT_SCRAPE_INTERVAL),
        help="scrape and rule evaluation interval (env PROMETHEUS_SCRAPE_INTERVAL; 5s)",
    )
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("PROMETHEUS_BIN"),
        help="the prometheus binary (env PROMETHEUS_BIN; default: on PATH or /usr/bin)",
    )
    parser.add_argument("--rules-dir", type=Path, default=None, help="deploy/prometheus/rules")
    parser.add_argument("--config-only", action="store_true", help="write prometheus.yml and exit")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    var_dir: Path = (args.var_dir or default_var_dir()).resolve()
    try:
        return _run(args, var_dir, out)
    except ObserveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, var_dir: Path, out: TextIO) -> int:
    document = endpoints.read(var_dir / "endpoints.json")
    if document is None:
        raise ObserveError(
            f"{var_dir / 'endpoints.json'} does not exist: start the platform first with "
            "`make up` (in another terminal)"
        )
    targets = scrape_targets(document)
    rules_dir = (args.rules_dir or find_rules_dir()).resolve()
    prom_dir = var_dir / "prometheus"
    config_path = prom_dir / "prometheus.yml"
    config = render_config(
        targets, [str(rules_dir / "*.yaml")], scrape_interval=args.scrape_interval
    )
    write_config(config_path, config)
    print(f"wrote {config_path} ({len(targets)} scrape jobs)", file=out, flush=True)
    if args.config_only:
        return 0

    binary = find_prometheus(args.prometheus)
    data_dir = prom_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = prom_dir / "prometheus.log"
    url = f"http://{args.listen}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            prometheus_command(binary, config_path, data_dir, args.listen),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop Prometheus gracefully
        )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        wait_ready(url, proc, log_path, READY_TIMEOUT_SECONDS)
        print(f"Prometheus: {url}  (alerts: {url}/alerts, targets: {url}/targets)", file=out)
        for t in targets:
            print(f"  scraping {t.job:<10} {t.scheme}://{t.address}{t.metrics_path}", file=out)
        print(f"  rules {rules_dir}/*.yaml; data {data_dir}; log {log_path}", file=out)
        print("Ctrl-C stops it.", file=out, flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
