"""The progress bar of ``baseline build``, ``analyze`` and ``replay`` moves within one file.

The bar is forced onto a recording terminal Console and redrawn on every batch; the
percentages it printed must include values strictly between 0 and 100 while a single file is
read (a bar counting files sat at 0 % until the only file was done). Its total is the files'
bytes, each file filled by its rows read (Parquet/Arrow row counts) or its bytes parsed
(CSV/JSONL)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from driftline.cli import main
from driftline.io import progress as progress_mod
from driftline.io import readers
from driftline.io.readers import DataFile, discover
from driftline.profile.build import BuildOptions, build_profile


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n), "y": rng.integers(0, 9, size=n).astype(float)})


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, color_system=None), out


def _percents(text: str) -> list[int]:
    return [int(p) for p in re.findall(r"(\d+)%", text)]


@pytest.fixture(autouse=True)
def _draw_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_mod, "MIN_REDRAW", 0.0)


def _write(path: Path, table: pa.Table) -> DataFile:
    fmt = readers._format_of(str(path))
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=1_000)
    elif fmt == "csv":
        pcsv.write_csv(table, path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    else:
        with pa.ipc.new_file(path, table.schema) as w:
            for batch in table.to_batches(max_chunksize=1_000):
                w.write_batch(batch)
    return DataFile(str(path), str(fmt))


@pytest.mark.parametrize("name", ["ref.parquet", "ref.csv", "ref.jsonl", "ref.arrow"])
def test_build_bar_advances_within_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            name: str) -> None:
    monkeypatch.setattr(readers, "_CSV_BLOCK", 16 << 10)  # several text blocks in a small file
    file = _write(tmp_path / name, _table(5_000))
    console, out = _console()
    profile = build_profile([file], BuildOptions(multivariate=False), progress=True,
                            console=console)
    assert profile.n_records == 5_000
    seen = _percents(out.getvalue())
    inside = [p for p in seen if 0 < p < 100]
    assert len(set(inside)) >= 2, f"the bar did not move within the file: {seen}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert "5,000 rows" in out.getvalue()


def test_shares_follow_the_bytes_of_each_file(tmp_path: Path) -> None:
    """Two files, a small one first: after the small one the bar stands at its share of the
    bytes, not at 50 %."""
    small = _write(tmp_path / "a.parquet", _table(1_000, 1))
    large = _write(tmp_path / "b.parquet", _table(9_000, 2))
    console, _ = _console()
    bar = progress_mod.ReadProgress([small, large], console=console)
    try:
        for _ in readers.iter_batches(small, progress=bar.file(0)):
            pass
        sizes = [Path(small.path).stat().st_size, Path(large.path).stat().st_size]
        assert bar.completed == pytest.approx(sizes[0] / sum(sizes))
        shares = []
        for _ in readers.iter_batches(large, progress=bar.file(1)):
            shares.append(bar.completed)
        assert bar.completed == pytest.approx(1.0)
        assert len(set(shares)) > 3
    finally:
        bar.close()


def test_replay_rows_drive_the_bar(tmp_path: Path) -> None:
    from driftline.collectors.replay import iter_rows

    _write(tmp_path / "d.parquet", _table(4_000))
    console, out = _console()
    rows = sum(len(chunk) for chunk in iter_rows([str(tmp_path / "d.parquet")], 500,
                                                  progress=True, console=console))
    assert rows == 4_000
    inside = {p for p in _percents(out.getvalue()) if 0 < p < 100}
    assert len(inside) >= 2, out.getvalue()
    assert "replaying" in out.getvalue()


def _baseline(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "d.parquet"
    _write(data, _table(3_000))
    prof = tmp_path / "b.json"
    assert main(["baseline", "build", str(data), "-o", str(prof), "--no-multivariate",
                 "--quiet"]) == 0
    return prof, data


def test_forced_bar_never_enters_a_json_stdout(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    prof, data = _baseline(tmp_path)
    capsys.readouterr()
    assert main(["analyze", "--baseline", str(prof), str(data), "--window-size", "1000",
                 "--format", "json", "--progress"]) == 0
    doc = json.loads(capsys.readouterr().out)  # nothing but the report on stdout
    assert len(doc["windows"]) == 3


def test_quiet_and_no_progress_turn_it_off(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    prof, data = _baseline(tmp_path)
    assert capsys.readouterr().err == ""  # --quiet: not even the "wrote" line
    monkeypatch.setattr(progress_mod, "_isatty", lambda stream: True)
    assert progress_mod.wanted(None) is True
    assert progress_mod.wanted(None, stdout_busy=True) is False  # JSON streaming to a terminal
    assert progress_mod.wanted(True, stdout_busy=True) is True
    assert progress_mod.wanted(False) is False
    assert progress_mod.wanted(True, quiet=True) is False
    out = tmp_path / "r.json"
    assert main(["analyze", "--baseline", str(prof), str(data), "-o", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert len(json.loads(out.read_text())["windows"]) == 3


def test_discovered_files_keep_their_weights(tmp_path: Path) -> None:
    _write(tmp_path / "a.csv", _table(10))
    files = discover([str(tmp_path)])
    console, _ = _console()
    with progress_mod.ReadProgress(files, console=console) as bar:
        assert bar.weights == [Path(files[0].path).stat().st_size]
