"""The CI gate fails on bad data, not only on drift: a feature that became entirely missing and
target labels the reference never had are data-quality failures, reported per window (JSON
``data_quality``, one stderr line per window) and failing ``--fail-on-drift`` unless
``--allow-data-quality``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.cli import main


@pytest.fixture()
def baseline(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 4000
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                  "label": rng.integers(0, 2, n), "pred": rng.integers(0, 2, n)}
                 ).to_csv(tmp_path / "ref.csv", index=False)
    out = tmp_path / "base.json"
    assert main(["baseline", "build", str(tmp_path / "ref.csv"), "-o", str(out),
                 "--prediction", "pred", "--target", "label"]) == 0
    return out


def _current(tmp: Path, **cols: object) -> Path:
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "label": rng.integers(0, 2, n).astype(str), "pred": rng.integers(0, 2, n)})
    for k, v in cols.items():
        df[k] = v
    path = tmp / "cur.csv"
    df.to_csv(path, index=False)
    return path


def _analyze(data: Path, base: Path, tmp: Path, *extra: str) -> tuple[int, list[dict[str, object]]]:
    out = tmp / "report.json"
    rc = main(["analyze", str(data), "--baseline", str(base), "--window-size", "100",
               "--format", "json", "-o", str(out), *extra])
    return rc, json.loads(out.read_text())["windows"]


def test_unseen_target_labels_fail_the_gate_per_window(tmp_path: Path, baseline: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    labels = np.array(["0", "1"] * 150, dtype=object)
    labels[150:250] = "defaulted"  # 50 in window 1, 50 in window 2
    data = _current(tmp_path, label=labels)
    rc, windows = _analyze(data, baseline, tmp_path, "--fail-on-drift")
    assert not any(w["drifted"] for w in windows)
    assert rc == 1
    assert "data_quality" not in windows[0]
    for w in windows[1:]:
        assert w["data_quality"] == ["50 target label(s) the reference never had: 'defaulted'"]
    err = capsys.readouterr().err
    assert "data quality: window 1: 50 target label(s)" in err
    rc, _ = _analyze(data, baseline, tmp_path, "--fail-on-drift", "--allow-data-quality")
    assert rc == 0


def test_entirely_missing_feature_is_reported(tmp_path: Path, baseline: Path) -> None:
    data = _current(tmp_path, b=np.nan)
    rc, windows = _analyze(data, baseline, tmp_path, "--fail-on-drift")
    assert rc == 1
    assert all(w["data_quality"] == ["feature 'b' is entirely missing (100 of 100 records)"]
               for w in windows)
    rc, windows = _analyze(_current(tmp_path), baseline, tmp_path, "--fail-on-drift")
    assert rc == 0 and not any("data_quality" in w for w in windows)


@pytest.mark.parametrize("start,stop", [(0, 1), (99, 101), (0, 300), (250, 300), (37, 238)])
def test_unseen_labels_are_counted_into_the_right_window(tmp_path: Path, baseline: Path,
                                                         start: int, stop: int) -> None:
    labels = np.array(["0", "1"] * 150, dtype=object)
    labels[start:stop] = "x"
    _, windows = _analyze(_current(tmp_path, label=labels), baseline, tmp_path)
    got = [int(str(w.get("data_quality", ["0"])[0]).split(" ", 1)[0]) for w in windows]
    want = [int(np.sum(labels[i * 100:(i + 1) * 100] == "x")) for i in range(3)]
    assert got == want
