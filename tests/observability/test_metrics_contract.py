"""Every metric a dashboard or an alert uses is named in docs/observability.md's metrics
contract, so the services that implement them later export exactly those names."""

from __future__ import annotations

import re

from observability_support import all_rules, contract_metrics, dashboards, panel_queries

METRIC = re.compile(
    r"(?<![\w:])((?:grpc_server|tradeplane|market|execution|wallets|backtest|gateway)_\w+)"
)
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def _used() -> dict[str, set[str]]:
    """metric name -> where it is used."""
    exprs = [
        (f"{name}: {where}", expr)
        for name, d in dashboards().items()
        for where, expr in panel_queries(d)
    ]
    exprs += [(f"{r.file}: {r.name}", r.body["expr"]) for r in all_rules()]
    used: dict[str, set[str]] = {}
    for where, expr in exprs:
        for name in METRIC.findall(expr):
            used.setdefault(HISTOGRAM_SERIES.sub("", name), set()).add(where)
    return used


def test_every_metric_the_dashboards_and_alerts_use_is_in_thecontract_metrics() -> None:
    used = _used()
    missing = {
        name: sorted(where) for name, where in used.items() if name not in contract_metrics()
    }
    assert not missing, missing


def test_every_metric_in_the_contract_is_shown_or_alerted_on() -> None:
    unused = contract_metrics() - set(_used())
    assert not unused, sorted(unused)
