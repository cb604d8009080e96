"""`driftline changes`: change points of one column through the CLI, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.cli import main
from driftline.detectors import ChangeDetector


def test_changes_json_across_files_with_times(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(50, 3, 600), rng.normal(62, 3, 400)]
    x[[10, 700]] = np.nan
    ts = 1_700_000_000 + np.arange(x.size) * 60.0
    pq.write_table(pa.table({"kpi": x[:500], "t": ts[:500]}), tmp_path / "a.parquet")
    pacsv.write_csv(pa.table({"kpi": x[500:], "t": ts[500:]}), tmp_path / "b.csv")
    assert main(["changes", str(tmp_path / "a.parquet"), str(tmp_path / "b.csv"),
                 "--column", "kpi", "--timestamp", "t", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    det = ChangeDetector()
    hits = det.update(x)
    assert doc["rows"] == 1000 and doc["invalid"] == 2 and doc["model"] == "level"
    assert [c["index"] for c in doc["changes"]] == det.change_points
    assert [c["detected_at"] for c in doc["changes"]] == hits
    (c,) = doc["changes"]
    assert abs(c["index"] - 600) <= 3 and c["time"] == ts[c["index"]]
    assert c["detected_time"] == ts[c["detected_at"]]


def test_changes_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(pa.table({"err": (np.arange(3000) >= 1500) & (np.arange(3000) % 3 == 0),
                             "name": ["a"] * 3000}), tmp_path / "e.parquet")
    f = str(tmp_path / "e.parquet")
    assert main(["changes", f, "--column", "err", "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "model bernoulli" in out and "1 change(s)" in out
    assert main(["changes", f, "--column", "nope"]) == 2
    assert "column 'nope': no such column" in capsys.readouterr().err
    assert main(["changes", f, "--column", "name"]) == 2
    assert "not numeric" in capsys.readouterr().err
