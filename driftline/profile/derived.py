"""Baselines of embedding and text columns, and the numeric features derived from them.

Both need something learnt from the whole reference before their derived features can be
profiled — the principal directions of an embedding, the vocabulary of a text column — so each
reads its columns twice: a first pass learns (moment sums of the vectors; frequent tokens), a
second pass feeds the derived values (projections; descriptors) into the same numeric
accumulators the tabular features use, and keeps a bounded stride sample of vectors for the
MMD test. Memory is bounded: ``d × d`` sums, the sample, the sketches.

Bad reference data stops the build with the column named: a vector of another length than the
others, or a vector holding NaN or infinity, or a text column that is not text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.detectors.mmd import median_bandwidth
from driftline.detectors.reconstruction import MomentSums
from driftline.detectors.text import DESCRIPTORS, descriptors, tokens
from driftline.errors import InputError
from driftline.io.readers import DataFile, iter_batches, to_strings, to_vectors, vector_matrix
from driftline.profile.format import EmbeddingProfile, NumericFeature, TextProfile, encode_array
from driftline.profile.partial import NumericAccumulator
from driftline.profile.sketch import FrequentItems


@dataclass(frozen=True)
class DerivedOptions:
    """How much of each derived reference is kept (``driftline baseline build`` options)."""

    components: int = 5
    mmd_sample: int = 1000
    vocabulary: int = 10_000
    bins: int = 10
    summary_size: int = 20_000
    sketch_k: int = 20_001


def _vectors_of(col: pa.Array, name: str, dim: int | None, path: str,
                offset: int) -> tuple[np.ndarray, int]:
    values, lengths = to_vectors(col)
    if dim is None:
        present = lengths[lengths >= 0]
        if not len(present):
            return np.empty((0, 0)), 0
        dim = int(present[0])
    mat, bad_length, non_finite = vector_matrix(values, lengths, dim)
    if bad_length.any():
        row = int(np.flatnonzero(bad_length)[0])
        raise InputError(f"embedding vectors have different lengths ({dim} and "
                         f"{int(lengths[row])} at row {offset + row})", path=path, column=name,
                         fix="give every vector of the column the same length (or null)")
    if non_finite.any():
        row = int(np.flatnonzero(non_finite)[0])
        raise InputError(f"embedding vector at row {offset + row} holds NaN, infinity or a "
                         "null element",
                         path=path, column=name,
                         fix="drop or repair those rows; a whole missing vector may be null")
    return mat, dim


class EmbeddingBuilder:
    """Two passes over one vector column → :class:`EmbeddingProfile` + projection features."""

    def __init__(self, name: str, opts: DerivedOptions) -> None:
        self.name = name
        self.opts = opts
        self.dim: int | None = None
        self.sums: MomentSums | None = None
        self.rows = 0
        self.valid = 0
        self.components = np.empty((0, 0))
        self.explained = np.empty(0)
        self.mean = np.empty(0)
        self.accs: list[NumericAccumulator] = []
        self.sample: list[np.ndarray] = []
        self.seen = 0

    def first(self, col: pa.Array, path: str) -> None:
        mat, dim = _vectors_of(col, self.name, self.dim, path, self.rows)
        self.rows += len(col)
        if not dim:
            return
        self.dim = dim
        ok = mat[~np.isnan(mat[:, 0])]
        if self.sums is None and len(ok):
            self.sums = MomentSums.empty(dim, ok[0])
        if self.sums is not None:
            self.sums.update(ok)
            self.valid += len(ok)

    def merge_first(self, later: EmbeddingBuilder) -> EmbeddingBuilder:
        """The first pass over this part's rows followed by ``later``'s (vector sums re-centred
        on this part's shift: the same mean and covariance up to float rounding)."""
        if self.dim is not None and later.dim is not None and self.dim != later.dim:
            raise InputError(f"embedding vectors have different lengths ({self.dim} and "
                             f"{later.dim}, from row {self.rows} on)", column=self.name,
                             fix="give every vector of the column the same length (or null)")
        self.dim = self.dim if self.dim is not None else later.dim
        self.rows += later.rows
        self.valid += later.valid
        if later.sums is not None:
            self.sums = later.sums if self.sums is None else self.sums.merge(later.sums)
        return self

    def prepare(self) -> None:
        if self.sums is None or self.valid < 2:
            raise InputError("the embedding column holds fewer than two vectors",
                             column=self.name, fix="give reference data with vectors in it")
        mean, cov = self.sums.mean_cov()
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        k = min(self.opts.components, len(values))
        signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
        vectors = vectors * np.where(signs == 0, 1.0, signs)
        self.mean, self.components = mean, vectors[:, :k].T
        total = values.sum()
        self.explained = values[:k] / total if total > 0 else np.zeros(k)
        self.accs = [NumericAccumulator(f"{self.name}.pc{i + 1}", self.opts.sketch_k)
                     for i in range(k)]
        self.stride = max(1, self.valid // self.opts.mmd_sample)

    def second(self, col: pa.Array, path: str) -> None:
        mat, _ = _vectors_of(col, self.name, self.dim, path, 0)
        proj = project(mat, self.mean, self.components)
        for i, acc in enumerate(self.accs):
            acc.update(proj[:, i])
        ok = mat[~np.isnan(mat[:, 0])]
        idx = self.seen + np.arange(len(ok))
        pick = (idx % self.stride == 0) & (idx // self.stride < self.opts.mmd_sample)
        if pick.any():
            self.sample.append(ok[pick])
        self.seen += len(ok)

    def start_second(self, valid_before: int) -> None:
        """Start the second pass of a part at its first vector (``valid_before`` vectors come
        before it): the MMD sample takes the vectors one pass would."""
        self.seen = valid_before

    def merge_second(self, later: EmbeddingBuilder) -> EmbeddingBuilder:
        """The second pass over this part's rows followed by ``later``'s."""
        for acc, other in zip(self.accs, later.accs, strict=True):
            acc.merge(other)
        self.sample.extend(later.sample)
        self.seen = max(self.seen, later.seen)
        return self

    def result(self) -> tuple[EmbeddingProfile, list[NumericFeature]]:
        assert self.dim is not None
        sample = np.concatenate(self.sample) if self.sample else np.empty((0, self.dim))
        sample32 = sample.astype(np.float32).astype(np.float64)  # as stored
        prof = EmbeddingProfile(
            name=self.name, dim=self.dim, count=self.valid,
            missing_ratio=(self.rows - self.valid) / self.rows if self.rows else 0.0,
            mean=tuple(self.mean.tolist()), components=tuple(tuple(r) for r in
                                                             self.components.tolist()),
            explained=tuple(self.explained.tolist()), bandwidth=median_bandwidth(sample32),
            sample=encode_array(sample),
        )
        return prof, [a.result(self.opts.bins, self.opts.summary_size) for a in self.accs]


def project(mat: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Projections of vectors onto the reference components (NaN rows stay NaN)."""
    out: np.ndarray = (mat - mean) @ components.T
    return out


class TextBuilder:
    """Two passes over one text column → :class:`TextProfile` + descriptor features."""

    def __init__(self, name: str, opts: DerivedOptions) -> None:
        self.name = name
        self.opts = opts
        self.items = FrequentItems(max(50_000, 5 * opts.vocabulary))
        self.rows = 0
        self.missing = 0
        self.vocab: pa.Array = pa.array([], pa.string())
        self.accs: dict[str, NumericAccumulator] = {}

    def _texts(self, col: pa.Array, path: str) -> np.ndarray:
        t = col.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            try:
                col = pc.cast(col, pa.string())
            except pa.ArrowInvalid:
                raise InputError("the text column holds bytes that are not UTF-8", path=path,
                                 column=self.name,
                                 fix="decode it to UTF-8 text first (or leave it out of --text)"
                                 ) from None
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            raise InputError(f"a --text column must hold strings, not {t}", path=path,
                             column=self.name, fix="cast it to strings or leave it out of --text")
        return to_strings(col)

    def first(self, col: pa.Array, path: str) -> None:
        texts = self._texts(col, path)
        self.rows += len(texts)
        self.missing += int((texts == None).sum())  # noqa: E711 - elementwise
        vc = pc.value_counts(tokens(texts))
        self.items.update(vc.field("values").to_pylist(), vc.field("counts").to_pylist())

    def merge_first(self, later: TextBuilder) -> TextBuilder:
        """The first pass over this part's rows followed by ``later``'s (token counts added, as
        mergeable Misra–Gries summaries)."""
        self.items.merge(later.items)
        self.rows += later.rows
        self.missing += later.missing
        return self

    def start_second(self, valid_before: int) -> None:
        """Nothing in the text's second pass depends on row positions."""

    def merge_second(self, later: TextBuilder) -> TextBuilder:
        for d, acc in self.accs.items():
            acc.merge(later.accs[d])
        return self

    def prepare(self) -> None:
        self.vocab = pa.array([w for w, _ in self.items.top(self.opts.vocabulary)], pa.string())
        self.accs = {d: NumericAccumulator(f"{self.name}.{d}", self.opts.sketch_k)
                     for d in DESCRIPTORS}

    def second(self, col: pa.Array, path: str) -> None:
        for d, values in descriptors(self._texts(col, path), self.vocab).items():
            self.accs[d].update(values)

    def result(self) -> tuple[TextProfile, list[NumericFeature]]:
        prof = TextProfile(self.name, DESCRIPTORS, tuple(self.vocab.to_pylist()),
                           self.rows - self.missing,
                           self.missing / self.rows if self.rows else 0.0)
        return prof, [point_mass_bins(self.accs[d], self.opts.bins, self.opts.summary_size)
                      for d in DESCRIPTORS]


def point_mass_bins(acc: NumericAccumulator, bins: int, summary_size: int) -> NumericFeature:
    """The accumulator's feature with every bin edge ``e`` also closed just above ``e``.

    Descriptors are discrete (lengths are integers, the empty flag is 0/1, a share is often
    exactly 0): quantile edges then sit on values that hold much of the reference, and a value
    that was never seen (a positive unseen-token share when the reference had none) would share
    that value's bin and leave PSI at 0. With ``[e, e⁺)`` as a bin of its own, each edge value is
    one bin, so a move off it (or beyond the reference's range) shows."""
    f = acc.result(bins, summary_size)
    if not f.count:
        return f
    base = np.asarray(f.edges, dtype=np.float64)
    if not len(base):
        base = np.asarray([f.minimum])
    edges = np.unique(np.concatenate([base, np.nextafter(base, np.inf), [f.maximum],
                                      [np.nextafter(f.maximum, np.inf)]]))
    v, w = acc.sketch.weighted()
    cum = np.concatenate([[0.0], np.cumsum(w)])
    below = cum[np.searchsorted(v, edges, side="left")]
    props = np.diff(np.concatenate([[0.0], below, [cum[-1]]])) / cum[-1]
    return dataclasses.replace(f, edges=tuple(edges.tolist()), proportions=tuple(props.tolist()))


Builder = EmbeddingBuilder | TextBuilder
Derived = tuple[dict[str, EmbeddingProfile], dict[str, TextProfile], list[NumericFeature]]


def new_builders(embeddings: Sequence[str], text: Sequence[str],
                 opts: DerivedOptions) -> list[Builder]:
    """One builder per embedding and text column, in the profile's order. A build over parts
    (Spark partitions) runs ``first`` per part, ``merge_first`` in row order, ``prepare`` once,
    then ``start_second`` (the vectors before the part) and ``second`` per part and
    ``merge_second`` in row order."""
    return [*(EmbeddingBuilder(c, opts) for c in embeddings),
            *(TextBuilder(c, opts) for c in text)]


def build_derived(files: Sequence[DataFile], embeddings: Sequence[str], text: Sequence[str],
                  opts: DerivedOptions) -> Derived:
    """Embedding and text references and their derived numeric features (two reads)."""
    builders = new_builders(embeddings, text, opts)
    if not builders:
        return {}, {}, []
    columns = [b.name for b in builders]
    for step in ("first", "second"):
        for file in files:
            for batch in iter_batches(file, columns):
                for b in builders:
                    getattr(b, step)(batch.column(b.name), file.path)
        if step == "first":
            for b in builders:
                b.prepare()
    return derived_results(builders)


def derived_results(builders: Sequence[Builder]) -> Derived:
    """The profiles and derived features of builders whose second pass is done."""
    embs: dict[str, EmbeddingProfile] = {}
    texts: dict[str, TextProfile] = {}
    features: list[NumericFeature] = []
    for b in builders:
        prof, feats = b.result()
        if isinstance(prof, EmbeddingProfile):
            embs[prof.name] = prof
        else:
            texts[prof.name] = prof
        features.extend(feats)
    return embs, texts, features


__all__ = ["DerivedOptions", "EmbeddingBuilder", "TextBuilder", "build_derived",
           "derived_results", "new_builders", "project"]
