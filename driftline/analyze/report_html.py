"""A self-contained HTML report of `driftline analyze`: inline SVG and CSS only, no script, no
network, so it opens anywhere (mail attachment, CI artefact, air-gapped cluster).

Written for the data scientist who has to act on it, top to bottom: what drifted and when (a
window table with start/end times, partial windows and high missing ratios flagged), the PSI
heat-map, the estimated accuracy with its ±3σ sampling band and the alert threshold (as NannyML
draws it) beside the realised accuracy and the estimated precision / recall / F1, then one card
per feature: the reference vs window distribution of its most-shifted window and the test
behind the decision (test, statistic, p-value, Benjamini–Hochberg-adjusted p, thresholds).
Fields other parts of Driftline add to a window are rendered when present and skipped when not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from driftline import __version__
from driftline.analyze.report_charts import (
    AccuracyChart,
    accuracy_plot,
    accuracy_sigma,
    distribution,
    esc,
    finite,
    fmt,
    fmt_p,
    heatmap,
    legend,
    psi_colour,
)
from driftline.engine.monitor import DriftPolicy
from driftline.engine.snapshot import FeatureDrift, WindowReport
from driftline.profile.format import BaselineProfile

__all__ = ["psi_colour", "render_html"]

#: Same defaults as the alert rules (alertmanager/rules_config.py): DriftlineEstimatedAccuracyDrop
#: fires below reference accuracy minus this margin; DriftlineMissingValuesHigh at this ratio.
ACCURACY_MARGIN = 0.05
MISSING_RATIO = 0.1


def _time(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if v is not None and math.isfinite(v) else "n/a"


def _missing_flag(profile: BaselineProfile, f: FeatureDrift) -> bool:
    """High missing share: at the alert's ratio, or 5 points above the reference's."""
    spec = profile.features.get(f.name)
    ref = spec.missing_ratio if spec is not None and finite(spec.missing_ratio) else 0.0
    return finite(f.missing_ratio) and (f.missing_ratio >= MISSING_RATIO or f.missing_ratio - ref > 0.05)


def _span(start: float | None, end: float | None) -> str:
    """``2023-11-14 22:13:20 → 22:29:58`` (the end's date only when it differs)."""
    a, b = _time(start), _time(end)
    if a == "—" and b == "—":
        return "—"
    return f"{a} → {b[11:] if a[:10] == b[:10] else b}"


def _window_table(profile: BaselineProfile, windows: Sequence[WindowReport], partial: Sequence[bool]) -> str:
    multi = any(getattr(w, "multivariate", None) is not None for w in windows)
    timed = any(w.start is not None or w.end is not None for w in windows)
    head = ["window", *(["time (UTC)"] if timed else []), "records", "drifted", "features drifted",
            "missing values", "prediction PSI", "est. accuracy ±3σ", "realised (labels)",
            "est. precision / recall / F1"]
    if multi:
        head.append("PCA error [band]")
    rows = []
    for w, part in zip(windows, partial, strict=True):
        drifted = [n for n, f in w.features.items() if f.drifted]
        missing = [f"{n} {_pct(f.missing_ratio)}" for n, f in w.features.items() if _missing_flag(profile, f)]
        p = w.performance
        est = "n/a"
        if p.estimated_accuracy is not None and finite(p.estimated_accuracy):
            s = accuracy_sigma(p.estimated_accuracy, w.records)
            est = f"{p.estimated_accuracy:.3f} ± {3 * s:.3f}" if finite(s) else fmt(p.estimated_accuracy)
        real = f"{fmt(p.accuracy)} ({p.labels:,})" if p.accuracy is not None else "n/a"
        prf = [getattr(p, k, None) for k in ("estimated_precision", "estimated_recall", "estimated_f1")]
        records = f"{w.records:,}" + (' <span class="tag">partial</span>' if part else "")
        cells = [str(w.index), *([_span(w.start, w.end)] if timed else []), records,
                 "yes" if w.drifted else "no", esc(", ".join(drifted) or "—"),
                 f'<span class="warn">⚠ {esc(", ".join(missing))}</span>' if missing else "—",
                 fmt(w.prediction.psi if w.prediction else None), est, real,
                 "n/a" if all(v is None for v in prf) else " / ".join(fmt(v) for v in prf)]
        if multi:
            m = getattr(w, "multivariate", None)
            cells.append("n/a" if m is None else
                         f"{fmt(m.reconstruction_error)} [{fmt(m.lower_threshold)}, {fmt(m.upper_threshold)}]"
                         + (' <b class="yes">drifted</b>' if m.drifted else ""))
        cls = ' class="bad"' if w.drifted else ""
        wrap = {head.index("features drifted"), head.index("missing values")}
        rows.append(f"<tr{cls}>" + "".join(f'<td class="wrap">{c}</td>' if i in wrap else f"<td>{c}</td>"
                                           for i, c in enumerate(cells)) + "</tr>")
    return ('<table class="windows"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


_METRIC_ORDER = ("accuracy", "roc_auc", "precision", "recall", "f1", "specificity",
                 "mae", "rmse", "mape", "r2")


def _performance_table(windows: Sequence[WindowReport], partial: Sequence[bool]) -> str:
    """Every estimated and realised metric the windows carry (``Performance.estimated`` /
    ``.realised``), estimated beside realised; empty when the windows carry none."""
    est = [dict(getattr(w.performance, "estimated", None) or {}) for w in windows]
    real = [dict(getattr(w.performance, "realised", None) or {}) for w in windows]
    keys = {k for d in (*est, *real) for k in d}
    if not keys:
        return ""
    metrics = [m for m in _METRIC_ORDER if m in keys] + sorted(keys - set(_METRIC_ORDER))
    head = ["window", *(f"{m.replace('_', ' ')}<br>est. / real." for m in metrics)]
    rows = []
    for w, e, r, part in zip(windows, est, real, partial, strict=True):
        label = f"{w.index}" + (' <span class="tag">partial</span>' if part else "")
        cells = [label] + [f"{fmt(e.get(m))} / {fmt(r.get(m))}" for m in metrics]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<h2>Performance per window</h2><div class="muted">Estimated without labels (CBPE for '
            "classifiers, direct loss estimation for regressors) / realised from the labels in the "
            'data; n/a where a window cannot have the metric.</div><div class="scroll">'
            '<table class="performance"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _focus(windows: Sequence[WindowReport], name: str) -> tuple[WindowReport, FeatureDrift] | None:
    """The window where the feature moved most (highest PSI; the first one when none is finite)."""
    cands = [(w, w.features[name]) for w in windows if name in w.features]
    if not cands:
        return None
    return max(cands, key=lambda c: c[1].psi if finite(c[1].psi) else -1.0)


def _test_row(profile: BaselineProfile, w: WindowReport, f: FeatureDrift, policy: DriftPolicy) -> list[str]:
    spec = profile.features.get(f.name)
    numeric = f.type == "numeric"
    test = "Kolmogorov–Smirnov" if numeric else "chi-squared"
    stat = f.ks_statistic if numeric else f.chi2_statistic
    p = f.ks_pvalue if numeric else f.chi2_pvalue
    ref_missing = spec.missing_ratio if spec is not None else None
    missing = f"{_pct(ref_missing)} → {_pct(f.missing_ratio)}"
    if _missing_flag(profile, f):
        missing = f'<span class="warn">⚠ {missing}</span>'
    psi_cls = ' class="hit"' if finite(f.psi) and f.psi >= policy.psi_threshold else ""
    adjusted = f.p_value_adjusted
    p_cls = ' class="hit"' if adjusted is not None and finite(adjusted) and adjusted < policy.alpha else ""
    return [esc(f.name), f.type, str(w.index), test, fmt(stat, 4), fmt_p(p),
            f"<span{p_cls}>{fmt_p(f.p_value_adjusted)}</span>", f"{policy.alpha:g}",
            f"<span{psi_cls}>{fmt(f.psi)}</span>", f"{policy.psi_threshold:g}",
            fmt(f.wasserstein) if numeric else "—", missing,
            '<b class="yes">drifted</b>' if f.drifted else "no"]


_TEST_HEAD = ["feature", "type", "window", "test", "statistic", "p-value", "adjusted p (BH)", "alpha",
              "PSI", "PSI threshold", "Wasserstein / σ", "missing (ref → window)", "decision"]


def _features(profile: BaselineProfile, windows: Sequence[WindowReport], policy: DriftPolicy) -> str:
    rows, cards = [], []
    focus = {n: _focus(windows, n) for n in profile.features}

    def moved(name: str) -> float:
        found = focus[name]
        return found[1].psi if found is not None and finite(found[1].psi) else -1.0

    order = sorted(profile.features, key=lambda n: -moved(n))  # most-shifted feature first
    for name in order:
        found = focus[name]
        if found is None:
            continue
        w, f = found
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in _test_row(profile, w, f, policy)) + "</tr>")
        chart = distribution(profile.features[name], f, w.index)
        if not chart:
            continue
        test = "KS" if f.type == "numeric" else "chi²"
        p = f.ks_pvalue if f.type == "numeric" else f.chi2_pvalue
        verdict = '<b class="yes">drifted</b>' if f.drifted else "not drifted"
        cards.append(f'<div class="card"><div class="card-h"><b>{esc(name)}</b> · window {w.index} · '
                     f"PSI {fmt(f.psi)} · {test} p {fmt_p(p)} · {verdict}</div>{chart}</div>")
    table = ('<table class="tests"><thead><tr>' + "".join(f"<th>{h}</th>" for h in _TEST_HEAD)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return table + (f'<div class="cards">{"".join(cards)}</div>' if cards else "")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:#6b7280}.kpi{display:inline-block;margin:10px 28px 0 0}
.kpi b{display:block;font-size:22px}.bad b{color:#b91c1c}
svg text{font:11px system-ui,sans-serif;fill:#374151}svg .lbl{font-size:12px;fill:#111827}
.grid{stroke:#e5e7eb}.ref{stroke:#6b7280;stroke-dasharray:5 4;stroke-width:1.5}
.thr{stroke:#dc2626;stroke-dasharray:2 3;stroke-width:1.5}.band{fill:#bfdbfe;opacity:.6}
.est{fill:none;stroke:#2563eb;stroke-width:2}.real{fill:none;stroke:#ea580c;stroke-width:2}
.est-dot{fill:#2563eb}.real-dot{fill:#ea580c}.hollow{fill:#fff;stroke-width:2}
.est-dot.hollow{stroke:#2563eb}.real-dot.hollow{stroke:#ea580c}.alert{fill:#dc2626}
table{border-collapse:collapse;margin-top:8px;font-size:13px}
td,th{padding:3px 7px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f9fafb;white-space:normal;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
table.windows td:nth-child(2),table.windows th:nth-child(2){text-align:left}
td.wrap{white-space:normal;max-width:180px;text-align:left}
tr.bad td{background:#fef2f2}.warn{color:#b45309;font-weight:600}.hit{color:#b91c1c;font-weight:600}
.yes{color:#b91c1c}.tag{background:#e5e7eb;border-radius:3px;padding:0 4px;font-size:11px;color:#374151}
.scroll{overflow-x:auto}.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px}.card-h{font-size:12px;margin-bottom:4px}
.bar-ref{fill:#9ca3af}.bar-win{fill:#2563eb}svg .win{fill:#2563eb}
ul.read{margin:6px 0;padding-left:20px;color:#374151}
"""


def render_html(profile: BaselineProfile, windows: Sequence[WindowReport], *,
                policy: DriftPolicy | None = None, window_size: int | None = None,
                accuracy_margin: float = ACCURACY_MARGIN) -> str:
    """The whole report as one HTML string.

    ``policy`` is the drift decision the windows were made with (its thresholds are printed
    beside each test); ``window_size`` the record count of a full window (windows with fewer
    records are marked partial; None when windows close by time); ``accuracy_margin`` places the
    alert threshold at the reference accuracy minus the margin.
    """
    policy = policy or DriftPolicy()
    partial = [window_size is not None and w.records < window_size for w in windows]
    n_drift = sum(w.drifted for w in windows)
    records = sum(w.records for w in windows)
    features_drifted = sorted({n for w in windows for n, f in w.features.items() if f.drifted})
    ref_acc = profile.output.reference_accuracy if profile.output is not None else None
    threshold = ref_acc - accuracy_margin if ref_acc is not None and finite(ref_acc) else None
    estimates = [(w.index, w.performance.estimated_accuracy) for w in windows]
    alerts = [i for i, e in estimates
              if threshold is not None and e is not None and finite(e) and e < threshold]
    starts = [w.start for w in windows if w.start is not None and finite(w.start)]
    ends = [w.end for w in windows if w.end is not None and finite(w.end)]
    span = f" · data from {_time(min(starts))} to {_time(max(ends))} UTC" if starts and ends else ""
    title = f"Driftline report · {profile.model_name} {profile.model_version}"
    kpis = (
        f'<div class="kpi"><b>{len(windows)}</b>windows</div>'
        f'<div class="kpi"><b>{records:,}</b>records</div>'
        f'<div class="kpi{" bad" if n_drift else ""}"><b>{n_drift}</b>windows drifted</div>'
        f'<div class="kpi{" bad" if features_drifted else ""}"><b>{len(features_drifted)}</b>'
        f"of {len(profile.features)} features drifted somewhere</div>"
        f'<div class="kpi{" bad" if alerts else ""}"><b>{len(alerts)}</b>windows under the accuracy '
        "alert threshold</div>"
    )
    read = (
        '<ul class="read">'
        f"<li>A feature drifts in a window when its PSI is at least {policy.psi_threshold:g} <i>and</i> its "
        f"test (Kolmogorov–Smirnov for numbers, chi-squared for categories) has a p-value below "
        f"{policy.alpha:g} after the Benjamini–Hochberg correction across the model's features.</li>"
        "<li>Estimated accuracy needs no labels (confidence-based, calibrated on the reference); the "
        "band is ±3 standard errors of a window's accuracy, the red line the alert threshold "
        f"(reference accuracy − {accuracy_margin:g}, as DriftlineEstimatedAccuracyDrop).</li>"
        f"<li>Missing values are flagged ⚠ at a share of {MISSING_RATIO:g} or 5 points above the "
        "reference's. Partial windows (fewer records than a full one) are marked and drawn hollow: "
        "their numbers are noisier.</li></ul>"
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="muted">baseline {esc(profile.id)} · built {esc(profile.created_at)} from '
        f"{profile.n_records:,} records{span} · Driftline {esc(__version__)}</div>",
        kpis, read,
        "<h2>Windows</h2>", f'<div class="scroll">{_window_table(profile, windows, partial)}</div>',
        "<h2>PSI per feature and window</h2>",
        '<div class="muted">Hover a cell for its numbers.</div>', legend(),
        f'<div class="scroll">{heatmap(profile, windows, partial)}</div>',
        "<h2>Accuracy per window</h2>",
        f'<div class="scroll">{accuracy_plot(windows, partial, AccuracyChart(ref_acc, threshold))}</div>',
        _performance_table(windows, partial),
        "<h2>Features: the test behind each decision</h2>",
        '<div class="muted">Each feature in the window where its PSI was highest. The distribution '
        "compares the shares of reference and window rows per reference bin (numeric features: the "
        "reference deciles, so reference bars are level), the counts PSI is computed on.</div>",
        f'<div class="scroll">{_features(profile, windows, policy)}</div>',
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><meta name=\"viewport\" content=\"width=device-width\">"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
