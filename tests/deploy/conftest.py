"""Fixtures for the chart tests: the chart loaded and rendered offline with the Helm SDK.

helm-python-sdk binds Helm's Go SDK (libhelm_c) with ctypes: no helm binary, no cluster, no
network. Rendering validates the values against values.schema.json as `helm install` does.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

try:
    import helm_python as helm
except ImportError:  # the tests that need it skip with this reason
    helm = None
HELM_MISSING = "helm-python-sdk is not installed (requirements-dev.txt)"

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "deploy" / "helm" / "tradeplane"
VALUES_FILES = {
    "default": CHART_DIR / "ci" / "default-values.yaml",
    "all-on": CHART_DIR / "ci" / "all-on-values.yaml",
}
RELEASE = "tp"
NAMESPACE = "trading"


@dataclass(frozen=True)
class Rendered:
    """Every object one render produced, plus the values that produced it."""

    name: str
    values: dict[str, Any]
    objects: tuple[dict[str, Any], ...]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for o in self.of_kind(kind):
            if o["metadata"]["name"] == name:
                return o
        raise KeyError(f"{kind}/{name} not rendered")

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def load_values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES_FILES[name].read_text()) or {}
    return loaded


def _need_helm() -> None:
    if helm is None:
        pytest.skip(HELM_MISSING)


def render_chart(
    chart_dir: pathlib.Path, values: dict[str, Any], *, upgrade: bool = False
) -> Rendered:
    _need_helm()
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(
            values=values,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    notes = ""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(name="", values=values, objects=tuple(objects), notes=notes)


@functools.cache
def _rendered(name: str) -> Rendered:
    values = load_values(name)
    result = render_chart(CHART_DIR, values)
    return Rendered(name=name, values=values, objects=result.objects, notes=result.notes)


@pytest.fixture(params=sorted(VALUES_FILES))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with each ci/ values file."""
    return _rendered(request.param)


@pytest.fixture
def rendered_default() -> Rendered:
    return _rendered("default")


@pytest.fixture
def rendered_all_on() -> Rendered:
    return _rendered("all-on")


@pytest.fixture
def render() -> Callable[..., Rendered]:
    return lambda values, chart_dir=CHART_DIR, **kw: render_chart(chart_dir, values, **kw)


@pytest.fixture
def chart_dir() -> pathlib.Path:
    return CHART_DIR


@pytest.fixture
def ci_values() -> Callable[[str], dict[str, Any]]:
    """ci/<name>-values.yaml as a dict (a fresh copy each call)."""
    return load_values


@pytest.fixture
def rendered_by_name() -> Callable[[str], Rendered]:
    return _rendered


@pytest.fixture
def chart() -> Iterator[Any]:
    _need_helm()
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded
