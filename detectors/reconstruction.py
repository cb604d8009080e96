"""Multivariate drift by PCA data reconstruction error (NannyML's method, numpy only).

Univariate tests miss joint changes that keep every marginal intact (a correlation that flips
sign, say). A PCA fitted on the standardised reference captures the reference's correlation
structure; rows whose structure differs are reconstructed badly from the top components, so the
mean reconstruction error of a window rises.

The conventions follow NannyML's ``DataReconstructionDriftCalculator``:

* missing values imputed first: numeric features by the reference mean, categorical ones by the
  reference's most frequent category;
* categorical features frequency-encoded (each category becomes its share of the reference);
* every column standardised with the reference mean and population standard deviation
  (``ddof=0``, a zero deviation scaled by 1 as scikit-learn's ``StandardScaler`` does);
* the fewest principal components whose cumulative explained variance *exceeds* 0.65
  (scikit-learn's ``n_components=0.65`` rule);
* the per-row error is the Euclidean norm of standardised row minus its reconstruction, and a
  window's value is the mean over its rows;
* the threshold band is the mean ± 3 standard deviations (``ddof=0``) of the errors of
  consecutive reference chunks of the window's size; the lower threshold is clipped at 0.

Everything here is pure numpy. Fitting uses mergeable sums (:class:`MomentSums`), so reference
data is streamed and partial fits from several readers add up.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2000, 2)) @ np.array([[1.0, 0.9], [0.0, 0.45]])
>>> sums = MomentSums.empty(2); sums.update(x)
>>> model = fit_pca(sums)
>>> model.n_components
1
>>> float(row_errors(model, x).mean()) < float(row_errors(model, x * [1, -1]).mean())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Share of the variance the kept components must exceed (NannyML's default ``n_components``).
EXPLAINED_VARIANCE = 0.65
#: Width of the threshold band in standard deviations of the reference chunk errors.
THRESHOLD_STDS = 3.0
#: Fewer reference chunks of the window's size than this give too unsteady a spread.
MIN_CHUNKS = 10
#: Rows per block of :meth:`ErrorMap.errors` (a block's temporaries: 512 × d floats).
BLOCK_ROWS = 512


@dataclass
class MomentSums:
    """Count, sum and cross-product sums of rows, shifted by ``shift`` for numerical accuracy.

    Two partial sums with the same shift merge by addition, so a reference can be streamed in
    batches (or by several readers) and fitted once at the end.
    """

    shift: np.ndarray
    n: int
    total: np.ndarray
    cross: np.ndarray

    @classmethod
    def empty(cls, d: int, shift: np.ndarray | None = None) -> MomentSums:
        c = np.zeros(d) if shift is None else np.asarray(shift, dtype=np.float64)
        return cls(c, 0, np.zeros(d), np.zeros((d, d)))

    def update(self, rows: np.ndarray) -> None:
        """Add finite rows (imputed and encoded already)."""
        z = np.asarray(rows, dtype=np.float64) - self.shift
        self.n += len(z)
        self.total += z.sum(axis=0)
        self.cross += z.T @ z

    def merge(self, other: MomentSums) -> MomentSums:
        """The sums of both parts' rows, about this part's shift (``other``'s re-centred when
        its shift differs, as when each part shifts by its own first row)."""
        if not np.array_equal(self.shift, other.shift):
            other = other.shifted(self.shift)
        return MomentSums(self.shift, self.n + other.n, self.total + other.total,
                          self.cross + other.cross)

    def shifted(self, shift: np.ndarray) -> MomentSums:
        """The same sums about ``shift``: with ``d = old - new``, ``Σ(z + d) = total + n·d`` and
        ``Σ(z + d)(z + d)ᵀ = cross + d·totalᵀ + total·dᵀ + n·d·dᵀ``."""
        new = np.asarray(shift, dtype=np.float64)
        d = self.shift - new
        return MomentSums(new, self.n, self.total + self.n * d,
                          self.cross + np.outer(d, self.total) + np.outer(self.total, d)
                          + self.n * np.outer(d, d))

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population covariance (``ddof=0``)."""
        if self.n == 0:
            raise ValueError("no rows")
        m = self.total / self.n
        cov = self.cross / self.n - np.outer(m, m)
        return m + self.shift, (cov + cov.T) / 2


@dataclass(frozen=True)
class PCAModel:
    """Standardisation and kept components; ``components`` is ``(d, k)`` with orthonormal
    columns, ``explained`` the explained-variance ratio of every component (``d`` values)."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])


def components_for(explained: np.ndarray, share: float = EXPLAINED_VARIANCE) -> int:
    """scikit-learn's rule for a float ``n_components``: the fewest components whose cumulative
    explained-variance ratio is strictly greater than ``share`` (capped at the dimension)."""
    cum = np.cumsum(explained)
    return min(len(explained), int(np.searchsorted(cum, share, side="right")) + 1)


def fit_pca(sums: MomentSums, share: float = EXPLAINED_VARIANCE) -> PCAModel:
    """PCA of the standardised rows summed in ``sums`` (the correlation matrix's eigenvectors)."""
    mean, cov = sums.mean_cov()
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    corr = cov / np.outer(scale, scale)
    values, vectors = np.linalg.eigh(corr)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    vectors = vectors[:, order]
    total = values.sum()
    explained = values / total if total > 0 else np.zeros_like(values)
    k = components_for(explained, share)
    # a fixed sign per component (largest loading positive) so the same data gives the same file
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    return PCAModel(mean, scale, vectors[:, :k], explained)


def row_errors(model: PCAModel, rows: np.ndarray) -> np.ndarray:
    """Per-row reconstruction error ``||z - z P Pᵀ||`` of standardised rows ``z``."""
    z = (np.asarray(rows, dtype=np.float64) - model.mean) / model.scale
    p = model.components
    resid = z - (z @ p) @ p.T
    return np.sqrt(np.einsum("ij,ij->i", resid, resid))


@dataclass(frozen=True)
class ErrorMap:
    """:func:`row_errors` as one product per window: the residual of standardised rows is
    ``z - z P Pᵀ = z (I - P Pᵀ)`` and ``z = (x - mean) / scale``, so with
    ``A = diag(1 / scale) (I - P Pᵀ)`` the residual of raw rows ``x`` is ``(x - mean) A``: one
    ``(n, d) @ (d, d)`` matmul, instead of standardising, projecting and reconstructing
    (``(n, d) @ (d, k)`` twice and three more ``(n, d)`` temporaries). The mean is subtracted
    before the product, as the definition does: folded into it, a feature far from zero in its
    own units (a year, say) would cancel digits. Equal to :func:`row_errors` within rounding
    (tested ≤ 1e-12 of the row's size)."""

    mean: np.ndarray
    a: np.ndarray

    @classmethod
    def of(cls, model: PCAModel) -> ErrorMap:
        p = np.asarray(model.components, dtype=np.float64)
        m = np.eye(p.shape[0]) - p @ p.T
        return cls(np.asarray(model.mean, dtype=np.float64),
                   np.ascontiguousarray(m / np.asarray(model.scale)[:, None]))

    def errors(self, rows: np.ndarray) -> np.ndarray:
        """Per-row reconstruction error of raw (imputed, encoded) rows, :data:`BLOCK_ROWS` rows
        at a time: each row's product is the same, and the block's temporaries stay in cache.
        Whole (10k × 25), the product cost 5.3–5.9 ms of CPU per window, mostly the page
        faults of fresh multi-megabyte temporaries and OpenBLAS waking its threads for them;
        in blocks of 512, 1.2–1.6 ms."""
        x = np.asarray(rows, dtype=np.float64)
        out = np.empty(len(x))
        for start in range(0, len(x), BLOCK_ROWS):
            resid = (x[start:start + BLOCK_ROWS] - self.mean) @ self.a
            out[start:start + BLOCK_ROWS] = np.sqrt(np.einsum("ij,ij->i", resid, resid))
        return out


def threshold_band(block_errors: np.ndarray, block_counts: np.ndarray,
                   window: int) -> tuple[float, float]:
    """(lower, upper) band for windows of ``window`` rows from consecutive reference blocks.

    The reference's error sums are kept per block of ``b`` consecutive rows; chunks of
    ``round(window / b)`` blocks reproduce reference chunks of the window's size, and the band is
    their mean ± 3 std (``ddof=0``). An incomplete last chunk is left out. With fewer than
    :data:`MIN_CHUNKS` chunks, the band falls back to the spread of a window mean around the
    reference mean for independent rows: ``σ·sqrt(1/window + 1/N)`` with ``σ`` the rows'
    spread and ``N`` the reference rows (the reference mean is itself an estimate).

    That spread is also the floor of the chunks' std: ten to a few dozen chunks estimate a std
    within ±10–25 %, and a band drawn from an unlucky low estimate flagged 14 % of null
    10k-row windows against a 100k-row reference (chunk std 0.0052 where the rows' spread gives
    0.0081). Chunks that vary more than independent rows would (a drifting or seasonal
    reference) still widen the band.
    """
    sums = np.asarray(block_errors, dtype=np.float64) * np.asarray(block_counts, dtype=np.float64)
    counts = np.asarray(block_counts, dtype=np.float64)
    if not len(counts) or counts.sum() == 0:
        return math.nan, math.nan
    size = counts.sum() / len(counts)
    per = max(1, round(window / size))
    chunks = len(counts) // per
    blocks = sums / np.where(counts > 0, counts, 1)
    mean = float(sums.sum() / counts.sum())
    # the window's mean and the reference's are both estimates: the spread of their
    # difference is σ·√(1/window + 1/reference rows), not σ/√window (that alone flagged
    # 2 % of null 10k-row windows against a 50k-row reference, and more as windows grow)
    var_row = float(np.average((blocks - mean) ** 2, weights=counts) * size)
    sd = math.sqrt(var_row * (1.0 / window + 1.0 / float(counts.sum())))
    mu = mean
    if chunks >= MIN_CHUNKS:
        s = sums[: chunks * per].reshape(chunks, per).sum(axis=1)
        c = counts[: chunks * per].reshape(chunks, per).sum(axis=1)
        values = s / c
        mu, sd = float(values.mean()), max(sd, float(values.std()))
    return max(0.0, mu - THRESHOLD_STDS * sd), mu + THRESHOLD_STDS * sd


__all__ = ["EXPLAINED_VARIANCE", "ErrorMap", "MomentSums", "PCAModel", "components_for", "fit_pca",
           "row_errors", "threshold_band"]
