"""A self-contained HTML report of `driftline analyze`: inline SVG and CSS only, no script, no
network, so it opens anywhere (mail attachment, CI artefact, air-gapped cluster).

It shows, readable at a glance: a heat-map of PSI per feature (rows) and window (columns) with
drifted cells marked, the prediction PSI as the last row, and estimated vs realised accuracy per
window against the reference accuracy. Hovering a cell shows its numbers (SVG ``<title>``).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence

from driftline import __version__
from driftline.engine.snapshot import WindowReport
from driftline.profile.format import BaselineProfile

#: PSI colour stops: stable (< 0.1), moderate (0.1-0.25), major (>= 0.25).
_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (237, 247, 237)), (0.1, (253, 230, 138)), (0.25, (248, 113, 113)), (0.5, (153, 27, 27)),
)


def psi_colour(value: float | None) -> str:
    """Hex colour of a PSI value on the stable → moderate → major scale; grey when undefined."""
    if value is None or not math.isfinite(value):
        return "#d1d5db"
    v = max(0.0, value)
    for (x0, c0), (x1, c1) in itertools.pairwise(_STOPS):
        if v <= x1:
            t = (v - x0) / (x1 - x0)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#{:02x}{:02x}{:02x}".format(*_STOPS[-1][1])


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _heatmap(profile: BaselineProfile, windows: Sequence[WindowReport]) -> str:
    names = list(profile.features)
    rows = [*names, "(prediction)"] if any(w.prediction is not None for w in windows) else names
    n = max(1, len(windows))
    label_w = min(220, 12 + 7 * max((len(r) for r in rows), default=8))
    cell_w = max(3.0, min(28.0, 900.0 / n))
    cell_h = 18
    top = 24
    width = label_w + cell_w * n + 10
    height = top + cell_h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
           f'role="img" aria-label="PSI per feature and window">']
    step = max(1, math.ceil(n / 20))
    for j, w in enumerate(windows):
        if j % step == 0:
            x = label_w + cell_w * (j + 0.5)
            out.append(f'<text x="{x:.1f}" y="16" class="ax" text-anchor="middle">{w.index}</text>')
    for i, row in enumerate(rows):
        y = top + cell_h * i
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" class="lbl" text-anchor="end">'
                   f'{_e(row[:30])}</text>')
        for j, w in enumerate(windows):
            x = label_w + cell_w * j
            if row == "(prediction)" and row not in w.features:
                p = w.prediction
                value, drifted = (p.psi, p.drifted) if p is not None else (None, False)
                tip = f"prediction · window {w.index}: PSI {_fmt(value)}"
            else:
                f = w.features[row]
                value, drifted = f.psi, f.drifted
                test = (f"KS p {_fmt(f.ks_pvalue, 4)}" if f.type == "numeric"
                        else f"chi² p {_fmt(f.chi2_pvalue, 4)}")
                tip = (f"{row} · window {w.index}: PSI {_fmt(value)}, {test}, adjusted p "
                       f"{_fmt(f.p_value_adjusted, 4)}, JS {_fmt(f.jensen_shannon)}, missing "
                       f"{_fmt(f.missing_ratio)}{' · DRIFTED' if drifted else ''}")
            stroke = ' stroke="#111827" stroke-width="1.5"' if drifted else ""
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{max(cell_w - 1, 1):.1f}" '
                       f'height="{cell_h - 1}" fill="{psi_colour(value)}"{stroke}>'
                       f'<title>{_e(tip)}</title></rect>')
            if drifted and cell_w >= 8:
                dot = "#ffffff" if value is not None and value >= 0.3 else "#111827"
                out.append(f'<circle cx="{x + cell_w / 2 - 0.5:.1f}" cy="{y + cell_h / 2 - 0.5}" '
                           f'r="2.5" fill="{dot}"/>')
    out.append(f'<text x="{label_w}" y="{height - 8}" class="ax">window →</text>')
    out.append("</svg>")
    return "".join(out)


def _legend() -> str:
    stops = [0.0, 0.05, 0.1, 0.175, 0.25, 0.5]
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="430" height="26">']
    for i, v in enumerate(stops):
        parts.append(f'<rect x="{i * 44}" y="2" width="42" height="12" fill="{psi_colour(v)}"/>'
                     f'<text x="{i * 44 + 21}" y="24" class="ax" text-anchor="middle">{v:g}</text>')
    parts.append('<rect x="280" y="2" width="14" height="12" fill="#d1d5db"/>'
                 '<text x="298" y="12" class="ax">no data</text>'
                 '<rect x="350" y="2" width="14" height="12" fill="#fde68a" stroke="#111827" '
                 'stroke-width="1.5"/><circle cx="357" cy="8" r="2.5" fill="#111827"/>'
                 '<text x="368" y="12" class="ax">drifted</text></svg>')
    return "".join(parts)


def _accuracy_plot(windows: Sequence[WindowReport], reference: float | None) -> str:
    est = [w.performance.estimated_accuracy for w in windows]
    real = [w.performance.accuracy for w in windows]
    values = [v for v in [*est, *real, reference] if v is not None and math.isfinite(v)]
    if not values:
        return "<p class=muted>No accuracy to plot: the data has neither probabilities nor labels.</p>"
    lo = max(0.0, math.floor((min(values) - 0.02) * 20) / 20)
    hi = min(1.0, math.ceil((max(values) + 0.02) * 20) / 20)
    if hi <= lo:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)
    w_px, h_px, left, right, top, bottom = 900, 260, 48, 120, 12, 30
    n = len(windows)

    def x(j: int) -> float:
        return left + (w_px - left - right) * (j / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (h_px - top - bottom) * (1 - (v - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w_px}" height="{h_px}" role="img" '
           'aria-label="estimated and realised accuracy per window">']
    ticks = 5
    for t in range(ticks + 1):
        v = lo + (hi - lo) * t / ticks
        out.append(f'<line x1="{left}" x2="{w_px - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'class="grid"/><text x="{left - 6}" y="{y(v) + 4:.1f}" class="ax" '
                   f'text-anchor="end">{v:.2f}</text>')
    step = max(1, math.ceil(n / 15))
    for j, w in enumerate(windows):
        if j % step == 0:
            out.append(f'<text x="{x(j):.1f}" y="{h_px - 10}" class="ax" '
                       f'text-anchor="middle">{w.index}</text>')
    legend_y = top + 10
    if reference is not None and math.isfinite(reference):
        out.append(f'<line x1="{left}" x2="{w_px - right}" y1="{y(reference):.1f}" '
                   f'y2="{y(reference):.1f}" class="ref"/>')
        out.append(f'<line x1="{w_px - right + 10}" x2="{w_px - right + 30}" y1="{legend_y + 40}" '
                   f'y2="{legend_y + 40}" class="ref"/><text x="{w_px - right + 34}" '
                   f'y="{legend_y + 44}" class="ax">reference</text>')
    for k, (series, cls, name) in enumerate(((est, "est", "estimated"), (real, "real", "realised"))):
        pts = [(x(j), y(v)) for j, v in enumerate(series) if v is not None and math.isfinite(v)]
        if not pts:
            continue
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        out.append(f'<polyline points="{path}" class="{cls}"/>')
        if len(pts) <= 120:
            for (px, py), (j, v) in zip(pts, [(j, v) for j, v in enumerate(series)
                                                if v is not None and math.isfinite(v)],
                                        strict=True):
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" class="{cls}-dot">'
                           f'<title>{name} accuracy, window {windows[j].index}: {v:.3f}</title>'
                           f'</circle>')
        ly = legend_y + 20 * k
        out.append(f'<line x1="{w_px - right + 10}" x2="{w_px - right + 30}" y1="{ly}" y2="{ly}" '
                   f'class="{cls}"/><text x="{w_px - right + 34}" y="{ly + 4}" '
                   f'class="ax">{name}</text>')
    out.append("</svg>")
    return "".join(out)


def _summary_table(windows: Sequence[WindowReport]) -> str:
    rows = []
    for w in windows:
        drifted = [n for n, f in w.features.items() if f.drifted]
        cls = ' class="bad"' if w.drifted else ""
        rows.append(
            f"<tr{cls}><td>{w.index}</td><td>{w.records:,}</td>"
            f"<td>{'yes' if w.drifted else 'no'}</td><td>{_e(', '.join(drifted) or '—')}</td>"
            f"<td>{_fmt(w.prediction.psi if w.prediction else None)}</td>"
            f"<td>{_fmt(w.performance.estimated_accuracy)}</td>"
            f"<td>{_fmt(w.performance.accuracy)}</td></tr>")
    return ("<table><thead><tr><th>window</th><th>records</th><th>drifted</th><th>features "
            "drifted</th><th>prediction PSI</th><th>est. accuracy</th><th>accuracy</th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:#6b7280}.kpi{display:inline-block;margin:10px 28px 0 0}
.kpi b{display:block;font-size:22px}.bad b{color:#b91c1c}
svg text{font:11px system-ui,sans-serif;fill:#374151}svg .lbl{font-size:12px;fill:#111827}
.grid{stroke:#e5e7eb}.ref{stroke:#6b7280;stroke-dasharray:5 4;stroke-width:1.5}
.est{fill:none;stroke:#2563eb;stroke-width:2}.real{fill:none;stroke:#ea580c;stroke-width:2}
.est-dot{fill:#2563eb}.real-dot{fill:#ea580c}
table{border-collapse:collapse;margin-top:8px}td,th{padding:3px 10px;border-bottom:1px solid #e5e7eb;
text-align:right}td:nth-child(4),th:nth-child(4){text-align:left}tr.bad td{background:#fef2f2}
.scroll{overflow-x:auto}
"""


def render_html(profile: BaselineProfile, windows: Sequence[WindowReport]) -> str:
    """The whole report as one HTML string."""
    n_drift = sum(w.drifted for w in windows)
    records = sum(w.records for w in windows)
    features_drifted = sorted({n for w in windows for n, f in w.features.items() if f.drifted})
    ref_acc = profile.output.reference_accuracy if profile.output is not None else None
    title = f"Driftline report · {profile.model_name} {profile.model_version}"
    kpis = (
        f'<div class="kpi"><b>{len(windows)}</b>windows</div>'
        f'<div class="kpi"><b>{records:,}</b>records</div>'
        f'<div class="kpi{" bad" if n_drift else ""}"><b>{n_drift}</b>windows drifted</div>'
        f'<div class="kpi{" bad" if features_drifted else ""}"><b>{len(features_drifted)}</b>'
        f"of {len(profile.features)} features drifted somewhere</div>"
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<div class="muted">baseline {_e(profile.id)} · built {_e(profile.created_at)} from '
        f"{profile.n_records:,} records · Driftline {_e(__version__)}</div>",
        kpis,
        "<h2>PSI per feature and window</h2>",
        '<div class="muted">A feature drifts when PSI ≥ threshold and its test p-value, after '
        "Benjamini–Hochberg across features, is below alpha. Hover a cell for its numbers.</div>",
        _legend(),
        f'<div class="scroll">{_heatmap(profile, windows)}</div>',
        "<h2>Accuracy per window</h2>",
        '<div class="muted">Estimated: label-free (confidence-based, calibrated on the reference). '
        "Realised: from the labels in the data.</div>",
        f'<div class="scroll">{_accuracy_plot(windows, ref_acc)}</div>',
        "<h2>Windows</h2>",
        _summary_table(windows),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><meta name=\"viewport\" content=\"width=device-width\">"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
