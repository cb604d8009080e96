"""Text exposition of metric points (Prometheus text 0.0.4 and OpenMetrics 1.0), fast.

prometheus-client's encoders build a ``Sample`` with a label dict per series and then sort,
escape and format every label of every series at every scrape: ≈ 30 µs a series, so a
400-feature model (≈ 4,000 series) cost 126 ms a scrape even when nothing had changed. Here
the label part of each series line (sorted, escaped, with the sample name) is formatted once
and kept for as long as the series exists; a scrape only formats the values. The output is
byte for byte what prometheus-client writes for the same families (tested against it), and
anything this module does not cover (other escaping schemes, text 1.0) goes to
prometheus-client.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.utils import floatToGoString

from driftline.catalogue import MetricSpec
from driftline.exporters.points import Labels, MetricPoints

__all__ = ["TextEncoder"]

_UNITS = {"s": "seconds"}


def _escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def family_name(spec: MetricSpec) -> str:
    """The family name prometheus-client gives the spec (unit appended, ``_total`` cut)."""
    name = spec.name
    unit = _UNITS.get(spec.unit, "")
    if unit and not name.endswith("_" + unit):
        name += "_" + unit
    if spec.type == "counter" and name.endswith("_total"):
        name = name[:-6]
    return name


class _Family:
    """Per catalogue metric: header lines of both formats and the label names."""

    def __init__(self, spec: MetricSpec) -> None:
        name = family_name(spec)
        unit = _UNITS.get(spec.unit, "")
        self.names = spec.labels
        self.sample = name + "_total" if spec.type == "counter" else name
        self.base = name
        text_name = self.sample
        help_text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
        self.text_header = f"# HELP {text_name} {help_text}\n# TYPE {text_name} {spec.type}\n"
        om = f"# HELP {name} {_escape_value(spec.help)}\n# TYPE {name} {spec.type}\n"
        if unit:
            om += f"# UNIT {name} {unit}\n"
        self.om_header = om


def _labelstr(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(pairs)) + "}"


class TextEncoder:
    """Encodes built points; keeps the formatted label part of the series it last wrote.

    The cache holds only the series of the previous encode (it is rebuilt from the old one
    each time), so its size follows the current series count, never the history. Not
    thread-safe: one encoder per collector, called under the collector's lock.
    """

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._lines: dict[tuple[str, Labels], str] = {}
        self._hist: dict[tuple[str, Labels, int], tuple[list[str], str, str]] = {}

    def _family(self, spec: MetricSpec) -> _Family:
        fam = self._families.get(spec.name)
        if fam is None:
            fam = self._families[spec.name] = _Family(spec)
        return fam

    def encode(self, points: Sequence[MetricPoints], openmetrics: bool) -> bytes:
        """The exposition of ``points`` (from :func:`~driftline.exporters.points.build_points`)."""
        out: list[str] = []
        old_lines, old_hist = self._lines, self._hist
        lines: dict[tuple[str, Labels], str] = {}
        hists: dict[tuple[str, Labels, int], tuple[list[str], str, str]] = {}
        go = floatToGoString
        for pts in points:
            spec = pts.spec
            fam = self._family(spec)
            out.append(fam.om_header if openmetrics else fam.text_header)
            if spec.type == "histogram":
                for values, h in pts.histograms.items():
                    key = (spec.name, values, len(h.bounds))
                    parts = old_hist.get(key)
                    if parts is None:
                        base = list(zip(fam.names, values, strict=True))
                        les = [go(b) for b in h.bounds] + ["+Inf"]
                        buckets = [f"{fam.base}_bucket{_labelstr([*base, ('le', le)])} "
                                   for le in les]
                        labels = _labelstr(base)
                        parts = (buckets, f"{fam.base}_count{labels} ", f"{fam.base}_sum{labels} ")
                    hists[key] = parts
                    buckets, count, total = parts
                    run = 0
                    for prefix, c in zip(buckets, h.counts, strict=True):
                        run += c
                        out.append(f"{prefix}{go(run)}\n")
                    out.append(f"{count}{go(h.count)}\n")
                    out.append(f"{total}{go(h.sum)}\n")
                continue
            name = spec.name
            for values, v in pts.values.items():
                key2 = (name, values)
                head = old_lines.get(key2)
                if head is None:
                    head = fam.sample + _labelstr(list(zip(fam.names, values, strict=True))) + " "
                lines[key2] = head
                out.append(f"{head}{go(v)}\n")
        if openmetrics:
            out.append("# EOF\n")
        self._lines, self._hist = lines, hists
        return "".join(out).encode("utf-8")
