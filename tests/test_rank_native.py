"""The compiled arrival-side quantile ranks (``_windowcore.rank_update``) against the numpy code.

:func:`~driftline.engine.kernels.rank_update` must give the same bucket counts, the same rank
sum (one float, compared by ``repr``) and the same occurrence counters ``seen`` with the kernel
as :func:`~driftline.engine.kernels._rank_update_numpy`: references with and without ties, of
few distinct values (the numpy code's searchsorted branch) and many, batch values on reference
points, below or above all of them, empty batches, batches fed again so that ``seen`` grows
(past 2**16 and 2**32, where the van der Corput positions get more digits and the order of a
sum shows), and bucket bounds that cut the jump of a tied value. Also: what the kernel refuses
(with ``seen`` untouched) and the fallbacks, and whole monitors' quantile-rank histograms with
and without it. The numpy code itself is held to ``detectors.quantile_rank`` +
``rank_histogram`` by tests/test_engine_kernels.py, which now runs the kernel too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.catalogue import QUANTILE_RANK_BUCKETS
from driftline.detectors.quantile_rank import quantile_rank, rank_histogram, tie_unit
from driftline.engine import kernels, window_native
from driftline.engine import monitor as monitor_module
from driftline.engine.kernels import RankReference, _rank_update_numpy, rank_update
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.profile.format import BaselineProfile, Columns, NumericFeature

BOUNDS = np.asarray(QUANTILE_RANK_BUCKETS)


needs_core = pytest.mark.skipif(not window_native.native_available(),
                                reason="the compiled window kernel is not built")


def _core() -> Any:
    mod = window_native._module()
    assert mod is not None
    return mod


@contextlib.contextmanager
def _counting() -> Iterator[list[bool]]:
    """The kernel whatever ``DRIFTLINE_NATIVE`` says; each call recorded as True when it
    returned, False when it refused (then the numpy code ran): a comparison with numpy proves
    nothing if the kernel never computed."""
    fn = _core().rank_update
    calls: list[bool] = []

    def counted(*args: Any) -> float:
        try:
            got = fn(*args)
        except Exception:
            calls.append(False)
            raise
        calls.append(True)
        return float(got)

    saved = window_native.rank_kernel
    window_native.rank_kernel = lambda: counted  # type: ignore[assignment]
    try:
        yield calls
    finally:
        window_native.rank_kernel = saved  # type: ignore[assignment]


def _assert_same(got: tuple[np.ndarray, float], want: tuple[np.ndarray, float]) -> None:
    assert got[0].dtype == want[0].dtype == np.int64 and got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])
    assert repr(got[1]) == repr(want[1]), (got[1], want[1])


def _both(rr: RankReference, s: np.ndarray, seen_c: np.ndarray, seen_p: np.ndarray,
          calls: list[bool]) -> np.ndarray:
    """One batch through the kernel and through numpy, each with its own counters; the
    counts."""
    got = rank_update(rr, s, seen_c)
    assert calls and calls[-1], "the kernel refused the batch"
    want = _rank_update_numpy(rr, s, seen_p)
    _assert_same(got, want)
    np.testing.assert_array_equal(seen_c, seen_p)
    return got[0]


# ---- references, batches and bounds --------------------------------------------------------

_REFS = ("continuous", "rounded", "integers", "few", "constant", "extremes", "ties and nan")
_BATCHES = ("normal", "rounded", "integers", "from the reference", "below", "above", "empty",
            "constant", "signed zeros", "infinite")


def _reference(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "rounded":  # many distinct values (> 64: the merge), with ties
        x = np.round(rng.normal(size=n), 2)
    elif kind == "integers":
        x = rng.integers(-3, 4, size=n).astype(np.float64)
    elif kind == "few":  # a discrete feature with skewed shares: long jumps that bounds cut
        x = rng.choice(np.array([6.0, 12, 24, 36, 60]), size=n, p=[0.05, 0.15, 0.5, 0.2, 0.1])
    elif kind == "constant":
        x = np.full(n, 2.5)
    elif kind == "extremes":
        x = rng.choice(np.array([-1e300, -0.0, 0.0, 5e-324, 1.0, 1e300]), size=n)
    elif kind == "ties and nan":  # a summary as numpy sorts it: NaN last
        x = np.round(rng.normal(size=n), 1)
        x[rng.random(n) < 0.1] = np.nan
    else:
        x = rng.normal(size=n)
    return np.sort(x)


def _batch(rng: np.random.Generator, kind: str, w: int, ref: np.ndarray) -> np.ndarray:
    finite = ref[np.isfinite(ref)]
    lo, hi = (float(finite[0]), float(finite[-1])) if len(finite) else (0.0, 1.0)
    if kind == "empty":
        x = np.empty(0)
    elif kind == "rounded":
        x = np.round(rng.normal(size=w), 2)
    elif kind == "integers":
        x = rng.integers(-4, 5, size=w).astype(np.float64)
    elif kind == "from the reference" and len(finite):
        x = rng.choice(finite, size=w)
        mix = rng.random(w) < 0.2
        x[mix] = rng.normal(size=int(mix.sum()))
    elif kind == "below":
        x = lo - 1.0 - rng.random(w)
    elif kind == "above":
        x = hi + 1.0 + rng.random(w)
    elif kind == "constant":
        x = np.full(w, float(rng.choice(finite)) if len(finite) else 1.0)
    elif kind == "signed zeros":
        x = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0]), size=w)
    elif kind == "infinite":
        x = rng.choice(np.array([-np.inf, np.inf, 0.0, 1.0]), size=w)
    else:
        x = rng.normal(size=w)
    return np.sort(x)


def _bounds(rng: np.random.Generator, how: str, ref: np.ndarray) -> np.ndarray:
    if how == "at the jumps":  # bounds on the shares of tied values: jumps cut, and ends hit
        n = len(ref)
        starts = np.searchsorted(ref, np.unique(ref[np.isfinite(ref)]), side="left") / n
        picks = rng.choice(starts, size=min(6, len(starts)), replace=False)
        return np.unique(np.r_[picks, picks + 0.5 / n, rng.random(3)])
    if how == "random":
        return np.sort(rng.random(int(rng.integers(0, 16))))
    if how == "none":
        return np.empty(0)
    return BOUNDS


@needs_core
@settings(max_examples=300, deadline=None)
@given(n=st.one_of(st.integers(1, 70), st.integers(1, 6000), st.sampled_from([5000, 20_000])),
       w=st.one_of(st.integers(0, 12), st.integers(0, 3000), st.sampled_from([1000, 4096])),
       ref_kind=st.sampled_from(_REFS), batch_kinds=st.lists(st.sampled_from(_BATCHES),
                                                             min_size=1, max_size=4),
       bounds=st.sampled_from(["buckets", "at the jumps", "random", "none"]),
       start=st.sampled_from([0, 0, 65_530, 2**32 - 3, 2**40 + 12_345, 2**52]),
       again=st.booleans(), seed=st.integers(0, 2**32 - 1))
@example(n=5000, w=1000, ref_kind="continuous", batch_kinds=["normal"], bounds="buckets",
         start=0, again=True, seed=0)
@example(n=5000, w=1000, ref_kind="few", batch_kinds=["from the reference"] * 3,
         bounds="buckets", start=0, again=True, seed=1)
@example(n=20_000, w=4096, ref_kind="rounded", batch_kinds=["rounded", "from the reference"],
         bounds="at the jumps", start=2**40 + 12_345, again=False, seed=2)
@example(n=1, w=5, ref_kind="constant", batch_kinds=["constant", "below", "above", "empty"],
         bounds="buckets", start=0, again=False, seed=3)
def test_rank_update_is_the_numpy_path_exactly(
        n: int, w: int, ref_kind: str, batch_kinds: list[str], bounds: str, start: int,
        again: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = _reference(rng, ref_kind, n)
    rr = RankReference.build(ref, _bounds(rng, bounds, ref))
    seen_c = rr.new_seen()
    seen_c[:] = rng.integers(start, start + 50, size=len(seen_c)) if start else 0
    seen_p = seen_c.copy()
    with _counting() as calls:
        for kind in batch_kinds:
            s = _batch(rng, kind, w, ref)
            _both(rr, s, seen_c, seen_p, calls)
            if again:  # the same batch once more: seen has grown
                _both(rr, s, seen_c, seen_p, calls)
    assert calls and all(calls)


small_floats = st.one_of(st.sampled_from([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0]),
                         st.floats(-5, 5, allow_nan=False))


@needs_core
@settings(max_examples=300, deadline=None)
@given(ref=st.lists(small_floats, min_size=1, max_size=40),
       batches=st.lists(st.lists(small_floats, max_size=40), min_size=1, max_size=4),
       bounds=st.lists(st.floats(0.0, 1.1), max_size=8))
def test_small_samples_are_the_numpy_path_exactly(
        ref: list[float], batches: list[list[float]], bounds: list[float]) -> None:
    # hypothesis' own values, shrinking to the smallest failing case; the counts also against
    # the detector itself (the histogram of its ranks), an independent reference
    r = np.sort(np.array(ref))
    b = np.sort(np.array(bounds, dtype=np.float64))
    rr = RankReference.build(r, b)
    seen_c, seen_p = rr.new_seen(), rr.new_seen()
    seen_d = np.zeros(len(r), dtype=np.int64)
    with _counting() as calls:
        for cur in batches:
            s = np.sort(np.array(cur, dtype=np.float64))
            counts = _both(rr, s, seen_c, seen_p, calls)
            np.testing.assert_array_equal(counts, rank_histogram(quantile_rank(r, s, seen_d), b))
    assert len(calls) == len(batches) and all(calls)


# ---- the parts that only some inputs reach --------------------------------------------------

@needs_core
def test_cut_jumps_are_rebinned_value_by_value() -> None:
    # a 5-value feature with shares 5, 15, 50, 20 and 10 %: the bounds cut four of the jumps,
    # so a batch's tied runs spread over several buckets; in batches of every size the kernel's
    # counts are the numpy code's and the detector's, and not the integer binning alone (all of
    # a run in its R's bucket: what skipping the re-binning would give)
    ref = np.repeat([6.0, 12, 24, 36, 60], [100, 300, 1000, 400, 200])
    rr = RankReference.build(ref, BOUNDS)
    assert rr.cut_at.tolist() == [1, 2, 3, 4]
    rng = np.random.default_rng(12)
    seen_c, seen_p = rr.new_seen(), rr.new_seen()
    seen_d = np.zeros(len(ref), dtype=np.int64)
    rebinned = 0
    with _counting() as calls:
        for w in (1, 2, 3, 7, 64, 100, 1000, 4096):
            s = np.sort(rng.choice(ref, size=w))
            counts = _both(rr, s, seen_c, seen_p, calls)
            np.testing.assert_array_equal(
                counts, rank_histogram(quantile_rank(ref, s, seen_d), BOUNDS))
            plain = kernels.rank_bucket_counts(np.searchsorted(ref, s, side="right"), rr.limits)
            rebinned += not np.array_equal(counts, plain)
    assert rebinned >= 6


@needs_core
@pytest.mark.parametrize("start, rounds", [(0, False), (65_535, False), (2**32 - 1, False),
                                           (2**48 - 2**32 + 7, True), (2**63 - 2**20, False)])
def test_occurrence_counts_of_every_size(start: int, rounds: bool) -> None:
    # occurrence indices past 2**16, 2**32 and 2**48 give the van der Corput positions more
    # digits (16 bits each); from 2**32 on a run's sum of positions can round, and numpy's
    # order (np.add.reduceat: the first, then the pairwise sum of the rest) is the one that
    # gives its float, not a sum in order (``rounds``: the case shows it; near 2**63 the
    # positions share their low digits and happen to sum alike in any order)
    rng = np.random.default_rng(start % 1000)
    ref = _reference(rng, "integers", 5000)
    rr = RankReference.build(ref, BOUNDS)
    seen_c = np.full(len(rr.distinct), start, dtype=np.int64)
    seen_p = seen_c.copy()
    fed = np.zeros(len(rr.distinct), dtype=np.int64)
    reordered = 0
    with _counting() as calls:
        for w in (1, 9, 300, 3000):
            s = np.sort(rng.choice(ref, size=w))
            before = seen_p.copy()
            _both(rr, s, seen_c, seen_p, calls)
            d, c = np.unique(np.searchsorted(rr.distinct, s), return_counts=True)
            fed[d] += c
            for g, cnt in zip(d.tolist(), c.tolist(), strict=True):
                u = tie_unit(np.arange(before[g], before[g] + cnt, dtype=np.int64))
                reordered += float(np.add.reduceat(u, [0])[0]) != sum(u.tolist())
    assert all(calls)
    np.testing.assert_array_equal(seen_c, start + fed)
    assert (reordered > 0) == rounds, reordered


# ---- what the kernel refuses, seen untouched, and the fallbacks -------------------------------

_ARGS = ("values", "distinct", "below", "n", "limits", "bounds", "cut_at", "cut_first",
         "cut_bucket", "seen", "counts")


def _good() -> dict[str, Any]:
    ref = np.repeat([1.0, 2.0, 3.0, 4.0], [10, 30, 40, 20])
    rr = RankReference.build(ref, BOUNDS)
    return {"values": np.sort(np.r_[ref[::3], 0.5, 2.5, 9.0]), "distinct": rr.distinct,
            "below": rr.below, "n": rr.n, "limits": rr.limits, "bounds": rr.bounds,
            "cut_at": rr.cut_at, "cut_first": rr.cut_first, "cut_bucket": rr.cut_bucket,
            "seen": rr.new_seen() + 3, "counts": np.zeros(len(BOUNDS) + 1, dtype=np.int64)}


def _call(**change: Any) -> Any:
    a = _good() | change
    return _core().rank_update(*(a[k] for k in _ARGS))


@needs_core
def test_the_good_call_works() -> None:
    a = _good()
    seen = a["seen"].copy()
    total = _call(seen=seen, counts=a["counts"])
    rr = RankReference.build(np.repeat([1.0, 2.0, 3.0, 4.0], [10, 30, 40, 20]), BOUNDS)
    want = _rank_update_numpy(rr, a["values"], a["seen"])
    _assert_same((a["counts"], total), want)
    np.testing.assert_array_equal(seen, a["seen"])


_late = np.r_[np.full(20, 2.0), 3.0, 1.0]  # ties found before the disorder
_neg = np.array([5, -1, 0, 2], dtype=np.int64)


@needs_core
@pytest.mark.parametrize("change, error, match", [
    ({"values": np.array([1.0, 2.0], dtype=np.float32)}, TypeError, "values must be float64"),
    ({"values": np.array([1, 2])}, TypeError, "values must be float64"),
    ({"values": np.array([[1.0, 2.0]])}, ValueError, "values must be 1-D"),
    ({"values": np.arange(8.0)[::2]}, ValueError, "values must be contiguous"),
    ({"values": [1.0, 2.0]}, TypeError, "values must be a float64 buffer"),
    ({"values": np.array([2.0, 1.0])}, ValueError, "not sorted"),
    ({"values": _late}, ValueError, "not sorted"),
    ({"values": np.array([1.0, np.nan])}, ValueError, "NaN"),
    ({"values": np.array([np.nan, 1.0])}, ValueError, "NaN"),
    ({"values": np.array([1.0, 2.0, 2.0, np.nan])}, ValueError, "NaN"),
    ({"distinct": np.empty(0)}, ValueError, "distinct must not be empty"),
    ({"distinct": np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)}, TypeError, "distinct"),
    ({"below": np.array([0, 10, 40, 80], dtype=np.int64)}, ValueError, "len\\(distinct\\) \\+ 1"),
    ({"below": np.array([0.0, 10, 40, 80, 100])}, TypeError, "below must be int32 or int64"),
    ({"below": np.array([0, 10, 40, 80, 100], dtype=np.int16)}, TypeError, "int32 or int64"),
    ({"below": np.array([0, 10, 40, 80, 100], dtype=np.uint64)}, TypeError, "int32 or int64"),
    ({"below": np.array([0, 50, 40, 80, 100], dtype=np.int32)}, ValueError, "ascending"),
    ({"n": 0}, ValueError, "n must be positive"),
    ({"n": -3}, ValueError, "n must be positive"),
    ({"n": 100.0}, TypeError, "n must be an int"),
    ({"limits": np.arange(10, 0, -1, dtype=np.int64)}, ValueError, "limits must be ascending"),
    ({"limits": np.arange(10, dtype=np.int32)}, TypeError, "limits must be int64"),
    ({"bounds": BOUNDS[:5]}, ValueError, "bounds must have len\\(limits\\)"),
    ({"counts": np.zeros(10, dtype=np.int64)}, ValueError, "counts len\\(limits\\) \\+ 1"),
    ({"counts": np.zeros(11, dtype=np.int32)}, TypeError, "counts must be int64"),
    ({"counts": np.zeros(11)}, TypeError, "counts must be int64"),
    ({"counts": np.zeros(22, dtype=np.int64)[::2]}, ValueError, "counts must be contiguous"),
    ({"cut_at": np.array([3, 1, 2])}, ValueError, "cut_at must be ascending"),
    ({"cut_first": np.array([0, 1, 99])}, ValueError, "buckets of limits"),
    ({"cut_bucket": np.array([0, -1, 2])}, ValueError, "buckets of limits"),
    ({"cut_bucket": np.array([0, 1])}, ValueError, "one length"),
    ({"seen": np.zeros(3, dtype=np.int64)}, ValueError, "seen must have len\\(distinct\\)"),
    ({"seen": np.zeros(4, dtype=np.int32)}, TypeError, "seen must be int64"),
    ({"seen": _neg}, ValueError, "seen\\[1\\] = -1 is not an occurrence count"),
    ({"seen": np.full(4, 2**63 - 2, dtype=np.int64)}, ValueError, "not an occurrence count"),
])
def test_buffers_it_does_not_take_raise_clearly_and_change_no_counter(
        change: dict[str, Any], error: type, match: str) -> None:
    a = _good() | change
    seen = a["seen"]
    before = np.array(seen, copy=True)
    with pytest.raises(error, match=match):
        _call(**a)
    np.testing.assert_array_equal(seen, before)


@needs_core
def test_the_written_buffers_share_no_memory_with_the_others() -> None:
    # the tables are checked once: counts or seen written over them could unsettle an index
    a = _good()
    both = np.zeros(20, dtype=np.int64)
    with pytest.raises(ValueError, match="seen must not share memory with counts"):
        _call(seen=both[:4], counts=both[3:14])
    tables = np.zeros(14, dtype=np.int64)
    tables[:3] = a["cut_bucket"]
    with pytest.raises(ValueError, match="counts must not share memory with cut_bucket"):
        _call(cut_bucket=tables[:3], counts=tables[2:13])
    seen = np.zeros(5, dtype=np.int64)
    with pytest.raises(ValueError, match="seen must not share memory with below"):
        _call(below=seen, seen=seen[1:])
    _call(seen=both[:4], counts=both[4:15])  # side by side: fine


@needs_core
def test_read_only_counters_and_wrong_arguments_raise() -> None:
    seen = _good()["seen"]
    seen.flags.writeable = False
    with pytest.raises(TypeError, match="seen must be a writable int64 buffer"):
        _call(seen=seen)
    counts = np.zeros(11, dtype=np.int64)
    counts.flags.writeable = False
    with pytest.raises(TypeError, match="counts must be a writable int64 buffer"):
        _call(counts=counts)
    with pytest.raises(TypeError, match="11 arguments"):
        _core().rank_update(1, 2)


@needs_core
@pytest.mark.parametrize("case", ["float32 values", "integer values", "strided values",
                                  "int32 seen", "unsorted values"])
def test_inputs_the_kernel_refuses_take_the_numpy_path(case: str) -> None:
    rng = np.random.default_rng(4)
    ref = np.sort(np.round(rng.normal(size=400), 1))
    rr = RankReference.build(ref, BOUNDS)
    x: Any = np.sort(rng.choice(ref, size=300))
    seen_c: Any = rr.new_seen() + 1
    if case == "float32 values":
        x = x.astype(np.float32)
    elif case == "integer values":
        x = np.sort(rng.integers(-2, 3, size=300))
    elif case == "strided values":
        x = np.sort(rng.choice(ref, size=600))[::2]
    elif case == "int32 seen":
        seen_c = seen_c.astype(np.int32)
    else:
        x = x[::-1].copy()
    seen_p = np.array(seen_c, copy=True)
    with _counting() as calls:
        got = rank_update(rr, x, seen_c)
    assert calls == [False]
    want = _rank_update_numpy(rr, x, seen_p)
    _assert_same(got, want)
    np.testing.assert_array_equal(seen_c, seen_p)


@needs_core
def test_a_missing_module_means_numpy_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the extension missing the ranks are numpy's (the switch of both kernels is tested
    in tests/test_window_native.py)."""
    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(window_native, "_core", window_native._UNSET)
    monkeypatch.setattr(window_native.importlib, "import_module", missing)
    assert window_native.rank_kernel() is None
    rr = RankReference.build(np.array([1.0, 2.0, 2.0, 3.0]), BOUNDS)
    s = np.array([0.0, 2.0, 2.0, 2.5])
    seen_a, seen_b = rr.new_seen(), rr.new_seen()
    _assert_same(rank_update(rr, s, seen_a), _rank_update_numpy(rr, s, seen_b))
    np.testing.assert_array_equal(seen_a, seen_b)


# ---- whole monitors ---------------------------------------------------------------------------

def _feature(name: str, summary: np.ndarray) -> NumericFeature:
    s = np.sort(summary)
    return NumericFeature(name, (float(np.median(s)),), (0.5, 0.5), tuple(s.tolist()), True,
                          len(s), 0.0, float(s[0]), float(s[-1]), float(s.mean()),
                          float(s.std()))


_SUMMARIES = {"continuous": ("continuous", 5000), "rounded": ("rounded", 5000),
              "integers": ("integers", 2000), "five values": ("few", 1000),
              "constant": ("constant", 50)}


def _stream(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    refs = {name: _reference(rng, kind, n) for name, (kind, n) in _SUMMARIES.items()}
    batches = []
    for _ in range(40):
        w = int(rng.choice([1, 3, 64, 500, 1000, 5000]))
        cols = {name: rng.permutation(_batch(rng, str(rng.choice(_BATCHES[:6])), w, ref))
                for name, ref in refs.items()}
        if rng.random() < 0.4:  # missing values are left out of the ranks
            cols["continuous"][::17] = np.nan
        if len(cols["rounded"]) and rng.random() < 0.3:
            cols["rounded"][0] = np.inf
        if rng.random() < 0.2:
            del cols["integers"]  # a batch without a feature
        batches.append(cols)
    return batches


def _histograms(seed: int) -> list[dict[str, tuple[tuple[int, ...], str, int]]]:
    rng = np.random.default_rng(seed)
    refs = {name: _reference(rng, kind, n) for name, (kind, n) in _SUMMARIES.items()}
    prof = BaselineProfile("m", "1", "", 5000, {n: _feature(n, r) for n, r in refs.items()},
                           Columns(), None)
    mon = Monitor(prof, window=WindowPolicy(records=10**9, max_age=None), clock=None,
                  streams=False)
    got = []
    for i, cols in enumerate(_stream(seed)):
        mon.observe(RecordBatch(cols))
        if i % 3 == 2:  # counted in blocks of pending batches, as the sidecar's tick does
            qr = mon.snapshot().quantile_rank
            got.append({n: (h.counts, repr(h.sum), h.count) for n, h in qr.items()})
    return got


@needs_core
@pytest.mark.parametrize("seed", [0, 1])
def test_monitor_histograms_are_the_same_with_and_without_the_kernel(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_NATIVE", "0")
    want = _histograms(seed)
    monkeypatch.setenv("DRIFTLINE_NATIVE", "1")
    with _counting() as calls:
        got = _histograms(seed)
    assert len(calls) >= 60 and all(calls)
    assert got == want
    assert want[-1]["five values"][2] > 10_000


@settings(max_examples=200, deadline=None)
@given(k=st.integers(0, 6), w=st.integers(0, 300), lengths=st.booleans(),
       missing=st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_the_monitor_sorts_a_block_as_it_sorted_each_feature(
        k: int, w: int, lengths: bool, missing: list[float], seed: int) -> None:
    # one np.sort of the stacked columns, or of each column with a missing value, or of each
    # column when their lengths differ: each column's finite values sorted, as np.sort of each
    rng = np.random.default_rng(seed)
    cols = [np.round(rng.normal(size=w + (i if lengths else 0)), 1) for i in range(k)]
    for v in missing:
        if k and w:
            cols[int(rng.integers(k))][int(rng.integers(w))] = v
    if k and w:
        cols[0][0] = -0.0  # beside the 0.0 of rounding: equal values either way round
    got = monitor_module._sorted_finite(cols)
    assert len(got) == k
    for g, c in zip(got, cols, strict=True):
        want = np.sort(c[np.isfinite(c)])
        assert g.dtype == np.float64 and g.flags.c_contiguous
        np.testing.assert_array_equal(g, want)


@needs_core
@pytest.mark.parametrize("low, high, c, k0", [(35, 204, 512, 153_495_656_001_357),
                                              (17, 3614, 255, 191_638_895_469_531)])
def test_a_runs_rank_sum_term_rounds_as_numpys(low: int, high: int, c: int, k0: int) -> None:
    # (R − L)·(Σu − c) rounds differently from (R − L)·Σu − (R − L)·c at positions of 48 bits,
    # and here the difference reaches the rank sum (found by search: rare), so the kernel must
    # take the numpy code's expression
    ref = np.repeat([0.0, 1.0], [low, high])
    rr = RankReference.build(ref, BOUNDS)
    s = np.zeros(c)
    seen_c = np.array([k0, 0], dtype=np.int64)
    seen_p = seen_c.copy()
    with _counting() as calls:
        _both(rr, s, seen_c, seen_p, calls)
        total = rank_update(rr, s, np.array([k0, 0], dtype=np.int64))[1]
    su = np.add.reduceat(tie_unit(np.arange(k0, k0 + c, dtype=np.int64)), [0])
    plain = float(low * c) / len(ref)
    other = plain + float(np.sum(np.array([low]) * su - np.array([low]) * c)) / len(ref)
    assert all(calls) and repr(total) != repr(other)
