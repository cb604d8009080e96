"""Embedding and text features on the live path: derived columns per batch, drift per window.

:meth:`DerivedRef.derive` runs on every batch before it is windowed: an embedding column (an
``(n, d)`` float matrix, NaN rows where missing or invalid) gains its projections onto the
reference's principal directions as numeric features ``<name>.pc<i>``; a text column (object
array of str) is replaced by its descriptors ``<name>.<descriptor>``. From there on they are
ordinary numeric features: PSI, KS, Wasserstein, quantile-rank histograms that add up across
replicas, the drift decision.

:meth:`DerivedRef.window` tests each embedding of a closed window: the mean-embedding cosine
distance over every valid vector (O(n d)), and the MMD² permutation test of at most
``EmbeddingPolicy.window_sample`` window vectors against at most ``reference_sample`` reference
vectors. Its cost is bounded whatever the window size: with ``N = window_sample +
reference_sample`` it is ``O(N² d + N² permutations)`` — with the defaults (250, 500, 100
permutations, d = 384) about 0.15 G floating-point operations, a few tens of milliseconds.
``EmbeddingPolicy.mmd_every = k`` runs that test on every k-th window only; the windows between
repeat the last test's statistic, p-value and decision (``EmbeddingDrift.mmd_age`` says how many
windows old it is), so a drift alert does not flap while the cheap signals keep running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.detectors.mmd import cosine_distance, mmd_test, reference_kernel
from driftline.engine.records import RecordBatch
from driftline.engine.snapshot import EmbeddingDrift
from driftline.profile.format import BaselineProfile, EmbeddingProfile


@dataclass(frozen=True)
class EmbeddingPolicy:
    """Bounds of the per-window MMD test (``drift.embedding_*`` in the sidecar config)."""

    window_sample: int = 250
    reference_sample: int = 500
    permutations: int = 100
    alpha: float = 0.05
    #: the MMD test on every k-th window only (1: every window)
    mmd_every: int = 1

    def __post_init__(self) -> None:
        if self.window_sample < 2 or self.reference_sample < 2:
            raise ValueError("the MMD test needs samples of at least 2 vectors, got "
                             f"window_sample={self.window_sample}, "
                             f"reference_sample={self.reference_sample}")
        if self.permutations < 1 or self.mmd_every < 1:
            raise ValueError(f"permutations ({self.permutations}) and mmd_every "
                             f"({self.mmd_every}) must be at least 1")


def _even(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` evenly spaced indices of ``range(n)`` (deterministic subsample)."""
    if n <= k:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(np.int64)


class _Embedding:
    def __init__(self, e: EmbeddingProfile, policy: EmbeddingPolicy) -> None:
        self.name = e.name
        self.dim = e.dim
        self.mean = np.asarray(e.mean, dtype=np.float64)
        self.components = np.asarray(e.components, dtype=np.float64).reshape(-1, e.dim)
        self.projections = e.projections
        sample = e.sample_array().reshape(-1, e.dim)
        self.sample = sample[_even(len(sample), policy.reference_sample)]
        self.sigma = e.bandwidth if math.isfinite(e.bandwidth) and e.bandwidth > 0 else 1.0
        self.kxx = reference_kernel(self.sample, self.sigma) if len(self.sample) >= 2 else None


@dataclass(frozen=True)
class _Tested:
    """The last MMD test of one embedding, repeated by the windows that skip it."""

    mmd: float
    pvalue: float
    drifted: bool
    window: int
    index: int


class DerivedRef:
    """What the monitor needs for a profile's embeddings and text columns.

    :meth:`derive` is pure; :meth:`window` remembers each embedding's last MMD test (one small
    record per embedding) for the windows that ``EmbeddingPolicy.mmd_every`` skips."""

    def __init__(self, profile: BaselineProfile, policy: EmbeddingPolicy = EmbeddingPolicy()
                 ) -> None:
        self.policy = policy
        self.embeddings = {n: _Embedding(e, policy) for n, e in profile.embeddings.items()}
        # text descriptors run on Arrow: pyarrow is imported only for a profile with text
        self.vocab: dict[str, Any] = {}
        if profile.text:
            import pyarrow as pa

            self.vocab = {n: pa.array(list(t.vocabulary), type=pa.string())
                          for n, t in profile.text.items()}
        self._tested: dict[str, _Tested] = {}

    @classmethod
    def of(cls, profile: BaselineProfile, policy: EmbeddingPolicy = EmbeddingPolicy()
           ) -> DerivedRef | None:
        return cls(profile, policy) if profile.embeddings or profile.text else None

    def derive(self, batch: RecordBatch) -> RecordBatch:
        """The batch with projection and descriptor columns added (text columns replaced)."""
        n = len(batch)
        feats = dict(batch.features)
        for name, e in self.embeddings.items():
            mat = feats.get(name)
            if mat is None or mat.ndim != 2 or mat.shape[1] != e.dim:
                mat = np.full((n, e.dim), np.nan)
                feats[name] = mat
            proj = (mat - e.mean) @ e.components.T
            for i, pname in enumerate(e.projections):
                feats[pname] = proj[:, i]
        if self.vocab:
            from driftline.detectors.text import descriptors
        for name, vocab in self.vocab.items():
            texts = feats.pop(name, None)
            if texts is None:
                texts = np.full(n, None, dtype=object)
            for d, values in descriptors(texts, vocab).items():
                feats[f"{name}.{d}"] = values
        return RecordBatch(feats, batch.prediction, batch.probabilities, batch.ids,
                           batch.timestamps, batch.targets, n=n, codes=batch.codes)

    def window(self, chunks: Sequence[RecordBatch], *, index: int,
               thin: bool = False) -> dict[str, EmbeddingDrift]:
        """Drift of every embedding over the (derived) batches of one closed window."""
        out: dict[str, EmbeddingDrift] = {}
        for name, e in self.embeddings.items():
            parts = [c.features[name] for c in chunks if name in c.features]
            mat = np.concatenate(parts) if parts else np.empty((0, e.dim))
            valid = mat[np.isfinite(mat).all(axis=1)] if len(mat) else mat
            missing = sum(len(c) for c in chunks) - len(valid)
            cos = cosine_distance(valid.mean(axis=0), e.mean) if len(valid) else math.nan
            last = self._tested.get(name)
            if last is not None and index - last.index < self.policy.mmd_every:
                out[name] = EmbeddingDrift(name, last.mmd, last.pvalue, cos,
                                           last.drifted and not thin, len(valid), missing,
                                           last.window, len(e.sample), index - last.index)
                continue
            y = valid[_even(len(valid), self.policy.window_sample)]
            if e.kxx is not None and len(y) >= 2:
                res = mmd_test(e.sample, y, e.sigma, permutations=self.policy.permutations,
                               seed=index, kxx=e.kxx)
                stat, p = res.mmd2, res.pvalue
            else:
                stat = p = math.nan
            drifted = bool((not thin) and math.isfinite(p) and p < self.policy.alpha)
            self._tested[name] = _Tested(stat, p, drifted, len(y), index)
            out[name] = EmbeddingDrift(name, stat, p, cos, drifted, len(valid), missing,
                                       len(y), len(e.sample))
        return out


__all__ = ["DerivedRef", "EmbeddingPolicy"]
