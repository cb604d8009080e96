"""Every bad input is an InputError naming the file, the column and the fix; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write

from driftline.cli import main
from driftline.errors import InputError
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile, parse_proba


def _build(tmp_path: Path, data: list[str], *extra: str,
           capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out.json"
    rc = main(["baseline", "build", *data, "-o", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not out.exists(), "nothing may be half-written"
    assert not list(tmp_path.glob(".driftline-*"))
    return err


def test_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(reference_table(100), tmp_path / "r.parquet")
    err = _build(tmp_path, [str(f)], "--target", "label", capsys=capsys)
    assert str(f) in err and "'label'" in err and "fix:" in err
    err = _build(tmp_path, [str(f)], "--features", "x,nope", capsys=capsys)
    assert "'nope'" in err


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write(reference_table(10).slice(0, 0), tmp_path / "empty.parquet")
    err = _build(tmp_path, [str(empty)], capsys=capsys)
    assert str(empty) in err and "no rows" in err
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    err = _build(tmp_path, [str(blank)], capsys=capsys)
    assert str(blank) in err


def test_probability_column_of_the_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(reference_table(100), tmp_path / "r.parquet")
    err = _build(tmp_path, [str(f)], "--proba", "c", "--target", "y", capsys=capsys)
    assert "'c'" in err and "not a number" in err and "fix:" in err


def test_unreadable_and_unknown_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet at all")
    err = _build(tmp_path, [str(junk)], capsys=capsys)
    assert str(junk) in err and "cannot read as parquet" in err
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK")
    err = _build(tmp_path, [str(odd)], capsys=capsys)
    assert "unknown data format" in err and ".parquet" in err
    err = _build(tmp_path, [str(tmp_path / "missing.csv")], capsys=capsys)
    assert "no such file" in err


def test_glob_without_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _build(tmp_path, [str(tmp_path / "nothing-*.parquet")], capsys=capsys)
    assert "no files match" in err


def test_truncated_file_fails_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(reference_table(5000), tmp_path / "a.arrow")
    cut = tmp_path / "b.arrow"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _build(tmp_path, [str(good), str(cut)], capsys=capsys)


def test_binary_proba_with_many_classes() -> None:
    with pytest.raises(InputError, match="CLASS=COL"):
        parse_proba("a=p1,b")


def test_multiclass_labels_with_one_probability_column(tmp_path: Path) -> None:
    t = pa.table({"f": [1.0, 2.0, 3.0], "p": [0.2, 0.5, 0.9], "y": ["a", "b", "c"]})
    f = write(t, tmp_path / "m.parquet")
    with pytest.raises(InputError, match="3 classes") as exc:
        build_profile(discover([str(f)]), BuildOptions(proba_binary="p", target="y"))
    assert exc.value.column == "p"


def test_analyze_data_without_a_baseline_feature(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ref = write(reference_table(500), tmp_path / "r.parquet")
    prof = tmp_path / "p.json"
    assert main(["baseline", "build", str(ref), "-o", str(prof), "--no-progress"]) == 0
    cur = write(reference_table(100).drop_columns(["z"]), tmp_path / "cur.parquet")
    out = tmp_path / "report.json"
    rc = main(["analyze", "--baseline", str(prof), str(cur), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "'z'" in err and str(cur) in err and not out.exists()
    wrong = write(reference_table(100).set_column(0, "x", pa.array(["a"] * 100)),
                  tmp_path / "wrong.parquet")
    rc = main(["analyze", "--baseline", str(prof), str(wrong), "-o", str(out)])
    assert rc == 2 and "numeric" in capsys.readouterr().err
    rc = main(["analyze", "--baseline", str(tmp_path / "none.json"), str(cur)])
    assert rc == 2 and "baseline build" in capsys.readouterr().err
    rc = main(["analyze", "--baseline", str(prof), str(ref), "--window-duration", "1h"])
    assert rc == 2 and "timestamp" in capsys.readouterr().err


def test_misspelt_columns_get_a_suggestion(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    f = write(reference_table(100), tmp_path / "r.parquet")
    err = _build(tmp_path, [str(f)], "--target", "preds", capsys=capsys)
    assert "did you mean 'pred'?" in err
    err = _build(tmp_path, [str(f)], "--target", "label", capsys=capsys)
    assert "did you mean" not in err  # nothing close: no guess
    prof = tmp_path / "p.json"
    assert main(["baseline", "build", str(f), "-o", str(prof), "--no-progress"]) == 0
    cur = write(reference_table(100).rename_columns(["x", "z_", "c", "p", "y", "pred"]),
                tmp_path / "cur.parquet")
    assert main(["analyze", "--baseline", str(prof), str(cur), "-o", str(tmp_path / "o.json")]) == 2
    assert "did you mean 'z_'?" in capsys.readouterr().err
