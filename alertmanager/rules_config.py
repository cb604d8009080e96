"""The one configuration object behind Driftline's Prometheus rules, Alertmanager example and
promtool tests (mixin style: selectors, thresholds and ``for:`` durations in one place).

Defaults are embedded; a YAML file overrides any subset of keys::

    selector: 'namespace=~"ml-.*"'
    thresholds: {feature_psi: 0.25}
    alerts:
      DriftlineFeatureDrift: {for: 30m, severity: warning}
      DriftlineExportErrors: {enabled: false}
    release: prometheus
    slo: {availability: 0.999, latency: {threshold: 0.25, target: 0.99}}
    notify:                      # channels per severity; see notify_config
      channels: {ml-slack: {type: slack, api_url_file: /etc/alertmanager/secrets/slack-url}}
      severities: {critical: [ml-slack], warning: [ml-slack]}

>>> cfg = RulesConfig()
>>> cfg.thresholds.feature_psi, cfg.alert("DriftlineFeatureDrift").for_
(0.2, '15m')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftline.alertmanager.notify_config import NotifyConfig, example_notify, notify_from_mapping
from driftline.catalogue import LATENCY_BUCKETS
from driftline.errors import ConfigError

__all__ = ["AlertSettings", "RulesConfig", "Thresholds", "duration_seconds", "load_rules_config"]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(text: str) -> int:
    """Seconds of a Prometheus duration made of ``h``, ``m`` and ``s`` parts (``1h30m``)."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None:
        raise ConfigError(f"{text!r} is not a duration", fix="write it like 15m, 1h or 1h30m")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds. Ratios and accuracies are 0–1 (not percent)."""

    feature_psi: float = 0.2
    many_features_count: int = 3
    many_features_ratio: float = 0.3
    prediction_psi: float = 0.2
    estimated_accuracy_margin: float = 0.05
    #: DriftlineEstimatedPerformanceDrop: a ratio metric (f1, roc_auc, …, r2) this far below
    #: its reference value, or an error metric (mae, rmse, mape) this share above it.
    estimated_performance_margin: float = 0.05
    estimated_error_increase: float = 0.2
    accuracy_margin: float = 0.05
    canary_margin: float = 0.02
    missing_ratio: float = 0.1
    #: DriftlineEmbeddingDrift: MMD permutation p-value below this on every window of ``for:``
    embedding_pvalue: float = 0.01
    drop_ratio: float = 0.01
    queue_fill: float = 0.9
    min_samples: int = 100


@dataclass(frozen=True)
class Slo:
    """Service-level objectives per model, over the proxy's request metrics.

    ``availability``: the share of requests that must not be answered with a 5xx;
    ``latency_threshold`` (seconds, one of the catalogue's latency buckets) and ``latency_target``:
    the share of requests that must be at least that fast. The error budget is ``1 - target``.
    """

    availability: float = 0.995
    latency_threshold: float = 0.5
    latency_target: float = 0.99


@dataclass(frozen=True)
class AlertSettings:
    """Per-alert overrides. None keeps the built-in value."""

    for_: str | None = None
    severity: str | None = None
    action: str | None = None
    enabled: bool = True


#: Built-in ``for:`` durations, severities and actions.
DEFAULT_ALERTS: dict[str, AlertSettings] = {
    "DriftlineFeatureDrift": AlertSettings("15m", "warning", "none"),
    "DriftlineManyFeaturesDrifting": AlertSettings("15m", "critical", "retrain"),
    "DriftlinePredictionDrift": AlertSettings("15m", "warning", "none"),
    # label-free: a page for people; rollback is opt-in (alerts: {...: {action: rollback}})
    "DriftlineEstimatedAccuracyDrop": AlertSettings("15m", "critical", "none"),
    "DriftlineEstimatedPerformanceDrop": AlertSettings("15m", "critical", "none"),
    "DriftlineAccuracyDrop": AlertSettings("30m", "critical", "retrain"),
    "DriftlineCanaryWorseThanDefault": AlertSettings("10m", "critical", "rollback"),
    "DriftlineConceptDrift": AlertSettings("1m", "warning", "none"),
    "DriftlineMissingValuesHigh": AlertSettings("15m", "warning", "none"),
    "DriftlineMultivariateDrift": AlertSettings("15m", "warning", "none"),
    "DriftlineEmbeddingDrift": AlertSettings("15m", "warning", "none"),
    "DriftlineNoTraffic": AlertSettings("15m", "warning", "none"),
    "DriftlineRecordsDropped": AlertSettings("15m", "warning", "none"),
    "DriftlineSidecarDown": AlertSettings("5m", "critical", "none"),
    "DriftlineQueueNearlyFull": AlertSettings("10m", "warning", "none"),
    "DriftlineExportErrors": AlertSettings("10m", "warning", "none"),
    "DriftlineProxyUpstreamErrors": AlertSettings("5m", "critical", "none"),
    # Multi-window multi-burn-rate SLO alerts (see slo below): page on a fast burn, ticket a slow one.
    "DriftlineAvailabilityBudgetBurn": AlertSettings("2m", "critical", "none"),
    "DriftlineAvailabilityBudgetBurnSlow": AlertSettings("15m", "warning", "none"),
    "DriftlineLatencyBudgetBurn": AlertSettings("2m", "critical", "none"),
    "DriftlineLatencyBudgetBurnSlow": AlertSettings("15m", "warning", "none"),
}

SEVERITIES = ("critical", "warning", "info")
ACTIONS = ("retrain", "rollback", "none")


@dataclass(frozen=True)
class RulesConfig:
    """Everything the rule, test and Alertmanager generators read.

    ``selector`` holds extra PromQL matchers added to every Driftline selector (e.g.
    ``namespace=~"ml-.*"``); ``group_labels`` are the labels kept above the model identity when
    aggregating across replicas (``namespace``, maybe ``cluster``); ``sidecar_selector`` picks the
    sidecars' ``up`` series. ``test_labels`` are the target labels the generated promtool tests
    put on their series: they must satisfy ``selector`` and ``sidecar_selector``.
    """

    selector: str = ""
    #: the sidecars' jobs, not the action receiver's (``driftline-actions``), which exports
    #: no model series and has its own health checks
    sidecar_selector: str = 'job=~".*driftline.*", job!~".*driftline-actions.*"'
    group_labels: tuple[str, ...] = ("namespace",)
    drift_range: str = "1h"
    rate_range: str = "5m"
    adwin_range: str = "15m"
    thresholds: Thresholds = field(default_factory=Thresholds)
    alerts: Mapping[str, AlertSettings] = field(default_factory=dict)
    runbook_url_pattern: str = "https://github.com/driftline/driftline/blob/main/docs/runbooks.md#%s"
    grafana_url: str = "http://grafana.example.org"
    release: str = "kube-prometheus-stack"
    rule_namespace: str | None = None
    actions_url: str = "http://driftline-actions.monitoring.svc:9096/alertmanager"
    actions_token_file: str = "/etc/alertmanager/secrets/driftline-token"
    test_labels: Mapping[str, str] = field(
        default_factory=lambda: {"namespace": "ml", "job": "driftline"})
    #: The metrics DriftlineEstimatedPerformanceDrop watches (``performance_metrics:``): any of
    #: accuracy, roc_auc, f1, precision, recall, specificity, mae, rmse, mape, r2.
    performance_metrics: tuple[str, ...] = ("f1", "mae")
    #: Notification channels per severity and team (``notify:``; see notify_config).
    notify: NotifyConfig = field(default_factory=example_notify)
    slo: Slo = field(default_factory=Slo)

    def __post_init__(self) -> None:
        for key in ("drift_range", "rate_range", "adwin_range"):
            duration_seconds(getattr(self, key))
        for name, s in self.alerts.items():
            if name not in DEFAULT_ALERTS:
                raise ConfigError(f"unknown alert {name!r}", key=f"alerts.{name}",
                                  fix="use one of " + ", ".join(DEFAULT_ALERTS))
            if s.for_ is not None:
                duration_seconds(s.for_)
            if s.severity is not None and s.severity not in SEVERITIES:
                raise ConfigError(f"severity {s.severity!r}", key=f"alerts.{name}.severity",
                                  fix="use " + ", ".join(SEVERITIES))
            if s.action is not None and s.action not in ACTIONS:
                raise ConfigError(f"action {s.action!r}", key=f"alerts.{name}.action",
                                  fix="use " + ", ".join(ACTIONS))
        adwin_for = self.alert("DriftlineConceptDrift").for_ or "0s"
        if duration_seconds(adwin_for) >= duration_seconds(self.adwin_range):
            raise ConfigError(f"for: {adwin_for} is not shorter than adwin_range {self.adwin_range}, so "
                              "the alert could never fire", key="alerts.DriftlineConceptDrift.for",
                              fix="shorten it or lengthen adwin_range")
        known = ("accuracy", "roc_auc", "f1", "precision", "recall", "specificity", "mae", "rmse",
                 "mape", "r2")
        if not self.performance_metrics:
            raise ConfigError("names no metric", key="performance_metrics",
                              fix="list one or more of " + ", ".join(known))
        for m in self.performance_metrics:
            if m not in known:
                raise ConfigError(f"unknown performance metric {m!r}", key="performance_metrics",
                                  fix="use " + ", ".join(known))
        t = self.thresholds
        if not 0 < t.estimated_error_increase < 10:
            raise ConfigError("must be in (0, 10)", key="thresholds.estimated_error_increase")
        for key in ("estimated_accuracy_margin", "estimated_performance_margin",
                    "accuracy_margin", "canary_margin"):
            if not 0 <= getattr(t, key) < 0.4:
                raise ConfigError("must be in [0, 0.4)", key=f"thresholds.{key}")
        for key, hi in (("drop_ratio", 0.5), ("queue_fill", 1.0), ("missing_ratio", 0.75)):
            if not 0 <= getattr(t, key) < hi:
                raise ConfigError(f"must be in [0, {hi})", key=f"thresholds.{key}")
        if not 0 < t.many_features_ratio <= 1:
            raise ConfigError("must be in (0, 1]", key="thresholds.many_features_ratio")
        for key in ("availability", "latency_target"):
            # The fast burn pages at 14.4 × the budget; beyond a budget of 1/14.4 it never could.
            if not 1 - 1 / 14.4 < getattr(self.slo, key) < 1:
                raise ConfigError("must be in (0.9306, 1), e.g. 0.999: a fast burn pages at "
                                  "14.4 × the budget 1 - target, which must stay below 100 %",
                                  key=f"slo.{key}")
        if self.slo.latency_threshold not in LATENCY_BUCKETS:
            raise ConfigError(f"{self.slo.latency_threshold} is not a latency bucket bound",
                              key="slo.latency.threshold",
                              fix="use one of " + ", ".join(f"{b:g}" for b in LATENCY_BUCKETS))
        if "%s" not in self.runbook_url_pattern:
            raise ConfigError("needs a %s for the lower-case alert name", key="runbook_url_pattern")

    def alert(self, name: str) -> AlertSettings:
        """The effective settings of one alert (built-in values with overrides on top)."""
        base = DEFAULT_ALERTS[name]
        o = self.alerts.get(name)
        if o is None:
            return base
        return AlertSettings(o.for_ or base.for_, o.severity or base.severity,
                             o.action or base.action, o.enabled)

    def matchers(self, *extra: str) -> str:
        """``{a, b}`` of the configured selector plus ``extra`` matchers ("" when none)."""
        parts = [m for m in (self.selector, *extra) if m]
        return "{" + ", ".join(parts) + "}" if parts else ""


def _thresholds(raw: Any, path: str | None) -> Thresholds:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping", path=path, key="thresholds")
    names = {f.name: f.type for f in dataclasses.fields(Thresholds)}
    for k in raw:
        if k not in names:
            raise ConfigError(f"unknown threshold {k!r}", path=path, key=f"thresholds.{k}",
                              fix="use one of " + ", ".join(names))
    values: dict[str, Any] = {k: (int(v) if names[k] == "int" else float(v)) for k, v in raw.items()}
    try:
        return Thresholds(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), path=path, key="thresholds") from exc


def _slo(raw: Any, path: str | None) -> Slo:
    """``slo: {availability: 0.999, latency: {threshold: 0.25, target: 0.99}}``."""
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping", path=path, key="slo")
    unknown = set(raw) - {"availability", "latency"}
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", path=path, key="slo",
                          fix="use availability and latency: {threshold, target}")
    lat = raw.get("latency") or {}
    if not isinstance(lat, Mapping) or set(lat) - {"threshold", "target"}:
        raise ConfigError("expected {threshold: seconds, target: ratio}", path=path, key="slo.latency")
    base = Slo()
    try:
        return Slo(float(raw.get("availability", base.availability)),
                   float(lat.get("threshold", base.latency_threshold)),
                   float(lat.get("target", base.latency_target)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"expected numbers: {exc}", path=path, key="slo") from exc


def _alerts(raw: Any, path: str | None) -> dict[str, AlertSettings]:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping of alert name to settings", path=path, key="alerts")
    out: dict[str, AlertSettings] = {}
    for name, s in raw.items():
        s = s or {}
        unknown = set(s) - {"for", "severity", "action", "enabled"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", path=path, key=f"alerts.{name}",
                              fix="use for, severity, action, enabled")
        out[str(name)] = AlertSettings(
            None if s.get("for") is None else str(s["for"]), s.get("severity"), s.get("action"),
            bool(s.get("enabled", True)))
    return out


def config_from_mapping(raw: Mapping[str, Any], path: str | None = None) -> RulesConfig:
    """A RulesConfig from a parsed YAML mapping (unknown keys are errors)."""
    simple = {f.name for f in dataclasses.fields(RulesConfig)} - {"thresholds", "alerts", "notify", "slo"}
    kwargs: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "thresholds":
            kwargs[k] = _thresholds(v, path)
        elif k == "alerts":
            kwargs[k] = _alerts(v, path)
        elif k == "notify":
            kwargs[k] = notify_from_mapping(v or {}, path)
        elif k == "slo":
            kwargs[k] = _slo(v, path)
        elif k in simple:
            if k == "performance_metrics" and isinstance(v, str):
                v = [v]
            kwargs[k] = (tuple(str(x) for x in v) if k in ("group_labels", "performance_metrics")
                         else (dict(v) if k == "test_labels" else v))
        else:
            known = simple | {"thresholds", "alerts", "notify", "slo"}
            raise ConfigError(f"unknown key {k!r}", path=path, key=str(k),
                              fix="use one of " + ", ".join(sorted(known)))
    try:
        return RulesConfig(**kwargs)
    except ConfigError as exc:
        if exc.path:
            raise
        raise ConfigError(exc.message, path=path, key=exc.key, fix=exc.fix) from exc


def load_rules_config(path: str | Path | None) -> RulesConfig:
    """The defaults, overridden by the YAML file at ``path`` when given."""
    if path is None:
        return RulesConfig()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(p)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=str(p)) from exc
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a YAML mapping", path=str(p))
    return config_from_mapping(raw, str(p))
