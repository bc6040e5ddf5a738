"""`make observe` (tradeplane.platform.observe): the config it writes from endpoints.json, its
errors, and the real Prometheus it runs (shared with test_dashboards)."""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

import pytest
import yaml
from observability_support import RULES_DIR, STATIC_CONFIG, Observe, binary, run

from tradeplane.platform import observe as observe_cli
from tradeplane.testing import port_is_open

DEFAULT_ENDPOINTS = {
    "services": {
        "market": {"grpc": "127.0.0.1:50051", "metrics": "http://127.0.0.1:9101/metrics"},
        "execution": {"grpc": "127.0.0.1:50052", "metrics": "http://127.0.0.1:9102/metrics"},
        "wallets": {"grpc": "127.0.0.1:50053", "metrics": "http://127.0.0.1:9103/metrics"},
        "backtest": {"grpc": "127.0.0.1:50054", "metrics": "http://127.0.0.1:9104/metrics"},
        "gateway": {"http": "http://127.0.0.1:8080", "metrics": "http://127.0.0.1:9105/metrics"},
    },
    "web": "http://127.0.0.1:8080",
}


def _write_endpoints(var_dir: Path, document: dict[str, object]) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "endpoints.json").write_text(json.dumps(document))


def test_config_has_a_job_per_service_and_the_rules(tmp_path: Path) -> None:
    _write_endpoints(tmp_path, DEFAULT_ENDPOINTS)
    out = io.StringIO()
    assert observe_cli.main(["--var-dir", str(tmp_path), "--config-only"], out=out) == 0
    written = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in written["scrape_configs"]}
    assert jobs == {
        "market": ["127.0.0.1:9101"],
        "execution": ["127.0.0.1:9102"],
        "wallets": ["127.0.0.1:9103"],
        "backtest": ["127.0.0.1:9104"],
        "gateway": ["127.0.0.1:9105"],
    }
    assert written["rule_files"] == [f"{RULES_DIR}/*.yaml"]
    result = run(binary("promtool"), "check", "config", str(tmp_path / "prometheus/prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rule files found" in result.stdout


def test_static_config_is_what_observe_writes_for_the_default_ports(tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml documents the same scrape setup for the default ports."""
    _write_endpoints(tmp_path, DEFAULT_ENDPOINTS)
    observe_cli.main(["--var-dir", str(tmp_path), "--config-only"], out=io.StringIO())
    written = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    static = yaml.safe_load(STATIC_CONFIG.read_text())
    assert static["rule_files"] == ["rules/*.yaml"]
    del written["rule_files"], static["rule_files"]
    assert written == static


def test_services_without_metrics_are_left_out() -> None:
    doc = {"services": {"market": {"metrics": "http://h:1/metrics"}, "x": {"grpc": "h:2"}}}
    assert [t.job for t in observe_cli.scrape_targets(doc)] == ["market"]


def test_without_a_running_platform_it_says_to_run_make_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert observe_cli.main(["--var-dir", str(tmp_path)], out=io.StringIO()) == 2
    assert "`make up`" in capsys.readouterr().err


def test_without_prometheus_it_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_endpoints(tmp_path, DEFAULT_ENDPOINTS)
    args = ["--var-dir", str(tmp_path), "--prometheus", str(tmp_path / "no-such-binary")]
    assert observe_cli.main(args, out=io.StringIO()) == 2
    assert "apt-get install prometheus" in capsys.readouterr().err


def test_observe_runs_prometheus_scraping_the_service(observe: Observe) -> None:
    console = observe.output.read_text()
    assert f"Prometheus: {observe.api.url}" in console
    deadline = time.monotonic() + 20
    while not (targets := observe.api.get("/api/v1/targets")["data"]["activeTargets"]):
        assert time.monotonic() < deadline, "Prometheus discovered no target"
        time.sleep(0.2)
    assert [t["labels"]["job"] for t in targets] == ["market"]
    assert targets[0]["scrapeUrl"] == observe_market_url(observe)
    data_dir = observe.var_dir / "prometheus" / "data"
    assert (data_dir / "wal").is_dir() or any(data_dir.iterdir()), "no TSDB under var/prometheus"


def observe_market_url(observe: Observe) -> str:
    document = json.loads((observe.var_dir / "endpoints.json").read_text())
    return str(document["services"]["market"]["metrics"])


def test_observe_stops_prometheus_on_sigterm(observe: Observe) -> None:
    """Runs last in this module: SIGTERM to observe stops it (exit 0) and its Prometheus."""
    host, port = observe.api.url.removeprefix("http://").split(":")
    observe.proc.send_signal(signal.SIGTERM)
    assert observe.proc.wait(timeout=30) == 0
    assert not port_is_open(host, int(port)), "Prometheus still listens after observe stopped"
