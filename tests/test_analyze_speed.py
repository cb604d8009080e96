"""The analyze speed-ups change no answer: features on the thread pool equal the serial loop,
skipping the cumulative counters changes no window, an analysis past the exact KS size
imports no scipy, batches read ahead and shared category codes change no window, and the
orjson profile reader gives the profile json gives."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import driftline.analyze.offline as offline
import driftline.engine.window_stats as window_stats
import driftline.io.readers as readers
from driftline.analyze.offline import analyze, layout_for_schema, to_record_batch
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.snapshot import WindowReport
from driftline.engine.window_stats import WindowColumns
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _table(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {
        "a": rng.normal(shift, 1, n), "b": rng.lognormal(0, 0.5, n),
        "k": rng.integers(0, 7, n).astype(np.float64),  # ties with the reference
        "t": rng.standard_t(3, n), "u": rng.uniform(0, 1, n),
    }
    a = np.asarray(cols["a"])
    a[rng.uniform(size=n) < 0.05] = np.nan
    levels = np.array(["x", "y", "z", "w"], dtype=object)
    cols["c"] = pa.array(levels[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])].tolist())
    cols["d"] = pa.array([None if i % 17 == 0 else f"v{i % 5}" for i in range(n)])
    return pa.table(cols)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaselineProfile, Path]:
    d = tmp_path_factory.mktemp("speed")
    pq.write_table(_table(12_000, 1), d / "ref.parquet")  # > MAX_EXACT_N
    pq.write_table(_table(9000, 2, shift=0.3), d / "cur.parquet")
    prof = build_profile(discover([str(d / "ref.parquet")]), BuildOptions(), progress=False)
    return prof, d / "cur.parquet"


def _docs(prof: BaselineProfile, path: Path) -> list[dict[str, object]]:
    return [w.to_dict() for w in analyze(prof, discover([str(path)]), window_size=2500)]


def test_thread_pool_equals_the_serial_loop(data: tuple[BaselineProfile, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    prof, path = data
    pooled = _docs(prof, path)
    monkeypatch.setattr(window_stats, "PARALLEL_RECORDS", 10**12)
    serial = _docs(prof, path)
    assert len(pooled) == 4 and pooled == serial
    assert any(w["drifted"] for w in serial)


def test_no_cumulative_counters_change_no_window(data: tuple[BaselineProfile, Path]) -> None:
    prof, path = data
    table = pq.read_table(path)
    lay = layout_for_schema(prof, table.schema, str(path), None)
    got = {}
    for cumulative in (True, False):
        mon = Monitor(prof, window=WindowPolicy(records=2500, max_age=None), clock=None,
                      streams=False, cumulative=cumulative)
        reports = []
        for b in table.to_batches(max_chunksize=1000):
            reports += mon.observe(to_record_batch(prof, b, lay))
        got[cumulative] = ([r.to_dict() for r in reports], mon.snapshot())
    assert got[True][0] == got[False][0]
    on, off = got[True][1], got[False][1]
    assert sum(h.count for h in on.quantile_rank.values()) > 0
    assert sum(h.count for h in off.quantile_rank.values()) == 0


def test_analysis_past_the_exact_size_imports_no_scipy(
        data: tuple[BaselineProfile, Path], tmp_path: Path) -> None:
    prof, path = data
    prof.save(tmp_path / "p.json")
    code = ("import sys\nfrom driftline.analyze.offline import analyze\n"
            "from driftline.io.readers import discover, to_strings\n"
            "from driftline.profile.format import BaselineProfile\n"
            "import pyarrow as pa\n"
            "p = BaselineProfile.load(sys.argv[1])\n"
            "ws = list(analyze(p, discover([sys.argv[2]]), window_size=2500))\n"
            "assert ws[0].features['a'].ks_pvalue is not None\n"
            "print(sorted(m for m in ('scipy.stats', 'scipy.special') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.json"), str(path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_profile_reader_orjson_equals_json(data: tuple[BaselineProfile, Path],
                                           tmp_path: Path) -> None:
    prof, _ = data
    prof.save(tmp_path / "p.json")
    loaded = BaselineProfile.load(tmp_path / "p.json")
    assert loaded.to_dict() == prof.to_dict() and loaded.id == prof.id
    # what orjson refuses (a NaN literal from a hand edit) still reads through json
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["features"]["a"]["mean"] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(doc))
    assert np.isnan(BaselineProfile.load(tmp_path / "nan.json").features["a"].mean)  # type: ignore[union-attr]


def test_batches_bounded_in_bytes_give_the_same_report(
        data: tuple[BaselineProfile, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide file's batches hold fewer rows (bounded memory): the windows, which straddle
    row groups and batches, give a byte-identical JSON report."""
    prof, path = data
    many = tmp_path / "groups.parquet"
    # row groups of 4000: windows of 2500 straddle them
    pq.write_table(pq.read_table(path), many, row_group_size=4000)
    whole = json.dumps(_docs(prof, many))
    sizes: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *a: object, **kw: object) -> object:
        sizes.append(int(kw["batch_size"]))  # type: ignore[call-overload]
        return real(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(readers, "BATCH_BYTES", 1)  # the fewest rows per batch
    monkeypatch.setattr(readers, "MIN_BATCH_ROWS", 700)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    assert json.dumps(_docs(prof, many)) == whole
    assert sizes == [700] * 3  # the bound did apply, per row group


def test_parquet_schema_comes_from_the_footer(data: tuple[BaselineProfile, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = data

    def no_read(*_: object, **__: object) -> None:
        raise AssertionError("read_schema decoded data")

    monkeypatch.setattr(readers, "iter_batches", no_read)
    assert readers.read_schema(discover([str(path)])[0]) == pq.read_schema(path)


def test_batches_read_ahead_give_the_same_report(data: tuple[BaselineProfile, Path],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    prof, whole = data
    path = tmp_path / "groups.parquet"  # many batches, windows straddle them
    pq.write_table(pq.read_table(whole), path, row_group_size=1000)
    seen: list[int] = []
    real = offline.prefetched

    def spy(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in real(batches):
            seen.append(b.num_rows)
            yield b

    monkeypatch.setattr(offline, "prefetched", spy)
    ahead = json.dumps(_docs(prof, path))
    assert sum(seen) == 9000 and len(seen) == 9
    monkeypatch.setattr(offline, "PREFETCH_BYTES", 0)  # read in turn
    seen.clear()
    assert json.dumps(_docs(prof, path)) == ahead
    assert not seen


def test_read_ahead_raises_where_the_reader_fails_and_closes_early() -> None:
    closed: list[bool] = []

    def source() -> Iterator[int]:
        try:
            yield 1
            yield 2
            raise ValueError("bad row group")
        finally:
            closed.append(True)

    got: list[int] = []
    with pytest.raises(ValueError, match="bad row group"):
        for b in offline.prefetched(source()):  # type: ignore[arg-type]
            got.append(b)  # type: ignore[arg-type]
    assert got == [1, 2] and closed == [True]
    closed.clear()
    it = offline.prefetched(iter_forever())  # type: ignore[arg-type]
    assert next(it) == 0
    it.close()  # a consumer stopping early (a closed pipe) ends the reader too
    assert not _FOREVER_RUNNING


_FOREVER_RUNNING: list[bool] = []


def iter_forever() -> Iterator[int]:
    _FOREVER_RUNNING.append(True)
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        _FOREVER_RUNNING.clear()


def test_multivariate_reuses_the_window_category_codes(data: tuple[BaselineProfile, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline.profile.multivariate as pmv
    from driftline.engine.multivariate import MultivariateRef

    prof, path = data
    assert prof.multivariate is not None and {"c", "d"} <= set(prof.multivariate.features)
    closed: list[WindowColumns] = []
    real = offline.Monitor._close

    def close(self: Monitor, now: float | None) -> WindowReport:
        report = real(self, now)
        closed.append(self._last_cols)  # type: ignore[attr-defined]
        return report

    real_columns = offline.Monitor._columns

    def columns(self: Monitor, now: float | None) -> WindowColumns:
        cols = real_columns(self, now)
        self._last_cols = cols  # type: ignore[attr-defined]
        return cols

    hashed: list[str] = []
    real_codes = pmv.category_codes

    def codes(values: np.ndarray, ref: window_stats.CategoricalRef) -> np.ndarray:
        hashed.append("x")
        return real_codes(values, ref)

    monkeypatch.setattr(offline.Monitor, "_close", close)
    monkeypatch.setattr(offline.Monitor, "_columns", columns)
    monkeypatch.setattr(pmv, "category_codes", codes)
    shared = _docs(prof, path)
    assert len(closed) == 4 and not hashed  # the encoding hashed no value again
    ref = MultivariateRef(prof)
    for cols, doc in zip(closed, shared, strict=True):
        assert set(cols.codes) == {"c", "d"}
        alone = ref.window(cols.features)  # codes computed afresh: the same value, to the bit
        assert hashed and alone.reconstruction_error == doc["multivariate"][  # type: ignore[index]
            "reconstruction_error"]
        hashed.clear()
