"""Category codes carried by the batches of offline analysis (one lookup per dictionary label,
taken by each row's index) equal the per-value lookup a window close makes without them, and the
monitor uses them: the reports are the same with and without."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftline.analyze.offline as offline
from driftline.analyze.offline import analyze, categorical_refs, layout_for_schema, to_record_batch
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.engine.window_stats import ReferenceArrays, WindowColumns, category_codes
from driftline.io.readers import discover, string_table, to_strings
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile, CategoricalFeature, Columns

CATS = ("a", "b", "1", "true")


def _profile() -> BaselineProfile:
    return BaselineProfile("m", "1", "", 10, {"c": CategoricalFeature(
        "c", CATS, (0.4, 0.3, 0.2, 0.1, 0.0), 10, 0.0)}, Columns(), None)


def _column(values: list[str | None], kind: str) -> pa.Array:
    if kind == "dictionary":
        return pa.array(values, pa.string()).dictionary_encode()
    if kind == "integers":  # categories spelled as integers ("1"), unseen ones too
        return pa.array([None if v is None else len(v) for v in values], pa.int64())
    if kind == "booleans":  # spelled value by value: no table, so no codes
        return pa.array([None if v is None else v == "a" for v in values], pa.bool_())
    return pa.array(values, pa.large_string() if kind == "large" else pa.string())


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.sampled_from([*CATS, "zz", "", "A"])),
                       min_size=0, max_size=200),
       kind=st.sampled_from(["string", "large", "dictionary", "integers", "booleans"]),
       start=st.integers(0, 50))
def test_batch_codes_equal_the_window_lookup(values: list[str | None], kind: str,
                                             start: int) -> None:
    prof = _profile()
    col = _column(values, kind)
    if kind == "dictionary":  # a dictionary array that does not start at its first index
        col = col.slice(min(start, len(col)))
    batch = pa.record_batch({"c": col})
    layout = layout_for_schema(prof, batch.schema, "t.parquet", None)
    refs = categorical_refs(prof)
    got = to_record_batch(prof, batch, layout, refs=refs)
    plain = to_record_batch(prof, batch, layout)
    assert got.features["c"].tolist() == plain.features["c"].tolist() == to_strings(col).tolist()
    assert plain.codes == {}
    if kind == "booleans":
        assert string_table(col) is None and got.codes == {}
        return
    assert got.codes["c"].dtype == np.int64
    assert got.codes["c"].tolist() == category_codes(got.features["c"], refs["c"]).tolist()


def test_given_codes_are_the_ones_counted() -> None:
    """The window counts the codes it is given (not a second lookup of the strings)."""
    prof = _profile()
    ref = ReferenceArrays(prof)
    strings = np.array(["a"] * 6, dtype=object)
    given_codes = np.array([1, 1, 2, 4, -1, 0])  # deliberately not the strings' codes
    cols = WindowColumns(6, {"c": strings}, None, None, None, None, None, {"c": given_codes})
    from driftline.engine.monitor import DriftPolicy
    from driftline.engine.window_stats import compute_window
    report = compute_window(ref, cols, index=0, policy=DriftPolicy())
    assert report.features["c"].window_counts == (1, 2, 1, 0, 1)
    assert report.features["c"].n_missing == 1


def test_monitor_chunks_with_and_without_codes() -> None:
    """Windows cut across batches, some carrying codes and some not (then looked up), and
    batches cut by ``select``: the same reports as without any codes."""
    prof = _profile()
    rng = np.random.default_rng(3)
    refs = categorical_refs(prof)
    batches = []
    for i, n in enumerate([7, 5, 11, 3, 9]):
        v = rng.choice(np.array([*CATS, "zz", None], dtype=object), n)
        codes = {"c": category_codes(v, refs["c"])} if i != 1 else {}
        batches.append(RecordBatch({"c": v}, codes=codes))
    batches.append(batches[0].select(np.array([True, False] * 3 + [True])))

    def reports(use_codes: bool) -> list[dict[str, object]]:
        mon = Monitor(prof, window=WindowPolicy(records=6, max_age=None, min_records=1),
                      clock=None, streams=False, cumulative=False)
        out = []
        for b in batches:
            out += [r.to_dict() for r in mon.observe(
                b if use_codes else RecordBatch(b.features, n=len(b)))]
        return out

    with_codes = reports(True)
    assert len(with_codes) == 6
    assert with_codes == reports(False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaselineProfile, list[Path]]:
    d = tmp_path_factory.mktemp("codes")
    rng = np.random.default_rng(5)
    levels = np.array(["x", "y", "z", "w", "v"], dtype=object)

    def table(n: int, p: list[float]) -> pa.Table:
        c = levels[rng.choice(5, n, p=p)]
        c[rng.uniform(size=n) < 0.05] = None
        return pa.table({"a": rng.normal(size=n), "c": pa.array(c.tolist(), pa.string()),
                         "d": pa.array(levels[rng.choice(3, n)].tolist(), pa.string())})

    pq.write_table(table(3000, [0.5, 0.3, 0.2, 0.0, 0.0]), d / "ref.parquet")
    prof = build_profile(discover([str(d / "ref.parquet")]), BuildOptions(), progress=False)
    out = []
    for i in range(2):  # unseen categories (w, v) in the data; row groups windows straddle
        out.append(d / f"cur{i}.parquet")
        pq.write_table(table(2100, [0.3, 0.3, 0.2, 0.1, 0.1]), out[-1], row_group_size=700)
    return prof, out


def test_analyze_reports_equal_without_batch_codes(
        files: tuple[BaselineProfile, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    prof, paths = files
    assert prof.multivariate is not None  # its encoder takes the window's codes too

    def run() -> list[dict[str, object]]:
        return [w.to_dict() for w in analyze(prof, discover([str(p) for p in paths]),
                                             window_size=1000, processes=1)]

    with_codes = run()
    monkeypatch.setattr(offline, "categorical_refs", lambda profile: {})
    assert run() == with_codes
    assert len(with_codes) == 5


def test_analysis_of_numbers_and_dictionary_strings_imports_no_arrow_compute(
        files: tuple[BaselineProfile, list[Path]], tmp_path: Path) -> None:
    """Float columns and categorical strings read as Parquet dictionaries need no Arrow
    compute kernel, so ``pyarrow.compute`` (≈ 0.1 s of CPU per process) is not imported."""
    import subprocess
    import sys

    prof, paths = files
    prof.save(tmp_path / "p.json")
    code = ("import sys\nfrom driftline.cli import main\n"
            "try:\n    main(['analyze', *sys.argv[2:], '--baseline', sys.argv[1], '-q',"
            " '--window-size', '1000', '--format', 'json', '-o', sys.argv[1] + '.out'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('pyarrow.compute' in sys.modules, 'pyarrow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.json"),
                          *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "True"]
