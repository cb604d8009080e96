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
  cut at every excursion). Values are winsorised at ``clip · σ`` around the current regime's
  mean before they enter the model: one outlier can move the posterior by a bounded amount,
  which is what keeps skewed and heavy-tailed streams (exponential, Pareto) from firing.
  The first value that is not 0/1 switches a stream to this model (the posterior restarts).

Constant hazard ``1/λ`` with ``λ = expected_run = 1000``. The posterior is pruned: run lengths
with probability below ``1e-6`` of the best are dropped and at most ``max_runs`` (200) kept, so a
value costs O(max_runs) = O(1) time and the memory is bounded.

Decision. ``c`` is the start of the current regime (0 at first, then the last change point).
After each value, ``P_new`` is the posterior probability that the regime began more than
``min_gap`` (10) values after ``c``. A change is reported when ``P_new > threshold`` (0.999)
and the most probable of those runs holds at least ``min_gap`` values; its start is the change
point and becomes the new ``c``.

Indices count every value passed in, invalid ones (NaN, ±inf) included; invalid values are
skipped and counted. ``drift_detected`` follows river's convention: whether the last value fed
triggered a detection. Deterministic: no randomness anywhere. The defaults were chosen on
synthetic streams (false alarms on i.i.d. Normal, exponential and Bernoulli streams, delays on
mean and rate shifts) and are the same for every stream; figures in docs/statistics.md.

>>> rng = np.random.default_rng(0)
>>> det = ChangeDetector()
>>> found = det.update(np.r_[rng.normal(0, 1, 300), rng.normal(3, 1, 300)])
>>> len(found), det.change_point
(1, 300)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ChangeDetector", "ChangeSettings"]


@dataclass(frozen=True)
class ChangeSettings:
    """The detector's constants (module docs). The defaults need no tuning per stream."""

    expected_run: float = 1000.0
    threshold: float = 0.999
    min_gap: int = 10
    max_runs: int = 200
    prune: float = 1e-6
    clip: float = 3.0
    prior_scale: float = 3.0

    def __post_init__(self) -> None:
        if not self.expected_run > 1:
            raise ValueError(f"expected_run must be > 1, got {self.expected_run}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_gap < 1 or self.max_runs < 2:
            raise ValueError("min_gap must be ≥ 1 and max_runs ≥ 2")


class ChangeDetector:
    """Online change points of one stream; feed values with :meth:`update`.

    ``update`` returns the positions (within the batch) of the values that triggered a
    detection; :attr:`change_points` holds the estimated start (global index) of each new regime.
    """

    def __init__(self, settings: ChangeSettings | None = None) -> None:
        self.settings = settings or ChangeSettings()
        self._log_h = math.log(1.0 / self.settings.expected_run)
        self._log_1mh = math.log1p(-1.0 / self.settings.expected_run)
        self._log_prune = math.log(self.settings.prune)
        self.reset()

    # --- public ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: a fresh detector with zero counters."""
        self._index = 0           # values passed in (valid and invalid)
        self._n = 0               # valid values
        self._n_invalid = 0
        self._binary = True
        self._last: float | None = None
        self._abs_diff_sum = 0.0
        self._segment_start = 0
        self._last_detected = False
        self._change_points: list[int] = []
        self._clear_runs()

    def update(self, values: np.ndarray | float) -> list[int]:
        """Feed values in order; return the batch positions where a change was detected."""
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
        found: list[int] = []
        for pos, x in enumerate(arr.tolist()):
            if math.isfinite(x):
                if self._step(x):
                    found.append(pos)
            else:
                self._n_invalid += 1
            self._index += 1
        return found

    @property
    def drift_detected(self) -> bool:
        """Whether the last valid value fed triggered a detection (river's convention)."""
        return self._last_detected

    @property
    def change_point(self) -> int | None:
        """Estimated index where the latest new regime began (None before the first change)."""
        return self._change_points[-1] if self._change_points else None

    @property
    def change_points(self) -> list[int]:
        """Estimated starts of every change found so far (the list is bounded by the stream)."""
        return list(self._change_points)

    @property
    def detections(self) -> int:
        """Changes detected since construction or the last reset."""
        return len(self._change_points)

    @property
    def n(self) -> int:
        """Valid values fed."""
        return self._n

    @property
    def n_invalid(self) -> int:
        """Invalid values (NaN, ±inf) skipped."""
        return self._n_invalid

    def run_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(start index, posterior probability) of every run-length hypothesis kept."""
        return self._starts.copy(), np.exp(self._log_post)

    @property
    def model(self) -> str:
        """``bernoulli`` while every valid value has been 0 or 1, else ``level``."""
        return "bernoulli" if self._binary else "level"

    # --- internals -------------------------------------------------------------------------------

    def _clear_runs(self) -> None:
        # One entry per run-length hypothesis: log posterior, start index, values in the run,
        # their sum and sum of squares, and the prior mean of the run (level model).
        self._log_post = np.empty(0)
        self._starts = np.empty(0, dtype=np.int64)
        self._len = np.empty(0)
        self._sum = np.empty(0)
        self._sq = np.empty(0)
        self._mu0 = np.empty(0)
        self._seg = (0.0, 0.0, 0.0)  # values, sum, sum of squares of the current regime

    def _scale(self) -> float:
        if self._n > 1 and self._abs_diff_sum > 0:
            s = self._abs_diff_sum / (self._n - 1) * math.sqrt(math.pi) / 2.0
        elif self._last is not None and self._last != 0:
            s = abs(self._last) * 0.1
        else:
            s = 1.0
        n, tot, sq = self._seg
        if n > 1:
            var = max(sq / n - (tot / n) ** 2, 0.0) * n / (n - 1)
            s = max(s, math.sqrt(var))
        return s

    def _log_pred(self, length: np.ndarray, total: np.ndarray, mu0: np.ndarray, x: float,
                  sig2: float) -> np.ndarray:
        if self._binary:  # Beta(1 + ones, 1 + zeros) predictive
            return np.log((total + 1.0 if x == 1.0 else length - total + 1.0) / (length + 2.0))
        tau2 = self.settings.prior_scale ** 2 * sig2
        prec = 1.0 / tau2 + length / sig2
        mean = (mu0 / tau2 + total / sig2) / prec
        var = sig2 + 1.0 / prec
        return -0.5 * np.log(2.0 * np.pi * var) - (x - mean) ** 2 / (2.0 * var)

    def _step(self, x: float) -> bool:
        s = self.settings
        t = self._index
        if self._binary and x not in (0.0, 1.0):
            self._binary = False
            self._clear_runs()
        scale = self._scale()
        if not self._binary and self._log_post.size:
            i = int(np.argmax(self._log_post))
            m = float(self._sum[i]) / max(float(self._len[i]), 1.0)
            x = min(max(x, m - s.clip * scale), m + s.clip * scale)
        prev = self._last
        if prev is not None:
            self._abs_diff_sum += abs(x - prev)
        self._n += 1
        self._last = x
        n, tot, sq = self._seg
        self._seg = (n + 1.0, tot + x, sq + x * x)
        mu0 = x if prev is None else prev
        if self._log_post.size == 0:
            self._log_post = np.zeros(1)
            self._starts = np.array([t], dtype=np.int64)
            self._len, self._sum = np.ones(1), np.array([x])
            self._sq, self._mu0 = np.array([x * x]), np.array([mu0])
            self._last_detected = False
            return False
        sig2 = self._scale() ** 2  # including this value
        pred = self._log_pred(self._len, self._sum, self._mu0, x, sig2)
        new = self._log_h + float(self._log_pred(np.zeros(1), np.zeros(1), np.array([mu0]), x,
                                                 sig2)[0])
        log_post = np.concatenate(([new], self._log_post + pred + self._log_1mh))
        top = float(log_post.max())
        keep = log_post >= top + self._log_prune
        if np.count_nonzero(keep) > s.max_runs:
            keep = np.zeros(keep.size, dtype=bool)
            keep[np.argpartition(log_post, -s.max_runs)[-s.max_runs:]] = True
        lp = log_post[keep]
        post = np.exp(lp - top)
        norm = float(post.sum())
        post /= norm
        self._log_post = lp - top - math.log(norm)
        self._starts = np.concatenate(([t], self._starts))[keep]
        self._len = np.concatenate(([1.0], self._len + 1.0))[keep]
        self._sum = np.concatenate(([x], self._sum + x))[keep]
        self._sq = np.concatenate(([x * x], self._sq + x * x))[keep]
        self._mu0 = np.concatenate(([mu0], self._mu0))[keep]
        # decision: has the regime most likely begun well after the current one's start?
        detected = False
        fresh = self._starts > self._segment_start + s.min_gap
        if fresh.any():
            p_fresh = post[fresh]
            if float(p_fresh.sum()) > s.threshold:
                best = int(np.flatnonzero(fresh)[int(np.argmax(p_fresh))])
                start = int(self._starts[best])
                if t - start + 1 >= s.min_gap:
                    detected = True
                    self._segment_start = start
                    self._change_points.append(start)
                    self._seg = (float(self._len[best]), float(self._sum[best]),
                                 float(self._sq[best]))
        self._last_detected = detected
        return detected
