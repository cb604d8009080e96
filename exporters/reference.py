"""The metric reference table of docs/metrics.md, generated from the catalogue.

``python -m driftline.exporters.reference`` rewrites the generated part of docs/metrics.md;
a test fails when the file differs from what this module makes, so the doc cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

from driftline import catalogue as cat
from driftline.exporters.otlp import otel_unit

BEGIN = "<!-- BEGIN GENERATED: python -m driftline.exporters.reference -->"
END = "<!-- END GENERATED -->"


def _otel_kind(spec: cat.MetricSpec) -> str:
    return {"counter": "Sum (monotonic, cumulative)", "gauge": "Gauge",
            "histogram": "Histogram (explicit buckets, cumulative)"}.get(spec.type, spec.type)


def metrics_table(specs: tuple[cat.MetricSpec, ...] = cat.ALL, *, otlp: bool = True) -> str:
    """One row per catalogue metric: both names and types, labels, OTLP unit, buckets.

    Labels are listed once: as OTLP attributes they keep their name, except ``model_name`` and
    ``model_version`` (``model.name``, ``model.version``; see ``otlp.attribute_name``).
    """
    if not otlp:
        rows = ["| Prometheus metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
        rows += [f"| `{m.name}` | {m.type} | {', '.join(f'`{lab}`' for lab in m.labels) or '—'} | "
                 f"{m.help} |" for m in specs]
        return "\n".join(rows)
    rows = [
        "| Prometheus metric | type | labels | OTLP instrument | OTLP type | unit sent | meaning |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in specs:
        labels = ", ".join(f"`{lab}`" for lab in m.labels) or "—"
        unit = otel_unit(m)
        meaning = m.help
        if m.buckets:
            meaning += " Buckets: " + ", ".join(f"{b:g}" for b in m.buckets) + "."
        rows.append(f"| `{m.name}` | {m.type} | {labels} | `{m.otel_name}` | "
                    f"{_otel_kind(m)} | {f'`{unit}`' if unit else '(none)'} | {meaning} |")
    return "\n".join(rows)


def render_doc(text: str) -> str:
    """``text`` with the generated block replaced by the current table."""
    head, sep, rest = text.partition(BEGIN)
    if not sep:
        raise ValueError(f"marker {BEGIN!r} missing")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise ValueError(f"marker {END!r} missing")
    return f"{head}{BEGIN}\n{generated()}\n{END}{tail}"


def generated() -> str:
    """The sidecar's metrics, then those of the webhook receiver (its own /metrics)."""
    parts = [metrics_table()]
    receiver: tuple[cat.MetricSpec, ...] = getattr(cat, "RECEIVER_METRICS", ())
    if receiver:
        parts += ["", "The Alertmanager webhook receiver (`driftline actions serve`) exposes these on "
                  "its own `/metrics` (Prometheus only, no model labels):", "",
                  metrics_table(receiver, otlp=False)]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path("docs/metrics.md")
    path.write_text(render_doc(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
