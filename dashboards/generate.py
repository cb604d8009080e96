"""Driftline's three Grafana dashboards, generated from the metric catalogue and the recording
rules' names (so a renamed metric or a different ``drift_range`` changes the queries too).

* ``driftline-fleet``: every model at a glance (drift, accuracy, traffic, drops, alerts);
* ``driftline-model``: one model in depth (per-feature PSI/KS, quantile-rank heatmaps, category
  shares, confidence, accuracy, change-point annotations, canary next to default);
* ``driftline-sidecar``: the sidecars themselves (queue, drops, proxy latency, scrapes, exports).

>>> sorted(dashboards())
['driftline-fleet', 'driftline-model', 'driftline-sidecar']
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from driftline import catalogue as cat
from driftline.alertmanager.rules import names
from driftline.alertmanager.rules_config import RulesConfig
from driftline.dashboards import builder as b
from driftline.dashboards.uids import FLEET_UID, MODEL_UID, SIDECAR_UID, TITLES

__all__ = ["DASHBOARD_DIR", "dashboards", "file_name", "render", "write"]

Json = dict[str, Any]
DASHBOARD_DIR = Path(__file__).resolve().parent
RI = "$__rate_interval"
M = 'model_name=~"$model_name", model_version=~"$model_version"'
F = M + ', feature=~"$feature"'
I = 'job=~"$job", instance=~"$instance"'  # noqa: E741
MN = 'model_name=~"$model_name"'
MODEL = "{{model_name}} {{model_version}} ({{endpoint}})"
BY_MODEL = "model_name, model_version, endpoint"
DISCRETE_NOTE = ("For a numeric feature with few distinct values, equal values share one reference "
                 "rank, so this over-states drift; the alerts also require the last-window PSI.")
PSI_STEPS = b.thresholds((0.1, "yellow"), (0.25, "red"))
ACC_STEPS = b.thresholds((0.0, "red"), (0.8, "yellow"), (0.9, "green"), base="red")


def _q(spec: cat.MetricSpec, sel: str, suffix: str = "") -> str:
    return f"{spec.name}{suffix}{{{sel}}}"


def _model_vars(*, multi_model: bool, feature: bool) -> list[Json]:
    src = cat.RECORDS.name
    out = [b.datasource_var(),
           b.query_var("model_name", "Model", f"label_values({src}, model_name)",
                       multi=multi_model, include_all=multi_model),
           b.query_var("model_version", "Version",
                       f'label_values({src}{{model_name=~"$model_name"}}, model_version)')]
    if feature:
        out.append(b.query_var("feature", "Feature", f"label_values({cat.FEATURE_PSI.name}"
                               f'{{model_name=~"$model_name", model_version=~"$model_version"}}, feature)'))
    return out


def fleet(cfg: RulesConfig) -> Json:
    n = names(cfg)
    g = b.Grid()
    g.row("Fleet")
    g.place(b.stat("Models monitored", [b.target(
        f"count(count by ({BY_MODEL}) ({_q(cat.WINDOW_RECORDS, M)}))", instant=True)],
        description="Model, version and endpoint combinations with a completed window."), w=6, h=4)
    g.place(b.stat("Drifted features (last window)", [b.target(
        f"sum({_q(cat.FEATURE_DRIFTED, M)})", instant=True)], thresholds_=b.thresholds((1, "orange")),
        description=cat.FEATURE_DRIFTED.help), w=6, h=4)
    g.place(b.stat("Firing Driftline alerts", [b.target(
        'count(ALERTS{alertname=~"Driftline.*", alertstate="firing"}) or vector(0)', instant=True)],
        thresholds_=b.thresholds((1, "red"))), w=6, h=4)
    g.place(b.stat("Records per second", [b.target(
        f"sum(rate({_q(cat.RECORDS, M)}[{RI}]))")], unit="reqps"), w=6, h=4)
    g.row("Drift")
    g.place(b.bargauge("Drifted features per model (last window)", [b.target(
        f"sum by ({BY_MODEL}) ({_q(cat.FEATURE_DRIFTED, M)})", MODEL, instant=True)],
        thresholds_=b.thresholds((1, "orange"), (3, "red")), description=cat.FEATURE_DRIFTED.help))
    g.place(b.timeseries(f"Top 10 features by fleet-wide PSI ({cfg.drift_range}, all replicas)", [b.target(
        f"topk(10, max by ({BY_MODEL}, feature) ({n.feature_psi}{{{M}}}))",
        "{{model_name}} {{model_version}} {{feature}} ({{endpoint}})")], thresholds_=PSI_STEPS,
        description="PSI from the quantile-rank histograms and category counters summed over every "
        "replica (recording rule " + n.feature_psi + "). " + DISCRETE_NOTE))
    g.place(b.timeseries("Prediction PSI (last window)", [b.target(
        f"max by ({BY_MODEL}) ({_q(cat.PREDICTION_PSI, M)})", MODEL)], thresholds_=PSI_STEPS,
        description=cat.PREDICTION_PSI.help))
    g.place(b.timeseries("Estimated vs realised vs reference accuracy", [
        b.target(f"{n.estimated_accuracy}{{{M}}}", MODEL + " estimated"),
        b.target(f"avg by ({BY_MODEL}) ({_q(cat.ACCURACY, M)})", MODEL + " realised"),
        b.target(f"max by ({BY_MODEL}) ({_q(cat.REFERENCE_ACCURACY, M)})", MODEL + " reference"),
    ], unit="percentunit", min_=0, max_=1,
        description="Estimated: label-free (confidence-based) accuracy, weighted by window size "
        "across replicas. Realised: from joined delayed labels. Reference: on the baseline data."))
    g.row("Traffic")
    g.place(b.timeseries("Records per second", [b.target(
        f"sum by ({BY_MODEL}) (rate({_q(cat.RECORDS, M)}[{RI}]))", MODEL)], unit="reqps",
        description=cat.RECORDS.help), w=8)
    g.place(b.timeseries("Sampled share of records", [b.target(
        f"sum by ({BY_MODEL}) (rate({_q(cat.RECORDS_SAMPLED, M)}[{RI}]))\n/\n"
        f"sum by ({BY_MODEL}) (rate({_q(cat.RECORDS, M)}[{RI}]))", MODEL)],
        unit="percentunit", min_=0, max_=1, description=cat.RECORDS_SAMPLED.help), w=8)
    g.place(b.timeseries("Dropped records per second", [b.target(
        f"sum by (model_name, reason) (rate({_q(cat.RECORDS_DROPPED, MN)}[{RI}]))",
        "{{model_name}} {{reason}}")], unit="reqps", description=cat.RECORDS_DROPPED.help), w=8)
    g.row("Alerts")
    g.place(b.table("Active Driftline alerts (pending and firing)", [b.target(
        'ALERTS{alertname=~"Driftline.*", model_name=~"$model_name"}', fmt="table", instant=True)]),
        w=24, h=8)
    return b.dashboard(FLEET_UID, TITLES[FLEET_UID], "Drift, accuracy and traffic of every monitored "
                       "model.", _model_vars(multi_model=True, feature=False), g.panels)


def _multivariate_row(g: b.Grid) -> None:
    """Joint drift of the tabular features: reconstruction error inside its reference band."""
    g.row("Multivariate")
    g.place(b.timeseries("Reconstruction error and reference band (last window)", [
        b.target(f"max by (endpoint) ({_q(cat.MULTIVARIATE_ERROR, M)})", "error ({{endpoint}})"),
        b.target(f"max by (endpoint) ({_q(cat.MULTIVARIATE_UPPER, M)})", "upper ({{endpoint}})"),
        b.target(f"max by (endpoint) ({_q(cat.MULTIVARIATE_LOWER, M)})", "lower ({{endpoint}})"),
    ], description=cat.MULTIVARIATE_ERROR.help + " Outside the band means the features' joint "
        "structure (correlations) changed, even when every feature on its own looks stable."), w=16)
    g.place(b.timeseries("Multivariate drift (last window)", [b.target(
        f"max by (endpoint) ({_q(cat.MULTIVARIATE_DRIFTED, M)})", "{{endpoint}}")], min_=0, max_=1,
        description=cat.MULTIVARIATE_DRIFTED.help), w=8)
    g.row("Embeddings")
    g.place(b.timeseries("Embedding MMD² (last window)", [b.target(
        f"max by (endpoint, feature) ({_q(cat.EMBEDDING_MMD, M)})", "{{feature}} ({{endpoint}})")],
        description=cat.EMBEDDING_MMD.help), w=8)
    g.place(b.timeseries("Embedding MMD p-value (last window)", [b.target(
        f"min by (endpoint, feature) ({_q(cat.EMBEDDING_MMD_PVALUE, M)})",
        "{{feature}} ({{endpoint}})")], min_=0, max_=1, thresholds_=b.thresholds((0.05, "green"), base="red"),
        description=cat.EMBEDDING_MMD_PVALUE.help + " Below 0.05: the embeddings drifted."), w=8)
    g.place(b.timeseries("Mean-embedding cosine distance (last window)", [b.target(
        f"max by (endpoint, feature) ({_q(cat.EMBEDDING_COSINE, M)})",
        "{{feature}} ({{endpoint}})")], description=cat.EMBEDDING_COSINE.help + " Projections "
        "onto the reference's principal directions are the numeric features <feature>.pc1…, "
        "with their own PSI and quantile-rank histograms."), w=8)


def _service_row(g: b.Grid) -> None:
    """Service health next to model health: traffic by status, availability, latency, sizes."""
    g.row("Service health")
    req = _q(cat.MODEL_REQUESTS, M)
    errors = _q(cat.MODEL_REQUESTS, M + ', code="5xx"')
    g.place(b.timeseries("Requests per second by status class", [b.target(
        f"sum by (code, endpoint) (rate({req}[{RI}]))", "{{code}} ({{endpoint}})")], unit="reqps",
        description=cat.MODEL_REQUESTS.help), w=6)
    g.place(b.timeseries("Availability (share of requests not 5xx)", [b.target(
        f"1 - (sum by (endpoint) (rate({errors}[{RI}])) or sum by (endpoint) (rate({req}[{RI}])) * 0)"
        f" / sum by (endpoint) (rate({req}[{RI}]))",
        "{{endpoint}}")], unit="percentunit", min_=0, max_=1,
        thresholds_=b.thresholds((0.0, "red"), (0.99, "yellow"), (0.999, "green"), base="red"),
        description="Requests answered without a server error; the SLO alerts burn its budget."), w=6)
    lat = f"sum by (le, endpoint) (rate({_q(cat.MODEL_REQUEST_DURATION, MN, '_bucket')}[{RI}]))"
    g.place(b.timeseries("Request latency", [
        b.target(f"histogram_quantile({q}, {lat})", f"p{round(q * 100)} ({{{{endpoint}}}})")
        for q in (0.5, 0.95, 0.99)], unit="s", description=cat.MODEL_REQUEST_DURATION.help), w=6)
    g.place(b.timeseries("Payload sizes (p95)", [
        b.target(f"histogram_quantile(0.95, sum by (le) (rate({_q(spec, MN, '_bucket')}[{RI}])))", what)
        for spec, what in ((cat.MODEL_REQUEST_SIZE, "request"), (cat.MODEL_RESPONSE_SIZE, "response"))],
        unit="bytes", description=cat.MODEL_REQUEST_SIZE.help + " " + cat.MODEL_RESPONSE_SIZE.help), w=6)


def _performance_row(g: b.Grid) -> None:
    """Every estimated and realised metric next to its reference value, one series per metric:
    a classifier's accuracy, ROC AUC, F1, … or a regressor's MAE, RMSE, MAPE (in the target's
    unit) and R²."""
    g.row("Performance by metric")
    g.place(b.timeseries("Estimated, realised and reference performance by metric", [
        b.target(f"avg by (endpoint, metric) ({_q(cat.ESTIMATED_PERFORMANCE, M)})",
                 "{{metric}} estimated ({{endpoint}})"),
        b.target(f"avg by (endpoint, metric) ({_q(cat.PERFORMANCE, M)})",
                 "{{metric}} realised ({{endpoint}})"),
        b.target(f"max by (endpoint, metric) ({_q(cat.REFERENCE_PERFORMANCE, M)})",
                 "{{metric}} reference ({{endpoint}})"),
    ], description=cat.ESTIMATED_PERFORMANCE.help + " " + cat.PERFORMANCE.help), w=24)


def _endpoint_pair(g: b.Grid, n: Any) -> None:
    for ep in ("default", "canary"):
        sel = f'model_name=~"$model_name", endpoint="{ep}"'
        g.place(b.timeseries(f"{ep.capitalize()}: estimated and realised accuracy", [
            b.target(f"{n.estimated_accuracy}{{{sel}}}", "{{model_version}} estimated"),
            b.target(f"avg by (model_version) ({_q(cat.ACCURACY, sel)})", "{{model_version}} realised"),
        ], unit="percentunit", min_=0, max_=1,
            description=f"Accuracy of the {ep} endpoint (every version), for a side-by-side comparison."))
    for ep in ("default", "canary"):
        sel = f'model_name=~"$model_name", endpoint="{ep}"'
        g.place(b.timeseries(f"{ep.capitalize()}: records per second and drifted features", [
            b.target(f"sum by (model_version) (rate({_q(cat.RECORDS, sel)}[{RI}]))",
                     "{{model_version}} records/s"),
            b.target(f"sum by (model_version) ({_q(cat.FEATURE_DRIFTED, sel)})",
                     "{{model_version}} drifted features"),
        ], description=f"Traffic and drift of the {ep} endpoint."))


def model(cfg: RulesConfig) -> Json:
    n = names(cfg)
    g = b.Grid()
    feat = "{{feature}} ({{endpoint}})"
    g.row("Feature drift")
    g.place(b.timeseries("PSI per feature (last window)", [
        b.target(f"max by (feature, endpoint) ({_q(cat.FEATURE_PSI, F)})", feat),
        b.target(f"max by (feature, endpoint) ({_q(cat.FEATURE_PSI_CORRECTED, F)})",
                 "{{feature}} corrected ({{endpoint}})"),
    ], thresholds_=PSI_STEPS,
        description=cat.FEATURE_PSI.help + " Max over replicas. < 0.1 stable, 0.1–0.25 moderate, "
        "≥ 0.25 major. Corrected: " + cat.FEATURE_PSI_CORRECTED.help))
    g.place(b.timeseries("KS statistic per feature (last window)", [b.target(
        f"max by (feature, endpoint) ({_q(cat.FEATURE_KS_STATISTIC, F)})", feat)], min_=0, max_=1,
        description=cat.FEATURE_KS_STATISTIC.help))
    g.place(b.timeseries(f"Fleet-wide PSI ({cfg.drift_range}, all replicas)", [b.target(
        f"{n.feature_psi}{{{F}}}", feat)], thresholds_=PSI_STEPS,
        description="PSI of the summed quantile-rank histograms (numeric) or category counters "
        f"(categorical) over {cfg.drift_range}: what the drift alerts use, together with the "
        "last-window PSI. " + DISCRETE_NOTE))
    g.place(b.timeseries(f"Approximate KS ({cfg.drift_range}, all replicas)", [b.target(
        f"{n.rank_ks}{{{F}}}", feat)], min_=0, max_=1,
        description="Largest gap between the summed quantile-rank CDF and the diagonal, read at the "
        "bucket edges 0.1…0.9 (a lower bound of the exact KS statistic)."))
    g.place(b.state_timeline("Drift state (last window)", [b.target(
        f"max by (feature) ({_q(cat.FEATURE_DRIFTED, F)})", "{{feature}}")], mappings=[
        {"type": "value", "options": {"0": {"text": "stable", "color": "green", "index": 0},
                                      "1": {"text": "drifted", "color": "red", "index": 1}}}],
        description=cat.FEATURE_DRIFTED.help))
    g.place(b.timeseries("Missing values per feature (last window)", [b.target(
        f"max by (feature, endpoint) ({_q(cat.FEATURE_MISSING_RATIO, F)})", feat)], unit="percentunit",
        min_=0, thresholds_=b.thresholds((0.1, "orange")), description=cat.FEATURE_MISSING_RATIO.help))
    g.place(b.timeseries("Test p-values (KS numeric, chi² categorical)", [
        b.target(f"min by (feature, endpoint) ({_q(cat.FEATURE_KS_PVALUE, F)})", feat + " KS"),
        b.target(f"min by (feature, endpoint) ({_q(cat.FEATURE_CHI2_PVALUE, F)})", feat + " chi²"),
    ], min_=0, max_=1, thresholds_=b.thresholds((0.05, "green"), base="red"),
        description="Raw p-values of the last window (drift decisions use Benjamini–Hochberg "
        "across features)."))
    g.place(b.timeseries("Distances: Jensen–Shannon and normalised Wasserstein", [
        b.target(f"max by (feature, endpoint) ({_q(cat.FEATURE_JENSEN_SHANNON, F)})", feat + " JS"),
        b.target(f"max by (feature, endpoint) ({_q(cat.FEATURE_WASSERSTEIN, F)})", feat + " W1/σ"),
    ], description=cat.FEATURE_JENSEN_SHANNON.help + " " + cat.FEATURE_WASSERSTEIN.help))
    g.row("Distributions")
    g.place(b.heatmap("Reference quantile ranks: $feature", [b.target(
        f"sum by (le) (increase({_q(cat.FEATURE_QUANTILE_RANK, F, '_bucket')}[{RI}]))", "{{le}}",
        fmt="heatmap")], repeat="feature",
        description="Where today's values fall in the reference distribution: without drift every "
        "decile band holds 10% of the values; drift piles them up at one edge."), w=6)
    g.place(b.timeseries("Category shares (solid) and reference shares", [
        b.target(f"sum by (feature, category) (rate({_q(cat.FEATURE_CATEGORY, F)}[{RI}]))\n"
                 f"/ ignoring (category) group_left ()\n"
                 f"sum by (feature) (rate({_q(cat.FEATURE_CATEGORY, F)}[{RI}]))", "{{feature}}={{category}}"),
        b.target(f"max by (feature, category) ({_q(cat.FEATURE_REFERENCE_CATEGORY_RATIO, F)})",
                 "{{feature}}={{category}} reference"),
    ], unit="percentunit", min_=0, max_=1, description=cat.FEATURE_CATEGORY.help), w=24)
    g.row("Predictions")
    g.place(b.heatmap("Prediction confidence", [b.target(
        f"sum by (le) (increase({_q(cat.PREDICTION_CONFIDENCE, M, '_bucket')}[{RI}]))", "{{le}}",
        fmt="heatmap")], unit="percentunit", description=cat.PREDICTION_CONFIDENCE.help), w=8)
    g.place(b.timeseries("Mean confidence", [b.target(
        f"sum by (endpoint) (rate({_q(cat.PREDICTION_CONFIDENCE, M, '_sum')}[{RI}]))\n/\n"
        f"sum by (endpoint) (rate({_q(cat.PREDICTION_CONFIDENCE, M, '_count')}[{RI}]))", "{{endpoint}}")],
        unit="percentunit", min_=0, max_=1), w=8)
    g.place(b.timeseries("Predicted class shares", [b.target(
        f"sum by (endpoint, class) (rate({_q(cat.PREDICTION_CLASS, M)}[{RI}]))\n"
        f"/ ignoring (class) group_left ()\n"
        f"sum by (endpoint) (rate({_q(cat.PREDICTION_CLASS, M)}[{RI}]))", "{{class}} ({{endpoint}})")],
        unit="percentunit", min_=0, max_=1, stack=True, description=cat.PREDICTION_CLASS.help), w=8)
    g.place(b.timeseries("Prediction PSI (last window)", [b.target(
        f"max by (endpoint) ({_q(cat.PREDICTION_PSI, M)})", "{{endpoint}}")], thresholds_=PSI_STEPS,
        description=cat.PREDICTION_PSI.help), w=12)
    g.place(b.timeseries("Change detections", [b.target(
        f"sum by (endpoint, signal) (increase({_q(cat.CHANGE_DETECTIONS, M)}[{RI}]))",
        "{{signal}} ({{endpoint}})")], description=cat.CHANGE_DETECTIONS.help), w=12)
    _multivariate_row(g)
    g.row("Accuracy")
    g.place(b.timeseries("Estimated vs realised vs reference accuracy", [
        b.target(f"{n.estimated_accuracy}{{{M}}}", "estimated ({{endpoint}})"),
        b.target(f"avg by (endpoint) ({_q(cat.ACCURACY, M)})", "realised ({{endpoint}})"),
        b.target(f"max by (endpoint) ({_q(cat.REFERENCE_ACCURACY, M)})", "reference ({{endpoint}})"),
    ], unit="percentunit", min_=0, max_=1, thresholds_=ACC_STEPS,
        description=cat.ESTIMATED_ACCURACY.help + " " + cat.ACCURACY.help), w=12)
    g.place(b.timeseries("Labels received per second", [b.target(
        f"sum by (endpoint, matched) (rate({_q(cat.LABELS, M)}[{RI}]))",
        "matched={{matched}} ({{endpoint}})")],
        unit="reqps", description=cat.LABELS.help), w=12)
    _performance_row(g)
    g.row("Canary vs default")
    _endpoint_pair(g, n)
    _service_row(g)
    g.row("Windows")
    g.place(b.timeseries("Records in the last window", [b.target(
        f"sum by (endpoint) ({_q(cat.WINDOW_RECORDS, M)})", "{{endpoint}}")],
        description=cat.WINDOW_RECORDS.help), w=8)
    g.place(b.timeseries("Windows completed per minute", [b.target(
        f"sum by (endpoint) (rate({_q(cat.WINDOWS, M)}[{RI}])) * 60", "{{endpoint}}")],
        description=cat.WINDOWS.help), w=8)
    g.place(b.timeseries("Age of the last window", [b.target(
        f"time() - max by (endpoint) ({_q(cat.WINDOW_END, M)})", "{{endpoint}}")], unit="s",
        description=cat.WINDOW_END.help), w=8)
    # marked where the change *began* (the gauge's value, in ms), not when it was noticed
    adwin = {"datasource": b.DS, "enable": True, "hide": False, "iconColor": "orange",
             "name": "Change points",
             "expr": f"max by (model_name, endpoint, signal) "
                     f"({_q(cat.CHANGE_POINT_TIME, M)}) * 1000",
             "step": "1m", "titleFormat": "change began: {{signal}}",
             "textFormat": "{{model_name}} ({{endpoint}})", "tagKeys": "signal,endpoint",
             "useValueForTime": True}
    return b.dashboard(MODEL_UID, TITLES[MODEL_UID], "One model in depth: per-feature drift, "
                       "distributions, predictions, accuracy and canary vs default.",
                       _model_vars(multi_model=False, feature=True), g.panels, annotations=[adwin])


def sidecar(cfg: RulesConfig) -> Json:
    g = b.Grid()
    up = f"up{{{I}}}"
    g.row("Targets")
    g.place(b.stat("Sidecars up", [b.target(f"sum({up})", instant=True)]), w=6, h=4)
    g.place(b.stat("Sidecars down", [b.target(f"count({up} == 0) or vector(0)", instant=True)],
                   thresholds_=b.thresholds((1, "red"))), w=6, h=4)
    g.place(b.stat("Queue depth (max)", [b.target(f"max({_q(cat.QUEUE_DEPTH, I)})", instant=True)]),
            w=6, h=4)
    g.place(b.stat("Dropped records per second", [b.target(
        f"(sum(rate({_q(cat.RECORDS_DROPPED, I)}[{RI}])) or vector(0))\n+\n"
        f"(sum(rate({_q(cat.UNATTRIBUTED_DROPS, I)}[{RI}])) or vector(0))")], unit="reqps",
        thresholds_=b.thresholds((0.001, "orange"))), w=6, h=4)
    g.place(b.state_timeline("Scrape status (up)", [b.target(up, "{{instance}}")], mappings=[
        {"type": "value", "options": {"0": {"text": "down", "color": "red", "index": 0},
                                      "1": {"text": "up", "color": "green", "index": 1}}}]), w=12)
    g.place(b.timeseries("Scrape duration and samples", [
        b.target(f"scrape_duration_seconds{{{I}}}", "{{instance}} duration"),
    ], unit="s"), w=6)
    g.place(b.timeseries("Samples per scrape", [b.target(f"scrape_samples_scraped{{{I}}}", "{{instance}}")]),
            w=6)
    g.row("Queue and drops")
    g.place(b.timeseries("Queue depth and capacity", [
        b.target(_q(cat.QUEUE_DEPTH, I), "{{instance}} depth"),
        b.target(_q(cat.QUEUE_CAPACITY, I), "{{instance}} capacity"),
    ], description=cat.QUEUE_DEPTH.help), w=8)
    g.place(b.timeseries("Queue fill", [b.target(
        f"{_q(cat.QUEUE_DEPTH, I)} / {_q(cat.QUEUE_CAPACITY, I)}", "{{instance}}")], unit="percentunit",
        min_=0, max_=1, thresholds_=b.thresholds((0.9, "red"))), w=8)
    g.place(b.timeseries("Dropped records per second by reason", [
        b.target(f"sum by (reason) (rate({_q(cat.RECORDS_DROPPED, I)}[{RI}]))", "{{reason}}"),
        b.target(f"sum by (reason) (rate({_q(cat.UNATTRIBUTED_DROPS, I)}[{RI}]))",
                 "{{reason}} (no model)"),
    ], unit="reqps", description=f"{cat.RECORDS_DROPPED.help} {cat.UNATTRIBUTED_DROPS.help}"),
        w=8)
    g.place(b.timeseries("Records per second by source", [b.target(
        f"sum by (source) (rate({_q(cat.RECORDS, I)}[{RI}]))", "{{source}}")], unit="reqps",
        description=cat.RECORDS.help), w=12)
    g.place(b.timeseries("Label values folded into __other__", [b.target(
        f"sum by (label) ({_q(cat.SERIES_CAPPED, I)})", "{{label}}")], description=cat.SERIES_CAPPED.help),
        w=12)
    g.row("Proxy and exports")
    lat = f"sum by (le) (rate({_q(cat.PROXY_DURATION, I, '_bucket')}[{RI}]))"
    g.place(b.timeseries("Proxy latency (upstream included)", [
        b.target(f"histogram_quantile({q}, {lat})", f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)
    ], unit="s", description=cat.PROXY_DURATION.help), w=8)
    g.place(b.timeseries("Proxied requests per second by status", [b.target(
        f"sum by (code) (rate({_q(cat.PROXY_DURATION, I, '_count')}[{RI}]))", "{{code}}")], unit="reqps"),
        w=8)
    g.place(b.timeseries("Proxy upstream errors by kind", [b.target(
        f"sum by (kind) (rate({_q(cat.PROXY_UPSTREAM_ERRORS, I)}[{RI}]))", "{{kind}}"),
        b.target(f"sum(rate({_q(cat.PROXY_TUNNELLED, I)}[{RI}]))", "tunnelled connections"),
        b.target(f"sum(rate({_q(cat.PROXY_TEE_ERRORS, I)}[{RI}]))", "tee errors")], unit="reqps",
        thresholds_=b.thresholds((0.001, "red")), description=cat.PROXY_UPSTREAM_ERRORS.help), w=8)
    g.place(b.timeseries("Export errors per second", [b.target(
        f"sum by (exporter) (rate({_q(cat.EXPORT_ERRORS, I)}[{RI}]))", "{{exporter}}")], unit="reqps",
        thresholds_=b.thresholds((0.001, "red")), description=cat.EXPORT_ERRORS.help), w=8)
    g.place(b.table("Build info", [b.target(_q(cat.BUILD_INFO, I), fmt="table", instant=True)],
                    description=cat.BUILD_INFO.help), w=24, h=6)
    variables = [b.datasource_var(),
                 b.query_var("job", "Job", f"label_values({cat.QUEUE_CAPACITY.name}, job)"),
                 b.query_var("instance", "Instance",
                             f'label_values({cat.QUEUE_CAPACITY.name}{{job=~"$job"}}, instance)')]
    return b.dashboard(SIDECAR_UID, TITLES[SIDECAR_UID], "Health of the Driftline sidecars: scrapes, "
                       "queue, drops, proxy latency and exports.", variables, g.panels)


def dashboards(cfg: RulesConfig | None = None) -> dict[str, Json]:
    """uid → dashboard JSON for the recording-rule names of ``cfg`` (defaults when None)."""
    cfg = cfg or RulesConfig()
    out = {FLEET_UID: fleet(cfg), MODEL_UID: model(cfg), SIDECAR_UID: sidecar(cfg)}
    return {uid: _scoped(d, cfg.group_labels) for uid, d in out.items()}


_SELECTOR = re.compile(r'\{([^{}]*=~"\$[^{}]*)\}')
_BARE_VALUES = re.compile(r"label_values\((\w+), ")


def _scoped(dash: Json, group_labels: tuple[str, ...]) -> Json:
    """Add one variable per group label (``cluster``, ``namespace``, ...: the labels the rules
    keep above the model) before the others, chained in that order, and scope every selector
    that already filters by a variable (queries, annotations, variable queries) to them.

    A model name is unique only within its namespace (and cluster), so without them the
    dashboards mixed models of the same name from different namespaces."""
    if not group_labels:
        return dash
    scope = ", ".join(f'{g}=~"${g}"' for g in group_labels)

    def scoped(expr: str) -> str:
        expr = _SELECTOR.sub(lambda m: "{" + scope + ", " + m.group(1) + "}", expr)
        return _BARE_VALUES.sub(lambda m: f"label_values({m.group(1)}{{{scope}}}, ", expr)

    for panel in _panels(dash["panels"]):
        for t in panel.get("targets", []):
            t["expr"] = scoped(t["expr"])
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            a["expr"] = scoped(a["expr"])
    variables = dash["templating"]["list"]
    for v in variables:
        if v["type"] == "query":
            v["definition"] = v["query"]["query"] = scoped(v["definition"])
    source = cat.RECORDS.name if dash["uid"] != SIDECAR_UID else cat.QUEUE_CAPACITY.name
    added = []
    for i, g in enumerate(group_labels):
        earlier = ", ".join(f'{e}=~"${e}"' for e in group_labels[:i])
        query = f"label_values({source}{{{earlier}}}, {g})" if earlier else \
            f"label_values({source}, {g})"
        added.append(b.query_var(g, g.capitalize(), query))
    dash["templating"]["list"] = variables[:1] + added + variables[1:]
    return dash


def _panels(panels: list[Json]) -> list[Json]:
    out = []
    for p in panels:
        out.append(p)
        out += _panels(p.get("panels", []))
    return out


def file_name(uid: str) -> str:
    return f"{uid}.json"


def render(dash: Json) -> str:
    """Stable text of one dashboard (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(dash, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(out: Path, cfg: RulesConfig | None = None) -> list[Path]:
    """Write every dashboard as ``<uid>.json`` into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, dash in dashboards(cfg).items():
        p = out / file_name(uid)
        p.write_text(render(dash))
        paths.append(p)
    return paths
