"""`driftline baseline` and `driftline analyze` end to end through the CLI entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write

from driftline.analyze.offline import parse_duration
from driftline.cli import main
from driftline.errors import InputError
from driftline.profile.format import BaselineProfile


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("analyze")
    ref = write(reference_table(5000, seed=1), d / "ref.parquet")
    prof = d / "profile.json"
    assert main(["baseline", "build", str(ref), "-o", str(prof), "--prediction", "pred",
                 "--proba", "p", "--target", "y", "--model-name", "churn",
                 "--model-version", "7", "--no-progress"]) == 0
    return d, prof


def _current(d: Path, shift: float, name: str, n: int = 3000, seed: int = 5) -> Path:
    t = reference_table(n, seed=seed, shift=shift)
    ts = pa.array((1_700_000_000 + np.arange(n) * 2.0) * 1e6, pa.float64()).cast(pa.int64())
    t = t.append_column("ts", ts.cast(pa.timestamp("us")))
    return write(t, d / name)


def test_json_shape_and_values(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    cur = _current(d, 0.0, "same.parquet")
    assert main(["analyze", "--baseline", str(prof), str(cur), "--window-size", "1000",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    profile = BaselineProfile.load(prof)
    assert doc["baseline"] == {"model_name": "churn", "model_version": "7", "id": profile.id}
    assert [w["index"] for w in doc["windows"]] == [0, 1, 2]
    w = doc["windows"][0]
    assert set(w) == {"index", "records", "start", "end", "features", "prediction", "performance",
                      "drifted", "decision", "multivariate"}
    assert [x["decision"] for x in doc["windows"]] == ["no_drift"] * 3
    assert set(w["features"]) == {"x", "z", "c"}
    assert set(w["features"]["x"]) >= {"psi", "ks_statistic", "ks_pvalue", "jensen_shannon",
                                       "wasserstein", "missing_ratio", "p_value_adjusted", "drifted",
                                       "psi_corrected", "decision"}
    x = w["features"]["x"]
    assert 0.0 <= x["psi_corrected"] <= x["psi"]
    assert set(w["features"]["c"]) >= {"psi", "chi2_pvalue", "chi2_statistic"}
    assert w["performance"]["labels"] == 1000
    assert w["performance"]["reference_accuracy"] == pytest.approx(profile.output.reference_accuracy)
    assert not any(x["drifted"] for x in doc["windows"])


def test_fail_on_drift_exit_code(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    same = _current(d, 0.0, "same2.parquet")
    moved = _current(d, 1.0, "moved.parquet")
    base = ["analyze", "--baseline", str(prof), "--window-size", "1500", "--format", "json"]
    assert main([*base, str(same), "--fail-on-drift"]) == 0
    assert main([*base, str(moved)]) == 0
    assert main([*base, str(moved), "--fail-on-drift"]) == 1
    capsys.readouterr()


def test_windows_by_duration(built: tuple[Path, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    cur = _current(d, 0.0, "timed.csv", n=3000)  # one record every 2 s: 100 min
    out = tmp_path / "r.json"
    assert main(["analyze", "--baseline", str(prof), str(cur),  # no count limit
                 "--timestamp", "ts", "--window-duration", "30m", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    ts = 1_700_000_000 + np.arange(3000) * 2.0
    buckets = np.floor(ts / 1800)
    expected = [int((buckets == b).sum()) for b in np.unique(buckets)]
    assert [w["records"] for w in doc["windows"]] == expected
    first = doc["windows"][0]
    assert first["start"] == ts[0] and first["end"] == ts[expected[0] - 1]
    # a count limit still applies inside a time window
    assert main(["analyze", "--baseline", str(prof), str(cur), "--window-size", "500",
                 "--timestamp", "ts", "--window-duration", "30m", "--format", "json"]) == 0
    sizes = [w["records"] for w in json.loads(capsys.readouterr().out)["windows"]]
    assert sum(sizes) == 3000 and max(sizes) == 500


def test_html_report_is_self_contained(built: tuple[Path, Path], tmp_path: Path) -> None:
    d, prof = built
    moved = _current(d, 1.0, "moved2.parquet")
    out = tmp_path / "report.html"
    assert main(["analyze", "--baseline", str(prof), str(moved), "--window-size", "1000",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "<script" not in text.lower()
    # the only URL is the SVG namespace identifier, which is never fetched
    urls = set(re.findall(r"https?://[^\"' )]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"\b(src|href)\s*=", text) and "@import" not in text and "url(" not in text
    assert text.count("<rect") >= 3 * 4  # one cell per feature/prediction and window
    assert "DRIFTED" in text and "estimated" in text


def test_table_format(built: tuple[Path, Path], tmp_path: Path) -> None:
    d, prof = built
    out = tmp_path / "t.txt"
    assert main(["analyze", "--baseline", str(prof), str(_current(d, 1.0, "m3.parquet")),
                 "--window-size", "1000", "--format", "table", "-o", str(out)]) == 0
    text = out.read_text()
    assert "windows" in text and "x" in text and "yes" in text


def test_baseline_show(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, prof = built
    assert main(["baseline", "show", str(prof), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == BaselineProfile.load(prof).id
    monkeypatch.setenv("COLUMNS", "140")  # the wide layout; 80 columns: tests/test_tables_narrow.py
    assert main(["baseline", "show", str(prof)]) == 0
    text = capsys.readouterr().out
    assert "churn" in text and "numeric" in text and "categorical" in text


def test_parse_duration() -> None:
    assert parse_duration("1h") == 3600 and parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("", "h", "1x", "-5", "0"):
        with pytest.raises(InputError):
            parse_duration(bad)


def test_analyze_reads_every_format_alike(built: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, prof = built
    t = reference_table(1200, seed=9, shift=0.5)
    docs = []
    for suffix in (".parquet", ".csv", ".jsonl", ".arrow"):
        f = write(t, tmp_path / f"cur{suffix}")
        assert main(["analyze", "--baseline", str(prof), str(f), "--window-size", "500",
                     "--format", "json"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    for other in docs[1:]:
        assert [w["records"] for w in other["windows"]] == [500, 500, 200]
        for a, b in zip(docs[0]["windows"], other["windows"], strict=True):
            assert a["drifted"] == b["drifted"]
            for name in ("x", "z", "c"):
                assert a["features"][name]["psi"] == pytest.approx(b["features"][name]["psi"])
            assert a["performance"]["accuracy"] == b["performance"]["accuracy"]


def test_iso_string_timestamps(built: tuple[Path, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _, prof = built
    t = reference_table(600, seed=2)
    stamps = [f"2024-01-01T{h:02d}:{m:02d}:00Z" for h in range(10) for m in range(0, 60)]
    f = write(t.append_column("when", pa.array(stamps)), tmp_path / "iso.jsonl")
    assert main(["analyze", "--baseline", str(prof), str(f), "--timestamp", "when",
                 "--window-duration", "2h", "--format", "json"]) == 0
    windows = json.loads(capsys.readouterr().out)["windows"]
    assert [w["records"] for w in windows] == [120] * 5
    assert windows[0]["start"] == 1_704_067_200.0  # 2024-01-01T00:00Z
    bad = write(t.append_column("when", pa.array(["yesterday"] * 600)), tmp_path / "bad.csv")
    assert main(["analyze", "--baseline", str(prof), str(bad), "--timestamp", "when",
                 "--window-duration", "2h", "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert "'when'" in err and "timestamps" in err and str(bad) in err


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_files_follow_the_umask(built: tuple[Path, Path], tmp_path: Path,
                                       umask: int) -> None:
    """Baselines and reports used to be created 0600 whatever the umask (mkstemp + rename)."""
    import os
    import stat

    d, prof = built
    data = _current(d, 0.0, "m0.parquet")
    old = os.umask(umask)
    try:
        assert main(["baseline", "build", str(data), "-o", str(tmp_path / "b.json"),
                     "--target", "y", "--no-progress"]) == 0
        for fmt in ("json", "table", "html"):
            assert main(["analyze", "--baseline", str(prof), str(data), "--format", fmt,
                         "-o", str(tmp_path / f"r.{fmt}")]) == 0
        plain = tmp_path / "plain"
        plain.write_text("x")  # what open(path, "w") gives: the reference
    finally:
        os.umask(old)
    want = stat.S_IMODE(plain.stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("b.json", "r.json", "r.table", "r.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    # replacing a file keeps its mode, as editors and cp do
    (tmp_path / "b.json").chmod(0o640)
    BaselineProfile.load(prof).save(tmp_path / "b.json")
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640


def test_min_records_reports_insufficient_data(built: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    moved = _current(d, 1.0, "moved_small.parquet", n=1150)  # 1000 + a 150-record tail
    assert main(["analyze", "--baseline", str(prof), str(moved), "--window-size", "1000",
                 "--format", "json"]) == 0
    first, tail = json.loads(capsys.readouterr().out)["windows"]
    assert first["decision"] == "drift" and first["features"]["x"]["decision"] == "drift"
    assert tail["records"] == 150 and tail["decision"] == "insufficient_data"
    assert not tail["drifted"] and not tail["prediction"]["drifted"]
    assert {f["decision"] for f in tail["features"].values()} == {"insufficient_data"}
    assert tail["features"]["x"]["psi"] > 0.1  # statistics are still reported
    assert main(["analyze", "--baseline", str(prof), str(moved), "--window-size", "1000",
                 "--format", "json", "--min-records", "100"]) == 0
    tail = json.loads(capsys.readouterr().out)["windows"][1]
    assert tail["decision"] == "drift"
    assert main(["analyze", "--baseline", str(prof), str(moved), "--min-records", "0"]) != 0
    assert "--min-records must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--psi-threshold", "-1", "must be 0 or more"),
    ("--alpha", "1.5", "between 0 and 1"),
    ("--alpha", "nan", "not a finite number"),
    ("--window-size", "0", "must be 1 or more"),
])
def test_nonsense_options_are_refused_before_any_output(
        built: tuple[Path, Path], option: str, value: str, words: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    with pytest.raises(SystemExit) as e:
        main(["analyze", "--baseline", str(prof), str(_current(d, 0.0, "n0.parquet")),
              option, value])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == "" and option in err and words in err


def test_output_suffix_that_is_no_supported_format_is_refused(
        built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-o report.md` used to write JSON into report.md."""
    d, prof = built
    data = str(_current(d, 0.0, "n1.parquet"))
    assert main(["analyze", "--baseline", str(prof), data, "-o", str(tmp_path / "r.md")]) == 2
    assert "cannot tell the format from '.md'" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
    assert main(["analyze", "--baseline", str(prof), data, "--format", "table",
                 "-o", str(tmp_path / "r.md")]) == 0  # an explicit --format is obeyed
    assert (tmp_path / "r.md").read_text().lstrip()[:1] != "{"


@pytest.mark.parametrize("command", [
    "analyze --baseline {prof} {data} --window-size 500 --min-records 50 --format json "
    "--fail-on-drift",
    "baseline show {prof} --format json",
])
def test_closed_pipe_exits_quietly(built: tuple[Path, Path], command: str) -> None:
    """`driftline ... | head -c 10` ended in a BrokenPipeError traceback for every command but
    `analyze` JSON; the status must not be 1 (what --fail-on-drift uses)."""
    import subprocess
    import sys

    d, prof = built
    data = _current(d, 2.0, "n2.parquet", n=20_000)
    args = command.format(prof=prof, data=data)
    cmd = (f"{sys.executable} -m driftline {args} | head -c 10 >/dev/null; "
           "echo ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_analyze_ks_pvalues_are_scipys_unless_asked_for_the_fast_ones(
        built: tuple[Path, Path], capsys: pytest.CaptureFixture[str], mode: str) -> None:
    """The offline report's KS p-value is ``scipy.stats.ks_2samp`` on the raw reference and the
    window (5000 x 1000 rows: a size where the fast p-value approximates); ``--ks-pvalue fast``
    gives that approximation, within the bound docs/statistics.md states."""
    from scipy import stats

    d, prof = built
    cur = _current(d, 0.05, "mild.parquet", n=2000, seed=8)
    args = ["analyze", "--baseline", str(prof), str(cur), "--window-size", "1000",
            "--format", "json"]
    assert main([*args, "--ks-pvalue", mode] if mode == "fast" else args) == 0
    doc = json.loads(capsys.readouterr().out)
    ref = reference_table(5000, seed=1).column("x").to_numpy()
    values = reference_table(2000, seed=8, shift=0.05).column("x").to_numpy()
    for i, w in enumerate(doc["windows"]):
        want = stats.ks_2samp(ref, values[i * 1000:(i + 1) * 1000]).pvalue
        got = w["features"]["x"]["ks_pvalue"]
        if mode == "exact":
            assert got == pytest.approx(want, rel=1e-9)
        else:
            assert abs(got - want) <= (0.003 if want < 0.1 else 0.01)
            assert got != want  # the approximation, not the exact count
