"""The HTML report as a data scientist reads it: readable p-values, the test and its thresholds
per feature, window times from the timestamp column, missing values flagged, partial windows
marked, estimated accuracy with its band and the alert threshold, estimated precision/recall/F1,
reference vs window distributions; checked against the JSON report of the same run and numpy.
It still renders when fields are missing, and headless Chromium shows it (screenshot + DOM)."""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.analyze.report_charts import accuracy_sigma, fmt_p
from driftline.analyze.report_html import render_html
from driftline.cli import main
from driftline.engine.snapshot import FeatureDrift, Performance, WindowReport
from driftline.profile.format import BaselineProfile, NumericFeature

T0 = 1_700_000_000


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One baseline and one analyze run (windows of 500: 0-3 stable, 4-7 shifted, window 5 with
    x missing, a partial last window of 200), written as JSON and as HTML."""
    d = tmp_path_factory.mktemp("report")
    ref = write(reference_table(5000, seed=1), d / "ref.parquet")
    prof = d / "profile.json"
    assert main(["baseline", "build", str(ref), "-o", str(prof), "--prediction", "pred", "--proba", "p",
                 "--target", "y", "--model-name", "churn", "--model-version", "7", "--no-progress"]) == 0
    t = pa.concat_tables([reference_table(2000, seed=5), reference_table(2000, seed=6, shift=0.8)])
    x = t.column("x").to_numpy().copy()
    x[2500:2600] = np.nan  # 20 % of window 5 missing
    t = t.set_column(0, "x", pa.array(x)).slice(0, 3700)
    ts = pa.array((T0 + np.arange(t.num_rows) * 2.0) * 1e6, pa.float64()).cast(pa.int64())
    t = t.append_column("ts", ts.cast(pa.timestamp("us")))
    cur = write(t, d / "cur.parquet")
    common = ["analyze", "--baseline", str(prof), str(cur), "--window-size", "500", "--timestamp", "ts",
              "--psi-threshold", "0.15"]
    assert main([*common, "--format", "json", "-o", str(d / "r.json")]) == 0
    assert main([*common, "-o", str(d / "r.html")]) == 0
    return {"dir": d, "profile": BaselineProfile.load(prof), "data": t,
            "json": json.loads((d / "r.json").read_text()), "html": (d / "r.html").read_text()}


class _Tables(HTMLParser):
    """Rows of every <table class=...> as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    p = _Tables()
    p.feed(text)
    return {name: [dict(zip(rows[0], r, strict=True)) for r in rows[1:]] for name, rows in p.tables.items()}


def test_p_values_are_readable() -> None:
    assert fmt_p(3.2e-12) == "3.2e-12"
    assert fmt_p(0.0) == "< 1e-300"
    assert fmt_p(0.042) == "0.042"
    assert fmt_p(None) == "n/a" and fmt_p(math.nan) == "n/a"


@settings(max_examples=200)
@given(st.floats(min_value=1e-300, max_value=1.0))
def test_a_printed_p_value_reads_back_close_to_the_number(p: float) -> None:
    text = fmt_p(p)
    assert float(text) == pytest.approx(p, rel=0.051)  # 2 significant digits at worst
    assert not re.fullmatch(r"0\.0+", text)


def test_window_table_has_times_partial_missing_accuracy_band_and_prf(run: dict[str, Any]) -> None:
    rows = _tables(run["html"])["windows"]
    windows = run["json"]["windows"]
    assert len(rows) == len(windows) == 8
    for row, w in zip(rows, windows, strict=True):
        start = datetime.fromtimestamp(T0 + 2.0 * 500 * w["index"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        assert row["time (UTC)"].startswith(start), (row["time (UTC)"], start)
        assert ("partial" in row["records"]) == (w["records"] < 500)
        assert ("⚠" in row["missing values"]) == (w["features"]["x"]["missing_ratio"] >= 0.1)
        perf = w["performance"]
        est, band = (float(v) for v in row["est. accuracy ±3σ"].split(" ± "))
        assert est == pytest.approx(perf["estimated_accuracy"], abs=5e-4)
        sigma = math.sqrt(perf["estimated_accuracy"] * (1 - perf["estimated_accuracy"]) / w["records"])
        assert band == pytest.approx(3 * sigma, abs=5e-4)
        prf = [float(v) for v in row["est. precision / recall / F1"].split(" / ")]
        assert prf == pytest.approx([perf["estimated_precision"], perf["estimated_recall"],
                                     perf["estimated_f1"]], abs=5e-4)
        assert row["drifted"] == ("yes" if w["drifted"] else "no")
    assert sum("partial" in r["records"] for r in rows) == 1
    assert "⚠" in rows[5]["missing values"]


def test_feature_tests_show_statistic_p_value_and_thresholds(run: dict[str, Any]) -> None:
    rows = {r["feature"]: r for r in _tables(run["html"])["tests"]}
    windows = run["json"]["windows"]
    assert set(rows) == {"x", "z", "c"}
    for name, row in rows.items():
        w = windows[int(row["window"])]
        f = w["features"][name]
        psis = [x["features"][name]["psi"] for x in windows]
        assert f["psi"] == max(v for v in psis if v is not None)  # the most-shifted window
        key = "ks" if f["type"] == "numeric" else "chi2"
        assert row["test"] == ("Kolmogorov–Smirnov" if key == "ks" else "chi-squared")
        assert float(row["statistic"]) == pytest.approx(f[f"{key}_statistic"], abs=1e-4)
        assert float(row["p-value"]) == pytest.approx(f[f"{key}_pvalue"], rel=0.051)
        assert float(row["adjusted p (BH)"]) == pytest.approx(f["p_value_adjusted"], rel=0.051)
        assert (row["PSI threshold"], row["alpha"]) == ("0.15", "0.05")  # the run's --psi-threshold
        assert (row["decision"] == "drifted") == f["drifted"]
    assert "e-" in rows["x"]["p-value"]  # the shifted feature's tiny p-value in scientific notation
    assert "0.0000" not in run["html"]


def test_distributions_are_the_window_shares_per_reference_bin(run: dict[str, Any]) -> None:
    profile: BaselineProfile = run["profile"]
    spec = profile.features["x"]
    assert isinstance(spec, NumericFeature)
    rows = {r["feature"]: r for r in _tables(run["html"])["tests"]}
    j = int(rows["x"]["window"])
    values = run["data"].column("x").to_numpy()[500 * j: 500 * (j + 1)]
    values = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(np.asarray(spec.edges), values, side="left"),
                         minlength=len(spec.edges) + 1)
    chart = run["html"].split('aria-label="x:')[1].split("</svg>")[0]
    shares = re.findall(rf"<title>[^<]*: window {j} ([0-9.]+)%</title>", chart)
    assert [float(s) for s in shares] == pytest.approx((100 * counts / counts.sum()).tolist(), abs=0.051)
    assert run["html"].count('class="dist"') == 3


def test_performance_table_shows_every_estimated_and_realised_metric(run: dict[str, Any]) -> None:
    rows = _tables(run["html"])["performance"]
    windows = run["json"]["windows"]
    assert len(rows) == len(windows)
    keys = set(windows[0]["performance"]["estimated"]) | set(windows[0]["performance"]["realised"])
    assert {"accuracy", "roc_auc", "f1"} <= keys
    for row, w in zip(rows, windows, strict=True):
        for metric in keys:
            est, real = row[f"{metric.replace('_', ' ')}est. / real."].split(" / ")
            for text, value in ((est, w["performance"]["estimated"].get(metric)),
                                (real, w["performance"]["realised"].get(metric))):
                assert text == "n/a" if value is None else float(text) == pytest.approx(value, abs=5e-4)


def test_accuracy_chart_draws_band_threshold_and_partial_window(run: dict[str, Any]) -> None:
    text = run["html"]
    chart = text.split('class="accuracy"')[1].split("</svg>")[0]
    ref = run["json"]["windows"][0]["performance"]["reference_accuracy"]
    assert f"alert threshold {ref - 0.05:.3f}" in chart
    assert 'class="band"' in chart and "±3σ" in chart
    assert chart.count("hollow") == 2  # the partial window's estimated and realised markers


def test_renders_what_exists_when_fields_are_missing(run: dict[str, Any]) -> None:
    profile: BaselineProfile = run["profile"]
    features = {"x": FeatureDrift("x", "numeric", math.nan, math.nan, 0.0, 10, 0, False),
                "unknown": FeatureDrift("unknown", "categorical", 0.0, 0.0, 1.0, 0, 10, False)}
    bare = WindowReport(index=0, records=10, start=None, end=None, features=features, prediction=None,
                        performance=Performance(None, None, 0), drifted=False)
    text = render_html(profile, [bare])
    tables = _tables(text)
    assert "time (UTC)" not in tables["windows"][0] and "PCA error [band]" not in tables["windows"][0]
    assert tables["windows"][0]["est. accuracy ±3σ"] == "n/a"
    assert 'class="est"' not in text and 'class="dist"' not in text  # nothing estimated, no counts
    assert render_html(profile, []).startswith("<!DOCTYPE html>")
    assert math.isnan(accuracy_sigma(0.9, 0))


def _png_pixels_vary(png: bytes) -> tuple[int, int, float]:
    """(width, height, share of non-white bytes in the inflated image data): no image library."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, sum(b != 0xFF for b in raw[:: 97]) / len(raw[:: 97])


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs chromium (scripts/install-system-deps.sh installs it as root)")
def test_headless_chromium_shows_the_report(run: dict[str, Any], tmp_path: Path) -> None:
    page = run["dir"] / "r.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2600"]
    shot = tmp_path / "report.png"
    done = subprocess.run(["chromium", *flags, f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    width, height, ink = _png_pixels_vary(shot.read_bytes())
    assert (width, height) == (1400, 2600)
    assert ink > 0.02, "the screenshot is blank"
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for element in ('<table class="windows"', '<table class="tests"', 'class="heatmap"',
                    'class="accuracy"', 'class="band"', 'class="tag">partial'):
        assert element in dom, element
    assert dom.count('class="dist"') == 3
