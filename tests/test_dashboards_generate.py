"""The generated Grafana dashboards: committed JSON is current, the structure follows Grafana's
dashboard model (schemaVersion, datasource variable, grid), every catalogue metric is shown, and
the ConfigMaps carry what the Grafana sidecar looks for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline import catalogue as cat
from driftline.alertmanager.rules import rule_groups
from driftline.alertmanager.rules_config import RulesConfig
from driftline.cli import main as driftline_main
from driftline.dashboards.builder import Grid, timeseries
from driftline.dashboards.generate import DASHBOARD_DIR, dashboards, file_name, render
from driftline.dashboards.provision import configmaps_yaml, folder_uid

DS = {"type": "prometheus", "uid": "${datasource}"}


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def _exprs(dash: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in _panels(dash) for t in p.get("targets", [])]
    out += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    out += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def test_committed_json_is_what_the_generator_makes(tmp_path: Path) -> None:
    assert driftline_main(["dashboards", "generate", "--output-dir", str(tmp_path)]) == 0
    for uid in dashboards():
        generated = (tmp_path / file_name(uid)).read_text()
        committed = (DASHBOARD_DIR / file_name(uid)).read_text()
        assert committed == generated, f"dashboards/{file_name(uid)} is stale: run " \
                                       "`driftline dashboards generate --output-dir dashboards`"
        assert json.loads(committed)["uid"] == uid


def test_dashboard_model_basics() -> None:
    ds = dashboards()
    assert set(ds) == {"driftline-fleet", "driftline-model", "driftline-sidecar"}
    for uid, d in ds.items():
        assert d["uid"] == uid and len(uid) <= 40
        assert 39 <= d["schemaVersion"] <= 41
        assert "driftline" in d["tags"]
        variables = d["templating"]["list"]
        assert variables[0] == {**variables[0], "type": "datasource", "name": "datasource",
                                "query": "prometheus"}
        for v in variables[1:]:
            assert v["datasource"] == DS and v["refresh"] == 2
        ids = [p["id"] for p in _panels(d)]
        assert len(ids) == len(set(ids))
        for p in _panels(d):
            if p["type"] == "row":
                continue
            assert p["datasource"] == DS, p["title"]
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert t["datasource"] == DS and t["refId"] and t["expr"].strip()


def test_panels_fit_the_grid_without_overlap() -> None:
    for d in dashboards().values():
        cells: dict[tuple[int, int], str] = {}
        for p in _panels(d):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_model_variables_are_chained() -> None:
    variables = {v["name"]: v for v in dashboards()["driftline-model"]["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "model_name", "model_version", "feature"]
    assert variables["model_name"]["multi"] is False
    assert '$model_name' in variables["model_version"]["definition"]
    assert '$model_name' in variables["feature"]["definition"]
    assert '$model_version' in variables["feature"]["definition"]
    assert variables["feature"]["includeAll"] and variables["feature"]["multi"]


def test_group_labels_become_chained_variables_that_scope_every_query() -> None:
    """Dashboards had no cluster/namespace variables, so same-named models of different
    namespaces were drawn as one."""
    cfg = RulesConfig(group_labels=("cluster", "namespace"))
    scope = 'cluster=~"$cluster", namespace=~"$namespace"'
    for uid, dash in dashboards(cfg).items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert list(variables)[1:3] == ["cluster", "namespace"], uid
        assert "$cluster" not in variables["cluster"]["definition"]
        assert '{cluster=~"$cluster"}' in variables["namespace"]["definition"]
        for v in list(variables.values())[3:]:
            if v["type"] == "query":
                assert scope in v["definition"], (uid, v["name"])
        exprs = [t["expr"] for p in _panels(dash) for t in p.get("targets", [])]
        filtered = [e for e in exprs if '=~"$' in e]
        assert filtered, uid
        for e in filtered:  # every selector that filters by a variable is scoped
            for sel in re.findall(r"\{[^{}]*\}", e):
                if '=~"$' in sel:
                    assert sel.startswith("{" + scope), (uid, e)
    assert all("namespace" not in v["name"] for d in dashboards(RulesConfig(group_labels=()))
               .values() for v in d["templating"]["list"])


def test_every_catalogue_metric_is_on_a_dashboard_and_nothing_else_is() -> None:
    text = "\n".join(e for d in dashboards().values() for e in _exprs(d))
    for spec in cat.ALL:
        assert spec.name in text, f"{spec.name} is on no dashboard"
    known = {s.name for s in cat.ALL} | {s.name + x for s in cat.ALL for x in ("_bucket", "_sum", "_count")}
    for name in re.findall(r"(?<![:\w])(driftline_\w+)", text):
        assert name in known, f"{name} is not in the catalogue"
    recorded = {r["record"] for g in rule_groups(RulesConfig()) for r in g["rules"] if "record" in r}
    used = set(re.findall(r"\b(\w+:\w+:\w+)\b", text))
    assert used and used <= recorded


def test_required_views_exist() -> None:
    ds = dashboards()
    fleet, model, sidecar = ds["driftline-fleet"], ds["driftline-model"], ds["driftline-sidecar"]
    assert any('ALERTS{alertname=~"Driftline.*"' in e for e in _exprs(fleet))
    heatmaps = [p for p in _panels(model) if p["type"] == "heatmap"]
    assert {h["title"] for h in heatmaps} >= {"Reference quantile ranks: $feature", "Prediction confidence"}
    for h in heatmaps:
        assert all(t["format"] == "heatmap" and "sum by (le)" in t["expr"] for t in h["targets"])
    assert [h["repeat"] for h in heatmaps if "quantile" in h["title"]] == ["feature"]
    (cp,) = [a for a in model["annotations"]["list"] if a.get("name") == "Change points"]
    assert cp["useValueForTime"] and "driftline_change_point_timestamp_seconds" in cp["expr"]
    titles = [p["title"] for p in _panels(model)]
    assert "Default: estimated and realised accuracy" in titles
    assert "Canary: estimated and realised accuracy" in titles
    side = [p for p in _panels(model) if p["title"].startswith(("Default:", "Canary:"))]
    assert len({p["gridPos"]["y"] for p in side}) == 2  # default and canary on the same rows
    sidecar_exprs = "\n".join(_exprs(sidecar))
    for needle in ("up{", "driftline_queue_depth", "histogram_quantile(0.99", "driftline_export_errors_total",
                   "driftline_records_dropped_total"):
        assert needle in sidecar_exprs


def test_drift_range_of_the_rules_config_reaches_the_panels() -> None:
    d = dashboards(RulesConfig(drift_range="6h"))["driftline-model"]
    assert any("model_feature:driftline_feature_psi:fleet6h" in e for e in _exprs(d))


def test_configmaps_for_the_grafana_sidecar() -> None:
    docs = list(yaml.safe_load_all(configmaps_yaml(dashboards(), namespace="monitoring", folder="ML")))
    assert [d["metadata"]["name"] for d in docs] == list(dashboards())
    for d in docs:
        assert d["apiVersion"] == "v1" and d["kind"] == "ConfigMap"
        assert d["metadata"]["namespace"] == "monitoring"
        assert d["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert d["metadata"]["annotations"]["grafana_folder"] == "ML"
        ((key, text),) = d["data"].items()
        assert key == f"{d['metadata']['name']}.json"
        assert json.loads(text) == dashboards()[d["metadata"]["name"]]


def test_configmap_cli_prints_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert driftline_main(["dashboards", "configmap"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert len(docs) == 3 and "namespace" not in docs[0]["metadata"]


def test_builder_assigns_ref_ids_and_wraps_rows() -> None:
    g = Grid()
    g.row("A")
    a = g.place(timeseries("one", [{"expr": "x"}, {"expr": "y"}]), w=16)
    b = g.place(timeseries("two", [{"expr": "z"}]), w=16)
    assert [t["refId"] for t in a["targets"]] == ["A", "B"]
    assert a["gridPos"] == {"h": 8, "w": 16, "x": 0, "y": 1}
    assert b["gridPos"] == {"h": 8, "w": 16, "x": 0, "y": 9}
    assert folder_uid("Driftline / ML") == "driftline-ml"
    assert render({"b": 1, "a": 2}) == '{\n  "a": 2,\n  "b": 1\n}\n'
