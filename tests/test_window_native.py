"""The compiled window kernel (``native/windowcore.c``) against the numpy kernels it replaces.

Bin counts, KS statistic and Wasserstein-1 must be the numpy path's floats bit for bit (the sign
of zero included, compared by ``repr``): one feature at a time (``_numeric_stats``) and a stack
of features (``stacked_arrays``), over ties, window values on reference values, windows of one
value, references of one value, every window value below or above the reference, extremes of
±1e300 beside tiny values, signed zeros, and edges of any length. Also: numpy's pairwise sum as
the kernel mirrors it, errors instead of crashes for buffers it does not take, the fallbacks,
and whole window closes of the benchmark's 25-feature model with and without the kernel.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.engine import kernels, window_native
from driftline.engine.kernels import (
    ReferenceStack,
    _numeric_stats,
    _numeric_stats_numpy,
    _stacked_arrays_numpy,
    centred_sums,
    stacked_arrays,
)

ROOT = Path(__file__).resolve().parents[1]


needs_core = pytest.mark.skipif(not window_native.native_available(),
                                reason="the compiled window kernel is not built")


def _core() -> Any:
    mod = window_native._module()
    assert mod is not None
    return mod


@contextlib.contextmanager
def _counting() -> Iterator[list[int]]:
    """The kernel whatever ``DRIFTLINE_NATIVE`` says, its calls counted (a comparison with
    numpy proves nothing if it never ran); a context manager, not a fixture: hypothesis runs
    many examples per fixture."""
    stats = _core().stats
    seen: list[int] = []

    def counted(*args: Any) -> Any:
        seen.append(1)  # atomic: the 10k-record window calls it from its thread pool
        return stats(*args)

    saved = window_native.kernel
    window_native.kernel = lambda: counted  # type: ignore[assignment]
    try:
        yield seen
    finally:
        window_native.kernel = saved  # type: ignore[assignment]


def _same(a: float, b: float) -> bool:
    return repr(a) == repr(b)  # bit for bit but NaN payloads: the sign of zero counts


def _assert_same(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    counts, d, w = got
    assert counts.dtype == want[0].dtype and counts.shape == want[0].shape
    np.testing.assert_array_equal(counts, want[0])
    assert _same(d, want[1]) and _same(w, want[2]), (d, want[1], w, want[2])


# ---- numpy's pairwise sum -------------------------------------------------------------------

@needs_core
def test_pairwise_sum_is_numpys_for_every_length() -> None:
    # np.sum is 0.0 + pairwise(all): blocks of ≤ 128 in 8 partial sums, halves cut at multiples
    # of 8; rows of a 2-D sum over axis 1 (the stacked path's mid.sum(axis=1)) are each one
    # such sum. Values of 16 magnitudes make any other order round differently (checked).
    rng = np.random.default_rng(7)
    pw = _core()._pairwise_sum
    reordered = 0
    for m in range(1, 3001):
        x = rng.normal(size=m) * 10.0 ** rng.integers(-8, 8, size=m)
        assert _same(pw(x), float(np.sum(x))), m
        rows = rng.normal(size=(3, m)) * 10.0 ** rng.integers(-8, 8, size=(3, m))
        for r, total in enumerate(rows.sum(axis=1).tolist()):
            assert _same(pw(rows[r]), total), (m, r)
        reordered += float(np.cumsum(x)[-1]) != float(np.sum(x))
    assert reordered > 2500  # a running sum would fail the test above at most lengths


@needs_core
def test_pairwise_sum_starts_from_numpys_initial_zero() -> None:
    # numpy's add reduction starts from its identity 0.0: a sum of negative zeros is +0.0
    pw = _core()._pairwise_sum
    for m in range(0, 300):
        z = np.full(m, -0.0)
        assert _same(pw(z), float(np.sum(z))) and _same(pw(z), 0.0), m


# ---- one feature ----------------------------------------------------------------------------

_KINDS = ("normal", "integers", "from the reference", "extremes", "signed zeros", "constant",
          "below", "above")
_EXTREMES = np.array([1e300, -1e300, 1e-300, -1e-300, 5e-324, 0.0, -0.0, 1.0, -2.5])


def _values(rng: np.random.Generator, kind: str, size: int,
            ref: np.ndarray | None = None) -> np.ndarray:
    if kind == "integers":
        return rng.integers(-3, 4, size=size).astype(np.float64)
    if kind == "from the reference" and ref is not None and len(ref):
        x = rng.choice(ref, size=size)
        mix = rng.random(size) < 0.3
        x[mix] = rng.normal(size=int(mix.sum()))
        return x
    if kind == "extremes":
        x = rng.choice(_EXTREMES, size=size)
        mix = rng.random(size) < 0.5
        x[mix] = rng.normal(size=int(mix.sum())) * 10.0 ** rng.integers(-300, 300)
        return x
    if kind == "signed zeros":
        return rng.choice(np.array([-0.0, 0.0, 1.0, -1.0, 0.5]), size=size)
    if kind == "constant":
        return np.full(size, float(rng.integers(-2, 3)))
    if kind in ("below", "above") and ref is not None and len(ref):
        gap = abs(float(ref[-1] - ref[0])) + 1.0
        base = float(ref[0]) - gap if kind == "below" else float(ref[-1]) + gap
        return base + rng.random(size) * gap * (-1.0 if kind == "below" else 1.0)
    return rng.normal(rng.normal(0, 2), rng.uniform(0.1, 3), size=size)


def _edges(rng: np.random.Generator, ref: np.ndarray, how: str, e: int) -> np.ndarray:
    if how == "quantiles" and len(ref):
        return np.quantile(ref, np.linspace(0.1, 0.9, e)) if e else np.empty(0)
    if how == "deciles, merged" and len(ref):
        return np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
    return np.sort(rng.normal(size=e))


# small sizes, any size, and the pairwise sum's boundaries (w − 1 stretches are summed)
sizes_n = st.one_of(st.integers(1, 12), st.integers(1, 6000),
                    st.sampled_from([1000, 5000, 6000]))
sizes_w = st.one_of(st.integers(1, 12), st.integers(1, 3000),
                    st.sampled_from([8, 9, 128, 129, 130, 137, 257, 1000, 2000, 3000]))
edge_kinds = st.sampled_from(["quantiles", "deciles, merged", "random"])


@needs_core
@settings(max_examples=300, deadline=None)
@given(n=sizes_n, w=sizes_w, ref_kind=st.sampled_from(_KINDS[:6]),
       win_kind=st.sampled_from(_KINDS), edges=edge_kinds, e=st.integers(0, 12),
       with_sums=st.booleans(), seed=st.integers(0, 2**32 - 1))
@example(n=1, w=1, ref_kind="normal", win_kind="normal", edges="quantiles", e=3,
         with_sums=True, seed=0)
@example(n=1, w=5, ref_kind="constant", win_kind="constant", edges="quantiles", e=1,
         with_sums=False, seed=1)
@example(n=6000, w=3000, ref_kind="extremes", win_kind="extremes", edges="random", e=12,
         with_sums=True, seed=2)
@example(n=5000, w=1000, ref_kind="integers", win_kind="from the reference",
         edges="deciles, merged", e=9, with_sums=True, seed=3)
def test_one_feature_is_the_numpy_path_bit_for_bit(
        n: int, w: int, ref_kind: str, win_kind: str, edges: str, e: int, with_sums: bool,
        seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.sort(_values(rng, ref_kind, n))
    x = _values(rng, win_kind, w, ref)
    ed = _edges(rng, ref, edges, e)
    csum = centred_sums(ref) if with_sums else None
    with np.errstate(all="ignore"), _counting() as calls:  # ±1e300 may overflow: inf, NaN
        want = _numeric_stats_numpy(ref, ed, x, csum)
        got = _numeric_stats(ref, ed, x, csum)
    assert len(calls) == 1
    _assert_same(got, want)


small_floats = st.one_of(st.sampled_from([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0]),
                         st.floats(-5, 5, allow_nan=False), st.sampled_from([1e300, -1e300]),
                         st.floats(-1e-300, 1e-300))


@needs_core
@settings(max_examples=200, deadline=None)
@given(ref=st.lists(small_floats, min_size=1, max_size=40),
       cur=st.lists(small_floats, min_size=0, max_size=40),
       edges=st.lists(small_floats, max_size=6))
def test_small_samples_are_the_numpy_path_bit_for_bit(
        ref: list[float], cur: list[float], edges: list[float]) -> None:
    # hypothesis' own values: shrinks to the smallest failing case; an empty window gives NaN
    r = np.sort(np.array(ref))
    ed = np.sort(np.array(edges, dtype=np.float64))
    x = np.array(cur, dtype=np.float64)
    with np.errstate(all="ignore"), _counting() as calls:
        want = _numeric_stats_numpy(r, ed, x)
        got = _numeric_stats(r, ed, x)
    assert len(calls) == 1
    _assert_same(got, want)


# ---- a stack of features --------------------------------------------------------------------

@needs_core
@settings(max_examples=150, deadline=None)
@given(k=st.integers(1, 9), n=sizes_n, w=sizes_w.filter(lambda w: w >= 2),
       ref_kind=st.sampled_from(_KINDS[:6]), win_kind=st.sampled_from(_KINDS),
       edges=edge_kinds, e=st.integers(0, 12), subset=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
@example(k=7, n=5000, w=1000, ref_kind="normal", win_kind="normal", edges="quantiles", e=9,
         subset=False, seed=0)
@example(k=9, n=6000, w=3000, ref_kind="extremes", win_kind="extremes", edges="random", e=12,
         subset=True, seed=1)
@example(k=3, n=1, w=2, ref_kind="integers", win_kind="from the reference",
         edges="quantiles", e=2, subset=False, seed=2)
def test_a_stack_is_the_numpy_path_bit_for_bit(
        k: int, n: int, w: int, ref_kind: str, win_kind: str, edges: str, e: int,
        subset: bool, seed: int) -> None:
    # the stacked numpy path and, row by row, the one-feature numpy path: the summaries are a
    # strided view of the stack (rows n + 1 apart), the rows a subset when some features' values
    # were missing
    rng = np.random.default_rng(seed)
    refs = [np.sort(_values(rng, ref_kind, n)) for _ in range(k)]
    if edges == "deciles, merged":  # a stack has one number of edges
        edges = "quantiles"
    ed = [_edges(rng, r, edges, e) for r in refs]
    stack = ReferenceStack.build(refs, ed)
    rows = np.arange(k)
    if subset and k > 1:
        rows = np.sort(rng.choice(k, size=int(rng.integers(1, k)), replace=False))
    values = np.stack([_values(rng, win_kind, w, refs[r]) for r in rows.tolist()])
    with np.errstate(all="ignore"), _counting() as calls:
        want = _stacked_arrays_numpy(stack, rows, values)
        got = stacked_arrays(stack, rows, values)
        one = [_numeric_stats_numpy(refs[r], ed[r], values[i])
               for i, r in enumerate(rows.tolist())]
    assert len(calls) == 1
    assert got[0].dtype == want[0].dtype
    np.testing.assert_array_equal(got[0], want[0])
    assert [repr(v) for v in got[1]] == [repr(v) for v in want[1]]
    assert [repr(v) for v in got[2]] == [repr(v) for v in want[2]]
    for i, (c, d, wass) in enumerate(one):
        _assert_same((got[0][i], got[1][i], got[2][i]), (c, d, wass))


# ---- the whole window close ------------------------------------------------------------------

@needs_core
@pytest.mark.parametrize("records", [1000, 10_000])
@pytest.mark.parametrize("missing", [False, True])
def test_compute_window_is_the_same_with_and_without_the_kernel(
        records: int, missing: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's 25-feature model (20 numeric against 5000-value references): at 1000
    records the stacked path, at 10 000 one feature at a time (in the window's thread pool);
    with missing values some features of the 1000-record window are computed alone."""
    if str(ROOT) not in sys.path:  # the benchmarks package sits beside tests/, not installed
        sys.path.insert(0, str(ROOT))
    from benchmarks import bench_ingest as bench
    from driftline.engine import window_stats as ws

    prof = bench.profile()
    x, c, proba = bench.data(records)
    feats: dict[str, np.ndarray] = {n: x[:, j].copy() for j, n in enumerate(bench.NUMERIC)}
    if missing:
        feats["f3"][::7] = np.nan
        feats["f11"][5] = np.inf
    feats |= {n: c[:, j].astype(object) for j, n in enumerate(bench.CATEGORICAL)}
    pred = (proba > 0.5).astype(int).astype(str).astype(object)

    def close() -> str:
        cols = ws.WindowColumns(records, dict(feats), pred, np.column_stack([1 - proba, proba]),
                                None, None, None)
        report = ws.compute_window(ws.ReferenceArrays(prof), cols, index=0,
                                   policy=bench.FAST_KS, min_records=200)
        return repr(report)

    monkeypatch.setenv("DRIFTLINE_NATIVE", "0")
    want = close()
    with _counting() as calls:
        got = close()
    assert len(calls) >= (3 if records == 1000 else 20)
    assert got == want


# ---- what the kernel refuses, and the fallbacks ----------------------------------------------

def _good() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    refs = np.sort(rng.normal(size=(3, 50)), axis=1)
    return {"windows": np.sort(rng.normal(size=(2, 20)), axis=1), "refs": refs,
            "sums": np.stack([centred_sums(r) for r in refs]),
            "edges": np.sort(rng.normal(size=(3, 4)), axis=1), "rows": np.array([0, 2]),
            "counts": np.empty((2, 5), dtype=np.intp)}


def _call(**change: Any) -> Any:
    a = _good() | change
    return _core().stats(a["windows"], a["refs"], a["sums"], a["edges"], a["rows"], a["counts"])


@needs_core
def test_the_good_call_works() -> None:
    d, w = _call()
    assert len(d) == len(w) == 2 and all(0 <= v <= 1 for v in d)


@pytest.mark.parametrize("change, error, match", [
    ({"sums": np.zeros((3, 50))}, ValueError, "n \\+ 1"),
    ({"sums": np.zeros((2, 51))}, ValueError, "one number of rows"),
    ({"edges": np.zeros((4, 4))}, ValueError, "one number of rows"),
    ({"rows": np.array([0, 1, 2])}, ValueError, "3 entries for 2"),
    ({"rows": np.array([0, 3])}, ValueError, "not a reference row"),
    ({"rows": np.array([-1, 0])}, ValueError, "not a reference row"),
    ({"rows": None}, ValueError, "rows=None"),
    ({"rows": np.array([0, 2], dtype=np.int32)}, TypeError, "intp"),
    ({"rows": np.array([0.0, 2.0])}, TypeError, "intp"),
    ({"rows": np.array([[0, 2]])}, TypeError, "1-D"),
    ({"windows": np.zeros((2, 20), dtype=np.float32)}, TypeError, "windows must be float64"),
    ({"windows": np.zeros((2, 20), dtype=np.int64)}, TypeError, "windows must be float64"),
    ({"refs": np.sort(np.random.default_rng(1).normal(size=(3, 100)))[:, ::2]}, ValueError,
     "contiguous rows"),
    ({"windows": np.zeros((2, 40))[:, ::2]}, ValueError, "contiguous rows"),
    ({"refs": [[1.0, 2.0]]}, TypeError, "refs must be a float64 buffer"),
    ({"windows": np.zeros((2, 2, 20))}, ValueError, "1-D or 2-D"),
    ({"windows": np.float64(1.0)}, ValueError, "1-D or 2-D"),
    ({"counts": np.empty((2, 4), dtype=np.intp)}, ValueError, "counts must be 2 x 5"),
    ({"counts": np.empty((3, 5), dtype=np.intp)}, ValueError, "counts must be 2 x 5"),
    ({"counts": np.empty(5, dtype=np.intp)}, ValueError, "counts must be 2 x 5"),
    ({"counts": np.empty((2, 5), dtype=np.float64)}, TypeError, "counts must be intp"),
    ({"counts": np.empty((2, 5), dtype=np.int32)}, TypeError, "counts must be intp"),
    ({"counts": np.empty((5, 2), dtype=np.intp).T}, ValueError, "contiguous"),
    ({"windows": np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])}, ValueError, "not sorted"),
    ({"windows": np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0]])}, ValueError, "row 1"),
    ({"windows": np.array([[np.nan, 1.0], [1.0, 2.0]])}, ValueError, "row 0"),
])
@needs_core
def test_buffers_it_does_not_take_raise_clearly(change: dict[str, Any], error: type,
                                                match: str) -> None:
    with pytest.raises(error, match=match):
        _call(**change)


@needs_core
def test_read_only_counts_and_wrong_arguments_raise() -> None:
    counts = np.empty((2, 5), dtype=np.intp)
    counts.flags.writeable = False
    with pytest.raises((ValueError, BufferError, TypeError)):
        _call(counts=counts)
    with pytest.raises(TypeError, match="6 arguments"):
        _core().stats(1, 2)
    with pytest.raises(TypeError):
        _core()._pairwise_sum("abc")
    with pytest.raises(ValueError, match="1-D"):
        _core()._pairwise_sum(np.zeros((2, 2)))


@needs_core
def test_windows_and_references_of_one_row_as_vectors() -> None:
    # the one-feature path passes 1-D buffers; an empty window or reference gives NaN
    ref = np.array([0.0, 1.0, 2.0])
    counts = np.empty(3, dtype=np.intp)
    d, w = _core().stats(np.array([0.5, 5.0]), ref, centred_sums(ref), np.array([0.5, 1.5]),
                         None, counts)
    assert counts.tolist() == [0, 1, 1]
    want = _numeric_stats_numpy(ref, np.array([0.5, 1.5]), np.array([0.5, 5.0]))
    assert _same(d[0], want[1]) and _same(w[0], want[2])
    d, w = _core().stats(np.empty(0), ref, centred_sums(ref), np.array([0.5]), None,
                         np.empty(2, dtype=np.intp))
    assert np.isnan(d[0]) and np.isnan(w[0])
    d, w = _core().stats(np.array([1.0]), np.empty(0), np.zeros(1), np.array([0.5]), None,
                         np.empty(2, dtype=np.intp))
    assert np.isnan(d[0]) and np.isnan(w[0])


@needs_core
@pytest.mark.parametrize("edges", [[np.nan], [-np.inf, 0.0, np.inf], [0.0, np.nan],
                                   [np.nan, np.nan], [-1.0, -1.0, 2.0]])
def test_edges_at_infinity_nan_or_repeated_count_as_numpy_does(edges: list[float]) -> None:
    # numpy orders NaN above every number: a NaN edge has the whole window below it
    rng = np.random.default_rng(8)
    ref = np.sort(rng.normal(size=200))
    x = np.round(rng.normal(size=300))
    ed = np.array(edges)
    with _counting() as calls:
        got = _numeric_stats(ref, ed, x)
    assert len(calls) == 1
    _assert_same(got, _numeric_stats_numpy(ref, ed, x))


@needs_core
@pytest.mark.parametrize("case", ["float32 window", "integer window", "strided reference",
                                  "float32 edges", "list edges", "NaN in the window"])
def test_inputs_the_kernel_refuses_take_the_numpy_path(case: str) -> None:
    rng = np.random.default_rng(4)
    ref = np.sort(rng.normal(size=400))
    x = rng.normal(size=300)
    edges: Any = np.quantile(ref, [0.25, 0.5, 0.75])
    if case == "float32 window":
        x = x.astype(np.float32)
    elif case == "integer window":
        x = rng.integers(-3, 4, size=300)
    elif case == "float32 edges":
        edges = edges.astype(np.float32)
    elif case == "strided reference":
        ref = np.sort(rng.normal(size=800))[::2]
    elif case == "list edges":
        edges = edges.tolist()
    else:
        x[5] = np.nan
    with _counting() as calls:
        got = _numeric_stats(ref, edges, x)
    want = _numeric_stats_numpy(ref, edges, x)
    _assert_same(got, want)
    assert len(calls) == (0 if case.endswith("window") and "NaN" not in case else 1)


@needs_core
@pytest.mark.parametrize("getter", ["kernel", "rank_kernel"])
def test_driftline_native_0_and_a_missing_module_mean_numpy(
        getter: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The window statistics' and the arrival-side ranks' kernels obey one switch."""
    get = getattr(window_native, getter)
    monkeypatch.delenv("DRIFTLINE_NATIVE", raising=False)
    assert get() is not None
    monkeypatch.setenv("DRIFTLINE_NATIVE", "0")
    assert get() is None
    monkeypatch.setenv("DRIFTLINE_NATIVE", "off")
    assert get() is None
    monkeypatch.setenv("DRIFTLINE_NATIVE", "1")
    assert get() is not None

    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(window_native, "_core", window_native._UNSET)
    monkeypatch.setattr(window_native.importlib, "import_module", missing)
    with caplog.at_level(logging.WARNING, logger="driftline.engine.window_native"):
        assert get() is None
        assert get() is None
        assert not window_native.native_available()
    assert sum("compiled kernel not available" in r.message for r in caplog.records) == 1
    # and the statistics are then numpy's
    ref = np.sort(np.random.default_rng(5).normal(size=100))
    x = np.random.default_rng(6).normal(size=50)
    _assert_same(kernels._numeric_stats(ref, np.array([0.0]), x),
                 _numeric_stats_numpy(ref, np.array([0.0]), x))
