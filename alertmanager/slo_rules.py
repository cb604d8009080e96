"""SLO burn-rate rules over the per-model request metrics (the SRE workbook's multi-window,
multi-burn-rate alerts, chapter "Alerting on SLOs").

For each model, two "bad event" ratios are recorded over seven windows: the share of requests
answered with a 5xx (availability) and the share slower than ``slo.latency_threshold`` (latency).
With budget ``b = 1 - target``, an alert fires when both a long and a short window burn faster
than a factor of the budget — the short window makes it stop soon after the burn stops:

=============  ===========  ============  =========================================
long / short   burn factor  budget spent  alert
=============  ===========  ============  =========================================
1h / 5m        14.4         2 % in 1 h    ``…BudgetBurn`` (critical, page)
6h / 30m       6            5 % in 6 h    ``…BudgetBurn`` (critical, page)
24h / 2h       3            10 % in 1 d   ``…BudgetBurnSlow`` (warning, ticket)
72h / 6h       1            10 % in 3 d   ``…BudgetBurnSlow`` (warning, ticket)
=============  ===========  ============  =========================================

>>> [w for w, _ in burn_windows("fast")]
[('1h', '5m'), ('6h', '30m')]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString

from driftline import catalogue as cat

if TYPE_CHECKING:
    from driftline.alertmanager.rules_config import RulesConfig

__all__ = ["SLO_WINDOWS", "burn_windows", "slo_alert_exprs", "slo_names", "slo_recording_rules"]

#: Every window a burn-rate condition reads (Prometheus durations; no ``d`` in rules_config).
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "24h", "72h")
_PAIRS = {"fast": ((("1h", "5m"), 14.4), (("6h", "30m"), 6.0)),
          "slow": ((("24h", "2h"), 3.0), (("72h", "6h"), 1.0))}


def burn_windows(speed: str) -> tuple[tuple[tuple[str, str], float], ...]:
    """((long, short), burn factor) of the ``fast`` (page) or ``slow`` (ticket) alert."""
    return _PAIRS[speed]


def slo_names(kind: str, window: str) -> str:
    """Recording-rule name of the bad-event ratio of ``kind`` (errors | slow) over ``window``."""
    metric = "driftline_model_requests" if kind == "errors" else "driftline_model_request_latency"
    return f"model_name:{metric}:{kind}_ratio_rate{window}"


def slo_recording_rules(cfg: RulesConfig) -> list[dict[str, Any]]:
    by = ", ".join((*cfg.group_labels, "model_name"))
    req = cat.MODEL_REQUESTS.name
    lat = cat.MODEL_REQUEST_DURATION.name
    le = floatToGoString(cfg.slo.latency_threshold)
    out: list[dict[str, Any]] = []
    errors_sel = cfg.matchers('code="5xx"')
    fast_sel = cfg.matchers(f'le="{le}"')
    for w in SLO_WINDOWS:
        total = f"sum by ({by}) (rate({req}{cfg.matchers()}[{w}]))"
        bad = f"sum by ({by}) (rate({req}{errors_sel}[{w}]))"
        # No 5xx series yet means no errors (0), not "no data".
        out.append({"record": slo_names("errors", w),
                    "expr": f"(\n  {bad}\n  or\n  {total} * 0\n)\n/\n{total}"})
        fast = f"sum by ({by}) (rate({lat}_bucket{fast_sel}[{w}]))"
        count = f"sum by ({by}) (rate({lat}_count{cfg.matchers()}[{w}]))"
        out.append({"record": slo_names("slow", w), "expr": f"1 - (\n  {fast}\n  /\n  {count}\n)"})
    return out


def slo_alert_exprs(cfg: RulesConfig, kind: str, speed: str) -> str:
    """``(long > f·b and short > f·b) or (…)`` for ``kind`` (errors | slow) and ``speed``."""
    target = cfg.slo.availability if kind == "errors" else cfg.slo.latency_target
    budget = 1.0 - target
    terms = []
    for (long, short), factor in burn_windows(speed):
        limit = f"{factor * budget:.6g}"
        terms.append(f"(\n  {slo_names(kind, long)} > {limit}\n  and\n"
                     f"  {slo_names(kind, short)} > {limit}\n)")
    return "\nor\n".join(terms)
