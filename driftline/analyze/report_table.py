"""Rich tables for people: a baseline profile (`baseline show`) and analysis windows
(`analyze --format table`). Rendering only; every number comes from the profile or reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO

from rich.console import Console
from rich.table import Table

from driftline.engine.snapshot import WindowReport
from driftline.profile.format import BaselineProfile, NumericFeature


def _n(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def _p(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2g}" if v < 0.001 else f"{v:.3f}"


def print_profile(profile: BaselineProfile, file: IO[str] | None = None,
                  width: int | None = None) -> None:
    """What a person wants to see of a profile: model, output, and one row per feature."""
    console = Console(file=file, width=width)
    console.print(f"[bold]{profile.model_name}[/] version {profile.model_version} · "
                  f"baseline {profile.id} · {profile.n_records:,} records · {profile.created_at}")
    out = profile.output
    if out is not None:
        line = f"output: {out.task}"
        if out.classes:
            line += f", classes {', '.join(out.classes)}"
        if out.positive_class:
            line += f" (positive {out.positive_class})"
        if out.reference_accuracy is not None:
            line += f", reference accuracy {out.reference_accuracy:.3f}"
        if out.calibration:
            line += ", calibrated"
        console.print(line)
    t = Table(title="features", title_justify="left")
    # Below 110 columns std, min and max move into the last column and the type is abbreviated,
    # so names up to 28 characters and the mean stay whole at 80 columns; longer text folds.
    narrow = console.width < 110
    cols = (("feature", "type", "missing", "mean", "std, range / bins / top categories")
            if narrow else
            ("feature", "type", "missing", "min", "mean", "std", "max", "bins / top categories"))
    longest = max((len(n) for n in profile.features), default=7)
    for col in cols:
        text = col == "feature" or col.endswith("top categories")
        t.add_column(col, justify="left" if text or col == "type" else "right",
                     overflow="fold", no_wrap=not text, ratio=1 if text else None,
                     min_width=min(longest, 28) if col == "feature" else None)
    for name, f in profile.features.items():
        if isinstance(f, NumericFeature):
            summary = f"{len(f.proportions)} bins" + ("" if f.summary_exact else ", KS grid")
            if narrow:
                t.add_row(name, "num", f"{f.missing_ratio:.1%}", _n(f.mean),
                          f"std {_n(f.std)}, {_n(f.minimum)} … {_n(f.maximum)}, {summary}")
            else:
                t.add_row(name, "numeric", f"{f.missing_ratio:.1%}", _n(f.minimum), _n(f.mean),
                          _n(f.std), _n(f.maximum), summary)
        else:
            top = ", ".join(f"{c} {p:.0%}" for c, p in zip(f.categories[:4], f.proportions,
                                                          strict=False))
            more = f" (+{len(f.categories) - 4})" if len(f.categories) > 4 else ""
            blanks = ("",) if narrow else ("", "", "", "")
            t.add_row(name, "cat" if narrow else "categorical", f"{f.missing_ratio:.1%}",
                      *blanks, top + more)
    console.print(t)


def print_windows(profile: BaselineProfile, windows: Sequence[WindowReport],
                  file: IO[str] | None = None, width: int | None = None) -> None:
    """One summary row per window, then the features that drifted anywhere.

    The drifted features are a grid (one column per window) only when that grid fits the
    terminal; otherwise, as for 100 windows at 80 columns, one row per feature says in which
    windows it drifted (as ranges), where its PSI peaked and its smallest adjusted p-value.
    Below 100 columns the window table folds its drifted-feature list into the last column."""
    console = Console(file=file, width=width)
    console.print(f"[bold]{profile.model_name}[/] version {profile.model_version} · "
                  f"baseline {profile.id} · {len(windows)} windows")
    console.print(_window_table(windows, narrow=console.width < 100))
    names = [n for n in profile.features if any(w.features[n].drifted for w in windows)]
    if not names:
        return
    longest = max(len(n) for n in names)
    grid_width = min(longest, 28) + 4 + len(windows) * 17
    if grid_width <= console.width:
        console.print(_drift_grid(names, windows))
    else:
        console.print(_drift_summary(names, windows, longest))


def _window_table(windows: Sequence[WindowReport], *, narrow: bool) -> Table:
    """Narrow: the drifted features as a count (the table below names them) and no column that
    is empty in every window, so eight columns fit in 80."""
    t = Table(title="windows", title_justify="left")
    pred = [w.prediction.psi if w.prediction is not None else None for w in windows]
    est = [w.performance.estimated_accuracy for w in windows]
    acc = [w.performance.accuracy for w in windows]
    cols: list[tuple[str, list[float | None] | None]] = [
        ("#", None), ("records", None), ("drifted", None), ("features drifted", None),
        ("max PSI", None), ("prediction PSI" if not narrow else "pred. PSI", pred),
        ("est. accuracy" if not narrow else "est. acc.", est),
        ("accuracy", acc)]
    if narrow:
        cols = [(c, v) for c, v in cols if v is None or any(x is not None for x in v)]
    for col, _ in cols:
        text = col in ("drifted", "features drifted")
        t.add_column(col, justify="left" if text else "right", overflow="fold",
                     no_wrap=not (col == "features drifted" and not narrow))
    for i, w in enumerate(windows):
        drifted = [n for n, f in w.features.items() if f.drifted]
        psis = [f.psi for f in w.features.values() if math.isfinite(f.psi)]
        if narrow:
            names = f"{len(drifted)} of {len(w.features)}" if drifted else "—"
        else:
            names = ", ".join(drifted[:5]) + (f" +{len(drifted) - 5}" if len(drifted) > 5 else "")
        cells = {"#": str(w.index), "records": f"{w.records:,}",
                 "drifted": "[red]yes[/]" if w.drifted else "no", "features drifted": names,
                 "max PSI": _n(max(psis) if psis else None)}
        row = [cells[c] if v is None else _n(v[i]) for c, v in cols]
        t.add_row(*row)
    return t


def _drift_grid(names: Sequence[str], windows: Sequence[WindowReport]) -> Table:
    d = Table(title="drifted features (PSI / adjusted p, * = drifted)", title_justify="left")
    d.add_column("feature", no_wrap=True)
    for w in windows:
        d.add_column(f"w{w.index}", justify="right", no_wrap=True)
    for n in names:
        cells = []
        for w in windows:
            f = w.features[n]
            text = f"{_n(f.psi, 2)} / {_p(f.p_value_adjusted)}"
            cells.append(f"[red]{text}*[/]" if f.drifted else text)
        d.add_row(n, *cells)
    return d


def _drift_summary(names: Sequence[str], windows: Sequence[WindowReport],
                   longest: int) -> Table:
    d = Table(title=f"drifted features ({len(windows)} windows; PSI peak, smallest adjusted p)",
              title_justify="left")
    d.add_column("feature", overflow="fold", min_width=min(longest, 28))
    d.add_column("drifted in", justify="right", no_wrap=True)
    d.add_column("windows", overflow="fold", ratio=1)
    d.add_column("max PSI (window)", justify="right", no_wrap=True)
    d.add_column("min p", justify="right", no_wrap=True)
    for n in names:
        hit = [w.index for w in windows if w.features[n].drifted]
        peak = max(windows, key=lambda w: _finite(w.features[n].psi))
        ps = [w.features[n].p_value_adjusted for w in windows]
        finite = [p for p in ps if p is not None and math.isfinite(p)]
        d.add_row(n, f"{len(hit)}/{len(windows)}", _ranges(hit),
                  f"{_n(peak.features[n].psi, 2)} (w{peak.index})",
                  _p(min(finite) if finite else None))
    return d


def _finite(v: float) -> float:
    return v if math.isfinite(v) else -math.inf


def _ranges(indices: Sequence[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` → ``"w1–3, w7, w9–10"``: runs of windows as ranges."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"w{a}" if a == b else f"w{a}–{b}" for a, b in runs)
