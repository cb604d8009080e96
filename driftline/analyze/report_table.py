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
                  file: IO[str] | None = None) -> None:
    """One summary row per window, then the features that drifted anywhere, window by window."""
    console = Console(file=file)
    console.print(f"[bold]{profile.model_name}[/] version {profile.model_version} · "
                  f"baseline {profile.id} · {len(windows)} windows")
    t = Table(title="windows", title_justify="left")
    for col in ("#", "records", "drifted", "features drifted", "max PSI", "prediction PSI",
                "est. accuracy", "accuracy"):
        t.add_column(col, justify="left" if col in ("drifted", "features drifted") else "right")
    for w in windows:
        drifted = [n for n, f in w.features.items() if f.drifted]
        psis = [f.psi for f in w.features.values() if math.isfinite(f.psi)]
        t.add_row(
            str(w.index), f"{w.records:,}", "[red]yes[/]" if w.drifted else "no",
            ", ".join(drifted[:5]) + (f" +{len(drifted) - 5}" if len(drifted) > 5 else ""),
            _n(max(psis) if psis else None),
            _n(w.prediction.psi if w.prediction is not None else None),
            _n(w.performance.estimated_accuracy), _n(w.performance.accuracy),
        )
    console.print(t)
    names = [n for n in profile.features if any(w.features[n].drifted for w in windows)]
    if not names:
        return
    d = Table(title="drifted features (PSI / adjusted p, * = drifted)", title_justify="left")
    d.add_column("feature")
    for w in windows:
        d.add_column(f"w{w.index}", justify="right")
    for n in names:
        cells = []
        for w in windows:
            f = w.features[n]
            text = f"{_n(f.psi, 2)} / {_p(f.p_value_adjusted)}"
            cells.append(f"[red]{text}*[/]" if f.drifted else text)
        d.add_row(n, *cells)
    console.print(d)
