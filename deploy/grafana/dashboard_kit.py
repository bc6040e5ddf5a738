"""Small builders for Grafana dashboard JSON (schemaVersion 39, Grafana 10.4+ / 11).

Every panel and query variable uses the `${datasource}` variable, never a datasource uid, so a
dashboard imports into any Grafana whatever its Prometheus is called. Panels are laid out left
to right in rows of 24 grid units; `Dashboard.row()` starts a new row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


def target(expr: str, legend: str = "__auto", ref_id: str = "A") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref_id,
    }


def targets(*queries: tuple[str, str]) -> list[dict[str, Any]]:
    """(expr, legend) pairs as targets A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def timeseries(
    title: str,
    queries: list[dict[str, Any]],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    stack: bool = False,
    min_zero: bool = True,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if min_zero:
        defaults["min"] = 0
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": queries,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (width, height),
    }


def stat(
    title: str,
    expr: str,
    *,
    unit: str = "short",
    description: str = "",
    width: int = 4,
    height: int = 4,
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    legend: str = "__auto",
    text_mode: str = "auto",
) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in (thresholds or [(None, "green")])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{**target(expr, legend), "instant": True, "range": False}],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
        "_size": (width, height),
    }


def value_map(mapping: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """{"1": ("UP", "green")} -> a Grafana value mapping."""
    options = {
        value: {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(mapping.items())
    }
    return [{"type": "value", "options": options}]


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value variable from `label_values(...)`; "All" means the regex `.*`."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[dict[str, Any]] = field(default_factory=list)
    _panels: list[dict[str, Any]] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def row(self, title: str) -> Dashboard:
        self._newline()
        self._panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self._y},
            }
        )
        self._y += 1
        return self

    def add(self, *panels: dict[str, Any]) -> Dashboard:
        for panel in panels:
            width, height = panel.pop("_size")
            if self._x + width > GRID_WIDTH:
                self._newline()
            panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
            self._x += width
            self._row_height = max(self._row_height, height)
            self._panels.append(panel)
        return self

    def _newline(self) -> None:
        self._y += self._row_height
        self._x, self._row_height = 0, 0

    def to_json(self) -> dict[str, Any]:
        panels = [{"id": i, **panel} for i, panel in enumerate(self._panels, start=1)]
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["tradeplane"],
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "annotations": {"list": []},
            "links": [
                {
                    "title": "Tradeplane dashboards",
                    "type": "dashboards",
                    "tags": ["tradeplane"],
                    "asDropdown": True,
                    "includeVars": False,
                    "keepTime": True,
                }
            ],
            "templating": {"list": [datasource_variable(), *self.variables]},
            "panels": panels,
        }
