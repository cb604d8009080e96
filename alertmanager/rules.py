"""Prometheus recording and alerting rules, generated from the metric catalogue and one
:class:`~driftline.alertmanager.rules_config.RulesConfig`.

Recording rules compute fleet-wide drift from the quantile-rank histograms that every sidecar
exports (docs/statistics.md, "Fleet-wide histograms"): bucket counts are summed across
replicas, turned into per-bucket shares over ``drift_range``, and compared with the 10 % each
bucket holds without drift. The ``le="1.0"``
bucket is never read (ranks are ≤ 1, so it equals ``+Inf``), which keeps the rules independent
of how a client spells that bound. Names follow ``level:metric:operation``.

>>> groups = rule_groups(RulesConfig())
>>> [g["name"] for g in groups]
['driftline']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from driftline import catalogue as cat
from driftline.alertmanager.rules_config import RulesConfig
from driftline.alertmanager.slo_rules import burn_windows, slo_alert_exprs, slo_recording_rules
from driftline.dashboards.uids import MODEL_UID, SIDECAR_UID, slug

__all__ = ["Alert", "RecordingNames", "alert_rules", "names", "prometheus_rule", "recording_rules",
           "rule_groups", "to_yaml"]

#: Upper bounds read from the quantile-rank histogram; the last bucket is ``+Inf`` minus 0.9.
RANK_EDGES: tuple[str, ...] = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9")
BUCKET_SHARE = 0.1
PSI_FLOOR = 0.0001


@dataclass(frozen=True)
class RecordingNames:
    """Names of the recording rules for one config (the range is part of the name)."""

    rank_increase: str
    rank_cdf: str
    rank_share: str
    rank_psi: str
    rank_ks: str
    category_increase: str
    category_share: str
    category_reference: str
    category_psi: str
    feature_psi: str
    window_psi: str
    prediction_psi: str
    estimated_accuracy: str
    estimated_performance: str
    reference_performance: str
    accuracy: str
    reference_accuracy: str
    records_rate: str
    model_name_records_rate: str
    model_name_dropped_rate: str
    model_baseline: str
    model_name_baseline: str


def names(cfg: RulesConfig) -> RecordingNames:
    """The recording-rule names derived from ``cfg`` (dashboards query these too)."""
    d, r = cfg.drift_range, cfg.rate_range
    qr, fc = cat.FEATURE_QUANTILE_RANK.name, "driftline_feature_category"
    return RecordingNames(
        rank_increase=f"model_feature_le:{qr}_bucket:increase{d}",
        rank_cdf=f"model_feature_le:{qr}_bucket:ratio{d}",
        rank_share=f"model_feature_bucket:{qr}:share{d}",
        rank_psi=f"model_feature:{qr}:psi{d}",
        rank_ks=f"model_feature:{qr}:ks{d}",
        category_increase=f"model_feature_category:{fc}:increase{d}",
        category_share=f"model_feature_category:{fc}:share{d}",
        category_reference=f"model_feature_category:{cat.FEATURE_REFERENCE_CATEGORY_RATIO.name}:max",
        category_psi=f"model_feature:{fc}:psi{d}",
        feature_psi=f"model_feature:{cat.FEATURE_PSI.name}:fleet{d}",
        window_psi=f"model_feature:{cat.FEATURE_PSI.name}:max",
        prediction_psi=f"model:{cat.PREDICTION_PSI.name}:max",
        estimated_accuracy=f"model:{cat.ESTIMATED_ACCURACY.name}:avg",
        estimated_performance=f"model_metric:{cat.ESTIMATED_PERFORMANCE.name}:avg",
        reference_performance=f"model_metric:{cat.REFERENCE_PERFORMANCE.name}:max",
        accuracy=f"model:{cat.ACCURACY.name}:avg",
        reference_accuracy=f"model:{cat.REFERENCE_ACCURACY.name}:max",
        records_rate=f"model:driftline_records:rate{r}",
        model_name_records_rate=f"model_name:driftline_records:rate{r}",
        model_name_dropped_rate=f"model_name:driftline_records_dropped:rate{r}",
        model_baseline=f"model:{cat.BUILD_INFO.name}:baseline",
        model_name_baseline=f"model_name:{cat.BUILD_INFO.name}:baseline",
    )


def _by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def model_labels(cfg: RulesConfig) -> tuple[str, ...]:
    return (*cfg.group_labels, *cat.MODEL_LABELS)


def version_labels(cfg: RulesConfig) -> tuple[str, ...]:
    """A model version's identity without the endpoint (``driftline_build_info`` has none)."""
    return tuple(x for x in model_labels(cfg) if x != "endpoint")


def feature_labels(cfg: RulesConfig) -> tuple[str, ...]:
    return (*model_labels(cfg), "feature")


def _rule(record: str, expr: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"record": record, "expr": expr}
    if labels:
        out["labels"] = labels
    return out


def recording_rules(cfg: RulesConfig) -> list[dict[str, Any]]:
    """The ``driftline.rules`` group's rules, in evaluation order (later ones read earlier ones)."""
    n = names(cfg)
    t = cfg.thresholds
    fl, ml = _by(feature_labels(cfg)), _by(model_labels(cfg))
    mn = _by((*cfg.group_labels, "model_name"))
    d, r = cfg.drift_range, cfg.rate_range
    rank = cat.FEATURE_QUANTILE_RANK.name + "_bucket" + cfg.matchers('le=~"0\\\\.[1-9]|\\\\+Inf"')
    rules: list[dict[str, Any]] = [
        _rule(n.rank_increase, f"sum by ({fl}, le) (increase({rank}[{d}]))"),
        _rule(n.rank_cdf,
              f'{n.rank_increase}\n/ ignoring (le) group_left ()\n'
              f'({n.rank_increase}{{le="+Inf"}} >= {t.min_samples})'),
        _rule(n.rank_share, f'sum without (le) ({n.rank_cdf}{{le="{RANK_EDGES[0]}"}})',
              {"bucket": RANK_EDGES[0]}),
    ]
    uppers = (*RANK_EDGES[1:], "+Inf")
    for lower, upper in zip(RANK_EDGES, uppers, strict=True):
        bucket = "1.0" if upper == "+Inf" else upper
        rules.append(_rule(n.rank_share,
                           f'{n.rank_cdf}{{le="{upper}"}}\n- ignoring (le)\n{n.rank_cdf}{{le="{lower}"}}',
                           {"bucket": bucket}))
    floored = f"clamp_min({n.rank_share}, {PSI_FLOOR})"
    rules.append(_rule(n.rank_psi,
                       f"sum without (bucket) (\n  ({floored} - {BUCKET_SHARE})\n"
                       f"  * ln({floored} / {BUCKET_SHARE})\n)"))
    terms = "\nor\n".join(f'abs({n.rank_cdf}{{le="{e}"}} - {e})' for e in RANK_EDGES)
    rules.append(_rule(n.rank_ks, f"max by ({fl}) (\n{terms}\n)"))
    catsel = cat.FEATURE_CATEGORY.name + cfg.matchers()
    refsel = cat.FEATURE_REFERENCE_CATEGORY_RATIO.name + cfg.matchers()
    rules += [
        _rule(n.category_increase, f"sum by ({fl}, category) (increase({catsel}[{d}]))"),
        _rule(n.category_share,
              f"{n.category_increase}\n/ ignoring (category) group_left ()\n"
              f"(sum without (category) ({n.category_increase}) >= {t.min_samples})"),
        _rule(n.category_reference, f"max by ({fl}, category) ({refsel})"),
    ]
    # Reference categories never seen in the range count as share 0 (then floored), but only
    # for features that have a share at all.
    cur = (f"clamp_min(\n    {n.category_share}\n    or\n    ({n.category_reference} * 0 "
           f"and on ({fl}) {n.category_share})\n  , {PSI_FLOOR})")
    ref = f"clamp_min({n.category_reference}, {PSI_FLOOR})"
    rules += [
        _rule(n.category_psi, f"sum by ({fl}) (\n  ({cur} - {ref})\n  * ln({cur} / {ref})\n)"),
        _rule(n.feature_psi, f"{n.rank_psi}\nor\n{n.category_psi}"),
        _rule(n.window_psi, f"max by ({fl}) ({cat.FEATURE_PSI.name}{cfg.matchers()})"),
        _rule(n.prediction_psi, f"max by ({ml}) ({cat.PREDICTION_PSI.name}{cfg.matchers()})"),
        _rule(n.estimated_accuracy,
              f"sum by ({ml}) ({cat.ESTIMATED_ACCURACY.name}{cfg.matchers()} * "
              f"{cat.WINDOW_RECORDS.name}{cfg.matchers()})\n/\n"
              f"sum by ({ml}) ({cat.WINDOW_RECORDS.name}{cfg.matchers()} > 0 and "
              f"{cat.ESTIMATED_ACCURACY.name}{cfg.matchers()})"),
        _rule(n.estimated_performance,
              f"avg by ({ml}, metric) ({cat.ESTIMATED_PERFORMANCE.name}{cfg.matchers()})"),
        _rule(n.reference_performance,
              f"max by ({ml}, metric) ({cat.REFERENCE_PERFORMANCE.name}{cfg.matchers()})"),
        _rule(n.accuracy, f"avg by ({ml}) ({cat.ACCURACY.name}{cfg.matchers()})"),
        _rule(n.reference_accuracy, f"max by ({ml}) ({cat.REFERENCE_ACCURACY.name}{cfg.matchers()})"),
        _rule(n.records_rate, f"sum by ({ml}) (rate({cat.RECORDS.name}{cfg.matchers()}[{r}]))"),
        _rule(n.model_name_records_rate, f"sum by ({mn}) (rate({cat.RECORDS.name}{cfg.matchers()}[{r}]))"),
        _rule(n.model_name_dropped_rate,
              f"sum by ({mn}) (rate({cat.RECORDS_DROPPED.name}{cfg.matchers()}[{r}]))"),
        *slo_recording_rules(cfg),
        _rule(n.model_baseline, baseline_expr(cfg, version_labels(cfg))),
        _rule(n.model_name_baseline, baseline_expr(cfg, (*cfg.group_labels, "model_name"))),
    ]
    return rules


#: The label a baseline join writes when the replicas of one model disagree (a rollout of a new
#: baseline is half done): no single id is true then, and an empty one would read as "unknown".
MIXED = "mixed"


def _identity_labels(keys: tuple[str, ...]) -> tuple[str, ...]:
    """What a baseline join adds to an alert keyed by ``keys``: the baseline id, and the model
    version when the alert is per model name only."""
    return tuple(x for x in ("model_version", "baseline_id") if x not in keys)


def baseline_expr(cfg: RulesConfig, keys: tuple[str, ...]) -> str:
    """One series per ``keys`` carrying the ``baseline_id`` (and ``model_version`` when not a
    key) the sidecars report in ``driftline_build_info``: replicas that agree collapse into one;
    replicas that disagree give :data:`MIXED`. Exactly one series per key, so an alert can join
    it with ``group_left`` without a many-to-many error however many replicas run."""
    k, add = _by(keys), _identity_labels(keys)
    info = f"{cat.BUILD_INFO.name}{cfg.matchers()}"
    per = f"max by ({k}, {_by(add)}) ({info})"
    mixed = f"max by ({k}) ({info})"
    for label in add:
        mixed = f'label_replace({mixed}, "{label}", "{MIXED}", "model_name", ".*")'
    return f"(\n  {per}\n  and on ({k})\n  count by ({k}) ({per}) == 1\n)\nor on ({k})\n{mixed}"


def join_baseline(cfg: RulesConfig, expr: str, keys: tuple[str, ...]) -> str:
    """``expr`` with the baseline of its model added to every series (values and other labels
    unchanged: the joined series is 1). Series with no ``driftline_build_info`` (an older or
    folded model, an unnamed one) still fire, without the label: an alert must never depend on
    the info metric being scraped."""
    n, add = names(cfg), _identity_labels(keys)
    info = n.model_baseline if "model_version" in keys else n.model_name_baseline
    inner = "(\n" + "".join(f"  {line}\n" for line in expr.splitlines()) + ")"
    return (f"{inner}\n* on ({_by(keys)}) group_left ({_by(add)})\n{info}\n"
            f"or ignoring ({_by(add)})\n{inner}")


def performance_drop_expr(cfg: RulesConfig) -> str:
    """Estimated performance worse than the reference, for the metrics ``cfg`` names: a ratio
    (higher is better) ``margin`` below it, an error metric ``increase`` (relative) above it."""
    n, t = names(cfg), cfg.thresholds
    ratios = [m for m in cfg.performance_metrics if m not in cat.ERROR_METRICS]
    errors = [m for m in cfg.performance_metrics if m in cat.ERROR_METRICS]
    parts = []
    if ratios:
        sel = f'{{metric=~"{"|".join(ratios)}"}}'
        parts.append(f"{n.estimated_performance}{sel}\n< ({n.reference_performance}{sel} - "
                     f"{t.estimated_performance_margin})")
    if errors:
        sel = f'{{metric=~"{"|".join(errors)}"}}'
        parts.append(f"{n.estimated_performance}{sel}\n> ({n.reference_performance}{sel} * "
                     f"{1 + t.estimated_error_increase:g})")
    return parts[0] if len(parts) == 1 else "(\n" + "\n)\nor\n(\n".join(parts) + "\n)"


@dataclass(frozen=True)
class Alert:
    """One alert before rendering; ``dashboard`` is the uid its dashboard_url opens."""

    name: str
    expr: str
    summary: str
    description: str
    dashboard: str
    url_labels: tuple[str, ...] = ("model_name", "model_version")

    def baseline_keys(self, cfg: RulesConfig) -> tuple[str, ...] | None:
        """The labels its baseline is joined on (None for per-target alerts: a sidecar serves
        several models, so no one baseline belongs to them)."""
        if "model_version" in self.url_labels:
            return version_labels(cfg)
        if "model_name" in self.url_labels:
            return (*cfg.group_labels, "model_name")
        return None


def _model_desc(extra: str = "") -> str:
    return ("{{ $labels.model_name }} {{ $labels.model_version }} "
            "({{ $labels.endpoint }} endpoint" + extra + ")")


def _ns() -> str:
    return "{{ with $labels.namespace }} in namespace {{ . }}{{ end }}"


def alert_list(cfg: RulesConfig) -> list[Alert]:
    """Every alert Driftline ships, before per-alert settings are applied."""
    n = names(cfg)
    t = cfg.thresholds
    ml = _by(model_labels(cfg))
    mn = _by((*cfg.group_labels, "model_name"))
    v3 = '{{ $value | printf "%.3f" }}'
    pct = "{{ $value | humanizePercentage }}"
    fl = _by(feature_labels(cfg))
    # Both views must agree: the fleet PSI (all replicas, drift_range) and the sidecars' own
    # last-window PSI, whose bins follow the reference quantiles. The rank histogram alone
    # over-states drift for discrete numeric features (many equal values share one rank).
    drifting = f"{n.feature_psi} > {t.feature_psi}\nand on ({fl})\n{n.window_psi} > {t.feature_psi}"
    psi_over = "(\n" + "".join(f"  {line}\n" for line in drifting.splitlines()) + ")"

    def canary(metric: str) -> str:
        return (f'{metric}{{endpoint="canary"}}\n< on ({mn}) group_left ()\n'
                f'(max by ({mn}) ({metric}{{endpoint="default"}}) - {t.canary_margin})')

    return [
        Alert("DriftlineFeatureDrift", drifting,
              "A model input feature drifted away from its baseline.",
              f"Feature {{{{ $labels.feature }}}} of model {_model_desc()}{_ns()} has a PSI of {v3} "
              f"over the last {cfg.drift_range} across all replicas, and its last window agrees "
              f"(threshold {t.feature_psi}).",
              MODEL_UID),
        Alert("DriftlineManyFeaturesDrifting",
              f"count by ({ml}) ({psi_over}) >= {t.many_features_count}\nand\n"
              f"count by ({ml}) ({psi_over}) / count by ({ml}) ({n.feature_psi}) >= {t.many_features_ratio}",
              "Many input features of a model drifted at once; retraining is due.",
              f'{{{{ $value | printf "%.0f" }}}} features of model {_model_desc()}{_ns()} have a PSI above '
              f"{t.feature_psi} over the last {cfg.drift_range} (at least {t.many_features_count} "
              f"and {t.many_features_ratio:.0%} of its features).", MODEL_UID),
        Alert("DriftlinePredictionDrift", f"{n.prediction_psi} > {t.prediction_psi}",
              "The distribution of a model's predictions drifted.",
              f"The prediction PSI of model {_model_desc()}{_ns()} is {v3} in the last window "
              f"(threshold {t.prediction_psi}).", MODEL_UID),
        Alert("DriftlineEstimatedAccuracyDrop",
              f"{n.estimated_accuracy}\n< ({n.reference_accuracy} - {t.estimated_accuracy_margin})",
              "The label-free accuracy estimate fell below the reference accuracy.",
              f"Estimated accuracy of model {_model_desc()}{_ns()} is {v3}, more than "
              f"{t.estimated_accuracy_margin} below its reference accuracy.", MODEL_UID),
        Alert("DriftlineEstimatedPerformanceDrop", performance_drop_expr(cfg),
              "A label-free performance estimate is worse than on the reference data.",
              f"Estimated {{{{ $labels.metric }}}} of model {_model_desc()}{_ns()} is {v3}: more "
              f"than {t.estimated_performance_margin} below its reference value (ratios) or more "
              f"than {t.estimated_error_increase:.0%} above it (errors mae, rmse, mape).",
              MODEL_UID),
        Alert("DriftlineAccuracyDrop",
              f"{n.accuracy}\n< ({n.reference_accuracy} - {t.accuracy_margin})",
              "Realised accuracy from delayed labels fell below the reference accuracy.",
              f"Realised accuracy of model {_model_desc()}{_ns()} is {v3}, more than "
              f"{t.accuracy_margin} below its reference accuracy.", MODEL_UID),
        Alert("DriftlineCanaryWorseThanDefault",
              f"(\n{canary(n.estimated_accuracy)}\n)\nor\n(\n{canary(n.accuracy)}\n)",
              "A canary model version is less accurate than the default version.",
              f"Canary {{{{ $labels.model_version }}}} of model {{{{ $labels.model_name }}}}{_ns()} has "
              f"an accuracy of {v3}, more than {t.canary_margin} below the default endpoint.",
              MODEL_UID),
        Alert("DriftlineConceptDrift",
              f"sum by ({ml}, signal) (increase({cat.CHANGE_DETECTIONS.name}{cfg.matchers()}"
              f"[{cfg.adwin_range}])) > 0",
              "A change was detected in a model's per-record stream.",
              f"ChangeDetector found a change in the {{{{ $labels.signal }}}} stream of model {_model_desc()}"
              f"{_ns()} within the last {cfg.adwin_range}.", MODEL_UID),
        Alert("DriftlineMissingValuesHigh",
              f"max by ({_by(feature_labels(cfg))}) ({cat.FEATURE_MISSING_RATIO.name}{cfg.matchers()})"
              f" > {t.missing_ratio}",
              "A model input feature has many missing values.",
              f"{pct} of the values of feature {{{{ $labels.feature }}}} of model {_model_desc()}"
              f"{_ns()} were missing in the last window (threshold {t.missing_ratio:.0%}).", MODEL_UID),
        Alert("DriftlineMultivariateDrift",
              # same series labels on both sides: each replica against its own band
              f"max by ({ml}) (\n  {cat.MULTIVARIATE_ERROR.name}{cfg.matchers()}\n"
              f"  > {cat.MULTIVARIATE_UPPER.name}{cfg.matchers()}\n)",
              "The joint distribution of a model's features left its reference band.",
              f"The PCA reconstruction error of model {_model_desc()}{_ns()} is {v3}, above the "
              "upper edge of its reference band in the last window: the features' correlations "
              "changed, even if no single feature drifted.", MODEL_UID),
        Alert("DriftlineEmbeddingDrift",
              f"min by ({fl}) ({cat.EMBEDDING_MMD_PVALUE.name}{cfg.matchers()})"
              f" < {t.embedding_pvalue}",
              "An embedding input of a model drifted (MMD test).",
              f"The MMD test of embedding feature {{{{ $labels.feature }}}} of model "
              f"{_model_desc()}{_ns()} has a p-value of {v3} in the last window (threshold "
              f"{t.embedding_pvalue}).", MODEL_UID),
        Alert("DriftlineNoTraffic", f"{n.records_rate} == 0",
              "A monitored model receives no records.",
              f"No records reached Driftline for model {_model_desc()}{_ns()} in the last "
              f"{cfg.rate_range}.", MODEL_UID),
        Alert("DriftlineRecordsDropped", _dropped_expr(cfg, n),
              "A Driftline sidecar drops records, so its statistics see less traffic.",
              f"Driftline drops {pct} of the records{{{{ with $labels.model_name }}}} of model "
              f"{{{{ . }}}}{{{{ end }}}}{_ns()} (threshold {t.drop_ratio:.0%}).", SIDECAR_UID,
              ("model_name",)),
        Alert("DriftlineSidecarDown", f"up{{{cfg.sidecar_selector}}} == 0",
              "Prometheus cannot scrape a Driftline sidecar.",
              f"Driftline target {{{{ $labels.instance }}}} of job {{{{ $labels.job }}}}{_ns()} is "
              "down; its models are not monitored.", SIDECAR_UID, ("instance",)),
        Alert("DriftlineQueueNearlyFull",
              f"max by ({_by((*cfg.group_labels, 'job', 'instance'))}) (\n"
              f"  {cat.QUEUE_DEPTH.name}{cfg.matchers()}\n"
              f"  / ({cat.QUEUE_CAPACITY.name}{cfg.matchers()} > 0)\n)"
              f" > {t.queue_fill}",
              "A Driftline sidecar's record queue is nearly full.",
              f"The record queue of Driftline target {{{{ $labels.instance }}}}{_ns()} is {pct} full; "
              "records will be dropped.", SIDECAR_UID, ("instance",)),
        Alert("DriftlineExportErrors",
              f"sum by ({_by((*cfg.group_labels, 'job', 'instance', 'exporter'))}) "
              f"(rate({cat.EXPORT_ERRORS.name}{cfg.matchers()}[{cfg.rate_range}])) > 0",
              "A Driftline sidecar fails to export metrics.",
              f"Driftline target {{{{ $labels.instance }}}}{_ns()} failed {{{{ $labels.exporter }}}} exports "
              f"in the last {cfg.rate_range}.", SIDECAR_UID, ("instance",)),
        Alert("DriftlineProxyUpstreamErrors",
              f"sum by ({_by((*cfg.group_labels, 'job', 'instance', 'kind'))}) "
              f"(rate({cat.PROXY_UPSTREAM_ERRORS.name}{cfg.matchers()}[{cfg.rate_range}])) > 0",
              "The Driftline proxy cannot reach the model server.",
              f"The proxy of Driftline target {{{{ $labels.instance }}}}{_ns()} answered requests "
              f"itself ({{{{ $labels.kind }}}}) in the last {cfg.rate_range}: the model server is "
              "down, refusing or not answering.", SIDECAR_UID, ("instance",)),
        *_slo_alerts(cfg),
    ]


def _dropped_expr(cfg: RulesConfig, n: RecordingNames) -> str:
    """Drops per model against that model's records; drops no model can be named for (a body
    that does not parse, a worker error: ``driftline_unattributed_drops_total``) against
    everything the sidecars saw. Mixing them made an unattributed drop read as "100 % of
    model ''". ``model_name!=""`` keeps older sidecars, which counted those under an empty
    model name, out of the per-model clause."""
    d, r, t = n.model_name_dropped_rate, n.model_name_records_rate, cfg.thresholds
    named, g = f'{d}{{model_name!=""}}', _by(cfg.group_labels)
    anon = f"sum by ({g}) (rate({cat.UNATTRIBUTED_DROPS.name}{cfg.matchers()}[{cfg.rate_range}]))"
    return (f"(\n  {named}\n  /\n  ({named} + ({r} or {named} * 0))\n) > {t.drop_ratio}\nor\n"
            f"(\n  {anon}\n  /\n  ({anon} + (sum by ({g}) ({d}) or {anon} * 0)"
            f" + (sum by ({g}) ({r}) or {anon} * 0))\n) > {t.drop_ratio}")


def _slo_alerts(cfg: RulesConfig) -> list[Alert]:
    slo = cfg.slo
    pct = "{{ $value | humanizePercentage }}"
    what = {"errors": ("Availability", f"{slo.availability:.4g} of requests without a 5xx",
                       "answered with a server error"),
            "slow": ("Latency", f"{slo.latency_target:.4g} of requests within {slo.latency_threshold:g}s",
                     f"slower than {slo.latency_threshold:g}s")}
    out = []
    for kind, (name, objective, bad) in what.items():
        for speed, suffix in (("fast", ""), ("slow", "Slow")):
            long = burn_windows(speed)[0][0][0]
            pace = "fast: a page" if speed == "fast" else "slowly: a ticket"
            out.append(Alert(
                f"Driftline{name}BudgetBurn{suffix}", slo_alert_exprs(cfg, kind, speed),
                f"A model burns its {name.lower()} error budget {pace}.",
                f"{pct} of the requests to model {{{{ $labels.model_name }}}}{_ns()} were {bad} over "
                f"the last {long} (objective {objective}); at this rate the budget of the SLO runs "
                f"out {'within days' if speed == 'fast' else 'before the month ends'}.",
                MODEL_UID, ("model_name",)))
    return out


def dashboard_url(cfg: RulesConfig, alert: Alert) -> str:
    base = f"{cfg.grafana_url.rstrip('/')}/d/{alert.dashboard}/{slug(alert.dashboard)}"
    keys = dict.fromkeys((*cfg.group_labels, *alert.url_labels))  # the dashboards' variables
    query = "&".join(f"var-{k}={{{{ $labels.{k} }}}}" for k in keys)
    return f"{base}?{query}" if query else base


def alert_rules(cfg: RulesConfig) -> list[dict[str, Any]]:
    """The ``driftline.alerts`` group's rules (disabled alerts left out)."""
    out: list[dict[str, Any]] = []
    for a in alert_list(cfg):
        s = cfg.alert(a.name)
        if not s.enabled:
            continue
        keys = a.baseline_keys(cfg)
        expr = a.expr if keys is None else join_baseline(cfg, a.expr, keys)
        rule: dict[str, Any] = {"alert": a.name, "expr": expr}
        if s.for_ and s.for_ not in ("0s", "0m"):
            rule["for"] = s.for_
        rule["labels"] = {"severity": s.severity, "action": s.action}
        rule["annotations"] = {
            "summary": a.summary,
            "description": a.description,
            "runbook_url": cfg.runbook_url_pattern % a.name.lower(),
            "dashboard_url": dashboard_url(cfg, a),
        }
        out.append(rule)
    return out


def rule_groups(cfg: RulesConfig) -> list[dict[str, Any]]:
    """The rule file's ``groups`` (also the PrometheusRule's ``spec.groups``).

    One group on purpose: rules in a group run in order at the same timestamp, so every alert
    reads the recording rules of the same evaluation. Across groups (which run independently)
    an alert could read the previous evaluation's value and fire one interval late.
    """
    return [{"name": "driftline", "rules": [*recording_rules(cfg), *alert_rules(cfg)]}]


def prometheus_rule(cfg: RulesConfig) -> dict[str, Any]:
    """The same groups as a prometheus-operator PrometheusRule (loaded when ``release`` matches)."""
    meta: dict[str, Any] = {"name": "driftline",
                            "labels": {"app.kubernetes.io/name": "driftline",
                                       "app.kubernetes.io/component": "alerting",
                                       "release": cfg.release}}
    if cfg.rule_namespace:
        meta["namespace"] = cfg.rule_namespace
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": meta,
            "spec": {"groups": rule_groups(cfg)}}


class BlockDumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL reads best that way)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


BlockDumper.add_representer(str, _str)

HEADER = "# Generated by `driftline rules generate` from driftline/catalogue.py; do not edit.\n"


def to_yaml(doc: Any) -> str:
    """Deterministic YAML with the generated-file header."""
    return HEADER + yaml.dump(doc, Dumper=BlockDumper, sort_keys=False, width=1_000_000, allow_unicode=True)
