"""Generated Prometheus rules, PrometheusRule, promtool tests and Alertmanager config: committed
copies are current, promtool and amtool accept them, the generated promtool tests pass (and
fail when a rule changes under them), and the config object validates its input."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from driftline import catalogue as cat
from driftline.alertmanager.generate import PACKAGE_DIR, RULES_FILE, render_files, write_files
from driftline.alertmanager.rules import names, rule_groups
from driftline.alertmanager.rules_config import (
    DEFAULT_ALERTS,
    AlertSettings,
    RulesConfig,
    Thresholds,
    config_from_mapping,
    load_rules_config,
)
from driftline.alertmanager.rules_tests import render_template
from driftline.cli import main as driftline_main
from driftline.errors import ConfigError
from driftline_demo.stack import StackError, find_binary

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    try:
        return find_binary(name)
    except StackError as exc:
        pytest.skip(str(exc))


def _alerts(cfg: RulesConfig | None = None) -> list[dict]:
    return [r for g in rule_groups(cfg or RulesConfig()) for r in g["rules"] if "alert" in r]


def test_committed_files_are_what_the_generator_makes() -> None:
    for name, text in render_files(RulesConfig()).items():
        committed = (PACKAGE_DIR / name).read_text()
        assert committed == text, (f"alertmanager/{name} is stale: "
                                   "run `driftline rules generate --output-dir alertmanager`")


def test_every_alert_is_labelled_annotated_and_documented() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"^#+ (.+)$", runbooks, flags=re.M)}
    alerts = _alerts()
    assert {a["alert"] for a in alerts} == set(DEFAULT_ALERTS)
    for a in alerts:
        assert re.fullmatch(r"Driftline(?:[A-Z][a-z0-9]*)+", a["alert"])
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["labels"]["action"] in ("retrain", "rollback", "none")
        ann = a["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert ann["runbook_url"].endswith("#" + a["alert"].lower())
        assert a["alert"].lower() in anchors, f"docs/runbooks.md has no section for {a['alert']}"
        assert ann["dashboard_url"].startswith("http://grafana.example.org/d/driftline-")
    actions = {a["alert"]: a["labels"]["action"] for a in alerts}
    assert actions["DriftlineManyFeaturesDrifting"] == "retrain"
    # an estimate, not a measurement: it pages, and only rules.yaml can make it roll back
    assert actions["DriftlineEstimatedAccuracyDrop"] == "none"
    assert actions["DriftlineCanaryWorseThanDefault"] == "rollback"


def test_estimated_accuracy_rollback_is_opt_in() -> None:
    cfg = config_from_mapping({"alerts": {"DriftlineEstimatedAccuracyDrop": {"action": "rollback"}}})
    rules = {r["alert"]: r for g in rule_groups(cfg) for r in g["rules"] if "alert" in r}
    assert rules["DriftlineEstimatedAccuracyDrop"]["labels"]["action"] == "rollback"
    assert rules["DriftlineAccuracyDrop"]["labels"]["action"] == "retrain"  # others unchanged


def test_expressions_only_name_catalogue_metrics() -> None:
    known = {cat.RECORDS.name, "up"}
    for spec in cat.ALL:
        known.add(spec.name)
        if spec.type == "histogram":
            known.update(spec.name + s for s in ("_bucket", "_sum", "_count"))
    recorded = {r["record"] for g in rule_groups(RulesConfig()) for r in g["rules"] if "record" in r}
    for g in rule_groups(RulesConfig()):
        for r in g["rules"]:
            for ident in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{\[)\s])", r["expr"]):
                if ident.startswith("driftline_"):
                    where = r.get("record") or r.get("alert")
                    assert ident in known, f"{ident} in {where} is not in the catalogue"
                elif ":" in ident:
                    assert ident in recorded, f"{ident} is not a recording rule"


def test_recording_rule_names_follow_level_metric_operation() -> None:
    for g in rule_groups(RulesConfig()):
        for r in g["rules"]:
            if "record" in r:
                level, metric, op = r["record"].split(":")
                assert level and op and metric.startswith("driftline_"), r["record"]


def test_selector_and_group_labels_reach_every_driftline_selector() -> None:
    cfg = RulesConfig(selector='namespace=~"ml-.*"', group_labels=("cluster", "namespace"))
    for g in rule_groups(cfg):
        for r in g["rules"]:
            for m in re.finditer(r"(?<![:\w])(driftline_\w+)(\{[^}]*\})?", r["expr"]):
                assert m.group(2) and 'namespace=~"ml-.*"' in m.group(2), (m.group(0), r["expr"])
            for by in re.findall(r"by \(([^)]*)\)", r["expr"]):
                if "model_name" in by:
                    assert by.startswith("cluster, namespace, model_name"), (by, r["expr"])


def test_prometheus_rule_wraps_the_same_groups_with_the_release_label(tmp_path: Path) -> None:
    assert driftline_main(["rules", "generate", "--output-dir", str(tmp_path),
                           "--release", "prom-stack"]) == 0
    pr = yaml.safe_load((tmp_path / "prometheusrule.yaml").read_text())
    assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["kind"] == "PrometheusRule"
    assert pr["metadata"]["labels"]["release"] == "prom-stack"
    plain = yaml.safe_load((tmp_path / RULES_FILE).read_text())
    assert pr["spec"]["groups"] == plain["groups"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render_files(RulesConfig()))


@pytest.mark.integration
def test_promtool_check_rules_is_clean() -> None:
    promtool = _tool("promtool")
    out = subprocess.run([promtool, "check", "rules", "--lint-fatal", str(PACKAGE_DIR / RULES_FILE)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    n = sum(len(g["rules"]) for g in rule_groups(RulesConfig()))
    assert f"SUCCESS: {n} rules found" in out.stdout


def _promtool_test(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.integration
def test_committed_promtool_tests_pass() -> None:
    out = _promtool_test(PACKAGE_DIR / "rules_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    tests = yaml.safe_load((PACKAGE_DIR / "rules_test.yaml").read_text())["tests"]
    tested = {t["alert_rule_test"][0]["alertname"] for t in tests}
    assert tested == set(DEFAULT_ALERTS)
    for t in tests:  # silent one step before `for:` elapses, firing exactly at it
        silent, firing = t["alert_rule_test"]
        assert silent["exp_alerts"] == [] and firing["exp_alerts"]


CUSTOM = {
    "selector": 'namespace=~"ml-.*"',
    "group_labels": ["cluster", "namespace"],
    "test_labels": {"cluster": "eu-1", "namespace": "ml-prod", "job": "kserve-driftline"},
    "drift_range": "30m",
    "rate_range": "2m",
    "thresholds": {"feature_psi": 0.3, "many_features_count": 2, "estimated_accuracy_margin": 0.1,
                   "missing_ratio": 0.3, "min_samples": 500, "queue_fill": 0.97},
    "alerts": {"DriftlineFeatureDrift": {"for": "20m", "severity": "critical"},
               "DriftlineConceptDrift": {"action": "retrain", "for": "3m"},
               "DriftlineExportErrors": {"enabled": False}},
}


@pytest.mark.integration
def test_generated_promtool_tests_pass_for_a_custom_config(tmp_path: Path) -> None:
    cfg = config_from_mapping(CUSTOM)
    write_files(cfg, tmp_path)
    out = _promtool_test(tmp_path / "rules_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    rules = yaml.safe_load((tmp_path / RULES_FILE).read_text())["groups"][0]["rules"]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert "DriftlineExportErrors" not in alerts
    assert alerts["DriftlineFeatureDrift"]["for"] == "20m"
    assert alerts["DriftlineFeatureDrift"]["labels"]["severity"] == "critical"
    assert alerts["DriftlineConceptDrift"]["labels"]["action"] == "retrain"
    assert "model_feature:driftline_feature_psi:fleet30m > 0.3" in alerts["DriftlineFeatureDrift"]["expr"]


@pytest.mark.integration
@pytest.mark.parametrize(("old", "new"), [
    ("    for: 15m\n    labels:\n      severity: warning",
     "    for: 16m\n    labels:\n      severity: warning"),
    ("model_feature:driftline_feature_psi:fleet1h > 0.2", "model_feature:driftline_feature_psi:fleet1h > 50"),
    ("(model:driftline_reference_accuracy:max - 0.05)", "(model:driftline_reference_accuracy:max - 0.5)"),
    ("action: rollback", "action: none"),
    # the baseline join: replicas on two baselines, the label itself, alerts without build_info
    (") == 1\n", ") >= 1\n"),
    ("group_left (baseline_id)\n      model:driftline_build_info:baseline",
     "group_left ()\n      model:driftline_build_info:baseline"),
    ("model:driftline_build_info:baseline\n      or ignoring (baseline_id)\n      (\n"
     "        model:driftline_prediction_psi:max > 0.2",
     "model:driftline_build_info:baseline\n      and ignoring (baseline_id)\n      (\n"
     "        model:driftline_prediction_psi:max > 0.2"),
])
def test_generated_promtool_tests_catch_a_changed_rule(tmp_path: Path, old: str, new: str) -> None:
    text = (PACKAGE_DIR / RULES_FILE).read_text()
    assert old in text
    (tmp_path / RULES_FILE).write_text(text.replace(old, new, 1))
    (tmp_path / "rules_test.yaml").write_text((PACKAGE_DIR / "rules_test.yaml").read_text())
    out = _promtool_test(tmp_path / "rules_test.yaml")
    assert out.returncode != 0, "the generated tests did not notice a changed rule"


@pytest.mark.integration
def test_amtool_accepts_the_alertmanager_example_and_routes_on_action() -> None:
    amtool = _tool("amtool")
    path = str(PACKAGE_DIR / "alertmanager.yaml")
    out = subprocess.run([amtool, "check-config", path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 inhibit rules" in out.stdout and "5 receivers" in out.stdout

    def route(*labels: str) -> str:
        r = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout.strip()

    assert route("alertname=DriftlineEstimatedAccuracyDrop", "action=rollback",
                 "severity=critical") == "driftline-actions,driftline-critical"
    assert route("alertname=DriftlineManyFeaturesDrifting", "action=retrain",
                 "severity=critical") == "driftline-actions,driftline-critical"
    assert route("alertname=DriftlineFeatureDrift", "action=none", "severity=warning") \
        == "driftline-warning"
    doc = yaml.safe_load(Path(path).read_text())
    assert doc["route"]["group_by"] == ["alertname", "namespace", "model_name"]
    (hook,) = next(r for r in doc["receivers"] if r["name"] == "driftline-actions")["webhook_configs"]
    assert hook["url"].endswith("/alertmanager")
    assert hook["http_config"]["authorization"]["credentials_file"]
    inhibit = doc["inhibit_rules"][0]
    assert 'severity="critical"' in inhibit["source_matchers"]
    assert 'severity="warning"' in inhibit["target_matchers"]
    assert inhibit["equal"] == ["namespace", "model_name"]


def test_render_template_matches_prometheus_functions() -> None:
    labels = {"model_name": "fraud", "namespace": "ml"}
    assert render_template("{{ $labels.model_name }}{{ with $labels.namespace }} in {{ . }}{{ end }}",
                           labels, None) == "fraud in ml"
    assert render_template("{{ with $labels.cluster }} in {{ . }}{{ end }}x", labels, None) == "x"
    assert render_template("{{ $value | humanizePercentage }}", {}, 0.95) == "95%"
    assert render_template("{{ $value | humanizePercentage }}", {}, 0.123456) == "12.35%"
    assert render_template('{{ $value | printf "%.3f" }}', {}, 0.53125) == "0.531"


def test_names_follow_the_configured_ranges() -> None:
    n = names(RulesConfig(drift_range="2h", rate_range="10m"))
    assert n.feature_psi == "model_feature:driftline_feature_psi:fleet2h"
    assert n.records_rate == "model:driftline_records:rate10m"


@pytest.mark.parametrize(("raw", "key"), [
    ({"treshold": {}}, "treshold"),
    ({"thresholds": {"feature_pis": 0.2}}, "thresholds.feature_pis"),
    ({"alerts": {"DriftlineNope": {}}}, "alerts.DriftlineNope"),
    ({"alerts": {"DriftlineFeatureDrift": {"severity": "page"}}}, "alerts.DriftlineFeatureDrift.severity"),
    ({"alerts": {"DriftlineFeatureDrift": {"action": "panic"}}}, "alerts.DriftlineFeatureDrift.action"),
    ({"thresholds": {"canary_margin": 0.5}}, "thresholds.canary_margin"),
    ({"alerts": {"DriftlineConceptDrift": {"for": "15m"}}}, "alerts.DriftlineConceptDrift.for"),
])
def test_config_errors_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping(raw, "rules.yaml")
    assert key in str(exc.value) and "rules.yaml" in str(exc.value)


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text("thresholds: {feature_psi: 0.25}\nalerts: {DriftlineFeatureDrift: {for: 1h}}\n")
    cfg = load_rules_config(p)
    assert cfg.thresholds == Thresholds(feature_psi=0.25)
    assert cfg.alert("DriftlineFeatureDrift") == AlertSettings("1h", "warning", "none")
    with pytest.raises(ConfigError, match="duration"):
        config_from_mapping({"drift_range": "an hour"})


@pytest.mark.integration
@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(psi=st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]), count=st.integers(1, 5),
       for_=st.sampled_from(["0s", "30s", "2m", "45m"]), drift=st.sampled_from(["30s", "10m", "1h", "3h"]),
       rate=st.sampled_from(["1m", "5m"]), margin=st.sampled_from([0.0, 0.01, 0.2, 0.35]),
       min_samples=st.integers(1, 2000))
def test_generated_promtool_tests_pass_for_any_valid_config(
        tmp_path_factory: pytest.TempPathFactory, psi: float, count: int, for_: str, drift: str,
        rate: str, margin: float, min_samples: int) -> None:
    cfg = config_from_mapping({
        "drift_range": drift, "rate_range": rate, "adwin_range": "1h",
        "thresholds": {"feature_psi": psi, "many_features_count": count, "prediction_psi": psi,
                       "estimated_accuracy_margin": margin, "accuracy_margin": margin,
                       "canary_margin": margin, "min_samples": min_samples},
        "alerts": {name: {"for": for_} for name in DEFAULT_ALERTS},
    })
    out_dir = tmp_path_factory.mktemp("cfg")
    write_files(cfg, out_dir)
    out = _promtool_test(out_dir / "rules_test.yaml")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
