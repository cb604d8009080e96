"""Fused numeric kernels for the monitor's hot path: every per-value statistic from one sort.

The window is sorted once and each value's reference rank found once, from which PSI bin
counts, the KS statistic, the Wasserstein distance and the quantile-rank histogram all follow.
The results equal :mod:`driftline.detectors` (``bin_counts``, ``ks_2samp_sorted``,
``wasserstein``, ``quantile_rank`` + ``rank_histogram``, ties spread by occurrence index) — the
same float expressions, checked by property tests. The ranks come from numpy's stable sort merging the two
presorted runs in linear time (≈ 5–10 ns per value), or, when the reference is at least
:data:`MERGE_RATIO` times longer than the window, from a binary search per (sorted) window
value, which is then cheaper.

The numeric statistics of a window (:func:`_numeric_stats`, :func:`stacked_arrays`) and the
arriving values' quantile ranks (:func:`rank_update`) run compiled when ``native/windowcore.c``
is built (:mod:`~driftline.engine.window_native`): the same results in one pass of C; the numpy
code here is the fallback and the reference the tests hold it to.

>>> ref = np.array([1.0, 2.0, 3.0, 4.0])
>>> rank_right(ref, np.array([0.0, 2.0, 2.5, 9.0])).tolist()
[0, 2, 2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from driftline.detectors.ks import ks_pvalue, ks_pvalues_fast, reference_size
from driftline.detectors.quantile_rank import spread_ranks, tie_runs, tie_unit
from driftline.engine import window_native

#: From ``len(reference) / MERGE_RATIO`` values down, a binary search per value beats a full
#: merge (a merge touches every reference value; sorted keys make the searches cheap, ≈ 20–35
#: ns each). Measured CPU (the ranks alone, min of 200, load 11):
#: 1000 × 5000 33 µs searching against 50 merging, 1000 × 20 000 20 against 83,
#: 10 000 × 100 000 0.44 against 1.74 ms; at 2000 × 5000 and 5000 × 20 000 the merge wins.
MERGE_RATIO = 5


def _small(reference_sorted: np.ndarray, values: np.ndarray) -> bool:
    return len(values) * MERGE_RATIO <= len(reference_sorted)


def rank_right(reference_sorted: np.ndarray, values_sorted: np.ndarray) -> np.ndarray:
    """``#{ref <= v}`` for each sorted value (= ``searchsorted(ref, v, "right")``), by merging."""
    if _small(reference_sorted, values_sorted):
        return np.searchsorted(reference_sorted, values_sorted, side="right")
    n = len(reference_sorted)
    order = np.argsort(np.concatenate([reference_sorted, values_sorted]), kind="stable")
    pos = np.flatnonzero(order >= n)
    return pos - np.arange(len(values_sorted))


def rank_left(reference_sorted: np.ndarray, values_sorted: np.ndarray) -> np.ndarray:
    """``#{ref < v}`` for each sorted value (= ``searchsorted(ref, v, "left")``), by merging."""
    if _small(reference_sorted, values_sorted):
        return np.searchsorted(reference_sorted, values_sorted, side="left")
    w = len(values_sorted)
    order = np.argsort(np.concatenate([values_sorted, reference_sorted]), kind="stable")
    pos = np.flatnonzero(order < w)
    return pos - np.arange(w)


def bin_counts_sorted(values_sorted: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of half-open bins ``[e_i, e_{i+1})`` with open outer bins, from sorted values."""
    below = np.searchsorted(values_sorted, edges, side="left")
    return np.diff(np.concatenate([[0], below, [len(values_sorted)]]))


def rank_limits(n: int, bounds: np.ndarray) -> np.ndarray:
    """For each bucket bound ``b``, the largest ``k`` with ``k / n <= b`` in float arithmetic, so
    that ``rank <= b`` ⟺ ``#{ref <= x} <= k`` exactly as :func:`rank_histogram` decides it."""
    k = np.floor(bounds * n).astype(np.int64)
    k = np.clip(k, 0, n)
    k = np.where((k + 1 <= n) & ((k + 1) / n <= bounds), k + 1, k)
    k = np.where((k > 0) & (k / n > bounds), k - 1, k)
    return k


def rank_bucket_counts(ranks_right_sorted: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Per-bucket counts (``len(limits) + 1``, last = overflow) of sorted reference ranks."""
    le = np.searchsorted(ranks_right_sorted, limits, side="right")
    return np.diff(np.concatenate([[0], le, [len(ranks_right_sorted)]]))


@dataclass(frozen=True)
class RankReference:
    """A reference summary prepared once for :func:`rank_update`: its distinct values, the rank
    jump ``[L/n, R/n]`` of each, and the few jumps a bucket bound cuts, so a batch is ranked
    against the distinct values only (a 5-value integer feature searches 5 values, not the
    summary).

    A sidecar keeps one per numeric feature for its whole life, so it holds no per-value array
    it can do without: a summary without ties is its own distinct-value array (no copy, and no
    jump starts: ``L = j``), the jump starts are int32, and of the cut jumps (at most one per
    bound) only their indices and buckets are kept. For a 20 000-value summary that is 0 or
    ≈ 0.2 MiB beside the summary, where per-value int64 starts and int16 buckets took 0.5 MiB.
    """

    distinct: np.ndarray
    below: np.ndarray | None
    """``#{ref < distinct[j]}`` (the jump's start L) for each j, then ``n``; None when the
    summary has no ties (then it is ``j``)."""
    n: int
    limits: np.ndarray
    bounds: np.ndarray
    cut_at: np.ndarray
    """Sorted indices j of the jumps that some bound ``b`` cuts (``L/n <= b < R/n``): ranks in
    such a jump fall in several buckets."""
    cut_first: np.ndarray
    """For each cut jump: the bucket of ``L/n``, the lowest bucket a rank in it can fall in."""
    cut_bucket: np.ndarray
    """For each cut jump: the bucket of ``R/n``."""

    @classmethod
    def build(cls, reference_sorted: np.ndarray, bounds: np.ndarray) -> RankReference:
        ref = np.asarray(reference_sorted, dtype=np.float64)
        n = len(ref)
        new = np.ones(n, dtype=bool)
        new[1:] = ref[1:] != ref[:-1]
        heads = np.flatnonzero(new)
        below = np.append(heads, n)
        b = np.asarray(bounds, dtype=np.float64)
        lo = np.searchsorted(b, below[:-1] / max(n, 1), side="left")
        hi = np.searchsorted(b, below[1:] / max(n, 1), side="left")
        cut_at = np.flatnonzero(lo < hi)
        ties = len(heads) < n
        distinct = ref[heads] if ties else ref
        starts = below.astype(np.int32) if ties and n < 2**31 else (below if ties else None)
        return cls(distinct, starts, n, rank_limits(n, b), b, cut_at, lo[cut_at], hi[cut_at])

    def jump(self, j: np.ndarray | int) -> tuple[Any, Any]:
        """``(L, R)``: the integer rank jump of distinct value(s) ``j``."""
        if self.below is None:
            return j, j + 1
        return self.below[j], self.below[np.add(j, 1)]

    def new_seen(self) -> np.ndarray:
        """Occurrence counters for :func:`rank_update`: one per distinct reference value."""
        return np.zeros(len(self.distinct), dtype=np.int64)


_ASK: Any = object()


def rank_update(rr: RankReference, values_sorted: np.ndarray, seen: np.ndarray, *,
                kernel: Any = _ASK) -> tuple[np.ndarray, float]:
    """Quantile-rank bucket counts and rank sum of one sorted batch (= ``rank_histogram`` and
    the sum of ``detectors.quantile_rank(ref, values, seen)``); ``seen`` is advanced in place.

    The compiled kernel's (:func:`~driftline.engine.window_native.rank_kernel`: one pass of C)
    when it is built and takes the inputs (sorted float64 values without NaN, the tables
    :meth:`RankReference.build` makes, int64 ``seen``), else :func:`_rank_update_numpy`'s; the
    same counts, the same float and the same ``seen``. ``kernel``: what ``rank_kernel()`` gave
    a caller that ranks many features at once (the monitor asks once a block: reading the
    ``DRIFTLINE_NATIVE`` switch costs ≈ 0.7 µs, more than the kernel's fixed cost)."""
    ranks = window_native.rank_kernel() if kernel is _ASK else kernel
    if ranks is not None:
        counts = np.empty(len(rr.limits) + 1, dtype=np.int64)
        try:
            total = ranks(values_sorted, rr.distinct, rr.below, rr.n, rr.limits, rr.bounds,
                          rr.cut_at, rr.cut_first, rr.cut_bucket, seen, counts)
        except (TypeError, ValueError):  # refused, seen untouched: numpy takes anything
            pass
        else:
            return counts, total
    return _rank_update_numpy(rr, values_sorted, seen)


def _rank_update_numpy(rr: RankReference, values_sorted: np.ndarray,
                       seen: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`rank_update` in numpy: the fallback, and the reference the compiled kernel is held
    to (tests/test_rank_native.py).

    Everything is first binned on integer ranks ``R = #{ref <= v}`` against ``rr.limits``
    (:func:`rank_limits`), which is exact for values that tie no reference point. Tied values
    are handled per run of equal values: a run whose jump ``[L/n, R/n]`` no bucket bound cuts
    stays where it is (float division and rounding are monotone, so every rank in the jump
    lands in R's bucket); only runs in a cut jump (at most one per bound) get per-value ranks,
    compared with the few bounds inside their jump. The sum takes each run's ranks in one
    ``reduceat``.
    """
    n = rr.n
    # few distinct values (a discrete feature): a binary search over them beats the merge
    j = (np.searchsorted(rr.distinct, values_sorted, side="right") if len(rr.distinct) <= 64
         else rank_right(rr.distinct, values_sorted))
    right = j if rr.below is None else rr.below[j]
    counts = rank_bucket_counts(right, rr.limits)
    if len(right) == 0:
        return counts, 0.0
    total = float(right.sum()) / n
    # j == 0 clips to distinct[0], which is > the value then, so never equal
    tied = rr.distinct.take(j - 1, mode="clip") == values_sorted
    n_tied = np.count_nonzero(tied)
    if n_tied == 0:
        return counts, total
    jt = j - 1 if n_tied == len(j) else j[tied] - 1
    k, heads, lengths = tie_runs(jt, seen)
    u = tie_unit(k, int(seen[jt[heads]].max()))
    d = jt[heads]
    run_l, run_r = rr.jump(d)
    total += float(np.sum((run_r - run_l) * (np.add.reduceat(u, heads) - lengths))) / n
    if not len(rr.cut_at):
        return counts, total
    pos = np.searchsorted(rr.cut_at, d)
    hit = rr.cut_at.take(pos, mode="clip") == d
    for i in np.flatnonzero(hit).tolist():
        h, c, g, ci = int(heads[i]), int(lengths[i]), int(d[i]), int(pos[i])
        lo_rank, hi_rank = rr.jump(g)
        r = spread_ranks(int(lo_rank), int(hi_rank), u[h:h + c], n)
        below = 0  # ranks of this run in the buckets before
        last = int(rr.cut_bucket[ci])
        for bi in range(int(rr.cut_first[ci]), last):
            le = int(np.count_nonzero(r <= rr.bounds[bi]))
            counts[bi] += le - below
            below = le
        counts[last] -= below  # all c were counted in R's bucket
    return counts, total


@dataclass(frozen=True)
class NumericWindow:
    """Everything the window report needs of one numeric feature."""

    counts: np.ndarray
    ks_statistic: float
    ks_pvalue: float
    wasserstein: float


def numeric_window(reference_sorted: np.ndarray, edges: np.ndarray, finite: np.ndarray,
                   n_reference: int | None = None, *, approximate: bool = True,
                   sums: np.ndarray | None = None) -> NumericWindow:
    """Bin counts, KS (D, p) and Wasserstein-1 of finite window values in one merge.

    ``n_reference``: the size of the reference the sorted summary stands for (KS p-value).
    ``approximate``: the KS p-value may be the fast approximation where scipy's exact count is
    dear (:func:`~driftline.detectors.ks.ks_pvalue`); False keeps the exact count.
    ``sums``: the reference's :func:`centred_sums` when the caller keeps them (made here
    otherwise: a sequential pass over the reference, each window)."""
    counts, d, wass = _numeric_stats(reference_sorted, edges, finite, sums)
    if d != d:
        return NumericWindow(counts, d, d, wass)
    d, p = ks_pvalue(d, reference_size(len(reference_sorted), n_reference), len(finite),
                     fast=True, approximate=approximate)
    return NumericWindow(counts, d, p, wass)


def numeric_windows(features: list[tuple[np.ndarray, np.ndarray, np.ndarray, int | None]],
                    sums: list[np.ndarray] | Callable[[int], np.ndarray] | None = None, *,
                    approximate: bool = True,
                    stacks: Sequence[tuple[ReferenceStack, Sequence[int]]] = (),
                    ) -> list[NumericWindow]:
    """:func:`numeric_window` of many features, ``(reference_sorted, edges, finite,
    n_reference)`` each, equal to it feature by feature (the same floats). ``sums``: each
    reference's :func:`centred_sums`, kept by the caller (computed here otherwise), or a
    function of the feature's index giving them (asked only for features not stacked).
    ``stacks``: groups of features (indices into ``features``, in the stack's row order) whose
    references a :class:`ReferenceStack` holds; the features of a group whose windows have one
    length (≥ 2, float64) are computed together by :func:`stacked_stats`.

    Shared too is the KS p-value: every feature's p-value that is not an exact lattice
    count comes from one vectorised evaluation
    (:func:`~driftline.detectors.ks.ks_pvalues_fast`), where one call per feature cost more
    than the feature's sort, merge and statistics together."""
    done: list[tuple[np.ndarray, float, float] | None] = [None] * len(features)
    for stack, members in stacks:
        by_len: dict[int, list[int]] = {}
        for row, i in enumerate(members):
            f = features[i][2]
            if f.dtype == np.float64 and f.ndim == 1 and len(f) >= 2:
                by_len.setdefault(len(f), []).append(row)
        for rows in by_len.values():
            if len(rows) < 2:
                continue
            ids = [members[r] for r in rows]
            got = stacked_stats(stack, np.asarray(rows),
                                np.stack([features[i][2] for i in ids]))
            for i, st in zip(ids, got, strict=True):
                done[i] = st
    stats = [st if st is not None else _numeric_stats(
                 r, e, f, None if sums is None else sums(i) if callable(sums) else sums[i])
             for i, (st, (r, e, f, _)) in enumerate(zip(done, features, strict=True))]
    todo = [i for i, (_, d, _) in enumerate(stats) if d == d]
    pvals = ks_pvalues_fast([stats[i][1] for i in todo],
                            [reference_size(len(features[i][0]), features[i][3]) for i in todo],
                            [len(features[i][2]) for i in todo], approximate=approximate)
    out = [NumericWindow(c, d, d, wass) for c, d, wass in stats]
    for i, (d, p) in zip(todo, pvals, strict=True):
        out[i] = NumericWindow(out[i].counts, d, p, out[i].wasserstein)
    return out


def _numeric_stats(reference_sorted: np.ndarray, edges: np.ndarray, finite: np.ndarray,
                   csum: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """Bin counts, raw KS statistic and Wasserstein-1 (NaN statistics for an empty side): the
    compiled kernel's (:mod:`~driftline.engine.window_native`) when it is built and takes the
    inputs (float64 arrays), else :func:`_numeric_stats_numpy`'s; the same floats."""
    stats = window_native.kernel()
    if stats is not None:
        s = np.sort(finite)
        if s.dtype == np.float64 and s.ndim == 1:  # float32 computes in float32 below
            try:
                counts = np.empty(len(edges) + 1, dtype=np.intp)
                d, wass = stats(s, reference_sorted,
                                centred_sums(reference_sorted) if csum is None else csum,
                                edges, None, counts)
            except (TypeError, ValueError):  # inputs it does not take: numpy takes anything
                pass
            else:
                return counts, d[0], wass[0]
    return _numeric_stats_numpy(reference_sorted, edges, finite, csum)


def _numeric_stats_numpy(reference_sorted: np.ndarray, edges: np.ndarray, finite: np.ndarray,
                         csum: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """:func:`_numeric_stats` in numpy: the fallback, and the reference the compiled kernel is
    held to bit for bit (tests/test_window_native.py)."""
    s = np.sort(finite)
    w = len(s)
    counts = bin_counts_sorted(s, edges)
    n = len(reference_sorted)
    if w == 0 or n == 0:
        return counts, float("nan"), float("nan")
    at_right = rank_right(reference_sorted, s)
    at_left = _left_from_right(reference_sorted, s, at_right)
    # KS: the expressions of detectors.ks.ks_statistic_sorted, so D is bit-identical (each
    # quotient made once and the differences in place: at 10k values each temporary costs)
    grid = _window_grid(w, n)
    right_n = at_right / n
    left_n = right_n if at_left is at_right else at_left / n
    d_plus = float(np.subtract(left_n, grid.before).max())
    new = s[1:] != s[:-1]
    if new.all():  # no ties in the window: every value ends its own run (the same floats)
        at_cur = np.subtract(grid.after, right_n, out=right_n)
    else:
        ends = np.flatnonzero(np.concatenate([new, [True]])) + 1
        at_cur = np.repeat(ends, np.diff(np.concatenate([[0], ends]))) / w
        at_cur -= right_n
    d_minus = float(at_cur.max())
    return counts, max(d_plus, d_minus, 0.0), _wasserstein(reference_sorted, s, at_right,
                                                           at_left, csum)


#: Numeric features with one summary size are computed up to this many at a time as one
#: ``k × w`` stack (:func:`stacked_stats`): at a 1000-value window a feature's statistics are
#: ≈ 40 numpy calls of 1000 values each, whose fixed cost is most of their time; a stack makes
#: them one call each. Larger stacks gain little more and their temporaries (``k × w`` each)
#: leave the cache.
STACK = 8


@dataclass(frozen=True, eq=False)
class ReferenceStack:
    """The references of ``k`` numeric features with one summary size ``n`` and one number of
    bin edges, laid out once per monitor for :func:`stacked_stats`, so that a gather from every
    row's reference is one ``take`` of one flat index array:

    * ``below``: each summary behind a −∞, ``k × (n+1)`` (``below[r, i]`` is the value just
      below rank ``i``; −∞ for rank 0, which no finite value equals);
    * ``sums``: their :func:`centred_sums`, ``k × (n+1)`` too, so both share the index."""

    below: np.ndarray
    edges: np.ndarray
    sums: np.ndarray
    mu: np.ndarray
    """``summary[n // 2]`` per row, as a column: the centre of :func:`centred_sums`."""
    _at_q: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, refs: Sequence[np.ndarray], edges: Sequence[np.ndarray]) -> ReferenceStack:
        """From sorted, finite summaries of one size ``n ≥ 1`` and edges of one length."""
        k, n = len(refs), len(refs[0])
        if n < 1 or any(len(r) != n for r in refs):
            raise ValueError("a reference stack needs summaries of one size of at least 1")
        below = np.empty((k, n + 1))
        below[:, 0] = -np.inf
        sums = np.empty((k, n + 1))
        for i, r in enumerate(refs):
            below[i, 1:] = r
            sums[i] = centred_sums(r)
        e = np.stack([np.asarray(a, dtype=np.float64) for a in edges])
        return cls(below, e, sums, below[:, 1 + n // 2].copy()[:, None])

    @property
    def n(self) -> int:
        return int(self.below.shape[1]) - 1

    @cached_property
    def summaries(self) -> np.ndarray:
        """The summaries, ``k × n`` (a view of :attr:`below`: strided rows, no copy)."""
        return self.below[:, 1:]

    def summary(self, row: int) -> np.ndarray:
        """Row ``row``'s sorted summary (a view)."""
        return self.below[row, 1:]

    def at_q(self, w: int) -> np.ndarray:
        """``summary[:, rank − 1]`` for the Wasserstein crossing ranks of a ``w``-value window
        (:class:`_Grid`): the same for every window of that length."""
        got = self._at_q.get(w)
        if got is None:
            got = self.below[:, _window_grid(w, self.n).rank]
            got.flags.writeable = False
            if len(self._at_q) >= 4:  # window lengths recur; a few are kept
                self._at_q.clear()
            self._at_q[w] = got
        return got


def stacked_stats(stack: ReferenceStack, rows: np.ndarray,
                  values: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
    """:func:`_numeric_stats` of the stack's features ``rows`` on the windows ``values`` (one
    row each, ``len(rows) × w``, finite, ``w ≥ 2``), the same floats feature by feature
    (:func:`stacked_arrays`, one tuple per row)."""
    counts, d, wass = stacked_arrays(stack, rows, values)
    return [(counts[i], x, y) for i, (x, y) in enumerate(zip(d, wass, strict=True))]


def stacked_arrays(stack: ReferenceStack, rows: np.ndarray,
                   values: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """:func:`stacked_stats` as ``(bin counts, len(rows) × bins; KS statistics; Wasserstein
    distances)``: the window's caller takes PSI and Jensen–Shannon of the counts as they are.

    The compiled kernel's (:mod:`~driftline.engine.window_native`: the rows sorted in one numpy
    call, then one pass of C each) when it is built, else :func:`_stacked_arrays_numpy`'s; the
    same floats."""
    stats = window_native.kernel()
    if stats is not None:
        s = np.sort(values, axis=1)
        counts = np.empty((len(s), stack.edges.shape[1] + 1), dtype=np.intp)
        try:
            d, wass = stats(s, stack.summaries, stack.sums, stack.edges, rows, counts)
        except (TypeError, ValueError):  # inputs it does not take: numpy takes anything
            pass
        else:
            return counts, d, wass
    return _stacked_arrays_numpy(stack, rows, values)


def _stacked_arrays_numpy(stack: ReferenceStack, rows: np.ndarray,
                          values: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """:func:`stacked_arrays` in numpy: the fallback, and the reference the compiled kernel is
    held to bit for bit.

    Every element is the same expression of the same operands as in :func:`_numeric_stats`
    and :func:`_wasserstein` (products and sums of two operands commute exactly in IEEE
    arithmetic; the order of evaluation is kept), and a row's maximum and sum reduce that row
    alone, in the same pairwise order as a 1-D sum of it (tested). Two selections are written
    more cheaply with the same result: the crossing point ``q`` is ``ref[J−1]`` clipped to the
    stretch ``[a, b]`` (it lies below ``a`` exactly when ``J ≤ lo`` and at or above ``b``
    exactly when ``J > hi``), and its count is ``J`` clipped to ``[lo, max(lo, hi)]``.
    Per row are only the binary searches (each needs its row's reference); the merge, when
    the window is too large for searches (:data:`MERGE_RATIO`), is one stable argsort of all
    rows."""
    k, w = values.shape
    n = stack.n
    whole = k == len(stack.below)
    ids = rows.tolist()
    s = np.sort(values, axis=1)
    # PSI bins: #{window < e} per edge (bin_counts_sorted), one search per row
    below = np.empty((k, stack.edges.shape[1] + 2), dtype=np.intp)
    below[:, 0] = 0
    below[:, -1] = w
    for i, r in enumerate(ids):
        below[i, 1:-1] = s[i].searchsorted(stack.edges[r], side="left")
    counts = np.diff(below, axis=1)
    if w * MERGE_RATIO <= n:
        at_right = np.empty((k, w), dtype=np.intp)
        for i, r in enumerate(ids):
            at_right[i] = stack.summary(r).searchsorted(s[i], side="right")
    else:  # rank_right's merge, every row in one stable argsort
        refs = stack.below[:, 1:] if whole else stack.below[rows, 1:]
        order = np.argsort(np.concatenate([refs, s], axis=1), axis=1, kind="stable")
        at_right = np.nonzero(order >= n)[1].reshape(k, w)
        at_right -= np.arange(w)
    # one flat index into below and sums: row r's rank R at r·(n+1) + R
    base = (rows * (n + 1))[:, None]
    flat = at_right + base
    # _left_from_right: only values equal to a reference point (ref[R−1] == v) differ
    tied = stack.below.take(flat) == s
    at_left = at_right
    if tied.any():
        at_left = at_right.copy()
        for i in np.flatnonzero(tied.any(axis=1)).tolist():
            at_left[i] = _left_from_right(stack.summary(ids[i]), s[i], at_right[i])
    grid = _window_grid(w, n)
    right_n = at_right / n
    left_n = right_n if at_left is at_right else at_left / n
    left_n = left_n - grid.before
    d_plus = left_n.max(axis=1).tolist()
    new = s[:, 1:] != s[:, :-1]
    plain = new.all(axis=1)
    simple = bool(plain.all())
    if simple:
        at_cur = np.subtract(grid.after, right_n, out=right_n)
    else:
        at_cur = np.empty((k, w))
        at_cur[:] = grid.after
        for i in np.flatnonzero(~plain).tolist():
            ends = np.flatnonzero(np.concatenate([new[i], [True]])) + 1
            at_cur[i] = np.repeat(ends, np.diff(np.concatenate([[0], ends]))) / w
        at_cur -= right_n
    d_minus = at_cur.max(axis=1).tolist()
    # _wasserstein, row by row in one pass
    mu = stack.mu if whole else stack.mu[rows]
    g = s - mu
    g *= at_right
    g -= stack.sums.take(flat)
    a, b = s[:, :-1], s[:, 1:]
    lo, hi = at_right[:, :-1], at_left[:, 1:]
    # with no ties in the window hi ≥ lo, so max(lo, hi) is hi
    cnt = np.minimum(np.maximum(grid.rank, lo), hi if simple else np.maximum(hi, lo))
    at_q = stack.at_q(w)
    q = np.minimum(np.maximum(a, at_q if whole else at_q[rows]), b)
    gq = q - mu
    gq *= cnt
    cnt += base
    gq -= stack.sums.take(cnt)
    mid = _stretches(g, gq, a, b, q, grid.cn)
    top = at_right[:, -1]
    ends = base[:, 0]
    tail = stack.sums.take(ends + n) - stack.sums.take(ends + top)
    tail -= (n - top) * (s[:, -1] - mu[:, 0])
    wass = mid.sum(axis=1)
    wass += g[:, 0]
    wass += tail
    wass /= n
    return (counts, [max(dp, dm, 0.0) for dp, dm in zip(d_plus, d_minus, strict=True)],
            wass.tolist())


@dataclass(frozen=True)
class _Grid:
    """What a window of ``w`` values against ``n`` reference values always needs: the KS
    statistic's ``k/w`` and ``(k+1)/w``, and the Wasserstein crossing ranks of each
    ``c = (k+1)/w``. Window sizes recur (every window of a sidecar has ``windows.records``
    values unless some are missing), so these are made once per ``(w, n)``."""

    before: np.ndarray
    after: np.ndarray
    cn: np.ndarray
    """``n·c`` for ``c = (k+1)/w``, ``k = 0..w−2``."""
    rank: np.ndarray
    """``ceil(n·c)``: the first reference rank whose ECDF value reaches ``c``."""


@lru_cache(maxsize=16)  # ≤ 16 × 4 × 8·w bytes: 5 MiB at w = 10 000
def _window_grid(w: int, n: int) -> _Grid:
    t = np.arange(1, w, dtype=np.int64) * n
    arrays = (np.arange(w) / w, np.arange(1, w + 1) / w, t / w, (t + w - 1) // w)
    for a in arrays:
        a.flags.writeable = False
    return _Grid(*arrays)


def _left_from_right(ref: np.ndarray, s: np.ndarray, at_right: np.ndarray) -> np.ndarray:
    """``#{ref < v}`` from ``#{ref <= v}``: the two differ only for values equal to a reference
    point, and those come in runs of equal values, so one binary search per distinct tied value
    replaces a second full merge (continuous data: no search at all)."""
    # at_right == 0 clips to ref[0], which is then > the value, so never equal
    tied = np.flatnonzero(ref.take(at_right - 1, mode="clip") == s)
    if tied.size == 0:
        return at_right
    left = at_right.copy()
    v = s[tied]
    head = np.flatnonzero(np.concatenate([[True], v[1:] != v[:-1]]))
    starts = np.searchsorted(ref, v[head], side="left")
    left[tied] = np.repeat(starts, np.diff(np.append(head, len(v))))
    return left


def centred_sums(reference_sorted: np.ndarray) -> np.ndarray:
    """``[0, cumsum(ref − μ)]`` with ``μ`` the middle reference value: what :func:`_wasserstein`
    needs of the reference, computed once per monitor (a cumulative sum is sequential,
    ≈ 30 µs per 5000 values — more than the rest of the distance at a 1000-value window)."""
    ref = np.asarray(reference_sorted, dtype=np.float64)
    out = np.empty(len(ref) + 1)
    out[0] = 0.0
    if len(ref):
        np.cumsum(ref - float(ref[len(ref) // 2]), out=out[1:])
    return out


def _wasserstein(ref: np.ndarray, s: np.ndarray, at_right: np.ndarray,
                 at_left: np.ndarray, csum: np.ndarray | None = None) -> float:
    """Wasserstein-1, ``∫ |F_ref − F_cur| dx``, in ``O(w)`` from the window's ranks and one
    cumulative sum of the reference (no merged sequence of ``n + w`` values: a 1000-value window
    against a 20 000-value summary cost 0.7 ms that way, the rest of the feature 0.2 ms).

    Between consecutive window values ``a = s_k ≤ x < b = s_{k+1}`` the window ECDF is the
    constant ``c = (k+1)/w`` and the reference ECDF rises from ``A/n`` (``A = #{ref ≤ a}``)
    through the reference values inside; it crosses ``c`` at most once, at the reference value
    ``q = ref[J−1]`` with ``J = ceil((k+1)·n/w)`` (integer arithmetic, so the side of ``c`` is
    exact). On each side the integrand has one sign, and ``∫ #{ref ≤ x} dx`` over a stretch is
    ``#{ref ≤ u}·(v − u) + Σ_{u < ref_i < v} (v − ref_i)``, the sum from the cumulative sum.
    The tails (below the first window value, above the last) are such sums too. Lengths are
    differences of the data themselves; only the sums go through the cumulative sum, centred
    on a middle reference value, so the rounding error is ≈ w·ε·(spread + |offset|) — a
    relative error ≈ 1e-12 on standardised data (tests: ≤ 1e-12 against scipy's merge, 1e-9
    against ``scipy.stats.wasserstein_distance``)."""
    n, w = len(ref), len(s)
    mu = float(ref[n // 2])
    if csum is None:
        csum = centred_sums(ref)
    # G(x) = n·∫_{-∞}^x F_ref = Σ_{ref_i ≤ x} (x − ref_i) = cnt·(x − μ) − csum[cnt], any cnt
    # between #{ref < x} and #{ref ≤ x} (tied values add 0). Each line below is the same
    # operation on the same operands as the definition's expression (a product of two
    # operands commutes exactly), written in place: a 10k-value window's temporaries cost
    # more than its arithmetic.
    g = s - mu
    g *= at_right                                   # at_right · (s − μ)
    g -= csum.take(at_right)
    a, b = s[:-1], s[1:]
    lo, hi = at_right[:-1], at_left[1:]
    grid = _window_grid(w, n)
    j = grid.rank                                    # rank where F_ref reaches c = (k+1)/w
    # where F_ref − c changes sign: ref[j−1] inside the stretch, else one of its ends
    # (j ≥ 1 always, and j − 1 ≤ n − 1). ref[j−1] lies at or below a exactly when j ≤ lo,
    # and at or above b exactly when j > hi, so clipping it to [a, b] picks the same point
    # as ``where(j <= lo, a, where(j > hi, b, ref[j − 1]))``; its count is j clipped to
    # [lo, max(lo, hi)] (with no window value on a reference point hi ≥ lo).
    cnt = np.maximum(j, lo)
    np.minimum(cnt, hi if at_left is at_right else np.maximum(hi, lo), out=cnt)
    q = ref.take(j - 1)
    np.maximum(q, a, out=q)
    np.minimum(q, b, out=q)
    gq = q - mu
    gq *= cnt                                       # cnt · (q − μ)
    gq -= csum.take(cnt)
    mid = _stretches(g, gq, a, b, q, grid.cn)
    top = int(at_right[-1])
    tail = float(csum[n] - csum[top]) - (n - top) * (float(s[-1]) - mu)
    return (float(np.sum(mid)) + float(g[0]) + tail) / n


def _stretches(g: np.ndarray, gq: np.ndarray, a: np.ndarray, b: np.ndarray, q: np.ndarray,
               cn: np.ndarray) -> np.ndarray:
    """``n·∫_a^b |F_ref − c|`` of each stretch between consecutive window values (last axis):
    ``h(a) + h(b) − 2h(q)`` with ``h(x) = G(x) − n·c·x``, i.e.
    ``g[:-1] + g[1:] − 2.0·gq − cn·((a − q) + (b − q))`` evaluated left to right, in place
    (``gq`` is overwritten). One feature (:func:`_wasserstein`) or a stack of them
    (:func:`stacked_stats`): the same operations, so the same floats."""
    mid = g[..., :-1] + g[..., 1:]
    gq *= 2.0
    mid -= gq
    span = a - q
    span += b - q
    span *= cn
    mid -= span
    return mid
