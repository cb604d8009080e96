"""``ChangeDetector``: Bayesian online change-point detection (Adams & MacKay 2007).

Why this method. A change detector that pages people must (a) rarely fire on a stable stream
whatever its distribution, (b) say *when* the change began, not only when it was noticed, and
(c) need no tuning per series. Bayesian online change-point detection keeps a posterior over the
*run length* — how many values ago the current regime began — so (b) comes for free: the
estimated start of the new regime is the start of the most probable recent run. (a) and (c)
come from a robust model whose scale is learnt from the stream itself.

Model, chosen automatically:

* **0/1 streams** (every valid value so far is 0 or 1, e.g. error indicators): Beta–Bernoulli,
  prior ``Beta(1, 1)`` for each new regime.
* **anything else**: a change in *level*. Each regime has an unknown mean (Normal prior centred
  on the value before it, standard deviation ``prior_scale · σ``) and Normal noise of scale
  ``σ``, where ``σ`` is the larger of the stream's short-range noise (mean absolute first
  difference × √π / 2, σ for i.i.d. Normal noise, insensitive to level shifts) and the
  standard deviation of the current regime so far (so a wandering series such as a price is not
  cut at every excursion). Values are winsorised at ``clip · σ`` around the median of the 5
  values before them before they enter the model: one outlier can move the posterior by a
  bounded amount, which is what keeps skewed and heavy-tailed streams (exponential, Pareto) from
  firing, while a real step is let through after 3 values.
  The first value that is not 0/1 switches a stream to this model (the posterior restarts).
  Each new regime is one of two kinds, averaged over (Bayesian model averaging per run length):
  a *level* (weight ``1 − slope_weight``) or a *level + slope* ``c + β·τ`` (weight
  ``slope_weight`` = 0.01, ``τ`` the position in the regime), a Bayesian linear regression with
  the level's prior on ``c`` and ``β ~ N(0, (slope_scale · σ)²)`` (``slope_scale`` 0.03: a trend
  moving the level by about the level prior's 3σ over 100 values). Why: with a level model
  alone, a trending series (a KPI growing with traffic, an employment series in decline,
  passengers growing year on year) is a staircase of false changes; the slope kind lets a trend
  be one regime, and a change of trend is a change. Its posterior needs only the regime's
  ``n``, ``Σx`` and ``Σt·x``, so it costs a few more array operations on the same grid. The
  weight is small because a long level+slope regime can also tilt to absorb a small step (at
  0.25 the median delay for a 0.5 SD shift grew from 114 to 128 values, past ADWIN's 119).

Constant hazard ``1/λ`` per value with ``λ = expected_run = 1000``. A new regime may begin at
each boundary of a ``block`` of 16 valid values (probability ``1 − (1 − 1/λ)^16``); the change
point is then placed within a block either side of that boundary, at the split of the recent
values into two regimes that fits best. Blocks are what make a batch cheap: every value of a
batch is computed at once on a (value, hypothesis) grid, and only the normalisation and pruning
at each boundary run in a Python loop (CPU per value in docs/statistics.md). That is the numpy
implementation; when the compiled core is built (``native/changecore.c``, module
``change_native``) the same recursion runs value by value in C (≈ 0.35 µs a value against
2.2–4.5 µs, batch or not), the numpy code the fallback and the reference the tests hold it to.
The posterior is pruned at each boundary: run lengths with probability below ``1e-6`` of the
best are dropped and at most ``max_runs`` (24) kept, so a value costs O(max_runs) = O(1) time
and the memory is bounded. ``block=1`` is the exact per-value recursion of Adams & MacKay.

Decision. ``c`` is the start of the current regime (0 at first, then the last change). After
each value, ``P_new`` is the posterior probability that the regime began more than ``min_gap``
(10) values after ``c``. A change is reported when ``P_new > threshold`` (0.999) and the most
probable of those runs holds at least ``min_gap`` values. A detection whose estimated change
point falls within ``min_gap`` of the previous one is the same change seen again from a later
block boundary (a regime that began mid-block is first fitted by the run that started before
it): it moves ``c`` on but is not reported again.

Indices count every value passed in, invalid ones (NaN, ±inf) included; invalid values are
skipped and counted. ``drift_detected`` follows river's convention: whether the last valid value
fed triggered a detection. A batch gives bit for bit the detections, change points and state of
the same values fed one at a time (running sums are carried, never recomputed). Deterministic:
no randomness anywhere. The defaults are the same for every stream; figures in
docs/statistics.md.

>>> rng = np.random.default_rng(0)
>>> det = ChangeDetector()
>>> found = det.update(np.r_[rng.normal(0, 1, 300), rng.normal(3, 1, 300)])
>>> len(found), det.change_point
(1, 300)
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, compress, repeat

import numpy as np

from driftline.detectors import change_native
from driftline.detectors.streaming import StreamCounts

__all__ = ["ChangeDetector", "ChangeSettings"]

_SQRT_PI_2 = math.sqrt(math.pi) / 2.0
_LOG_2PI = math.log(2.0 * math.pi)
#: values handled by one vectorised pass of the per-value recurrences (bounds wasted work when a
#: detection forces a recomputation of what follows it)
_SPAN = 256
#: values are winsorised around the median of this many values before them
_CENTRE_OF = 5


def predictive(n: np.ndarray, sx: np.ndarray, stx: np.ndarray, mu0: np.ndarray, kk: float,
               kb: float, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive mean and variance (in units of σ², less the noise's own 1) of the next value
    of a regime that has ``n`` values with sum ``sx`` and ``Σ τ·x = stx`` (``τ`` = 0, 1, ...).

    Level (``slope`` False): ``x = c``, ``c ~ N(mu0, σ²/kk)``. Level + slope: ``x = c + β·τ``
    with also ``β ~ N(0, σ²/kb)``; the 2×2 posterior precision ``[[kk + n, Στ], [Στ, kb + Στ²]]``
    (Στ and Στ² in closed form from ``n``) solved by hand, evaluated at ``τ = n``."""
    lm, ls = _level(n, sx, mu0, kk)
    sm, ss = _level_slope(n, sx, stx, mu0, kk, kb)
    return np.where(slope, sm, lm), np.where(slope, ss, ls)


def _level(n: np.ndarray, sx: np.ndarray, mu0: np.ndarray,
           kk: float) -> tuple[np.ndarray, np.ndarray]:
    a = kk + n
    return (mu0 * kk + sx) / a, 1.0 / a


def _level_slope(n: np.ndarray, sx: np.ndarray, stx: np.ndarray, mu0: np.ndarray, kk: float,
                 kb: float) -> tuple[np.ndarray, np.ndarray]:
    a = kk + n
    r1 = mu0 * kk + sx
    a12 = n * (n - 1.0) / 2.0
    a22 = kb + (n - 1.0) * n * (2.0 * n - 1.0) / 6.0
    det = a * a22 - a12 * a12
    return ((a22 * r1 - a12 * stx + n * (a * stx - a12 * r1)) / det,
            (a22 - 2.0 * n * a12 + n * n * a) / det)


def _pairwise_sum(v: list[float]) -> float:
    """``float(np.array(v).sum())`` in plain floats: numpy's pairwise sum adds a contiguous array
    of up to 128 values in eight interleaved partial sums, fewer than 8 in order."""
    n = len(v)
    if n < 8:
        total = 0.0
        for a in v:
            total += a
        return total
    if n > 128:
        return float(np.array(v).sum())
    lim = n - n % 8
    r = v[:8]
    for i in range(8, lim, 8):
        r = list(map(operator.add, r, v[i:i + 8]))
    r0, r1, r2, r3, r4, r5, r6, r7 = r
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for a in v[lim:]:
        total += a
    return total


@functools.lru_cache(maxsize=8)
def _steps(k: int) -> np.ndarray:
    """0, 1, ..., k - 1 as floats (a read-only constant)."""
    out = np.arange(k, dtype=np.float64)
    out.flags.writeable = False
    return out


def _shift(v: Iterable[float], lse: float, d: float) -> list[float]:
    """``[a - lse + d for a in v]``, iterated in C."""
    return list(map(operator.add, map(operator.sub, v, repeat(lse)), repeat(d)))


@functools.lru_cache(maxsize=16)
def _newborn(binary: bool, log_kinds: tuple[float, float], block: int) -> tuple[np.ndarray, ...]:
    """The hypotheses born at one boundary: (has a slope, log prior weight), one Beta–Bernoulli
    run on a 0/1 stream, else a level run and a level + slope run; then for the blocks of one
    span, the birth block (from 1) and kind of each newborn, in column order. Constants, built
    once (read-only) and sliced."""
    if binary:
        kinds, prior = np.zeros(1, dtype=bool), np.zeros(1)
    else:
        kinds, prior = np.array([False, True]), np.array(log_kinds)
    spans = _SPAN // block + 2
    out = (kinds, prior, np.repeat(np.arange(1, spans + 1), kinds.size), np.tile(kinds, spans))
    for a in out:
        a.flags.writeable = False
    return out


@dataclass(frozen=True)
class ChangeSettings:
    """The detector's constants (module docs). The defaults need no tuning per stream."""

    expected_run: float = 1000.0
    threshold: float = 0.999
    min_gap: int = 10
    max_runs: int = 24
    block: int = 16
    prune: float = 1e-6
    clip: float = 3.0
    prior_scale: float = 3.0
    slope_weight: float = 0.01
    slope_scale: float = 0.03

    def __post_init__(self) -> None:
        if not self.expected_run > 1:
            raise ValueError(f"expected_run must be > 1, got {self.expected_run}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_gap < 1 or self.max_runs < 3 or self.block < 1:
            raise ValueError("min_gap and block must be ≥ 1 and max_runs ≥ 3")
        if not 0 < self.slope_weight < 1 or not self.slope_scale > 0:
            raise ValueError("slope_weight must be in (0, 1) and slope_scale > 0")


class ChangeDetector(StreamCounts):
    """Online change points of one stream; feed values with :meth:`update`.

    ``update`` returns the positions (within the batch) of the values that triggered a
    detection; :attr:`change_points` holds the estimated start (global index) of each new regime.
    A batch gives exactly what the same values fed one at a time give (same detections, change
    points and state, bit for bit): every path runs the same vectorised arithmetic, and running
    sums are carried across calls rather than recomputed.

    The work runs in the compiled core (``native/changecore.c``, ``change_native``) when it is
    built, else in numpy; ``native`` False (or None with ``DRIFTLINE_NATIVE=0``) forces numpy.
    The two give the same detections and change points; their float state agrees to the last
    bit but for ``exp``/``log`` (the core uses the C library's, numpy may use its own SIMD ones,
    an ulp apart: equal within 1e-12 relative). Within each path a batch is bit for bit the
    values one at a time.
    """

    def __init__(self, settings: ChangeSettings | None = None, *,
                 native: bool | None = None) -> None:
        self.settings = s = settings or ChangeSettings()
        log_1mh = math.log1p(-1.0 / s.expected_run)
        # a new regime may begin at each block boundary, with the probability that at least one
        # change happened among the block's values under the per-value hazard 1/expected_run
        self._log_q = math.log(-math.expm1(s.block * log_1mh))
        self._log_1mq = s.block * log_1mh
        self._log_prune = math.log(s.prune)
        self._log_odds = math.log(s.threshold / (1.0 - s.threshold))
        self._kk = 1.0 / s.prior_scale ** 2
        self._kb = 1.0 / s.slope_scale ** 2
        # prior weights of the two regime models born at each boundary (level, level + slope)
        self._log_kinds = (math.log1p(-s.slope_weight), math.log(s.slope_weight))
        self._keep = 2 * s.max_runs * s.block + 4 * s.block
        self._core = change_native.make_core(self, native)
        self.reset()

    # --- public ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: a fresh detector with zero counters."""
        if self._core is not None:
            self._core.reset()
            return
        self._index = 0           # values passed in (valid and invalid)
        self._n = 0               # valid values
        self._n_invalid = 0
        self._binary = True
        self._last = math.nan     # last (winsorised) valid value
        self._ads = 0.0           # sum of |first differences|
        self._segment_start = 0
        self._last_detected = False
        self._change_points: list[int] = []
        self._recent = np.empty(0)                 # the last raw values (winsorising centre)
        self._buf_x = np.empty(0)                  # recent winsorised values ...
        self._buf_i = np.empty(0, dtype=np.int64)  # ... and their indices
        self._clear_runs()

    def update(self, values: np.ndarray | float) -> list[int]:
        """Feed values in order; return the batch positions where a change was detected."""
        core = self._core
        if core is not None:
            if type(values) is float:
                return core.update(values)
            if not (type(values) is np.ndarray and values.dtype == np.float64
                    and values.flags.c_contiguous):
                values = np.ascontiguousarray(values, dtype=np.float64)
            return core.update(values)
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
        ok = np.isfinite(arr)
        where = np.flatnonzero(ok)
        xs = arr[where]
        gidx = where + self._index
        found: list[int] = []
        other = np.flatnonzero((xs != 0.0) & (xs != 1.0)) if self._binary else None
        p = 0
        while p < xs.size:
            end = xs.size
            if self._binary and other is not None and other.size:
                first = int(other[np.searchsorted(other, p)]) if other[-1] >= p else xs.size
                if first == p:
                    self._binary = False
                    self._clear_runs()
                else:
                    end = first
            end = min(end, p + _SPAN)
            used, hit = self._run(xs[p:end], gidx[p:end])
            if hit:
                found.append(int(where[p + used - 1]))
            p += used
        if xs.size:
            self._last_detected = bool(found) and found[-1] == int(where[-1])
        self._n_invalid += int(arr.size - xs.size)
        self._index += int(arr.size)
        return found

    @property
    def change_point(self) -> int | None:
        """Estimated index where the latest new regime began (None before the first change)."""
        if self._core is not None:
            return self._core.change_point
        return self._change_points[-1] if self._change_points else None

    @property
    def change_points(self) -> list[int]:
        """Estimated starts of every change found so far (the list is bounded by the stream)."""
        if self._core is not None:
            return self._core.change_points
        return list(self._change_points)

    @property
    def detections(self) -> int:
        """Changes detected since construction or the last reset."""
        if self._core is not None:
            return self._core.detections
        return len(self._change_points)

    @property
    def n(self) -> int:
        """Valid values fed."""
        return self._core.n if self._core is not None else self._n

    @property
    def n_invalid(self) -> int:
        """Missing values (NaN, ±inf, None) skipped."""
        core = self._core
        return core.n_invalid if core is not None else self._n_invalid

    @property
    def drift_detected(self) -> bool:
        """Whether the last valid value fed triggered a detection (river's convention)."""
        core = self._core
        return core.last_detected if core is not None else self._last_detected

    @property
    def native(self) -> bool:
        """Whether the compiled core runs this detector (else the numpy implementation)."""
        return self._core is not None

    def state(self) -> dict[str, object]:
        """Every piece of state in the numpy implementation's attribute names, whichever path
        runs (the tests compare the two; a copy, never a view)."""
        if self._core is not None:
            return change_native.state(self._core)
        keep = set(change_native.ARRAYS) | {
            "_index", "_n", "_n_invalid", "_binary", "_last", "_ads", "_segment_start",
            "_last_detected", "_change_points", "_bl", "_bs", "_bq", "_bt", "_seg"}
        return {k: (v.copy() if isinstance(v, np.ndarray) else
                    list(v) if isinstance(v, list) else v)
                for k, v in vars(self).items() if k in keep}

    def __getstate__(self) -> dict[str, object]:
        """Picklable on both paths: the core's state goes as plain lists."""
        out = dict(vars(self))
        core = out.pop("_core")
        out["_native_state"] = core.state() if core is not None else None
        return out

    def __setstate__(self, state: dict[str, object]) -> None:
        """A pickled core comes back as a core where the extension is built, else as the same
        state on the numpy path (the names are the numpy implementation's)."""
        state = dict(state)
        native = state.pop("_native_state", None)
        self.__dict__.update(state)
        self._core = None
        if isinstance(native, dict):
            self._core = change_native.make_core(self, True)
            if self._core is not None:
                self._core.load(native)
            else:
                self.__dict__.update(change_native.as_arrays(native))

    def run_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(start index, posterior probability) of every run length kept (its level and
        level + slope hypotheses summed)."""
        if self._core is not None:
            starts_l, j_l = self._core.runs()
            start, j = np.array(starts_l, dtype=np.int64), np.array(j_l, dtype=np.float64)
        else:
            start, j = self._start, self._J0 + self._C
        if j.size == 0:
            return start.copy(), np.empty(0)
        w = np.exp(j - j.max())
        starts, at = np.unique(start, return_inverse=True)
        return starts, np.bincount(at, weights=w / w.sum())

    @property
    def model(self) -> str:
        """``bernoulli`` while every valid value has been 0 or 1, else ``level`` (regimes of
        a level or a level + slope)."""
        binary = self._core.binary if self._core is not None else self._binary
        return "bernoulli" if binary else "level"

    # --- internals -------------------------------------------------------------------------------

    def _clear_runs(self) -> None:
        # One entry per run-length hypothesis: start index, log weight (unnormalised within a
        # block), and the count, sum and sum of squares of its values up to the current block's
        # start, plus its prior mean (level model). ``_bl/_bs/_bq`` are the count, sum and sum of
        # squares of the current block's values so far (shared by every hypothesis).
        self._start = np.empty(0, dtype=np.int64)
        self._J0 = np.empty(0)  # log weight at the current block's start
        self._C = np.empty(0)   # plus the log predictive sum within the block so far
        self._L0 = np.empty(0)
        self._S0 = np.empty(0)
        self._Q0 = np.empty(0)
        self._mu0 = np.empty(0)
        self._T0 = np.empty(0)   # sum of t·x (t: valid-value count), for the slope
        self._slope = np.empty(0, dtype=bool)  # True: a level + slope hypothesis
        self._t1 = np.empty(0)   # t of the regime's first value
        self._bl, self._bs, self._bq, self._bt = 0, 0.0, 0.0, 0.0
        self._seg = (0.0, 0.0, 0.0)  # values, sum, sum of squares of the current regime

    def _recurrences(self, raw: np.ndarray) -> tuple[np.ndarray, ...]:
        """Winsorised values, the noise variance after each and the running sums, vectorised.

        Each value is clipped at ``clip`` scales around the median of the 5 raw values before
        it, the scale computed from the values before it. Computed assuming nothing is clipped;
        the first value that needs clipping is clipped and what follows it is recomputed
        (prefixes are unchanged: the sums are sequential cumulative sums from the carried
        totals, so the result is the same floats as a pass value by value)."""
        x = raw.copy()
        m = x.size
        centre = self._centres(raw)
        sn, ss, sq = self._seg
        last = self._last
        # the three running sums (|first differences|, values, squares) as cumulative sums of
        # their increments, one row each; column 0 holds the carried totals
        inc = np.empty((3, m + 1))
        inc[:, 0] = self._ads, ss, sq
        d = inc[0, 1:]
        np.subtract(x[1:], x[:-1], out=d[1:])
        np.abs(d[1:], out=d[1:])
        d[0] = 0.0 if math.isnan(last) else abs(x[0] - last)
        inc[1, 1:] = x
        np.multiply(x, x, out=inc[2, 1:])
        sums = np.cumsum(inc, axis=1)
        steps = np.arange(m + 1, dtype=np.float64)
        counts = (self._n + steps, sn + steps)
        scale = np.empty(m + 1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self._scale_and_clip(x, scale, centre, inc, sums, counts)
        return x, scale[1:] ** 2, sums[0], sums[1], sums[2]

    def _scale_and_clip(self, x: np.ndarray, scale: np.ndarray, centre: np.ndarray,
                        inc: np.ndarray, sums: np.ndarray,
                        counts: tuple[np.ndarray, np.ndarray]) -> None:
        """Scales, then (level model) each winsorised value and what follows it, in order."""
        m, last = x.size, self._last
        self._scales(scale, 0, x, sums, counts)
        if not self._binary:
            clip = self.settings.clip
            at = 0
            while at < m:
                band = clip * scale[at:m]
                lo, hi = centre[at:m] - band, centre[at:m] + band
                xs = x[at:m]
                j = np.flatnonzero((xs < lo) | (xs > hi))  # False where there is no centre (NaN)
                if not j.size:
                    break
                i = int(j[0])
                k = at + i
                x[k] = v = min(max(x[k], lo[i]), hi[i])
                # the increments value k enters, then the sums and scales after it
                inc[0, k + 1] = 0.0 if (k == 0 and math.isnan(last)) else abs(
                    v - (x[k - 1] if k else last))
                inc[1, k + 1], inc[2, k + 1] = v, v * v
                if k + 1 < m:
                    inc[0, k + 2] = abs(x[k + 1] - v)
                inc[:, k] = sums[:, k]
                np.cumsum(inc[:, k:], axis=1, out=sums[:, k:])
                self._scales(scale, k + 1, x, sums, counts)
                at = k + 1

    def _centres(self, raw: np.ndarray) -> np.ndarray:
        """The median of the 5 raw values before each value (NaN while there are fewer): the
        exact middle value, by min/max (median of 3 of the fifth value and the larger of the
        pair minima and the smaller of the pair maxima)."""
        m = raw.size
        hist = np.concatenate((self._recent, raw))
        cnt = hist.size - _CENTRE_OF
        out = np.full(m, np.nan)
        if cnt > 0:
            a, b, c, d, e = (hist[q:q + cnt] for q in range(_CENTRE_OF))
            mn, mx = np.minimum, np.maximum
            f, g = mx(mn(a, b), mn(c, d)), mn(mx(a, b), mx(c, d))
            out[m - cnt:] = mx(mn(e, f), mn(mx(e, f), g))
        return out

    def _scales(self, out: np.ndarray, lo: int, x: np.ndarray, sums: np.ndarray,
                counts: tuple[np.ndarray, np.ndarray]) -> None:
        """The noise scale after each value, positions ``lo`` to the end, into ``out``: the
        larger of the short-range noise and the current regime's standard deviation."""
        a, ss, sq = sums[0, lo:], sums[1, lo:], sums[2, lo:]
        n, sn = counts[0][lo:], counts[1][lo:]
        # (called under np.errstate: 0/0 where a count is 0 or 1 is replaced by np.where)
        # the sums and counts only grow, so their first position tells which case holds
        if n[0] > 1 and a[0] > 0:
            noise = a / (n - 1) * _SQRT_PI_2
        else:
            last = np.concatenate(([self._last], x))[lo:]  # the value before each
            noise = np.where((n > 1) & (a > 0), a / (n - 1) * _SQRT_PI_2,
                             np.where(np.isfinite(last) & (last != 0), np.abs(last) * 0.1, 1.0))
        mean = ss / sn
        if sn[0] > 1:
            var = np.maximum(sq / sn - mean * mean, 0.0) * sn / (sn - 1)
        else:
            var = np.where(sn > 1, np.maximum(sq / sn - mean * mean, 0.0) * sn / (sn - 1), 0.0)
        np.maximum(noise, np.sqrt(var), out=out[lo:])

    def _log_predictive(self, lp: np.ndarray, pos: np.ndarray | None, qb: np.ndarray,
                        qc: np.ndarray, has_slope: bool | None, rows: tuple[np.ndarray, ...],
                        length0: np.ndarray, sum0: np.ndarray, sumt0: np.ndarray,
                        mu0: np.ndarray, t1: np.ndarray) -> None:
        """Log predictive density of each value of block ``qb`` under hypothesis ``qc`` into
        ``lp[pos]`` (None: every row of ``lp``) (``has_slope`` None: Beta–Bernoulli; False:
        level; True: level + slope)."""
        if qb.size == 0:
            return
        excl, texcl, xrows, s2rows = rows
        k = excl.shape[1]
        at = qb * length0.shape[1] + qc  # (flat positions in the (block, hypothesis) arrays)
        length = length0.ravel().take(at)[:, None] + _steps(k)
        sx = sum0.ravel().take(at)[:, None] + excl.take(qb, axis=0)
        xv = xrows.take(qb, axis=0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if has_slope is None:
                out = (np.log(np.where(xv == 1.0, sx + 1.0, length - sx + 1.0))
                       - np.log(length + 2.0))
            else:
                # level: x = c; level + slope: x = c + β·τ (τ: position in the regime).
                # Priors c ~ N(mu0, (prior_scale·σ)²), β ~ N(0, (slope_scale·σ)²), noise σ;
                # the posterior of (c, β) from the regime's n, Σx and Στx in closed form.
                m0 = mu0.take(qc)[:, None]
                if has_slope:
                    stx = (sumt0.ravel().take(at)[:, None] + texcl.take(qb, axis=0)
                           - t1.take(qc)[:, None] * sx)
                    mean, spread = _level_slope(length, sx, stx, m0, self._kk, self._kb)
                else:
                    mean, spread = _level(length, sx, m0, self._kk)
                # -0.5·(log 2π + log var) - (x - mean)² / (2·var), var = σ²·(1 + spread),
                # in place (the same operations: each is commutative or its operands' negation)
                var = s2rows.take(qb, axis=0)
                spread += 1.0
                var *= spread
                mean -= xv
                np.square(mean, out=mean)
                out = np.log(var)
                out += _LOG_2PI
                out *= -0.5
                var *= 2.0
                mean /= var
                out -= mean
        if pos is None:
            lp[...] = out
        else:
            lp[pos] = out

    def _extend(self, col: int, first: int, full: np.ndarray, end_rows: list[list[float]],
                rows: tuple[np.ndarray, ...], length0: np.ndarray, sum0: np.ndarray,
                sumt0: np.ndarray, mu0: np.ndarray, t1: np.ndarray) -> None:
        """The running log predictive of level + slope hypothesis ``col`` on blocks ``first``
        on (it survived the boundary after its birth block), into the grid and the block ends."""
        nb, k = full.shape[0], full.shape[2]
        qb = np.arange(first, nb)
        lp = np.empty((qb.size, k))
        self._log_predictive(lp, None, qb, np.full(qb.size, col), True, rows, length0, sum0,
                             sumt0, mu0, t1)
        part = lp.cumsum(axis=1)
        full[first:, col] = part
        for row, end in zip(end_rows[first:], part[:, k - 1].tolist(), strict=False):
            row[col] = end

    def _newborn(self) -> tuple[np.ndarray, np.ndarray]:
        """(has a slope, log prior weight) of the hypotheses born at one boundary: one
        Beta–Bernoulli run on a 0/1 stream, else a level run and a level + slope run."""
        kinds, prior = _newborn(self._binary, self._log_kinds, self.settings.block)[:2]
        return kinds, prior

    def _prune(self, j_end: list[float], alive: list[int],
               born: int) -> tuple[list[int], list[float]]:
        """At a block boundary: the hypotheses that survive (their columns, from ``alive``) and
        their normalised log weights with the no-change factor applied (``j_end`` holds the
        log weights of the ``alive`` hypotheses, in birth order; ``born`` are about to be
        added, so at most ``max_runs - born`` are kept).

        Plain floats, not numpy: at most ``max_runs`` values, where a numpy call costs more than
        the arithmetic. The same IEEE operations in the same order as numpy's (``exp`` and
        ``log`` from the C library, as numpy's are on builds without AVX-512; the sum in
        numpy's pairwise order), so the weights are the same floats."""
        top = max(j_end)
        n = len(j_end)
        lse = top + math.log(_pairwise_sum(list(map(math.exp, map(operator.sub, j_end,
                                                                    repeat(top))))))
        floor = top + self._log_prune
        room = self.settings.max_runs - born
        d = self._log_1mq
        cut = floor  # survivors: the values ≥ cut (all when None)
        if n > room:
            ranked = sorted(j_end)
            if ranked[n - room - 1] >= floor:
                # more than ``room`` clear the floor: the best ``room`` of them
                cut = ranked[n - room]
                if ranked[n - room - 1] == cut:  # a tie across the cut: numpy's choice
                    mask = [False] * n
                    for i in np.argpartition(np.array(j_end), -room)[-room:].tolist():
                        mask[i] = True
                    return list(compress(alive, mask)), _shift(compress(j_end, mask), lse, d)
            elif ranked[0] >= floor:
                return alive, _shift(j_end, lse, d)
        elif min(j_end) >= floor:
            return alive, _shift(j_end, lse, d)
        mask = list(map(cut.__le__, j_end))
        return list(compress(alive, mask)), _shift(compress(j_end, mask), lse, d)

    def _begin(self, first: int, mu0: float, t1: float) -> None:
        """The first block of a stream (or of its model): one regime of each kind begins at
        index ``first`` (``t1``: its valid-value count). Every later boundary is in ``_run``."""
        slope, prior = self._newborn()
        nw = slope.size
        self._J0 = prior.copy()
        self._start = np.full(nw, first, dtype=np.int64)
        self._L0, self._S0, self._Q0, self._T0 = (np.zeros(nw) for _ in range(4))
        self._mu0 = np.full(nw, mu0)
        self._slope = slope.copy()
        self._t1 = np.full(nw, t1)
        self._C = np.zeros(nw)
        self._bl, self._bs, self._bq, self._bt = 0, 0.0, 0.0, 0.0

    def _run(self, raw: np.ndarray, gidx: np.ndarray) -> tuple[int, bool]:
        """Feed valid values (one model) until the end or the first detection, inclusive.

        Returns how many values were used and whether the last of them triggered a detection.
        All blocks the values touch are computed at once: the log predictive of every value on
        the (block, hypothesis) pairs that exist (a hypothesis born here from its birth block
        on), gathered into a (block, row in block, hypothesis) grid; only the normalisation and
        pruning at each block boundary run in a loop, in plain floats. The first rows hold the
        current block's carried sums, so a block split across calls adds up exactly as a whole
        one. Every step is the same floating-point operations in the same order as the
        implementation it replaced (kept in the tests as the reference it must equal)."""
        s = self.settings
        k = s.block
        x, sig2, ads, segs, segq = self._recurrences(raw)
        m = x.size
        tpos = self._n + np.arange(m, dtype=np.float64)  # valid-value count of each value
        if self._J0.size == 0:
            self._begin(int(gidx[0]), self._last if not math.isnan(self._last) else float(x[0]),
                        float(self._n))
        # a full carried block (``bl == k``) is the grid's block 0, all rows carried: its
        # boundary is the loop's first, in plain floats like every other
        bl, h = self._bl, self._J0.size
        nb = (bl + m + k - 1) // k
        pad = nb * k
        real = slice(bl, bl + m)
        # the values, their squares and t·x, one row each (the carried block sums in the row
        # before the first value), and their running sums within each block
        g = np.zeros((3, pad))
        xg = g[0]
        xg[real] = x
        np.multiply(xg, xg, out=g[1])
        g[2, real] = tpos * x
        s2g = np.ones(pad)
        s2g[real] = sig2
        if bl:
            g[:, bl - 1] = self._bs, self._bq, self._bt
        inc3 = g.reshape(3, nb, k).cumsum(axis=2)
        incl, qincl, tincl = inc3
        ex3 = np.zeros((2, nb, k))
        ex3[:, :, 1:] = inc3[::2, :, :-1]
        excl, texcl = ex3
        # hypotheses: the current ones, then those born at the start of each later block
        nslope, nprior = self._newborn()
        nw = nslope.size
        tiles = _newborn(self._binary, self._log_kinds, k)
        births = tiles[2][:nw * (nb - 1)]
        first_row = births * k - bl  # position in x of each newborn's first value
        cols = h + births.size
        born = np.concatenate((np.zeros(h, dtype=np.int64), births))
        start = np.concatenate((self._start, gidx[first_row]))
        # (the value before each newborn's first: the carried last value for one born at x[0])
        mu0 = np.concatenate((self._mu0, x[first_row - 1]))
        if bl == k:
            mu0[h:h + nw] = self._last
        slope = np.concatenate((self._slope, tiles[3][:nw * (nb - 1)]))
        t1 = np.concatenate((self._t1, tpos[first_row]))
        blk = np.arange(nb)[:, None]
        alive_b = blk >= born[None, :]                      # (nb, cols): exists in block b
        length0 = np.where(alive_b, (blk - born[None, :]) * float(k), 0.0)
        length0[:, :h] += self._L0[None, :]
        steps = np.zeros((3, nb, cols))
        steps[:, 0, :h] = self._S0, self._Q0, self._T0
        steps[:, 1:] = np.where(blk[1:] > born[None, :], inc3[:, :-1, -1:], 0.0)
        sum0, sq0, sumt0 = steps.cumsum(axis=1)
        # only the (block, hypothesis) pairs that exist (a hypothesis from its birth block on),
        # each kind of regime on its own pairs; the log predictive of every value of the pair's
        # block, then its running sum within the block. A level + slope hypothesis born here
        # gets its birth block only: nearly all (≈ 98 %) are pruned at the next boundary, and
        # the loop below computes the rest of the few that survive it (``extend``).
        need = alive_b
        lazy = not self._binary and nb > 1
        carried = bl == k  # block 0 is all carried: only its sum (_C) enters, no predictive
        if lazy or carried:
            need = alive_b.copy()
            if lazy:
                need[:, h + 1::nw] = alive_b[:, h + 1::nw] & (blk == born[None, h + 1::nw])
            if carried:
                need[0] = False
        pb, pc = np.nonzero(need)
        lp = np.empty((pb.size, k))
        shape = (nb, k)
        rows = (excl, texcl, xg.reshape(shape), s2g.reshape(shape))
        if self._binary:
            self._log_predictive(lp, None, pb, pc, None, rows, length0, sum0, sumt0, mu0, t1)
        else:
            on_slope = slope[pc]
            for pos, has_slope in ((np.flatnonzero(~on_slope), False),
                                   (np.flatnonzero(on_slope), True)):
                self._log_predictive(lp, pos, pb[pos], pc[pos], has_slope, rows, length0, sum0,
                                     sumt0, mu0, t1)
        # (pairs in block order: the first h are block 0's, then block by block)
        if bl and not carried:  # the rows of the current block already fed: their sum is _C
            lp[:h, :bl] = 0.0
            lp[:h, bl - 1] = self._C
        # (the last block's rows past the values hold the padding's predictive: never read, as
        # the last block has no boundary and the decision and commit read real rows only)
        full = np.zeros((nb, cols, k))
        full[pb, pc] = lp.cumsum(axis=1)
        if carried:
            full[0, :h, k - 1] = self._C
        csum = full.transpose(0, 2, 1)  # (block, row in block, hypothesis)
        j0 = np.full((nb, cols), -np.inf)
        j0[0, :h] = self._J0
        ends = csum[:, k - 1, :]
        # the boundaries in order, in plain floats (``_prune``); j0 is written once at the end
        born_w = (nprior + self._log_q).tolist()
        end_rows = ends[:-1].tolist()
        alive = list(range(h))  # the hypotheses of block b - 1 (in column, i.e. birth, order)
        cur = self._J0.tolist()
        alive_rows: list[list[int]] = []
        val_rows: list[list[float]] = []
        for b in range(1, nb):
            row = end_rows[b - 1]
            alive, cur = self._prune(list(map(operator.add, cur, map(row.__getitem__, alive))),
                                     alive, nw)
            # (columns in birth order: a newborn that survived is the last one alive)
            if lazy and b > 1 and alive and alive[-1] == h + (b - 2) * nw + 1:
                # the level + slope hypothesis born at block b - 1 survived: its later blocks
                self._extend(h + (b - 2) * nw + 1, b, full, end_rows, rows, length0,
                             sum0, sumt0, mu0, t1)
            c0 = h + (b - 1) * nw
            alive = [*alive, *range(c0, c0 + nw)]
            cur += born_w
            alive_rows.append(alive)
            val_rows.append(cur)
        if alive_rows:
            sizes = [len(r) for r in alive_rows]
            at = np.fromiter(chain.from_iterable(alive_rows), np.intp, sum(sizes))
            at += np.repeat(np.arange(1, nb) * cols, sizes)
            j0.flat[at] = np.fromiter(chain.from_iterable(val_rows), np.float64, at.size)
        jg = (j0[:, None, :] + csum).reshape(pad, cols)[real]
        # decision on every row: has the regime most likely begun well after the current one?
        used, hit, best = m, False, 0
        # columns are in birth order, so the runs that began well after the current regime's
        # start (the fresh ones) are the columns from f0 on
        f0 = int(np.searchsorted(start, self._segment_start + s.min_gap, side="right"))
        fresh = np.arange(f0, cols)
        if fresh.size:
            # screen: P_new ≤ threshold wherever even every fresh run at the best fresh run's
            # weight could not outweigh the best older one (the full sum runs only where it might)
            best_fresh = jg[:, f0:].max(axis=1)
            best_old = jg[:, :f0].max(axis=1) if f0 else np.full(m, -np.inf)
            maybe = np.flatnonzero(best_fresh + math.log(fresh.size)
                                   > best_old + self._log_odds)
            pf = np.zeros(m)
            if maybe.size:
                sub = jg[maybe]
                w = np.exp(sub - sub.max(axis=1, keepdims=True))
                pf[maybe] = w[:, fresh].sum(axis=1) / w.sum(axis=1)
            for i in np.flatnonzero(pf > s.threshold).tolist():
                b = int(fresh[int(np.argmax(jg[i, fresh]))])
                if int(gidx[i]) - int(start[b]) + 1 >= s.min_gap:
                    used, hit, best = i + 1, True, b
                    break
        # commit the state after the last value used
        row = bl + used - 1
        b, r = divmod(row, k)
        live = np.flatnonzero(np.isfinite(j0[b]))
        self._start, self._mu0, self._slope = start[live], mu0[live], slope[live]
        self._t1 = t1[live]
        self._J0, self._C = j0[b, live], csum[b, r, live]
        self._L0, self._S0, self._Q0 = length0[b, live], sum0[b, live], sq0[b, live]
        self._T0 = sumt0[b, live]
        self._bl, self._bs, self._bq = r + 1, float(incl[b, r]), float(qincl[b, r])
        self._bt = float(tincl[b, r])
        self._n += used
        self._recent = np.concatenate((self._recent, raw[:used]))[-_CENTRE_OF:]
        self._ads = float(ads[used])
        self._last = float(x[used - 1])
        self._seg = (self._seg[0] + used, float(segs[used]), float(segq[used]))
        self._remember(x[:used], gidx[:used])
        if hit:
            old = max(self._segment_start, self._change_points[-1] if self._change_points else 0)
            self._segment_start = int(start[best])
            cp = self._refine(old, int(start[best]), int(gidx[used - 1]))
            self._seg = (float(length0[b, best] + self._bl), float(sum0[b, best] + self._bs),
                         float(sq0[b, best] + self._bq))
            if self._change_points and cp - self._change_points[-1] < s.min_gap:
                # the same change seen again from a later block boundary: not a new one
                return used, False
            self._change_points.append(cp)
        return used, hit

    def _remember(self, x: np.ndarray, gidx: np.ndarray) -> None:
        self._buf_x = np.concatenate((self._buf_x, x))[-self._keep:]
        self._buf_i = np.concatenate((self._buf_i, gidx))[-self._keep:]

    def _refine(self, old: int, start: int, now: int) -> int:
        """The change point near a block boundary ``start``: the split of the recent values into
        two regimes (before / from it) that fits best, searched within one block either side."""
        k = self.settings.block
        if k == 1:
            return start
        lo = max(old, start - (now - start + 1) - k)
        sel = self._buf_i >= lo
        xi, x = self._buf_i[sel], self._buf_x[sel]
        cand = np.flatnonzero((xi > max(old, start - k)) & (xi < start + k) & (xi <= now))
        if x.size < 2 or cand.size == 0:
            return start
        c1 = np.concatenate(([0.0], np.cumsum(x)))
        c2 = np.concatenate(([0.0], np.cumsum(x * x)))
        n = x.size
        j = cand.astype(np.float64)
        left_n, right_n = j, n - j
        left_s, right_s = c1[cand], c1[-1] - c1[cand]
        if self._binary:
            def nll(cnt: np.ndarray, ones: np.ndarray) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    p = np.where(cnt > 0, ones / np.maximum(cnt, 1.0), 0.5)
                    return -(np.where(ones > 0, ones * np.log(np.where(p > 0, p, 1.0)), 0.0)
                             + np.where(cnt - ones > 0,
                                        (cnt - ones) * np.log(np.where(p < 1, 1 - p, 1.0)), 0.0))
            cost = nll(left_n, left_s) + nll(right_n, right_s)
        else:
            left_q, right_q = c2[cand], c2[-1] - c2[cand]
            cost = ((left_q - left_s ** 2 / np.maximum(left_n, 1.0))
                    + (right_q - right_s ** 2 / np.maximum(right_n, 1.0)))
        order = np.lexsort((np.abs(xi[cand] - start), cost))
        return int(xi[cand[order[0]]])
