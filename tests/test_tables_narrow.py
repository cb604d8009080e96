"""The terminal tables fit an 80-column terminal and keep the values people look for.

Rendered through a recording rich Console of width 80 (no terminal, so no colour codes);
every line must fit and the feature names, decisions and ids must still be readable whole."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from rich.console import Console

from driftline.alertmanager.audit import AuditEntry, render_table
from driftline.analyze.report_table import print_profile
from driftline.io.readers import DataFile
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import NumericFeature
from tests.engine_fixtures import write

WIDTH = 80
LONG_NUMERIC = "applicant_monthly_income_usd"
LONG_CATEGORICAL = "employment_contract_type"


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _assert_fits(text: str, *wanted: str) -> None:
    too_wide = [line for line in _lines(text) if len(line) > WIDTH]
    assert not too_wide, f"{len(too_wide)} line(s) wider than {WIDTH}: {too_wide[0]!r}"
    for value in wanted:
        assert value in text, f"{value!r} is not readable whole in:\n{text}"


def _console() -> Console:
    return Console(width=WIDTH, record=True, force_terminal=False, file=io.StringIO())


def test_baseline_show_fits_80_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 400
    table = pa.table({
        LONG_NUMERIC: rng.normal(4_200_000.0, 900_000.0, n),
        "age": rng.integers(18, 90, n).astype(np.float64),
        LONG_CATEGORICAL: rng.choice(["permanent_full_time", "fixed_term_part_time",
                                      "self_employed", "none"], n),
        "pred": rng.integers(0, 2, n),
    })
    path = write(table, tmp_path / "ref.parquet")
    profile = build_profile([DataFile(str(path), "parquet")],
                            BuildOptions(prediction="pred", model_name="credit-default-scorer",
                                         categorical=(LONG_CATEGORICAL,), multivariate=False),
                            progress=False)
    out = io.StringIO()
    print_profile(profile, file=out, width=WIDTH)
    income = profile.features[LONG_NUMERIC]
    assert isinstance(income, NumericFeature)
    _assert_fits(out.getvalue(), LONG_NUMERIC, LONG_CATEGORICAL, "age", profile.id,
                 f"{income.mean:.3f}", "10 bins",
                 "self_employed")


def test_actions_log_fits_80_columns() -> None:
    entries = [
        AuditEntry(decision="awaiting_approval", alertname="DriftlinePredictionDrift",
                   model_name="credit-default-scorer", model_version="2024-11-03", action="rollback",
                   target="https://deploy.internal.example/api/v1/rollback", method="POST",
                   url="https://deploy.internal.example/api/v1/rollback?model=credit",
                   status_code=None, detail="waiting for an approver (role release-manager)",
                   ts=1_764_590_000.0, id=1234),
        AuditEntry(decision="acted", alertname="DriftlineFeatureDrift", model_name="scorer",
                   action="retrain", target="jenkins", method="POST",
                   url="http://127.0.0.1:8080/job/retrain/buildWithParameters", status_code=201,
                   detail="", ts=1_764_590_100.0, id=1235),
    ]
    console = _console()
    console.print(render_table(entries, width=console.width))
    _assert_fits(console.export_text(), "awaiting_approval", "acted", "1234", "1235", "rollback",
                 "retrain", "credit-default-scorer")


def test_demo_summary_tables_fit_80_columns() -> None:
    from driftline_demo.data import FEATURES
    from driftline_demo.report import alerts_table, audit_table, drift_table
    from driftline_demo.scenario import ScenarioResult

    result = ScenarioResult.__new__(ScenarioResult)  # only the fields the tables read
    result.psi_stable = {f: 0.01 for f in FEATURES}
    result.psi_drifted = {f: 0.42 for f in FEATURES}
    result.drifted_features = list(FEATURES[:2])
    result.embedding_stable = {"review_embedding": {"pvalue": 0.61, "cosine": 0.0012}}
    result.embedding_drifted = {"review_embedding": {"pvalue": 0.001, "cosine": 0.0871,
                                                     "drifted": 1.0}}
    alerts = [{"labels": {"alertname": "DriftlinePredictionDriftCritical", "severity": "critical",
                          "action": "rollback", "endpoint": "credit-default-scorer-canary",
                          "feature": "income"}}]
    audit = [{"ts": 1_764_590_000, "decision": "awaiting_approval",
              "alertname": "DriftlinePredictionDriftCritical", "action": "rollback",
              "method": "POST", "url": "http://127.0.0.1:9999/api/v1/deployments/rollback",
              "status_code": 202}]
    console = _console()
    for table in (drift_table(result), alerts_table(alerts), audit_table(audit)):
        console.print(table)
    _assert_fits(console.export_text(), *FEATURES, "review_embedding", "awaiting_approval",
                 "DriftlinePredictionDriftCritical", "rollback", "critical")




def test_analyze_table_with_100_windows_and_25_features_fits_80_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`analyze --format table` at 80 columns: the drifted-feature grid (one column per window)
    becomes one row per feature with the windows it drifted in as ranges."""
    from driftline.analyze.offline import analyze
    from driftline.analyze.report_table import print_windows

    rng = np.random.default_rng(8)
    names = [f"sensor_{i:02d}_reading_value" for i in range(25)]
    ref = pa.table({n: rng.normal(size=4_000) for n in names})
    profile = build_profile([DataFile(str(write(ref, tmp_path / "ref.parquet")), "parquet")],
                            BuildOptions(multivariate=False), progress=False)
    n_windows, size = 100, 200
    shift = np.zeros(n_windows * size)
    shift[30 * size:60 * size] = 3.0  # windows 30-59 drift in the first three features
    data = pa.table({n: rng.normal(size=n_windows * size) + (shift if i < 3 else 0.0)
                     for i, n in enumerate(names)})
    path = write(data, tmp_path / "data.parquet")
    windows = list(analyze(profile, [DataFile(str(path), "parquet")], window_size=size))
    assert len(windows) == n_windows
    out = io.StringIO()
    monkeypatch.setenv("COLUMNS", str(WIDTH))  # what rich reads for a terminal's width
    print_windows(profile, windows, file=out)
    text = out.getvalue()
    _assert_fits(text, *names[:3], "w30–59", "30/100", "3 of 25", "100 windows", profile.id)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    indices = [line.split("│")[1].strip() for line in rows]
    assert [str(i) for i in range(n_windows)] == indices[:n_windows]  # one row per window
    wide = io.StringIO()
    monkeypatch.setenv("COLUMNS", "200")
    print_windows(profile, windows[28:32], file=wide)  # few windows, room: the grid
    assert all(f"w{i}" in wide.getvalue() for i in range(28, 32)) and "*" in wide.getvalue()
