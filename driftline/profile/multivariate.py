"""The multivariate part of a baseline: encoding tabular features into one numeric matrix, and
fitting the PCA reconstruction model (:mod:`driftline.detectors.reconstruction`) on it.

Fitting needs the univariate profile first (the numeric means that impute missing values and the
category shares that encode categoricals), so it reads the reference twice more after the
univariate pass: once for the covariance sums, once for the reference errors per block of rows
(the threshold band). Only the feature columns are read; memory stays bounded (sums of
``d × d`` values, one mean per block, at most :data:`MAX_BLOCKS` blocks).

>>> from driftline.profile.format import CategoricalFeature, NumericFeature
>>> feats = {"x": NumericFeature("x", (), (1.0,), (), True, 3, 0.25, 0.0, 2.0, 1.0, 1.0),
...          "c": CategoricalFeature("c", ("a", "b"), (0.75, 0.25, 0.0), 4, 0.0)}
>>> enc = Encoder.fit(feats)
>>> enc.encode({"x": np.array([2.0, np.nan]), "c": np.array(["b", None], dtype=object)}).tolist()
[[2.0, 0.25], [1.0, 0.75]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from driftline.detectors.reconstruction import MomentSums, PCAModel, fit_pca, row_errors
from driftline.engine.window_stats import CategoricalRef, _cat_ref, category_codes
from driftline.profile.format import (
    CategoricalFeature,
    Feature,
    MultivariateProfile,
    NumericFeature,
    encode_array,
)

if TYPE_CHECKING:  # the monitor imports this module for the Encoder: no Arrow readers there
    from driftline.io.readers import DataFile

#: At most this many reference blocks are kept (block size grows with the reference).
MAX_BLOCKS = 10_000
#: Encoded reference rows kept for the domain classifier of ``driftline analyze``.
SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class Encoder:
    """Imputation and frequency encoding of the tabular features, in ``features`` order."""

    features: tuple[str, ...]
    numeric_impute: dict[str, float]
    #: per categorical feature: reference categories, encoded value per slot, value if missing
    categorical: dict[str, tuple[CategoricalRef, np.ndarray, float]]

    @classmethod
    def fit(cls, features: Mapping[str, Feature]) -> Encoder:
        num: dict[str, float] = {}
        cats: dict[str, tuple[CategoricalRef, np.ndarray, float]] = {}
        for name, f in features.items():
            if isinstance(f, NumericFeature):
                num[name] = f.mean if np.isfinite(f.mean) else 0.0
            else:
                enc, mode = category_encoding(f)
                cats[name] = (_cat_ref(f), enc, float(enc[mode]))
        return cls(tuple(features), num, cats)

    @classmethod
    def from_profile(cls, mv: MultivariateProfile,
                     features: Mapping[str, Feature]) -> Encoder:
        num: dict[str, float] = {}
        cats: dict[str, tuple[CategoricalRef, np.ndarray, float]] = {}
        for i, name in enumerate(mv.features):
            f = features[name]
            if isinstance(f, CategoricalFeature):
                enc = np.asarray(mv.encodings[name], dtype=np.float64)
                cats[name] = (_cat_ref(f), enc, mv.impute[i])
            else:
                num[name] = mv.impute[i]
        return cls(mv.features, num, cats)

    def impute_values(self) -> tuple[float, ...]:
        return tuple(self.numeric_impute[n] if n in self.numeric_impute
                     else self.categorical[n][2]
                     for n in self.features)

    def encode(self, columns: Mapping[str, np.ndarray],
               codes: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """``(n, d)`` float matrix: numeric values (non-finite → mean), categories → share.

        ``codes``: :func:`category_codes` of categorical columns against the profile's own
        categories of that feature, when the caller has them already (a window close computes
        them for its χ² and PSI), used instead of looking every value up again."""
        if not self.features:
            return np.empty((0, 0))
        # written column by column into the matrix (no per-column temporary to stack after,
        # and a column with every value finite is copied as it is)
        out = np.empty((len(columns[self.features[0]]), len(self.features)))
        for j, name in enumerate(self.features):
            values = columns[name]
            if name in self.numeric_impute:
                x = np.asarray(values, dtype=np.float64)
                out[:, j] = x
                bad = ~np.isfinite(x)
                if bad.any():
                    out[bad, j] = self.numeric_impute[name]
            else:
                ref, enc, missing = self.categorical[name]
                known = codes.get(name) if codes is not None else None
                c = known if known is not None else category_codes(values, ref)
                out[:, j] = np.where(c < 0, missing, enc[np.maximum(c, 0)])
        return out


def category_encoding(f: CategoricalFeature) -> tuple[np.ndarray, int]:
    """(encoded value per slot, slot of the most frequent category).

    Shares are of the *imputed* reference, as NannyML's count encoder sees it after its
    most-frequent imputation: the mode also gets the missing rows' share. Categories beyond the
    profile's top-K share the ``__other__`` slot (NannyML encodes each separately)."""
    m = f.missing_ratio if np.isfinite(f.missing_ratio) else 0.0
    shares = f.proportions_array * (1.0 - m)
    k = len(f.categories)
    mode = int(np.argmax(shares[:k])) if k else k
    shares = shares.copy()
    shares[mode] += m
    return shares, mode


def fit_multivariate(files: Sequence[DataFile], features: Mapping[str, Feature],
                     n_rows: int) -> MultivariateProfile | None:
    """The reconstruction model of ``features`` (two more passes over ``files``); None when
    fewer than two features."""
    if len(features) < 2 or n_rows < 2:
        return None
    from driftline.io.readers import iter_batches

    enc = Encoder.fit(features)
    names = list(features)
    sums = MomentParts.empty(enc, offset=0)
    for file in files:
        for batch in iter_batches(file, names):
            sums.update(enc.encode(_numpy_columns(batch, features)))
    models = sums.models(n_rows)
    blocks = BlockErrors.of(n_rows, offset=0)
    for file in files:
        for batch in iter_batches(file, names):
            blocks.update(models, enc.encode(_numpy_columns(batch, features)))
    return multivariate_profile(enc, models[0], blocks)


@dataclass
class MomentParts:
    """Moment sums of all encoded rows and of the rows at even and at odd global positions
    (from ``offset`` on), about the imputation values: the same shift for every part, so parts
    of disjoint row ranges merge by addition."""

    all: MomentSums
    even: MomentSums
    odd: MomentSums
    seen: int

    @classmethod
    def empty(cls, enc: Encoder, offset: int) -> MomentParts:
        d, shift = len(enc.features), np.asarray(enc.impute_values())
        return cls(MomentSums.empty(d, shift), MomentSums.empty(d, shift),
                   MomentSums.empty(d, shift), offset)

    def update(self, x: np.ndarray) -> None:
        even = (np.arange(self.seen, self.seen + len(x)) % 2) == 0
        self.all.update(x)
        self.even.update(x[even])
        self.odd.update(x[~even])
        self.seen += len(x)

    def merge(self, other: MomentParts) -> MomentParts:
        return MomentParts(self.all.merge(other.all), self.even.merge(other.even),
                           self.odd.merge(other.odd), max(self.seen, other.seen))

    def models(self, n_rows: int) -> tuple[PCAModel, PCAModel, PCAModel]:
        """(the model, the one for even rows' errors, the one for odd rows' errors).

        The reference's errors are cross-fitted: a row's error comes from the model fitted on
        the other half of the rows. Errors of the rows a model was fitted on are optimistic
        (the fit follows their noise; with near-equal eigenvalues by O(√(d/N))), so new data
        from the same distribution sat above the band: 7 % of null 100k-row windows against a
        50k-row reference. Too few rows to halve: the in-sample errors."""
        model = fit_pca(self.all)
        if n_rows < 20:
            return model, model, model
        return model, fit_pca(self.odd), fit_pca(self.even)


@dataclass
class BlockErrors:
    """Reference reconstruction errors per block of ``block`` consecutive rows (at most
    :data:`MAX_BLOCKS` blocks) and a stride sample of :data:`SAMPLE_ROWS` encoded rows, for
    the rows from global position ``seen`` on: parts of disjoint, consecutive row ranges merge
    by adding per-block sums (a block cut between parts is completed by the merge) and
    concatenating their samples in row order."""

    block: int
    stride: int
    seen: int
    sums: np.ndarray
    counts: np.ndarray
    sample: list[np.ndarray]

    @classmethod
    def of(cls, n_rows: int, offset: int) -> BlockErrors:
        block = max(1, -(-n_rows // MAX_BLOCKS))
        n_blocks = -(-n_rows // block)
        return cls(block, max(1, n_rows // SAMPLE_ROWS), offset, np.zeros(n_blocks),
                   np.zeros(n_blocks, dtype=np.int64), [])

    def update(self, models: tuple[PCAModel, PCAModel, PCAModel], x: np.ndarray) -> None:
        idx = np.arange(self.seen, self.seen + len(x))
        self.seen += len(x)
        pick = (idx % self.stride == 0) & (idx // self.stride < SAMPLE_ROWS)
        if pick.any():
            self.sample.append(x[pick])
        ids = idx // self.block
        if len(ids) and ids[-1] >= len(self.sums):
            raise ValueError(f"row {int(idx[-1])} is beyond the {len(self.sums) * self.block} "
                             "rows the blocks were sized for")
        even = (idx % 2) == 0
        e = np.where(even, row_errors(models[1], x), row_errors(models[2], x))
        self.sums += np.bincount(ids, weights=e, minlength=len(self.sums))
        self.counts += np.bincount(ids, minlength=len(self.counts))

    def merge(self, later: BlockErrors) -> BlockErrors:
        """This part followed by ``later`` (the rows after it)."""
        return BlockErrors(self.block, self.stride, max(self.seen, later.seen),
                           self.sums + later.sums, self.counts + later.counts,
                           [*self.sample, *later.sample])

    def errors(self) -> tuple[list[float], list[int]]:
        full = self.counts > 0
        return (self.sums[full] / self.counts[full]).tolist(), self.counts[full].tolist()


def multivariate_profile(enc: Encoder, model: PCAModel,
                         blocks: BlockErrors) -> MultivariateProfile:
    errors, counts = blocks.errors()
    d = len(enc.features)
    rows = np.concatenate(blocks.sample) if blocks.sample else np.empty((0, d))
    cat_enc = {n: tuple(float(v) for v in enc.categorical[n][1]) for n in enc.categorical}
    return MultivariateProfile(
        features=enc.features, encodings=cat_enc, impute=enc.impute_values(),
        mean=tuple(model.mean.tolist()), scale=tuple(model.scale.tolist()),
        components=tuple(tuple(r) for r in model.components.T.tolist()),
        explained=tuple(model.explained.tolist()), block_size=blocks.block,
        block_errors=tuple(errors), block_counts=tuple(counts),
        sample=encode_array(rows) if len(rows) else {},
    )


def _numpy_columns(batch: object, features: Mapping[str, Feature]) -> dict[str, np.ndarray]:
    from driftline.io.readers import to_float, to_strings

    out: dict[str, np.ndarray] = {}
    for name, f in features.items():
        col = batch.column(name)  # type: ignore[attr-defined]
        out[name] = to_float(col) if isinstance(f, NumericFeature) else to_strings(col)
    return out


__all__ = ["MAX_BLOCKS", "BlockErrors", "Encoder", "MomentParts", "category_encoding",
           "fit_multivariate", "multivariate_profile"]
