"""promtool unit tests for the generated rules, generated from the same config.

For every alert a scenario feeds series that make the alert's expression true from minute
``onset`` on; the test asserts that nothing fires one evaluation step before ``onset + for`` and
that exactly the expected alert (labels and rendered annotations) fires at it. Expected values in
annotations and the recording-rule checks are computed here in plain Python with the same float
operations, from the same inputs, so promtool's exact comparison holds (2.42 has no fuzzy
compare). Scenarios assume whole-minute ranges; thresholds must leave room for the drifted values
they use (see the validation in :mod:`~driftline.alertmanager.rules_config`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client.utils import floatToGoString

from driftline import catalogue as cat
from driftline.alertmanager.rules import (
    BUCKET_SHARE,
    MIXED,
    PSI_FLOOR,
    RANK_EDGES,
    Alert,
    alert_list,
    alert_rules,
    names,
)
from driftline.alertmanager.rules_config import DEFAULT_ALERTS, RulesConfig, duration_seconds

__all__ = ["render_template", "rules_test_file"]

MAX_STEP = 60  # seconds between samples and rule evaluations in the tests, at most
INSTANCES = ("10.0.0.1:9108", "10.0.0.2:9108")


def render_template(text: str, labels: Mapping[str, str], value: float | None) -> str:
    """Render the small subset of Prometheus' Go templates Driftline's annotations use."""

    def with_block(m: re.Match[str]) -> str:
        v = labels.get(m.group(1), "")
        return m.group(2).replace("{{ . }}", v) if v else ""

    out = re.sub(r"\{\{ with \$labels\.(\w+) \}\}(.*?)\{\{ end \}\}", with_block, text)
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), out)

    def fmt(m: re.Match[str]) -> str:
        if value is None:
            raise ValueError(f"template {text!r} needs a value")
        if m.group(1):
            return m.group(1) % value
        return "%.4g%%" % (value * 100)  # Prometheus' humanizePercentage

    return re.sub(r'\{\{ \$value \| (?:printf "(%[^"]+)"|humanizePercentage) \}\}', fmt, out)


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    values: Callable[[int], float | None]  # minute -> value (None = missing)

    def render(self, minutes: int) -> dict[str, str]:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        vals = []
        for i in range(minutes + 1):
            v = self.values(i)
            vals.append("_" if v is None else (str(int(v)) if float(v).is_integer() else repr(float(v))))
        return {"series": f"{self.name}{{{inner}}}", "values": " ".join(vals)}


@dataclass
class Scenario:
    alert: str
    onset: int  # first minute at which the expression is true
    series: list[Series]
    expected: list[tuple[dict[str, str], float | None]]  # output labels, $value at firing time
    value_at: Callable[[int], list[float | None]] | None = None  # $value per expected alert
    #: ``driftline_build_info`` per replica: None = one per (instance, model, version) of the
    #: series, all replicas on the same baseline; a mapping = that, with these instances of the
    #: scenario's model on another baseline id; ``{}`` = no build_info at all.
    baselines: dict[str, str] | None = None
    note: str = ""


def test_step(cfg: RulesConfig) -> int:
    """Seconds per test step: the largest divisor of 60 s that divides every range and ``for:``
    (1 min for the defaults; 5 s for a demo with ``for: 5s``), so windows start on samples."""
    step = MAX_STEP
    for d in (cfg.drift_range, cfg.rate_range, cfg.adwin_range,
              *(cfg.alert(a).for_ or "0s" for a in DEFAULT_ALERTS)):
        step = math.gcd(step, duration_seconds(d))
    return step


def _steps(d: str, step: int) -> int:
    return duration_seconds(d) // step


class _Ctx:
    def __init__(self, cfg: RulesConfig) -> None:
        self.cfg = cfg
        self.target = dict(cfg.test_labels)
        self.group = {g: self.target[g] for g in cfg.group_labels if g in self.target}
        self.model = {"model_name": "fraud", "model_version": "3", "endpoint": "default"}

    def labels(self, instance: int = 0, **extra: str) -> dict[str, str]:
        return {**self.target, "instance": INSTANCES[instance], **extra}

    def model_series_labels(self, instance: int = 0, **extra: str) -> dict[str, str]:
        return {**self.labels(instance), **self.model, **extra}

    def out(self, **extra: str) -> dict[str, str]:
        return {**self.group, **self.model, **extra}


# ----------------------------------------------------------------------------- quantile ranks


@dataclass(frozen=True)
class _RankFeed:
    """Uniform ranks (``u`` per bucket per minute) before ``onset``, a burst of ``burst`` values
    in the top bucket at ``onset`` and ``drift`` per minute there afterwards."""

    onset: int
    u: int
    burst: int
    drift: int

    def cum(self, k: int, i: int) -> int:
        """Cumulative count at minute ``i`` of bucket index ``k`` (1..10; 10 = 1.0 = +Inf)."""
        base = k * self.u * min(i, self.onset - 1)
        if k < 10:
            return base
        return base + (self.burst if i >= self.onset else 0) + self.drift * max(0, i - self.onset)


def _rank_series(ctx: _Ctx, feed: _RankFeed, feature: str, instance: int) -> list[Series]:
    name = cat.FEATURE_QUANTILE_RANK.name + "_bucket"
    out = []
    for k, le in enumerate((*RANK_EDGES, "1.0", "+Inf"), start=1):
        kk = min(k, 10)
        out.append(Series(name, ctx.model_series_labels(instance, feature=feature, le=le),
                          partial(_cum, feed, kk)))
    return out


def _cum(feed: _RankFeed, k: int, i: int) -> float:
    return float(feed.cum(k, i))


def _const(v: float, i: int) -> float:
    return v


def _step(lo: float, hi: float, onset: int, i: int) -> float:
    return lo if i < onset else hi


def _window_increase(f: Callable[[int], float], t: int, rng: int) -> float:
    # Samples sit on whole minutes from minute 0, so increase() over a closed [t-rng, t] window
    # needs no extrapolation (counters start at 0, or the window starts on a sample).
    return f(t) - f(max(0, t - rng))


def _rank_cdf(feeds: list[_RankFeed], t: int, rng: int) -> list[float]:
    """Cumulative shares at le=0.1..0.9, +Inf, summed over replicas (as the recording rules)."""
    inc = [sum(_window_increase(partial(_cum, f, k), t, rng) for f in feeds)
           for k in range(1, 11)]
    return [c / inc[9] for c in inc]


def _rank_psi(feeds: list[_RankFeed], t: int, rng: int) -> float:
    cdf = _rank_cdf(feeds, t, rng)
    shares = [cdf[0]] + [cdf[k] - cdf[k - 1] for k in range(1, 10)]
    psi = 0.0
    for s in shares:
        p = max(s, PSI_FLOOR)
        psi += (p - BUCKET_SHARE) * math.log(p / BUCKET_SHARE)
    return psi


def _rank_ks(feeds: list[_RankFeed], t: int, rng: int) -> float:
    cdf = _rank_cdf(feeds, t, rng)
    return max(abs(cdf[k] - float(e)) for k, e in enumerate(RANK_EDGES))


def _rank_feed(cfg: RulesConfig, onset: int, replicas: int, window: int) -> _RankFeed:
    """Enough values per ``window`` steps (before and after onset) to pass ``min_samples``."""
    u = max(5, math.ceil((cfg.thresholds.min_samples + 1) / (10 * min(onset - 1, window) * replicas)))
    total = 10 * u * (onset - 1)
    return _RankFeed(onset, u, burst=20 * total, drift=10 * u)


# ---------------------------------------------------------------------------------- scenarios


def _scenarios(cfg: RulesConfig) -> list[Scenario]:
    ctx = _Ctx(cfg)
    t = cfg.thresholds
    step_s = test_step(cfg)
    rd = _steps(cfg.drift_range, step_s)
    rr = _steps(cfg.rate_range, step_s)
    out: list[Scenario] = []

    # Feature drift: a numeric feature on two replicas, a categorical one on one replica.
    onset = 10
    feed = _rank_feed(cfg, onset, 2, rd)
    num = [*_rank_series(ctx, feed, "amount", 0), *_rank_series(ctx, feed, "amount", 1)]
    ref = {"us": 0.5, "de": 0.25, "__other__": 0.25}
    per_min = 4 * math.ceil((t.min_samples + 1) / (4 * min(onset - 1, rd)))

    def cat_cum(c: str, i: int, onset: int = onset) -> float:
        base = ref[c] * per_min * min(i, onset - 1)
        if c != "de":
            return base
        return base + (20 * per_min * (onset - 1) if i >= onset else 0) + per_min * max(0, i - onset)

    cats = [Series(cat.FEATURE_CATEGORY.name, ctx.model_series_labels(0, feature="country", category=c),
                   partial(cat_cum, c)) for c in ref]
    refs = [Series(cat.FEATURE_REFERENCE_CATEGORY_RATIO.name,
                   ctx.model_series_labels(0, feature="country", category=c), partial(_const, r))
            for c, r in ref.items()]

    def cat_psi(tm: int) -> float:
        inc = {c: _window_increase(partial(cat_cum, c), tm, rd) for c in ref}
        total = sum(inc.values())
        psi = 0.0
        for c, r in ref.items():
            p = max(inc[c] / total, PSI_FLOOR)
            psi += (p - max(r, PSI_FLOOR)) * math.log(p / max(r, PSI_FLOOR))
        return psi

    hi = 0.5 if t.feature_psi < 0.5 else float(math.ceil(t.feature_psi * 2))

    def window_psi(feature: str, instance: int, drifts: bool = True) -> Series:
        """The sidecar's own last-window PSI gauge (0 before onset, hi after when it drifts)."""
        return Series(cat.FEATURE_PSI.name, ctx.model_series_labels(instance, feature=feature),
                      partial(_step, 0.0, hi if drifts else 0.0, onset))

    # "term": a discrete feature whose rank histogram looks drifted while its window PSI does
    # not; the alert must stay silent for it.
    gauges = [window_psi("amount", 0), window_psi("amount", 1, drifts=False), window_psi("country", 0),
              window_psi("term", 0, drifts=False)]
    out.append(Scenario(
        "DriftlineFeatureDrift", onset, [*num, *cats, *refs, *_rank_series(ctx, feed, "term", 0), *gauges],
        [(ctx.out(feature="amount"), None), (ctx.out(feature="country"), None)],
        value_at=lambda tm: [_rank_psi([feed, feed], tm, rd), cat_psi(tm)],
    ))

    # Many features drifting: K numeric features, all drifting.
    k = max(t.many_features_count, 1)
    feed1 = _rank_feed(cfg, onset, 1, rd)
    many = [s for j in range(k) for s in (*_rank_series(ctx, feed1, f"f{j}", 0), window_psi(f"f{j}", 0))]
    out.append(Scenario("DriftlineManyFeaturesDrifting", onset, many, [(ctx.out(), float(k))]))

    onset = 5

    def step(lo: float, hi: float, onset: int = onset, ramp: bool = False) -> Callable[[int], float]:
        """lo before onset, then hi (or hi per minute since onset, as a counter, when ramp)."""
        if ramp:
            return lambda i: lo if i < onset else hi * (i - onset + 1)
        return lambda i: lo if i < onset else hi

    hi = 0.5 if t.prediction_psi < 0.5 else float(math.ceil(t.prediction_psi * 2))
    out.append(Scenario("DriftlinePredictionDrift", onset, [
        Series(cat.PREDICTION_PSI.name, ctx.model_series_labels(0), step(0.0, hi)),
        Series(cat.PREDICTION_PSI.name, ctx.model_series_labels(1), step(0.0, 0.0625)),
    ], [(ctx.out(), hi)]))
    # the same with the replicas on different baselines (a rollout half done), and with no
    # build_info at all: the first says "mixed", the second fires without a baseline
    prediction = out[-1]
    out.append(dataclasses.replace(prediction, baselines={INSTANCES[1]: "b-fraud-3-new"},
                                   note="replicas on two baselines"))
    out.append(dataclasses.replace(prediction, baselines={}, note="no driftline_build_info"))

    out.append(Scenario("DriftlineEstimatedAccuracyDrop", onset, [
        Series(cat.ESTIMATED_ACCURACY.name, ctx.model_series_labels(0), step(0.9375, 0.25)),
        Series(cat.ESTIMATED_ACCURACY.name, ctx.model_series_labels(1), step(0.9375, 0.625)),
        Series(cat.WINDOW_RECORDS.name, ctx.model_series_labels(0), lambda i: 1000.0),
        Series(cat.WINDOW_RECORDS.name, ctx.model_series_labels(1), lambda i: 3000.0),
        Series(cat.REFERENCE_ACCURACY.name, ctx.model_series_labels(0), lambda i: 0.9375),
        Series(cat.REFERENCE_ACCURACY.name, ctx.model_series_labels(1), lambda i: 0.9375),
    ], [(ctx.out(), (0.25 * 1000 + 0.625 * 3000) / 4000)]))

    ratio = next((m for m in cfg.performance_metrics if m not in cat.ERROR_METRICS), None)
    error = next((m for m in cfg.performance_metrics if m in cat.ERROR_METRICS), None)
    perf: list[Series] = []
    expected: list[tuple[dict[str, str], float | None]] = []
    if ratio is not None:  # one replica drops, the other holds: their average fires
        perf += [Series(cat.ESTIMATED_PERFORMANCE.name, ctx.model_series_labels(0, metric=ratio),
                        step(0.9375, 0.25)),
                 Series(cat.REFERENCE_PERFORMANCE.name, ctx.model_series_labels(0, metric=ratio),
                        lambda i: 0.9375),
                 Series(cat.ESTIMATED_PERFORMANCE.name, ctx.model_series_labels(1, metric=ratio),
                        lambda i: 0.9375),
                 Series(cat.REFERENCE_PERFORMANCE.name, ctx.model_series_labels(1, metric=ratio),
                        lambda i: 0.9375)]
        expected.append((ctx.out(metric=ratio), (0.25 + 0.9375) / 2))
    if error is not None:  # an error metric rises well past the allowed increase
        hi = 4.0 * (1 + t.estimated_error_increase)
        perf += [Series(cat.ESTIMATED_PERFORMANCE.name, ctx.model_series_labels(0, metric=error),
                        step(2.0, hi)),
                 Series(cat.REFERENCE_PERFORMANCE.name, ctx.model_series_labels(0, metric=error),
                        lambda i: 2.0)]
        expected.append((ctx.out(metric=error), hi))
    out.append(Scenario("DriftlineEstimatedPerformanceDrop", onset, perf, expected))

    out.append(Scenario("DriftlineAccuracyDrop", onset, [
        Series(cat.ACCURACY.name, ctx.model_series_labels(0), step(0.9375, 0.25)),
        Series(cat.ACCURACY.name, ctx.model_series_labels(1), step(0.9375, 0.5)),
        Series(cat.REFERENCE_ACCURACY.name, ctx.model_series_labels(0), lambda i: 0.9375),
    ], [(ctx.out(), 0.375)]))

    canary = {"model_version": "4", "endpoint": "canary"}
    out.append(Scenario("DriftlineCanaryWorseThanDefault", onset, [
        Series(cat.ESTIMATED_ACCURACY.name, ctx.model_series_labels(0), lambda i: 0.9375),
        Series(cat.WINDOW_RECORDS.name, ctx.model_series_labels(0), lambda i: 1000.0),
        Series(cat.ESTIMATED_ACCURACY.name, ctx.model_series_labels(1, **canary), step(0.9375, 0.5)),
        Series(cat.WINDOW_RECORDS.name, ctx.model_series_labels(1, **canary), lambda i: 1000.0),
    ], [(ctx.out(**canary), 0.5)]))

    out.append(Scenario("DriftlineConceptDrift", onset, [
        Series(cat.CHANGE_DETECTIONS.name, ctx.model_series_labels(0, signal="error"), step(0.0, 1.0)),
        Series(cat.CHANGE_DETECTIONS.name, ctx.model_series_labels(0, signal="confidence"), lambda i: 0.0),
    ], [(ctx.out(signal="error"), None)]))

    hi = 0.25 if t.missing_ratio < 0.25 else 0.75
    out.append(Scenario("DriftlineMissingValuesHigh", onset, [
        Series(cat.FEATURE_MISSING_RATIO.name, ctx.model_series_labels(0, feature="amount"), step(0.0, hi)),
        Series(cat.FEATURE_MISSING_RATIO.name, ctx.model_series_labels(1, feature="amount"), step(0.0, 0.0)),
    ], [(ctx.out(feature="amount"), hi)]))

    # one replica's error leaves its band, the other's stays inside: the alert fires with the
    # larger error
    out.append(Scenario("DriftlineMultivariateDrift", onset, [
        Series(cat.MULTIVARIATE_ERROR.name, ctx.model_series_labels(0), step(1.0, 2.5)),
        Series(cat.MULTIVARIATE_UPPER.name, ctx.model_series_labels(0), lambda i: 1.5),
        Series(cat.MULTIVARIATE_ERROR.name, ctx.model_series_labels(1), step(1.0, 1.25)),
        Series(cat.MULTIVARIATE_UPPER.name, ctx.model_series_labels(1), lambda i: 1.5),
    ], [(ctx.out(), 2.5)]))

    lo = t.embedding_pvalue / 4
    out.append(Scenario("DriftlineEmbeddingDrift", onset, [
        Series(cat.EMBEDDING_MMD_PVALUE.name, ctx.model_series_labels(0, feature="text_emb"),
               step(0.5, lo)),
        Series(cat.EMBEDDING_MMD_PVALUE.name, ctx.model_series_labels(1, feature="text_emb"),
               step(0.5, 0.5)),
    ], [(ctx.out(feature="text_emb"), lo)]))

    stop = 2
    out.append(Scenario("DriftlineNoTraffic", stop + rr, [
        Series(cat.RECORDS.name, ctx.model_series_labels(0, source="proxy"), lambda i: 60.0 * min(i, stop)),
    ], [(ctx.out(), None)]))

    onset = rr + 2

    def records(i: int) -> float:
        return 100.0 * i

    def dropped(i: int, onset: int = onset) -> float:
        # As many drops per step as records in a whole rate range: half the payloads at onset.
        return 100.0 * rr * max(0, i - onset + 1)

    def drop_ratio(tm: int) -> float:
        rsec = rr * step_s
        d = _window_increase(dropped, tm, rr) / rsec
        r = _window_increase(records, tm, rr) / rsec
        return d / (d + r)

    def dropped_scenario(named: bool) -> Scenario:
        """Drops of a named model, next to a few bodies that named no model: far below the
        threshold of everything seen, so they must not read as "100 % of model ''". Or drops
        that name no model at all, against everything the sidecars saw. The same ratio."""
        if named:
            drops = [Series(cat.RECORDS_DROPPED.name, ctx.labels(0, model_name="fraud", reason="queue_full"),
                            dropped),
                     Series(cat.UNATTRIBUTED_DROPS.name, ctx.labels(1, reason="parse_error"),
                            lambda i: 1.0 * i)]
            labels = {**ctx.group, "model_name": "fraud"}
        else:
            drops = [Series(cat.UNATTRIBUTED_DROPS.name, ctx.labels(1, reason="internal_error"), dropped)]
            labels = dict(ctx.group)
        return Scenario("DriftlineRecordsDropped", onset,
                        [Series(cat.RECORDS.name, ctx.model_series_labels(0, source="proxy"), records),
                         *drops], [(labels, None)], value_at=lambda tm: [drop_ratio(tm)])

    out += [dropped_scenario(named=True), dropped_scenario(named=False)]

    onset = 5
    out.append(Scenario("DriftlineSidecarDown", onset, [
        Series("up", ctx.labels(0), step(1.0, 0.0)),
        Series("up", ctx.labels(1), lambda i: 1.0),
        # the action receiver is not a sidecar: its own health checks cover it
        Series("up", {**ctx.labels(1), "job": "driftline-actions"}, step(1.0, 0.0)),
    ], [(ctx.labels(0), 0.0)]))

    depth = 950.0 if t.queue_fill < 0.95 else 1000.0
    target_out = {**ctx.group, "job": ctx.target.get("job", ""), "instance": INSTANCES[0]}
    target_out = {k: v for k, v in target_out.items() if v}
    out.append(Scenario("DriftlineQueueNearlyFull", onset, [
        Series(cat.QUEUE_DEPTH.name, ctx.labels(0), step(10.0, depth)),
        Series(cat.QUEUE_CAPACITY.name, ctx.labels(0), lambda i: 1000.0),
    ], [(target_out, depth / 1000.0)]))

    out.append(Scenario("DriftlineExportErrors", onset, [
        Series(cat.EXPORT_ERRORS.name, ctx.labels(0, exporter="otlp"),
               step(0.0, 1.0, ramp=True)),
    ], [({**target_out, "exporter": "otlp"}, None)]))

    out.append(Scenario("DriftlineProxyUpstreamErrors", onset, [
        Series(cat.PROXY_UPSTREAM_ERRORS.name, ctx.labels(0, kind="unavailable"),
               step(0.0, 1.0, ramp=True)),
        Series(cat.PROXY_UPSTREAM_ERRORS.name, ctx.labels(1, kind="timeout"), lambda i: 3.0),
    ], [({**target_out, "kind": "unavailable"}, None)]))
    out += _slo_scenarios(ctx)
    return out


def _slo_scenarios(ctx: _Ctx) -> list[Scenario]:
    """Half of the requests fail (or are slow) from the start: every window's ratio is exactly
    0.5 (the same rate() extrapolation on numerator and denominator). That is above the second
    limit of each alert for every allowed budget (< 1/14.4, so 6 × it < 0.42 and 1 × it < 0.07),
    so each alert is true as soon as two samples exist (minute 1). A healthy model next to it
    never fires."""
    le = floatToGoString(ctx.cfg.slo.latency_threshold)
    model = {"model_name": "fraud"}
    healthy = {"model_name": "iris"}
    req, lat = cat.MODEL_REQUESTS.name, cat.MODEL_REQUEST_DURATION.name

    def half(i: int) -> float:
        return 30.0 * i

    def full(i: int) -> float:
        return 60.0 * i

    errors = [
        Series(req, ctx.model_series_labels(0, code="2xx"), half),
        Series(req, ctx.model_series_labels(1, code="5xx"), half),
        Series(req, {**ctx.model_series_labels(0, code="2xx"), **healthy}, full),
    ]
    slow = [
        Series(f"{lat}_bucket", {**ctx.labels(0), **model, "endpoint": "default", "le": le}, half),
        Series(f"{lat}_count", {**ctx.labels(0), **model, "endpoint": "default"}, full),
        Series(f"{lat}_bucket", {**ctx.labels(0), **healthy, "endpoint": "default", "le": le}, full),
        Series(f"{lat}_count", {**ctx.labels(0), **healthy, "endpoint": "default"}, full),
    ]
    out = [{**ctx.group, **model}]
    # (the latency histogram has no model_version: its build_info comes from the default one)
    return [Scenario(f"Driftline{kind}BudgetBurn{speed}", 1, series, [(out[0], 0.5)])
            for kind, series in (("Availability", errors), ("Latency", slow))
            for speed in ("", "Slow")]


def _fmt_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def rules_test_file(cfg: RulesConfig, rule_file: str = "driftline-rules.yaml") -> dict[str, Any]:
    """The promtool test file (``promtool test rules``) for the rules generated from ``cfg``."""
    rules = {r["alert"]: r for r in alert_rules(cfg)}
    summaries = {a.name: a for a in alert_list(cfg)}
    tests: list[dict[str, Any]] = []
    step = test_step(cfg)
    for sc in _scenarios(cfg):
        rule = rules.get(sc.alert)
        if rule is None:  # disabled
            continue
        fire = sc.onset + math.ceil(duration_seconds(rule.get("for", "0s")) / step)
        values = sc.value_at(fire) if sc.value_at else [v for _, v in sc.expected]
        info = _build_info(_Ctx(cfg), sc)
        exp_alerts = []
        for (labels, _), value in zip(sc.expected, values, strict=True):
            labels = {**labels, **_expected_baseline(cfg, summaries[sc.alert], labels, info)}
            ann = {k: render_template(v, labels, value) for k, v in rule["annotations"].items()}
            exp_alerts.append({"exp_labels": {**rule["labels"], **labels}, "exp_annotations": ann})
        test: dict[str, Any] = {
            "name": f"{sc.alert}: silent at {_d((fire - 1) * step)}, fires at {_d(fire * step)} "
                    f"({summaries[sc.alert].summary}{'; ' + sc.note if sc.note else ''})",
            "interval": _d(step),
            "input_series": [s.render(fire + 2) for s in [*sc.series, *info]],
            "alert_rule_test": [
                {"eval_time": _d((fire - 1) * step), "alertname": sc.alert, "exp_alerts": []},
                {"eval_time": _d(fire * step), "alertname": sc.alert, "exp_alerts": exp_alerts},
            ],
        }
        if sc.alert == "DriftlineFeatureDrift":
            test["promql_expr_test"] = _feature_drift_expr_tests(cfg, fire)
        tests.append(test)
    return {"rule_files": [rule_file], "evaluation_interval": _d(step), "tests": tests}


def baseline_id(model_name: str, model_version: str) -> str:
    """The baseline id the generated tests give a model version's build_info."""
    return f"b-{model_name}-{model_version}"


def _build_info(ctx: _Ctx, sc: Scenario) -> list[Series]:
    """``driftline_build_info`` for every replica and model version the scenario's series
    name (the model's default version when a series has none), as each sidecar exports it."""
    if sc.baselines == {}:
        return []
    override = sc.baselines or {}
    seen: dict[tuple[str, str, str], str] = {}
    for s in sc.series:
        name, inst = s.labels.get("model_name", ""), s.labels.get("instance", "")
        if not name or not inst:
            continue
        version = s.labels.get("model_version", ctx.model["model_version"])
        bid = baseline_id(name, version)
        if (name, version) == (ctx.model["model_name"], ctx.model["model_version"]):
            bid = override.get(inst, bid)
        seen.setdefault((inst, name, version), bid)
    return [Series(cat.BUILD_INFO.name,
                   {**ctx.target, "instance": inst, "model_name": name, "model_version": version,
                    "baseline_id": bid, "baseline_source": "0123456789ab", "version": "test"},
                   partial(_const, 1.0))
            for (inst, name, version), bid in seen.items()]


def _expected_baseline(cfg: RulesConfig, alert: Alert, labels: Mapping[str, str],
                       info: list[Series]) -> dict[str, str]:
    """The labels the baseline join adds to an alert with ``labels``, computed from the
    scenario's build_info series independently of the PromQL: the one (version, baseline) its
    replicas report, "mixed" when they disagree, nothing without build_info."""
    keys = alert.baseline_keys(cfg)
    if keys is None or not labels.get("model_name"):
        return {}
    add = [k for k in ("model_version", "baseline_id") if k not in keys]
    found = {tuple(s.labels[a] for a in add) for s in info
             if all(s.labels.get(k) == labels.get(k) for k in keys)}
    if not found:
        return {}
    values = found.pop() if len(found) == 1 else (MIXED,) * len(add)
    return dict(zip(add, values, strict=True))


def _d(seconds: int) -> str:
    """A duration as promtool prints it: whole minutes as ``5m``, else seconds."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _feature_drift_expr_tests(cfg: RulesConfig, fire: int) -> list[dict[str, Any]]:
    """Exact checks of the approximate KS and the top bucket's share (no logarithms involved)."""
    ctx = _Ctx(cfg)
    n = names(cfg)
    step = test_step(cfg)
    rd = _steps(cfg.drift_range, step)
    feed = _rank_feed(cfg, 10, 2, rd)
    cdf = _rank_cdf([feed, feed], fire, rd)
    lbl = _fmt_labels(ctx.out(feature="amount"))
    return [
        {"expr": n.rank_ks + lbl, "eval_time": _d(fire * step),
         "exp_samples": [{"labels": n.rank_ks + lbl, "value": _rank_ks([feed, feed], fire, rd)}]},
        {"expr": f'{n.rank_share}{{bucket="1.0", feature="amount"}}', "eval_time": _d(fire * step),
         "exp_samples": [{"labels": n.rank_share + _fmt_labels({**ctx.out(feature="amount"),
                                                                "bucket": "1.0"}),
                          "value": cdf[9] - cdf[8]}]},
        {"expr": n.rank_ks + lbl, "eval_time": _d(9 * step),
         "exp_samples": [{"labels": n.rank_ks + lbl, "value": _rank_ks([feed, feed], 9, rd)}]},
    ]
