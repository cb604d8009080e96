"""Inline SVG charts of the HTML report (:mod:`.report_html`): PSI heat-map, accuracy with its
uncertainty band and alert threshold, and reference-vs-window distributions per feature.

Plain strings, no plotting library: the report must stay one self-contained file that opens
anywhere, and the charts are simple enough that a dependency would cost more than it saves.
Every chart carries ``<title>`` tooltips with its numbers and a class name the screenshot test
finds in the DOM.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from driftline.engine.snapshot import FeatureDrift, WindowReport
from driftline.profile.format import BaselineProfile, CategoricalFeature, NumericFeature

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


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def fmt(v: float | None, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "n/a"


def fmt_p(v: float | None) -> str:
    """A p-value people can read: 0.042, 3.2e-12, < 1e-300 (never "0.0000")."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v <= 0.0:
        return "< 1e-300"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3g}"


def heatmap(profile: BaselineProfile, windows: Sequence[WindowReport], partial: Sequence[bool]) -> str:
    """PSI per feature (rows) and window (columns); drifted cells outlined and dotted."""
    names = list(profile.features)
    rows = [*names, "(prediction)"] if any(w.prediction is not None for w in windows) else names
    n = max(1, len(windows))
    label_w = min(220, 12 + 7 * max((len(r) for r in rows), default=8))
    cell_w = max(3.0, min(28.0, 900.0 / n))
    cell_h, top = 18, 24
    width = label_w + cell_w * n + 10
    height = top + cell_h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width:.0f}" '
           f'height="{height}" role="img" aria-label="PSI per feature and window">']
    step = max(1, math.ceil(n / 20))
    for j, w in enumerate(windows):
        if j % step == 0 or partial[j]:
            x = label_w + cell_w * (j + 0.5)
            mark = "*" if partial[j] else ""
            out.append(f'<text x="{x:.1f}" y="16" class="ax" text-anchor="middle">{w.index}{mark}</text>')
    for i, row in enumerate(rows):
        y = top + cell_h * i
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" class="lbl" text-anchor="end">'
                   f"{esc(row[:30])}</text>")
        for j, w in enumerate(windows):
            x = label_w + cell_w * j
            if row == "(prediction)" and row not in w.features:
                p = w.prediction
                value, drifted = (p.psi, p.drifted) if p is not None else (None, False)
                tip = f"prediction · window {w.index}: PSI {fmt(value)}"
            elif row in w.features:
                f = w.features[row]
                value, drifted = f.psi, f.drifted
                test = (f"KS p {fmt_p(f.ks_pvalue)}" if f.type == "numeric"
                        else f"chi² p {fmt_p(f.chi2_pvalue)}")
                tip = (f"{row} · window {w.index}: PSI {fmt(value)}, {test}, adjusted p "
                       f"{fmt_p(f.p_value_adjusted)}, JS {fmt(f.jensen_shannon)}, missing "
                       f"{fmt(f.missing_ratio)}{' · DRIFTED' if drifted else ''}")
            else:
                value, drifted, tip = None, False, f"{row} · window {w.index}: not in this window"
            stroke = ' stroke="#111827" stroke-width="1.5"' if drifted else ""
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{max(cell_w - 1, 1):.1f}" '
                       f'height="{cell_h - 1}" fill="{psi_colour(value)}"{stroke}>'
                       f'<title>{esc(tip)}</title></rect>')
            if drifted and cell_w >= 8:
                dot = "#ffffff" if value is not None and value >= 0.3 else "#111827"
                out.append(f'<circle cx="{x + cell_w / 2 - 0.5:.1f}" cy="{y + cell_h / 2 - 0.5}" '
                           f'r="2.5" fill="{dot}"/>')
    note = "window →" + ("   * partial window" if any(partial) else "")
    out.append(f'<text x="{label_w}" y="{height - 8}" class="ax">{note}</text></svg>')
    return "".join(out)


def legend() -> str:
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


def accuracy_sigma(accuracy: float, n: int) -> float:
    """Standard error of a realised accuracy over ``n`` predictions whose estimated accuracy is
    ``accuracy``: ``sqrt(a(1-a)/n)``. With per-prediction confidences ``c_i`` the exact spread
    is ``sqrt(sum c_i(1-c_i))/n``, never larger, so the band drawn from this is conservative."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n) if n > 0 else math.nan


@dataclass(frozen=True)
class AccuracyChart:
    """What the accuracy chart draws besides the series: threshold and band width."""

    reference: float | None
    threshold: float | None  # the DriftlineEstimatedAccuracyDrop line: reference - margin
    band_sigmas: float = 3.0  # NannyML draws the sampling error as ±3 standard errors


def accuracy_plot(windows: Sequence[WindowReport], partial: Sequence[bool], chart: AccuracyChart) -> str:
    """Estimated accuracy with its ±3σ band, realised accuracy, the reference and the alert
    threshold; windows whose estimate is under the threshold get a red diamond (alert), partial
    windows a hollow marker."""
    est = [w.performance.estimated_accuracy for w in windows]
    real = [w.performance.accuracy for w in windows]
    band = []
    for w, e in zip(windows, est, strict=True):
        s = accuracy_sigma(e, w.records) if e is not None and finite(e) else math.nan
        band.append((max(0.0, e - chart.band_sigmas * s), min(1.0, e + chart.band_sigmas * s))
                    if e is not None and finite(s) else None)
    values = [v for v in [*est, *real, chart.reference, chart.threshold] if v is not None and finite(v)]
    values += [v for b in band if b for v in b]
    if not values:
        return "<p class=muted>No accuracy to plot: the data has neither probabilities nor labels.</p>"
    lo = max(0.0, math.floor((min(values) - 0.02) * 20) / 20)
    hi = min(1.0, math.ceil((max(values) + 0.02) * 20) / 20)
    if hi <= lo:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)
    w_px, h_px, left, right, top, bottom = 900, 280, 48, 150, 12, 30
    n = len(windows)

    def x(j: int) -> float:
        return left + (w_px - left - right) * (j / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (h_px - top - bottom) * (1 - (v - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="accuracy" width="{w_px}" height="{h_px}" '
           'role="img" aria-label="estimated and realised accuracy per window">']
    for t in range(6):
        v = lo + (hi - lo) * t / 5
        out.append(f'<line x1="{left}" x2="{w_px - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="ax" text-anchor="end">{v:.2f}</text>')
    step = max(1, math.ceil(n / 15))
    for j, w in enumerate(windows):
        if j % step == 0:
            out.append(f'<text x="{x(j):.1f}" y="{h_px - 10}" class="ax" '
                       f'text-anchor="middle">{w.index}</text>')
    pts = [(j, b) for j, b in enumerate(band) if b is not None]
    if pts:
        upper = " ".join(f"{x(j):.1f},{y(b[1]):.1f}" for j, b in pts)
        lower = " ".join(f"{x(j):.1f},{y(b[0]):.1f}" for j, b in reversed(pts))
        if len(pts) == 1:
            j, b = pts[0]
            out.append(f'<rect x="{x(j) - 6:.1f}" y="{y(b[1]):.1f}" width="12" '
                       f'height="{max(y(b[0]) - y(b[1]), 1):.1f}" class="band"/>')
        else:
            out.append(f'<polygon points="{upper} {lower}" class="band"><title>±{chart.band_sigmas:g}σ '
                       "sampling error of the estimate</title></polygon>")
    legend_rows: list[tuple[str, str]] = []
    lines = ((chart.reference, "ref", "reference"), (chart.threshold, "thr", "alert threshold"))
    for value, cls, name in lines:
        if value is not None and finite(value):
            out.append(f'<line x1="{left}" x2="{w_px - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                       f'class="{cls}"><title>{name} {value:.3f}</title></line>')
            legend_rows.append((cls, f"{name} {value:.3f}"))
    for series, cls, name in ((est, "est", "estimated"), (real, "real", "realised")):
        ok = [(j, v) for j, v in enumerate(series) if v is not None and finite(v)]
        if not ok:
            continue
        out.append(f'<polyline points="{" ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in ok)}" class="{cls}"/>')
        legend_rows.append((cls, name))
        if len(ok) > 150:
            continue
        for j, v in ok:
            hollow = " hollow" if partial[j] else ""
            alert = cls == "est" and chart.threshold is not None and v < chart.threshold
            tip = f"{name} accuracy, window {windows[j].index}: {v:.3f}"
            if cls == "est" and band[j] is not None:
                tip += f" (±{chart.band_sigmas:g}σ: {band[j][0]:.3f}–{band[j][1]:.3f})"  # type: ignore[index]
            tip += " · partial window" if partial[j] else ""
            if alert:
                d = 6
                out.append(f'<polygon points="{x(j):.1f},{y(v) - d:.1f} {x(j) + d:.1f},{y(v):.1f} '
                           f'{x(j):.1f},{y(v) + d:.1f} {x(j) - d:.1f},{y(v):.1f}" class="alert">'
                           f"<title>{esc(tip)} · under the alert threshold</title></polygon>")
            else:
                out.append(f'<circle cx="{x(j):.1f}" cy="{y(v):.1f}" r="3.5" class="{cls}-dot{hollow}">'
                           f"<title>{esc(tip)}</title></circle>")
    if pts:
        legend_rows.insert(1, ("band", f"±{chart.band_sigmas:g}σ band"))
    if chart.threshold is not None:
        legend_rows.append(("alert", "alert"))
    for k, (cls, name) in enumerate(legend_rows):
        ly = top + 10 + 20 * k
        x0 = w_px - right + 10
        if cls == "band":
            out.append(f'<rect x="{x0}" y="{ly - 6}" width="20" height="12" class="band"/>')
        elif cls == "alert":
            out.append(f'<polygon points="{x0 + 10},{ly - 6} {x0 + 16},{ly} {x0 + 10},{ly + 6} '
                       f'{x0 + 4},{ly}" class="alert"/>')
        else:
            out.append(f'<line x1="{x0}" x2="{x0 + 20}" y1="{ly}" y2="{ly}" class="{cls}"/>')
        out.append(f'<text x="{x0 + 26}" y="{ly + 4}" class="ax">{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _bins(spec: NumericFeature | CategoricalFeature) -> list[str]:
    if isinstance(spec, CategoricalFeature):
        return [*spec.categories, "(other)"]
    e = [f"{v:.3g}" for v in spec.edges]
    if not e:
        return ["all"]
    return [f"≤ {e[0]}", *(f"{a}–{b}" for a, b in itertools.pairwise(e)), f"> {e[-1]}"]


def distribution(spec: NumericFeature | CategoricalFeature, f: FeatureDrift, window: int) -> str:
    """Reference vs window shares per reference bin (numeric: the reference deciles, so the
    reference bars are level and the window's departure from them is what PSI measures;
    categorical: the kept categories). Empty when the window carries no counts."""
    labels = _bins(spec)
    ref = list(spec.proportions)
    total = sum(f.window_counts)
    if not f.window_counts or total <= 0 or len(f.window_counts) != len(ref) or len(labels) != len(ref):
        return ""
    win = [c / total for c in f.window_counts]
    if isinstance(spec, CategoricalFeature) and len(labels) > 12:  # the 11 largest and the rest
        order = sorted(range(len(ref) - 1), key=lambda i: -max(ref[i], win[i]))[:11]
        rest = [i for i in range(len(ref)) if i not in order]
        labels = [labels[i] for i in order] + ["(rest)"]
        ref = [ref[i] for i in order] + [sum(ref[i] for i in rest)]
        win = [win[i] for i in order] + [sum(win[i] for i in rest)]
    w_px, h_px, left, bottom, top = 300, 150, 30, 34, 8
    slot = (w_px - left - 4) / len(ref)
    peak = max(max(ref), max(win), 1e-9)

    def hgt(v: float) -> float:
        return (h_px - top - bottom) * v / peak

    base = h_px - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dist" width="{w_px}" height="{h_px}" role="img" '
           f'aria-label="{esc(f.name)}: reference vs window {window}">',
           f'<line x1="{left}" x2="{w_px - 4}" y1="{base}" y2="{base}" class="grid"/>',
           f'<text x="{left - 4}" y="{top + 8}" class="ax" text-anchor="end">{peak:.0%}</text>']
    for i, (r, v, lab) in enumerate(zip(ref, win, labels, strict=True)):
        x0 = left + slot * i
        bw = max(slot / 2 - 1, 1)
        out.append(f'<rect x="{x0 + 1:.1f}" y="{base - hgt(r):.1f}" width="{bw:.1f}" height="{hgt(r):.1f}" '
                   f'class="bar-ref"><title>{esc(lab)}: reference {r:.1%}</title></rect>')
        out.append(f'<rect x="{x0 + 1 + bw:.1f}" y="{base - hgt(v):.1f}" width="{bw:.1f}" '
                   f'height="{hgt(v):.1f}" class="bar-win"><title>{esc(lab)}: window {window} {v:.1%}'
                   f"</title></rect>")
    first, last = labels[0], labels[-1]
    out.append(f'<text x="{left}" y="{h_px - 20}" class="ax">{esc(first[:18])}</text>'
               f'<text x="{w_px - 4}" y="{h_px - 20}" class="ax" text-anchor="end">{esc(last[:18])}</text>'
               f'<text x="{left}" y="{h_px - 5}" class="ax">■ reference</text>'
               f'<text x="{left + 80}" y="{h_px - 5}" class="ax win">■ window {window}</text></svg>')
    return "".join(out)
