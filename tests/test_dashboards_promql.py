"""Every PromQL expression of every dashboard panel, variable and annotation, and every recording
rule, runs against a REAL Prometheus scraping a REAL ``driftline serve`` and must return data.

The sidecar gets what production gives it: OIP v2 traffic through its reverse proxy to a model
server (stable, then drifted), canary traffic as KServe payload-logger CloudEvents
(``ce-endpoint: canary``), late labels on ``/feedback``, a record with a broken ``features`` field
(a counted drop), a body that names no model (an unattributed drop), a low category cap (a
folded category) and an OTLP endpoint that refuses
connections (export errors). Prometheus loads the committed rule file, so the recording rules
the dashboards read are the shipped ones. On top, the fleet-wide PSI and approximate KS the
recording rules compute are checked against :func:`driftline.detectors.psi.psi` and a numpy KS
over the very bucket counts Prometheus holds.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import yaml

from driftline.alertmanager.generate import PACKAGE_DIR, RULES_FILE, write_files
from driftline.alertmanager.rules import RANK_EDGES, names, rule_groups
from driftline.alertmanager.rules_config import DEFAULT_ALERTS, RulesConfig, config_from_mapping
from driftline.dashboards.generate import dashboards
from driftline.detectors.psi import psi as reference_psi
from driftline_demo.stack import (
    PrometheusProcess,
    StackError,
    find_binary,
    free_port,
    start_process,
    start_prometheus,
)

pytestmark = pytest.mark.integration

MODEL = "car-loan"
FAST = config_from_mapping({"alerts": {name: {"for": "0s"} for name in DEFAULT_ALERTS}})
NUMERIC_FEATURE = "credit_score"
CATEGORICAL_FEATURE = "employment"


@dataclass
class Stack:
    prom: PrometheusProcess
    instance: str
    start: float
    version: str


def _require(binary: str) -> None:
    try:
        find_binary(binary)
    except StackError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require("prometheus")
    from driftline_demo.data import TARGET, generate, records
    from driftline_demo.model import ModelServer, load_models
    from driftline_demo.scenario import CANARY_MODEL, DemoSettings, prepare
    from driftline_demo.traffic import TrafficClient

    wd = tmp_path_factory.mktemp("dashboards-promql")
    prepared = prepare(wd, DemoSettings(train_rows=3000, reference_rows=6000))
    server = ModelServer(load_models(prepared.models_dir)).start()
    metrics_port, proxy_port, dead_port = free_port(), free_port(), free_port()
    cfg = {
        "models": [{"name": MODEL, "version": "1", "baseline": str(prepared.baseline)}],
        "proxy": {"listen": f"127.0.0.1:{proxy_port}", "upstream": server.url},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "windows": {"records": 100, "max_age": 2.0, "min_records": 1},  # every window decides
        "limits": {"max_categories": 4},  # region has 5 categories: one gets folded
        "otlp": {"enabled": True, "interval": 1.0},
        "drift": {"adwin_features": True},  # change detection per numeric feature: to annotate
        "tick_interval": 0.2,
    }
    (wd / "driftline.yaml").write_text(yaml.safe_dump(cfg))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead_port}",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}  # ms
    sidecar = start_process("driftline-serve", [sys.executable, "-m", "driftline", "serve", "--config",
                                                str(wd / "driftline.yaml")],
                            ready_url=f"http://127.0.0.1:{metrics_port}/readyz", env=env, timeout=60)
    prom = None
    try:
        instance = f"127.0.0.1:{metrics_port}"
        # The shipped rules with every `for:` at 0, so alerts fire within the test; the recording
        # rules are the committed ones (test_fast_rules_record_exactly_the_shipped_rules).
        write_files(FAST, wd / "rules")
        prom = start_prometheus([instance], rule_files=[wd / "rules" / RULES_FILE],
                                extra_labels={"namespace": "ml"})
        prom.wait_for("up", lambda r: len(r) == 1 and r[0]["value"][1] == "1", timeout=30)
        start = time.time()
        sidecar_url = f"http://127.0.0.1:{metrics_port}"
        client = TrafficClient(threads=4)
        stable = generate(400, seed=21)
        sent = client.infer_v2(f"http://127.0.0.1:{proxy_port}", MODEL, records(stable), id_prefix="s")
        client.feedback(sidecar_url, sent.ids, stable[TARGET].tolist())
        canary = generate(300, seed=22)
        sent = client.infer_canary_cloudevents(server.url, CANARY_MODEL, sidecar_url, MODEL, records(canary))
        client.feedback(sidecar_url, sent.ids, canary[TARGET].tolist())
        drifted = generate(900, seed=23, shift=0.9)
        sent = client.infer_v2(f"http://127.0.0.1:{proxy_port}", MODEL, records(drifted), id_prefix="d")
        client.feedback(sidecar_url, sent.ids, drifted[TARGET].tolist())
        status, _ = client.post_json(f"{sidecar_url}/ingest", {"model_name": MODEL, "features": "broken"})
        assert status == 400
        # a body that names no model: driftline_unattributed_drops_total, not model_name=""
        status, _ = client.post(f"{sidecar_url}/ingest", b"{not json",
                                {"Content-Type": "application/json"})
        assert status == 400
        prom.wait_for(f'driftline_windows_total{{model_name="{MODEL}", endpoint="canary"}}', timeout=60)
        yield Stack(prom, instance, start, "1")
    finally:
        if prom is not None:
            prom.stop()
        sidecar.stop()
        server.stop()


def _substitute(expr: str, st: Stack) -> str:
    values = {
        "$model_name": MODEL, "$model_version": st.version,
        "$feature": f"({NUMERIC_FEATURE}|{CATEGORICAL_FEATURE})",
        "$job": "driftline", "$instance": st.instance, "$namespace": "ml",
        "$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
    }
    for k in sorted(values, key=len, reverse=True):
        expr = expr.replace(k, values[k])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def _queries() -> list[tuple[str, str, str, bool]]:
    """(dashboard uid, where, expr, instant) for every panel target and annotation."""
    out = []
    for uid, dash in dashboards().items():
        for p in _panels(dash):
            for t in p.get("targets", []):
                out.append((uid, f"panel {p['title']!r} {t['refId']}", t["expr"], bool(t.get("instant"))))
        for a in dash["annotations"]["list"]:
            if "expr" in a:
                out.append((uid, f"annotation {a['name']!r}", a["expr"], False))
    return out


def _variables() -> list[tuple[str, str, str]]:
    out = []
    for uid, dash in dashboards().items():
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                out.append((uid, v["name"], v["definition"]))
    return out


def _run(st: Stack, expr: str, instant: bool) -> list[dict[str, Any]]:
    q = _substitute(expr, st)
    if instant:
        return list(st.prom.api("query", query=q)["result"])
    data = st.prom.api("query_range", query=q, start=f"{st.start - 5:.3f}", end=f"{time.time():.3f}",
                       step="2")
    return [r for r in data["result"] if r.get("values")]


def _until_all(st: Stack, checks: dict[str, Any], timeout: float = 90.0) -> dict[str, str]:
    """Run each check until it returns data; errors fail at once. Returns what stayed empty."""
    pending = dict(checks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, fn in list(pending.items()):
            if fn():
                del pending[key]
        if pending:
            time.sleep(1.0)
    return {k: "empty result" for k in pending}


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = _queries()
    assert len(queries) > 60
    checks = {f"{uid}: {where}: {expr}": (lambda e=expr, i=instant: bool(_run(stack, e, i)))
              for uid, where, expr, instant in queries}
    empty = _until_all(stack, checks)
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_variable_query_returns_values(stack: Stack) -> None:
    pattern = re.compile(r"^label_values\((?:(.+), )?(\w+)\)$")
    checks = {}
    for uid, name, definition in _variables():
        m = pattern.match(definition)
        assert m, f"{uid} variable {name}: {definition!r} is not label_values(...)"
        selector, label = m.group(1), m.group(2)
        # Chained variables only see the values earlier variables allow (as Grafana does).
        params = {"match[]": _substitute(selector, stack)} if selector else {}

        def check(label: str = label, params: dict[str, str] = params) -> bool:
            return bool(stack.prom.api(f"label/{label}/values", **params))
        checks[f"{uid} ${name}: {definition}"] = check
    empty = _until_all(stack, checks, timeout=30)
    assert not empty, "variables without values:\n" + "\n".join(empty)


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PACKAGE_DIR / RULES_FILE).read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_every_recording_rule_expression_and_result_has_data(stack: Stack) -> None:
    checks = {}
    for rule in _rules():
        if "record" not in rule:
            continue
        sel = rule["record"] + "".join(f'{{{k}="{v}"}}' for k, v in rule.get("labels", {}).items())
        checks[f"recorded {sel}"] = lambda s=sel: bool(stack.prom.api("query", query=s)["result"])
        checks[f"expr of {sel}: {rule['expr']}"] = (
            lambda e=rule["expr"]: bool(stack.prom.api("query", query=e)["result"]))
    empty = _until_all(stack, checks)
    assert not empty, "recording rules without data:\n" + "\n".join(empty)


def test_fast_rules_record_exactly_the_shipped_rules() -> None:
    fast = [r for g in rule_groups(FAST) for r in g["rules"] if "record" in r]
    assert fast == [r for r in _rules() if "record" in r]


def test_alert_expressions_parse_and_evaluate(stack: Stack) -> None:
    """Alert expressions may legitimately be empty (nothing wrong); they must not error."""
    for rule in _rules():
        if "alert" in rule:
            stack.prom.api("query", query=rule["expr"])


@pytest.mark.parametrize(("alert", "labels"), [
    ("DriftlineFeatureDrift", {"severity": "warning", "action": "none", "endpoint": "default"}),
    ("DriftlineConceptDrift", {"severity": "warning", "action": "none"}),
    # The canary model was trained with its labels flipped: its realised accuracy is far below.
    ("DriftlineCanaryWorseThanDefault", {"severity": "critical", "action": "rollback", "endpoint": "canary"}),
])
def test_alerts_fire_on_the_real_sidecar_data(stack: Stack, alert: str, labels: dict[str, str]) -> None:
    sel = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    res = stack.prom.wait_for(f'ALERTS{{alertname="{alert}", alertstate="firing", {sel}}}', timeout=60)
    assert {(r["metric"]["model_name"], r["metric"]["namespace"]) for r in res} == {(MODEL, "ml")}


def _at_rule_time(st: Stack, record: str, feature: str) -> tuple[float, float]:
    res = st.prom.wait_for(f'{record}{{feature="{feature}", endpoint="default"}}', timeout=60)
    ts, value = res[0]["value"]
    return float(ts), float(value)


def test_fleet_psi_and_ks_equal_numpy_on_the_same_bucket_counts(stack: Stack) -> None:
    n = names(RulesConfig())
    sel = f'model_name="{MODEL}", endpoint="default", feature="{NUMERIC_FEATURE}"'
    for _attempt in range(5):
        ts, psi_rule = _at_rule_time(stack, n.rank_psi, NUMERIC_FEATURE)
        _, ks_rule = _at_rule_time(stack, n.rank_ks, NUMERIC_FEATURE)
        res = stack.prom.api("query", query=f"sum by (le) (increase(driftline_feature_quantile_rank_bucket"
                             f"{{{sel}}}[{RulesConfig().drift_range}]))", time=f"{ts:.3f}")["result"]
        cum = {r["metric"]["le"]: float(r["value"][1]) for r in res}
        edges = [*RANK_EDGES, "+Inf"]
        counts = np.diff([0.0, *(cum[e] for e in edges)])
        cdf = np.array([cum[e] for e in RANK_EDGES]) / cum["+Inf"]
        expected_psi = reference_psi(np.full(10, 0.1), counts)
        expected_ks = float(np.max(np.abs(cdf - np.array([float(e) for e in RANK_EDGES]))))
        ks_now = float(stack.prom.api("query", query=f'{n.rank_ks}{{{sel}}}', time=f"{ts:.3f}")
                       ["result"][0]["value"][1])
        if ks_now == ks_rule and abs(psi_rule - expected_psi) < 1e-9:
            break
        time.sleep(1.0)  # a scrape landed between the rule evaluation and our query: retry
    assert psi_rule == pytest.approx(expected_psi, rel=1e-9, abs=1e-12)
    assert ks_rule == pytest.approx(expected_ks, rel=1e-9, abs=1e-12)
    assert psi_rule > 0.2, "the drifted traffic should show as major drift"


def test_fleet_categorical_psi_equals_numpy(stack: Stack) -> None:
    n = names(RulesConfig())
    sel = f'model_name="{MODEL}", endpoint="default", feature="{CATEGORICAL_FEATURE}"'
    for _attempt in range(5):
        ts, psi_rule = _at_rule_time(stack, n.category_psi, CATEGORICAL_FEATURE)
        cur = stack.prom.api("query", query=f"sum by (category) (increase(driftline_feature_category_total"
                             f"{{{sel}}}[{RulesConfig().drift_range}]))", time=f"{ts:.3f}")["result"]
        ref = stack.prom.api("query", query=f"max by (category) (driftline_feature_reference_category_ratio"
                             f"{{{sel}}})", time=f"{ts:.3f}")["result"]
        refd = {r["metric"]["category"]: float(r["value"][1]) for r in ref}
        curd = {r["metric"]["category"]: float(r["value"][1]) for r in cur}
        cats = sorted(refd)
        expected = reference_psi(np.array([refd[c] for c in cats]),
                                 np.array([curd.get(c, 0.0) for c in cats]))
        if abs(psi_rule - expected) < 1e-9:
            break
        time.sleep(1.0)
    assert psi_rule == pytest.approx(expected, rel=1e-9, abs=1e-12)
