"""The Helm chart ships the rules and dashboards from deploy/prometheus and deploy/grafana as
files inside the chart (Helm reads nothing outside it); its copies must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from observability_support import DASHBOARDS_DIR, REPO, RULES_DIR

CHART_FILES = REPO / "deploy" / "helm" / "tradeplane" / "files"


@pytest.mark.parametrize(
    ("source", "copy", "pattern"),
    [
        (RULES_DIR, CHART_FILES / "rules", "*.yaml"),
        (DASHBOARDS_DIR, CHART_FILES / "dashboards", "*.json"),
    ],
    ids=["rules", "dashboards"],
)
def test_chart_copies_are_identical(source: Path, copy: Path, pattern: str) -> None:
    copies = {p.name: p.read_text() for p in copy.glob(pattern)}
    if not copies:
        pytest.skip(f"{copy.relative_to(REPO)} holds no {pattern} yet (the chart is not wired)")
    originals = {p.name: p.read_text() for p in source.glob(pattern)}
    assert copies == originals, (
        f"{copy.relative_to(REPO)} differs from {source.relative_to(REPO)}: copy them again"
    )
