"""Windows computed in several processes (``driftline analyze --processes``) give the report of
one process: the same windows, numbered alike, the carried accuracy joined across the parts,
a bad value in a later part raised after the windows before it; reading from a row equals
reading everything and dropping the rows before it; string columns read as Arrow dictionaries
give the strings read plainly."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftline.analyze.offline as offline
import driftline.analyze.worker as worker
from driftline.analyze.offline import Task, analyze, layout_for_schema, split_rows
from driftline.engine.monitor import DriftPolicy
from driftline.errors import InputError
from driftline.io.readers import DataFile, discover, iter_batches, parquet_rows, to_strings
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _table(n: int, seed: int, shift: float = 0.0, labels: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, 1, n)
    a[rng.uniform(size=n) < 0.05] = np.nan
    p = 1 / (1 + np.exp(-(a + rng.normal(0, 1, n))))
    p = np.where(np.isnan(p), 0.5, p)
    y = np.where(rng.uniform(size=n) < p, "yes", "no").astype(object)
    levels = np.array(["x", "y", "z", "w"], dtype=object)
    cols: dict[str, object] = {
        "a": a, "b": rng.lognormal(shift, 0.5, n), "k": rng.integers(0, 7, n).astype(float),
        "c": pa.array(levels[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])].tolist()),
        "p": p, "pred": pa.array(np.where(p >= 0.5, "yes", "no").tolist()),
        "y": pa.array([v if labels else None for v in y.tolist()], pa.string()),
    }
    return pa.table(cols)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaselineProfile, list[Path]]:
    d = tmp_path_factory.mktemp("procs")
    pq.write_table(_table(6000, 1), d / "ref.parquet")
    prof = build_profile(discover([str(d / "ref.parquet")]),
                         BuildOptions(prediction="pred", proba_binary="p", target="y"),
                         progress=False)
    # three files, row groups of 700 rows: windows straddle row groups and files; the middle
    # file has no labels, so its windows carry the accuracy of the last labelled one
    files = []
    for i, (n, shift, labels) in enumerate([(2300, 0.0, True), (2600, 0.4, False),
                                            (1900, 0.8, True)]):
        files.append(d / f"cur{i}.parquet")
        pq.write_table(_table(n, 10 + i, shift, labels), files[-1], row_group_size=700)
    return prof, files


def _docs(prof: BaselineProfile, files: list[Path], size: int,
          processes: int | None) -> list[dict[str, Any]]:
    return [w.to_dict() for w in analyze(prof, discover([str(f) for f in files]),
                                         window_size=size, processes=processes)]


@pytest.mark.parametrize(("size", "processes"), [(600, 2), (1000, 3)])
def test_windows_in_several_processes_equal_one_process(
        data: tuple[BaselineProfile, list[Path]], size: int, processes: int) -> None:
    prof, files = data
    one = _docs(prof, files, size, 1)
    many = _docs(prof, files, size, processes)
    assert json.dumps(many) == json.dumps(one)
    assert [w["index"] for w in many] == list(range(len(one)))
    # the windows of the unlabelled file report the accuracy carried from the first file
    carried = [w for w in one if not w["performance"]["labels"]]
    assert carried and all(w["performance"]["accuracy"] is not None for w in carried)
    assert any(w["drifted"] for w in one)


def test_parts_are_whole_windows(data: tuple[BaselineProfile, list[Path]]) -> None:
    prof, files = data
    dfs = discover([str(f) for f in files])
    task = Task(prof, dfs, [layout_for_schema(prof, pq.read_schema(f), str(f), None)
                            for f in files], 600, DriftPolicy(), False, 200)
    for n in (2, 3, 5):
        parts = split_rows(task, n)
        assert parts is not None and len(parts) == n
        assert parts[0][0] == 0 and parts[-1][1] is None
        for (_, hi), (lo, _) in itertools.pairwise(parts):
            assert hi == lo and lo % 600 == 0
    assert split_rows(task, 1) is None
    assert split_rows(task, None) is None  # 6,800 rows: too few to pay for a second process
    assert split_rows(Task(prof, dfs, task.layouts, 10**6, DriftPolicy(), False, 200), 2) is None
    with pytest.raises(InputError, match="--processes"):
        split_rows(task, 0)


def test_only_parquet_is_split(tmp_path: Path, data: tuple[BaselineProfile, list[Path]],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    prof, files = data
    csv = tmp_path / "cur.csv"
    pcsv.write_csv(pq.read_table(files[0]), csv)
    monkeypatch.setattr(offline, "SPLIT_VALUES", 1)
    lay = layout_for_schema(prof, pq.read_schema(files[0]), str(csv), None)
    task = Task(prof, [DataFile(str(csv), "csv")], [lay], 600, DriftPolicy(), False, 200)
    assert split_rows(task, None) is None and split_rows(task, 2) is None
    task = Task(prof, discover([str(files[0])]), [lay], 600, DriftPolicy(), False, 200)
    monkeypatch.setattr(offline, "cpus", lambda: (2, 1.5))
    assert split_rows(task, None) is not None
    monkeypatch.setattr(offline, "cpus", lambda: (2, 0.6))  # half a core idle: two
    assert split_rows(task, None) is not None
    monkeypatch.setattr(offline, "cpus", lambda: (2, 0.4))  # the cores busy with other work
    assert split_rows(task, None) is None and split_rows(task, 2) is not None
    monkeypatch.setattr(offline, "cpus", lambda: (2, 1.5))
    monkeypatch.setattr(offline, "SPLIT_COLUMNS", 6)  # a wider file stays in one process
    assert split_rows(task, None) is None
    monkeypatch.setattr(offline, "cpus", lambda: (1, 1.0))
    assert split_rows(task, None) is None and split_rows(task, 2) is not None


def test_a_bad_value_in_a_later_part_is_raised_after_the_windows_before_it(
        tmp_path: Path, data: tuple[BaselineProfile, list[Path]]) -> None:
    prof, _ = data
    t = _table(3000, 5)
    p = t.column("p").to_numpy().copy()
    p[2345] = 1.5
    bad = tmp_path / "bad.parquet"
    pq.write_table(t.set_column(t.schema.get_field_index("p"), "p", pa.array(p)), bad,
                   row_group_size=700)
    got = {}
    for n in (1, 2):
        seen: list[dict[str, object]] = []
        with pytest.raises(InputError) as err:
            for w in analyze(prof, discover([str(bad)]), window_size=500, processes=n):
                seen.append(w.to_dict())
        got[n] = (seen, str(err.value))
    assert got[2] == got[1]
    assert len(got[1][0]) == 4 and str(bad) in got[1][1]
    assert "column 'p': probability 1.5 is outside [0, 1] (row 2345)" in got[1][1]


def test_stopping_early_stops_the_other_process(data: tuple[BaselineProfile, list[Path]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    prof, files = data
    made: list[worker.Child] = []

    class Spy(worker.Child):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, **k)  # type: ignore[arg-type]
            made.append(self)

    monkeypatch.setattr(worker, "Child", Spy)
    stream = analyze(prof, discover([str(f) for f in files]), window_size=600, processes=2)
    first = next(stream)
    assert first.index == 0 and len(made) == 1
    proc, path = made[0]._proc, made[0]._path
    assert proc is not None and path.exists()
    stream.close()  # type: ignore[attr-defined]  # a generator
    assert proc.returncode is not None and made[0]._proc is None and not path.exists()


def test_each_process_computes_its_windows_on_one_thread(
        data: tuple[BaselineProfile, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Split over processes, each has a core: no window of this one, nor of the child's
    part (run here by worker.run), goes to the feature pool; one process still uses it."""
    import driftline.engine.window_stats as ws

    prof, files = data
    asked: list[int] = []
    real = ws._pool
    monkeypatch.setattr(ws, "_pool", lambda: asked.append(1) or real())
    one = _docs(prof, files, 2000, 1)  # windows of 2000 records: the pool's size
    assert asked
    asked.clear()
    assert _docs(prof, files, 2000, 2) == one
    dfs = discover([str(f) for f in files])
    task = Task(prof, dfs, [layout_for_schema(prof, pq.read_schema(f), str(f), None)
                            for f in files], 2000, DriftPolicy(), False, 200)
    reports, error = worker.run(task, 2000, None, [parquet_rows(f) or 0 for f in dfs], 1)
    assert error is None and [r.to_dict() for r in reports] == one[1:]
    assert not asked and ws._NO_POOL == [0]


def test_the_child_reports_a_broken_task(tmp_path: Path) -> None:
    junk = tmp_path / "task.pickle"
    junk.write_bytes(b"not a pickle")
    out = subprocess.run([sys.executable, "-m", "driftline.analyze.worker", str(junk)],
                         capture_output=True, timeout=60)
    assert out.returncode != 0 and not out.stdout


@settings(max_examples=25, deadline=None)
@given(groups=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       first=st.integers(0, 250), batch=st.integers(1, 64), fmt=st.sampled_from(["parquet", "csv"]))
def test_reading_from_a_row_equals_dropping_the_rows_before_it(
        tmp_path_factory: pytest.TempPathFactory, groups: list[int], first: int, batch: int,
        fmt: str) -> None:
    n = sum(groups)
    table = pa.table({"x": np.arange(n, dtype=np.float64), "s": [f"v{i}" for i in range(n)]})
    path = tmp_path_factory.mktemp("rows") / f"t.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.concat_tables([table.slice(sum(groups[:i]), g)
                                         for i, g in enumerate(groups)]), path,
                       row_group_size=max(groups))
        assert parquet_rows(DataFile(str(path), fmt)) == n
    else:
        pcsv.write_csv(table, path)
        assert parquet_rows(DataFile(str(path), fmt)) is None
    shares: list[float] = []
    got = list(iter_batches(DataFile(str(path), fmt), ["x"], batch, first_row=first,
                            progress=shares.append))
    xs = np.concatenate([b.column(0).to_numpy() for b in got]) if got else np.empty(0)
    assert xs.tolist() == list(range(min(first, n), n))
    assert all(b.num_rows and b.num_rows <= batch for b in got)
    assert shares == sorted(shares) and shares[-1] == 1.0


def test_cli_processes_option_gives_the_same_report(
        tmp_path: Path, data: tuple[BaselineProfile, list[Path]]) -> None:
    prof, files = data
    base = tmp_path / "base.json"
    prof.save(base)
    out = {}
    for n in ("1", "2"):
        out[n] = tmp_path / f"out{n}.json"
        subprocess.run([sys.executable, "-m", "driftline", "analyze", *map(str, files),
                        "--baseline", str(base), "--window-size", "900", "--processes", n,
                        "--format", "json", "-o", str(out[n])], check=True, capture_output=True,
                       timeout=120)
    assert out["2"].read_bytes() == out["1"].read_bytes()
    assert len(json.loads(out["1"].read_text())["windows"]) == 8


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=1, max_size=300),
       group=st.integers(1, 120), large=st.booleans())
def test_string_columns_read_as_dictionaries_give_the_same_strings(
        tmp_path_factory: pytest.TempPathFactory, values: list[str | None], group: int,
        large: bool) -> None:
    t = pa.large_string() if large else pa.string()
    table = pa.table({"s": pa.array(values, t), "x": np.arange(len(values), dtype=np.float64)})
    path = tmp_path_factory.mktemp("dict") / "t.parquet"
    pq.write_table(table, path, row_group_size=group)
    file = DataFile(str(path), "parquet")
    plain = np.concatenate([to_strings(b.column(0)) for b in iter_batches(file, ["s"])])
    read = list(iter_batches(file, ["s", "x"], dictionary=["s", "x", "absent"]))
    assert all(pa.types.is_dictionary(b.schema.field("s").type) for b in read)
    assert all(b.schema.field("x").type == pa.float64() for b in read)  # not a string column
    got = np.concatenate([to_strings(b.column(0)) for b in read])
    assert got.tolist() == plain.tolist() == values
    # a dictionary holding a null and unused entries, with null indices
    arr = pa.DictionaryArray.from_arrays(pa.array([0, None, 2, 1, 0], pa.int32()),
                                         pa.array(["a", None, "c", "unused"], t))
    assert to_strings(arr).tolist() == to_strings(arr.cast(t)).tolist() == ["a", None, "c",
                                                                             None, "a"]
