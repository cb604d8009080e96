"""Reference quantile ranks: the fleet-wide drift signal (docs/statistics.md).

The rank is a probability-integral transform against the reference: without drift ranks are
uniform on [0, 1], so each bucket of a fixed 0.1 … 1.0 histogram holds 10 %; since the buckets are
the same on every replica, Prometheus adds them up and computes PSI and an approximate KS.

A value that ties no reference point gets the empirical CDF ``F(x) = #{ref ≤ x} / n``. A value
that equals a reference point owns the jump ``[F(x−), F(x)]`` (``F(x−) = #{ref < x} / n``);
giving it ``F(x)`` (the plain ECDF) piles a discrete feature's mass onto a few ranks, so a
5-value integer feature looked drifted with no drift at all. Instead the k-th occurrence
(k = 0, 1, …) of that value gets ``F(x−) + u_k (F(x) − F(x−))`` with ``u_k = vdc(k + 1)``, the
base-2 van der Corput sequence 1/2, 1/4, 3/4, 1/8, 5/8, 3/8, 7/8, … — deterministic (no RNG, no
clock), never on the jump's ends, and low-discrepancy for EVERY run of consecutive occurrences.

Why the occurrence index and not "spread the c equal values of this batch evenly": the exported
histogram is a cumulative counter fed batch by batch, and PromQL reads increases over arbitrary
time ranges. An even spread per batch is exact for one big batch but degenerates to the midpoint
for a batch holding one occurrence (a quiet model, scraped every 15 s), piling the mass again.
Indexed by occurrence, the counts do not depend on how the stream was cut into batches, and
any ``c`` consecutive occurrences put within ``popcount(c + 1) + 1 ≤ log2(c + 1) + 2`` points of
``t·c`` below any fraction ``t`` of the jump (each dyadic block of the sequence is a shifted
grid). Callers that keep counting pass ``seen`` (occurrences so far, per reference position);
without it every call starts at k = 0.

>>> ref = np.array([1.0, 2.0, 3.0, 4.0])
>>> quantile_rank(ref, np.array([0.0, 2.0, 2.5, 9.0])).tolist()
[0.0, 0.375, 0.5, 1.0]
>>> quantile_rank(np.array([0.0, 1, 1, 1, 1, 2, 2, 2]), np.array([1.0, 1, 1, 1])).tolist()
[0.375, 0.25, 0.5, 0.1875]
>>> rank_histogram(np.array([0.0, 0.1, 0.15, 1.0]), [0.1, 0.5]).tolist()
[2, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftline.detectors.binning import finite_mask

__all__ = ["quantile_rank", "quantile_rank_histogram", "rank_edges", "rank_histogram",
           "spread_ranks", "tie_runs", "tie_unit"]

#: ``_REV16[b]`` = the 16 bits of ``b`` mirrored behind the binary point (van der Corput of ``b``):
#: ``vdc(hi·2^16 + lo) = _REV16[lo] + _REV16[hi] / 2^16``, exact in float64.
_REV8 = np.array([int(f"{b:08b}"[::-1], 2) / 256 for b in range(256)])
_REV16 = _REV8[np.arange(65536) & 255] + _REV8[np.arange(65536) >> 8] / 256


def tie_unit(k: np.ndarray, top: int | None = None) -> np.ndarray:
    """Position ``u_k = vdc(k + 1)`` in (0, 1) of the k-th occurrence of a tied value.

    ``vdc`` mirrors the binary digits of an integer behind the binary point (1 → .1, 2 → .01,
    3 → .11): exact dyadic floats, so every caller gets identical bits. ``top`` (optional) is
    an upper bound of ``k + 1``, which saves looking for the largest."""
    m = np.asarray(k, dtype=np.int64) + 1
    if top is None:
        top = int(m.max()) if m.size else 0
    out = _REV16[m & 65535]
    scale = 1.0
    while top >= 65536:
        m = m >> 16
        top >>= 16
        scale /= 65536
        out += _REV16[m & 65535] * scale
    return out


def tie_runs(left_sorted: np.ndarray,
             seen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Occurrence index k of each tied value, given the jump start ``#{ref < x}`` of each in an
    order that keeps equal values together; also each run's first position and length.
    ``seen[left]`` (if given) holds earlier occurrences and is advanced in place."""
    m = len(left_sorted)
    if m == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    new = np.empty(m, dtype=bool)
    new[0] = True
    np.not_equal(left_sorted[1:], left_sorted[:-1], out=new[1:])
    heads = np.flatnonzero(new)
    lengths = np.diff(heads, append=m)
    base = heads
    if seen is not None:
        lh = left_sorted[heads]
        base = heads - seen[lh]
        seen[lh] += lengths
    return np.arange(m) - np.repeat(base, lengths), heads, lengths


def spread_ranks(left: np.ndarray, right: np.ndarray, u: np.ndarray, n: int) -> np.ndarray:
    """Rank at fraction ``u`` (see :func:`tie_unit`) of the jump of a value with
    ``#{ref < x} = left < right = #{ref ≤ x}``.

    The one float expression, shared with :mod:`driftline.engine.kernels` (bit-identical results).
    It stays inside ``[left/n, right/n]`` after rounding: every step is monotone."""
    return (left + u * (right - left)) / n


def quantile_rank(reference_sorted: np.ndarray, values: np.ndarray,
                  seen: np.ndarray | None = None) -> np.ndarray:
    """Reference rank of each value (float64, same length, see the module docstring); NaN where
    the value is missing, so positions still line up. All NaN when the reference is empty.

    Equal values are counted in order of appearance. ``seen`` (int64, one slot per reference
    value, zeros at first) carries the occurrence counts from earlier calls and is updated in
    place: then many small calls give exactly the ranks of one big call."""
    ref = np.asarray(reference_sorted, dtype=np.float64)
    arr = np.asarray(values)
    mask = finite_mask(arr)
    out = np.full(arr.shape, np.nan)
    n = ref.size
    if n == 0:
        return out
    x = arr[mask].astype(np.float64)
    right = np.searchsorted(ref, x, side="right")
    ranks = right / n
    tied = np.flatnonzero(right > 0)
    tied = tied[ref[right[tied] - 1] == x[tied]]
    if tied.size:
        left = np.searchsorted(ref, x[tied], side="left")
        order = np.argsort(left, kind="stable")
        k = np.empty(tied.size, dtype=np.int64)
        k[order] = tie_runs(left[order], seen)[0]
        ranks[tied] = spread_ranks(left, right[tied], tie_unit(k), n)
    out[mask] = ranks
    return out


def rank_histogram(ranks: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Per-bucket counts (int64, ``len(bounds) + 1``) with Prometheus ``le`` semantics.

    Bucket ``i`` holds ``(bounds[i-1], bounds[i]]`` (bucket 0 everything ≤ ``bounds[0]``); the
    last is the overflow (+Inf) bucket. NaN ranks are skipped. These are per-bucket counts, not
    cumulative: the exporter accumulates them.
    """
    b = np.asarray(bounds, dtype=np.float64)
    r = np.asarray(ranks, dtype=np.float64)
    r = r[~np.isnan(r)]
    idx = np.searchsorted(b, r, side="left")
    return np.bincount(idx, minlength=b.size + 1).astype(np.int64, copy=False)


def rank_edges(reference_sorted: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Value thresholds equivalent to rank bounds for values that tie no reference point:
    there ``quantile_rank(x) ≤ bounds[i]`` ⟺ ``x < edges[i]``. (A tied value's rank depends on
    its occurrence index, so it has no value threshold.)

    With ``c = #{ref ≤ x}``, the rank ``c/n ≤ b`` holds exactly for ``c ≤ k`` where ``k`` is the
    largest count whose float ``k/n`` is ≤ ``b`` (found with the same float division that
    :func:`quantile_rank` uses, so edge cases agree bit for bit), and ``c ≤ k`` ⟺ ``x < ref[k]``.
    """
    ref = np.asarray(reference_sorted, dtype=np.float64)
    n = ref.size
    edges = np.full(len(bounds), np.inf)
    if n == 0:
        return edges
    for i, b in enumerate(bounds):
        k = min(max(int(np.floor(b * n)), -1), n)
        while k + 1 <= n and (k + 1) / n <= b:
            k += 1
        while k >= 0 and k / n > b:
            k -= 1
        edges[i] = -np.inf if k < 0 else (np.inf if k >= n else ref[k])
    return edges


def quantile_rank_histogram(reference_sorted: np.ndarray, values: np.ndarray,
                            bounds: Sequence[float], edges: np.ndarray | None = None,
                            seen: np.ndarray | None = None) -> np.ndarray:
    """``rank_histogram(quantile_rank(ref, values, seen), bounds)``.

    ``edges`` is accepted for compatibility and ignored: binning by value thresholds
    (:func:`rank_edges`) cannot place tied values, whose ranks depend on their occurrence index.
    The monitor's fast path is :func:`driftline.engine.kernels.rank_update` (one merge per batch).
    """
    del edges
    if np.asarray(reference_sorted).size == 0:
        return np.zeros(len(bounds) + 1, dtype=np.int64)
    return rank_histogram(quantile_rank(reference_sorted, values, seen), bounds)
