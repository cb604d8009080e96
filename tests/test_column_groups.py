"""Wide Parquet row groups read a group of columns at a time (driftline.io.column_groups): the
same batches as the streamed read, only a group's columns asked of each read, and the same
report and baseline whichever way the file was read."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftline.io.column_groups as column_groups
import driftline.io.readers as readers
from driftline.analyze.offline import analyze
from driftline.cli import main
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.io.readers import discover, iter_batches
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _table(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    """12 numeric features (nulls in some, ties in one), 3 categorical ones (one with nulls), a
    label, a prediction and its probability, and a timestamp."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for j in range(12):
        x = rng.normal(shift * (j % 3), 1 + j % 4, n)
        if j % 5 == 0:
            x[rng.uniform(size=n) < 0.07] = np.nan
        cols[f"n{j:02d}"] = pa.array(x, from_pandas=True)
    cols["k"] = rng.integers(0, 7, n).astype(np.float64)
    levels = np.array(["x", "y", "z", "w"], dtype=object)
    for j in range(3):
        cols[f"c{j}"] = pa.array(levels[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])].tolist())
    cols["d"] = pa.array([None if i % 17 == 0 else f"v{(i * 7 + seed) % 5}" for i in range(n)])
    p = 1 / (1 + np.exp(-np.asarray(cols["n01"])))
    cols["proba"] = p
    cols["pred"] = pa.array(np.where(p > 0.5, "yes", "no").tolist())
    cols["label"] = pa.array(np.where(rng.uniform(size=n) < p, "yes", "no").tolist())
    # irregular times, 3 per second on average: 1-minute windows cut inside row groups
    cols["ts"] = pa.array(1_700_000_000 + np.cumsum(rng.exponential(1 / 3, n)))
    return pa.table(cols)


OPTIONS = BuildOptions(prediction="pred", proba_binary="proba", target="label", timestamp="ts")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("wide")
    pq.write_table(_table(6000, 1), d / "ref.parquet", row_group_size=2500)
    # row groups of 1700 rows: windows of 1000 and of one minute straddle them
    pq.write_table(_table(5100, 2, shift=0.4), d / "cur.parquet", row_group_size=1700)
    return d / "ref.parquet", d / "cur.parquet"


def _wide(monkeypatch: pytest.MonkeyPatch, wide: bool) -> None:
    """Every row group read in column groups of two or three columns (a column chunk here is
    13-16 kB) or none; batches of 300 rows (about 57 kB) either way, in slabs of two batches:
    1700-row row groups in slabs of 600, 600 and 500 rows."""
    monkeypatch.setattr(column_groups, "WIDE_BYTES", 0 if wide else 1 << 62)
    monkeypatch.setattr(column_groups, "GROUP_BYTES", 40_000)
    monkeypatch.setattr(column_groups, "SLAB_BYTES", 150_000)
    monkeypatch.setattr(readers, "BATCH_BYTES", 1)
    monkeypatch.setattr(readers, "MIN_BATCH_ROWS", 300)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    asked: list[list[str]] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *a: object, **kw: object) -> object:
        cols = kw["columns"]  # None: every column
        asked.append(list(self.schema_arrow.names) if cols is None
                     else list(cols))  # type: ignore[call-overload]
        return real(self, *a, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return asked


def _batches(path: Path, columns: list[str] | None = None) -> list[pa.RecordBatch]:
    return list(iter_batches(discover([str(path)])[0], columns))


def test_wide_row_groups_give_the_streamed_batches_and_ask_a_group_at_a_time(
        files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, cur = files
    names = pq.read_schema(cur).names
    cols = [names[i] for i in (3, 0, 19, 15, 7, 1, 20, 12)]  # any order, a subset
    for columns in (None, cols):
        _wide(monkeypatch, False)
        asked = _spy(monkeypatch)
        streamed = _batches(cur, columns)
        assert len(asked) == 3 and all(a == (columns or names) for a in asked)  # per row group
        _wide(monkeypatch, True)
        asked = _spy(monkeypatch)
        grouped = _batches(cur, columns)
        assert [b.num_rows for b in grouped] == [b.num_rows for b in streamed]
        for a, b in zip(grouped, streamed, strict=True):
            assert a.schema == b.schema and a.equals(b)
        # never every column in one read: each read asks for one column group, a run of the
        # columns within the group budget (or a single column)
        want = columns or names
        sizes = column_groups.chunk_bytes(pq.ParquetFile(cur).metadata.row_group(0), want)
        assert max(len(a) for a in asked) < len(want)
        for a in asked:
            at = want.index(a[0])
            assert want[at:at + len(a)] == a
            assert len(a) == 1 or sum(sizes[c] for c in a) <= 40_000
        assert {c for a in asked for c in a} == set(want)


def test_the_wide_path_is_taken_by_the_row_group_bytes(files: tuple[Path, Path]) -> None:
    _, cur = files
    meta = pq.ParquetFile(cur).metadata.row_group(0)
    sizes = column_groups.chunk_bytes(meta, None)
    assert set(sizes) == set(pq.read_schema(cur).names)
    # at least 8 bytes a value: a dictionary-encoded column decodes to its values
    assert min(sizes.values()) >= 8 * meta.num_rows
    assert not column_groups.is_wide(sizes)  # 23 columns of 1700 rows: streamed
    many = {f"f{i}": 1 << 20 for i in range(400)}  # 400 columns of 1 MB: wide
    assert column_groups.is_wide(many)
    assert not column_groups.is_wide({"one": 1 << 30})  # one column: nothing to group
    groups = column_groups.column_groups(list(many), many)
    assert [len(g) for g in groups] == [16] * 25
    assert column_groups.column_groups(["a", "b", "c"], {"a": 1, "b": 1 << 30, "c": 1}) == [
        ["a"], ["b"], ["c"]]


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 120), group_rows=st.integers(1, 50), batch=st.integers(1, 40),
       slab=st.integers(1, 5), group_bytes=st.integers(1, 3000), seed=st.integers(0, 3))
def test_column_groups_keep_the_rows_in_order(rows: int, group_rows: int, batch: int,
                                              slab: int, group_bytes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = pa.table({f"x{i}": rng.normal(size=rows) for i in range(5)}
                     | {"s": pa.array([None if i % 3 else f"s{i % 4}" for i in range(rows)])})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=group_rows)
    pf = pq.ParquetFile(pa.BufferReader(sink.getvalue()))
    names = ["s", "x3", "x0", "x4"]
    out = []
    for g in range(pf.metadata.num_row_groups):
        sizes = column_groups.chunk_bytes(pf.metadata.row_group(g), names)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(column_groups, "SLAB_BYTES", slab * batch * sum(sizes.values())
                       // max(1, pf.metadata.row_group(g).num_rows))
            mp.setattr(column_groups, "GROUP_BYTES", group_bytes)
            batches = list(column_groups.row_group_batches(pf, g, names, sizes, batch))
        n = pf.metadata.row_group(g).num_rows
        assert [b.num_rows for b in batches] == [min(batch, n - i) for i in range(0, n, batch)]
        out += batches
    assert pa.Table.from_batches(out).equals(table.select(names))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10**7), rows=st.integers(1, 70_000), row_bytes=st.integers(8, 40_000))
def test_slabs_are_whole_batches_and_never_more_than_max_slabs(n: int, rows: int,
                                                               row_bytes: int) -> None:
    """A row group is decoded at most (MAX_SLABS + 1) / 2 times whatever its size: at most
    MAX_SLABS slabs, each a whole number of batches, about SLAB_BYTES while that allows."""
    slab = column_groups.slab_rows(n, rows, n * row_bytes)
    assert slab % rows == 0 and slab >= rows
    assert -(-n // slab) <= column_groups.MAX_SLABS
    # one batch, or within SLAB_BYTES, or the fewest batches a slab that keeps to MAX_SLABS
    k, batches = slab // rows, -(-n // rows)
    assert (k == 1 or slab * row_bytes <= column_groups.SLAB_BYTES
            or -(-batches // (k - 1)) > column_groups.MAX_SLABS)


def test_a_huge_row_group_is_read_in_at_most_max_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each column group is read once per slab: a row group of 40 batches with slabs of one
    batch by SLAB_BYTES still takes only MAX_SLABS reads per column group."""
    rng = np.random.default_rng(5)
    table = pa.table({f"x{i}": rng.normal(size=4000) for i in range(4)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=4000)
    pf = pq.ParquetFile(pa.BufferReader(sink.getvalue()))
    names = table.column_names
    sizes = column_groups.chunk_bytes(pf.metadata.row_group(0), names)
    monkeypatch.setattr(column_groups, "SLAB_BYTES", 1)
    monkeypatch.setattr(column_groups, "GROUP_BYTES", 1)  # a group per column
    asked = _spy(monkeypatch)
    batches = list(column_groups.row_group_batches(pf, 0, names, sizes, 100))
    assert [b.num_rows for b in batches] == [100] * 40
    assert pa.Table.from_batches(batches).equals(table)
    assert len(asked) == column_groups.MAX_SLABS * len(names)


def _report(profile: BaselineProfile, cur: Path, **kw: object) -> str:
    return json.dumps([w.to_dict() for w in analyze(profile, discover([str(cur)]),
                                                    **kw)])  # type: ignore[arg-type]


def test_report_and_baseline_read_in_column_groups_equal_the_streamed_ones(
        files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ref, cur = files
    out = {}
    for wide in (False, True):
        _wide(monkeypatch, wide)
        asked = _spy(monkeypatch)
        profile = build_profile(discover([str(ref)]), OPTIONS, progress=False)
        assert profile.multivariate is not None and profile.output is not None
        out[wide] = (profile.to_dict() | {"created_at": None}, profile.id,
                     _report(profile, cur, window_size=1000),
                     _report(profile, cur, window_size=10_000, window_duration=60.0),
                     _report(profile, cur, window_size=700, domain_classifier=True))
        assert (max(len(a) for a in asked) < 20) == wide
    assert out[True] == out[False]
    windows = json.loads(out[True][3])
    assert len(windows) > 20 and any(w["performance"]["accuracy"] is not None for w in windows)
    assert any(w["features"]["n00"]["n_missing"] for w in windows)


def test_the_analyze_monitor_builds_no_quantile_rank_tables(tmp_path: Path) -> None:
    """Without the cumulative counters (``analyze``'s monitor) the reference rank tables they
    use are not built: for 8 features of 20k distinct summary values they hold megabytes."""
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"x{i}": rng.normal(size=20_000) for i in range(8)}),
                   tmp_path / "ref.parquet")
    profile = build_profile(discover([str(tmp_path / "ref.parquet")]),
                            BuildOptions(multivariate=False), progress=False)
    window = WindowPolicy(records=1000, max_age=None)
    held = {}
    for cumulative in (True, False):
        tracemalloc.start()
        monitor = Monitor(profile, window=window, clock=None, cumulative=cumulative)
        held[cumulative] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del monitor
    assert held[True] > held[False] + 8 * 20_000 * 8


def test_baseline_show_prints_the_file_text_without_a_float_per_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({f"x{i}": rng.normal(size=20_000) for i in range(8)}
                            | {"c": pa.array(["a", "b"] * 10_000)}), tmp_path / "ref.parquet")
    main(["baseline", "build", str(tmp_path / "ref.parquet"), "-o", str(tmp_path / "b.json"),
          "--quiet"])
    profile = BaselineProfile.load(tmp_path / "b.json")
    capsys.readouterr()
    assert main(["baseline", "show", str(tmp_path / "b.json"), "--format", "json"]) == 0
    shown = capsys.readouterr().out
    assert shown == (tmp_path / "b.json").read_text()
    assert shown == json.dumps(profile.to_dict(), indent=1) + "\n"
    # the text is made from the summary arrays: 160k values, no Python float each
    tracemalloc.start()
    for _ in profile.json_chunks():
        pass
    chunked = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    json.dumps(profile.to_dict(), indent=1)
    plain = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert chunked * 4 < plain, (chunked, plain)
