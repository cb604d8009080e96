"""A small builder for Grafana dashboard JSON (schemaVersion 39, Grafana 10.4–11).

Why not grafana-foundation-sdk: its PyPI default is the Grafana 10.1 build, the 11.x builds are
alpha and must be pinned per Grafana version with an epoch (``==1769699379!11.6.0``), and we use
a handful of panel types. Plain dicts from a few functions keep the generated JSON stable,
reviewable in diffs and free of a dependency that moves with every Grafana release.

Every panel and target points at the ``${datasource}`` variable, so one dashboard works with any
Prometheus-compatible data source (Prometheus, Thanos, Mimir, an OTel-fed Prometheus).

>>> g = Grid()
>>> p = g.place(timeseries("PSI", [target("driftline_feature_psi")]), w=12)
>>> p["gridPos"], p["targets"][0]["refId"]
({'h': 8, 'w': 12, 'x': 0, 'y': 0}, 'A')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DS", "SCHEMA_VERSION", "Grid", "bargauge", "dashboard", "datasource_var", "heatmap",
           "query_var", "row", "stat", "state_timeline", "table", "target", "thresholds", "timeseries"]

SCHEMA_VERSION = 39
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
Json = dict[str, Any]


def target(expr: str, legend: str = "", *, fmt: str | None = None, instant: bool = False) -> Json:
    """One PromQL query of a panel (``refId`` is assigned by the panel)."""
    t: Json = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend or "__auto",
               "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def thresholds(*steps: tuple[float, str], base: str = "green") -> Json:
    """Absolute thresholds: ``base`` below the first step, then each (value, colour)."""
    return {"mode": "absolute",
            "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in steps)]}


def _panel(kind: str, title: str, targets: Sequence[Json], *, description: str = "",
           unit: str = "none", thresholds_: Json | None = None, min_: float | None = None,
           max_: float | None = None, custom: Json | None = None, options: Json | None = None,
           mappings: list[Json] | None = None, repeat: str | None = None) -> Json:
    defaults: Json = {"unit": unit, "thresholds": thresholds_ or thresholds(), "mappings": mappings or []}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if custom:
        defaults["custom"] = custom
    defaults["color"] = {"mode": "thresholds" if kind in ("stat", "bargauge") else "palette-classic"}
    p: Json = {"type": kind, "title": title, "description": description, "datasource": DS,
               "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options or {},
               "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)]}
    if repeat:
        p["repeat"] = repeat
        p["repeatDirection"] = "h"
        p["maxPerRow"] = 4
    return p


_LEGEND: Json = {"displayMode": "list", "placement": "bottom", "showLegend": True}
_TOOLTIP: Json = {"mode": "multi", "sort": "desc"}


def timeseries(title: str, targets: Sequence[Json], *, unit: str = "none", stack: bool = False,
               **kw: Any) -> Json:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    if kw.get("thresholds_") is not None:
        custom["thresholdsStyle"] = {"mode": "line"}
    return _panel("timeseries", title, targets, unit=unit, custom=custom,
                  options={"legend": _LEGEND, "tooltip": _TOOLTIP}, **kw)


def stat(title: str, targets: Sequence[Json], *, unit: str = "none", **kw: Any) -> Json:
    return _panel("stat", title, targets, unit=unit, options={
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "textMode": "auto",
        "orientation": "auto"}, **kw)


def bargauge(title: str, targets: Sequence[Json], *, unit: str = "none", **kw: Any) -> Json:
    return _panel("bargauge", title, targets, unit=unit, options={
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True}, **kw)


def heatmap(title: str, targets: Sequence[Json], *, unit: str = "none", **kw: Any) -> Json:
    """A heatmap of pre-bucketed Prometheus histogram data (``format: heatmap`` targets)."""
    return _panel("heatmap", title, targets, custom={"hideFrom": {"legend": False, "tooltip": False,
                                                                  "viz": False}}, options={
        "calculate": False, "cellGap": 1, "yAxis": {"axisPlacement": "left", "unit": unit},
        "rowsFrame": {"layout": "auto"}, "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64,
                                                   "exponent": 0.5, "fill": "dark-orange"},
        "legend": {"show": True}, "tooltip": {"mode": "single", "yHistogram": True},
        "cellValues": {"unit": "short"}}, **kw)


def state_timeline(title: str, targets: Sequence[Json], *, mappings: list[Json], **kw: Any) -> Json:
    return _panel("state-timeline", title, targets, mappings=mappings, options={
        "mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.9,
        "legend": _LEGEND, "tooltip": {"mode": "single", "sort": "none"}}, **kw)


def table(title: str, targets: Sequence[Json], **kw: Any) -> Json:
    return _panel("table", title, targets, options={"showHeader": True, "cellHeight": "sm",
                                                    "footer": {"show": False, "reducer": ["sum"]}},
                  **kw)


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


class Grid:
    """Places panels left to right on Grafana's 24-column grid; ``row`` starts a new line."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._h = 0

    def _newline(self) -> None:
        self._y += self._h
        self._x = 0
        self._h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({**row(title), "id": len(self.panels) + 1,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y}})
        self._y += 1

    def place(self, panel: Json, w: int = 12, h: int = 8) -> Json:
        if self._x + w > 24:
            self._newline()
        panel = {"id": len(self.panels) + 1, **panel,
                 "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y}}
        self.panels.append(panel)
        self._x += w
        self._h = max(self._h, h)
        return panel


def datasource_var() -> Json:
    return {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
            "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [],
            "refresh": 1, "regex": "", "skipUrlSync": False}


def query_var(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True) -> Json:
    """A ``label_values`` variable, refreshed when the time range changes (refresh 2)."""
    v: Json = {"type": "query", "name": name, "label": label, "datasource": DS, "definition": query,
               "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
               "current": {}, "hide": 0, "includeAll": include_all, "multi": multi, "options": [],
               "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1}
    if include_all:
        v["allValue"] = ".*"
    return v


def dashboard(uid: str, title: str, description: str, variables: list[Json], panels: list[Json], *,
              annotations: Sequence[Json] = (), tags: Sequence[str] = ("driftline",)) -> Json:
    """The dashboard document (what ``POST /api/dashboards/db`` takes as ``dashboard``)."""
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
               "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
               "type": "dashboard"}
    return {
        "uid": uid, "title": title, "description": description, "tags": list(tags),
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "timezone": "browser", "time": {"from": "now-6h", "to": "now"}, "refresh": "1m",
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "links": [{"type": "dashboards", "title": "Driftline", "tags": ["driftline"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables},
        "panels": panels,
    }
