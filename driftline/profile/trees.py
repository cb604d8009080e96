"""Learned models stored as data: gradient-boosted trees as plain arrays in the baseline JSON.

A baseline file never executes code when it is loaded (no pickle): a tree ensemble is numbers
only, checked on load, and evaluated with vectorised numpy, so the sidecar needs no learning
library at run time.

Every tree is *complete* with a fixed ``depth``: node ``i`` has children ``2i + 1`` (left) and
``2i + 2`` (right); internal nodes ``0 … 2^depth − 2`` hold ``feature`` and ``threshold``, the
``2^depth`` leaves hold values. A row goes right when ``x[feature] >= threshold``; a missing
value (NaN) and a node with ``feature = -1`` (no split) go left. The prediction is ``base`` plus
the sum of the reached leaves (the learning rate is already folded into them).

The direct-loss-estimation model (:class:`LossModel`) holds two such ensembles — expected
absolute error and expected squared error of the monitored model — over named inputs: the
baseline's features (a categorical one coded as the index of its reference category, ``K`` for
any other value) and the model's prediction (input name :data:`PREDICTION_INPUT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PREDICTION_INPUT", "LossModel", "TreeEnsemble"]

#: Name of the monitored model's prediction among a loss model's inputs.
PREDICTION_INPUT = "__prediction__"
MAX_DEPTH = 12


@dataclass(frozen=True)
class TreeEnsemble:
    """Complete binary trees of one depth as arrays (see the module docstring)."""

    depth: int
    base: float
    feature: tuple[tuple[int, ...], ...]
    threshold: tuple[tuple[float, ...], ...]
    leaf: tuple[tuple[float, ...], ...]

    @property
    def n_trees(self) -> int:
        return len(self.leaf)

    def validate(self, n_inputs: int) -> None:
        """Raise ValueError unless the arrays have the declared shapes and finite numbers."""
        if not (isinstance(self.depth, int) and 1 <= self.depth <= MAX_DEPTH):
            raise ValueError(f"tree depth {self.depth!r} is not in 1..{MAX_DEPTH}")
        inner, leaves = 2 ** self.depth - 1, 2 ** self.depth
        if not (len(self.feature) == len(self.threshold) == len(self.leaf)):
            raise ValueError("feature, threshold and leaf arrays hold different numbers of trees")
        f = np.asarray(self.feature, dtype=np.float64).reshape(len(self.feature), -1) \
            if self.feature else np.empty((0, inner))
        t = np.asarray(self.threshold, dtype=np.float64).reshape(len(self.threshold), -1) \
            if self.threshold else np.empty((0, inner))
        v = np.asarray(self.leaf, dtype=np.float64).reshape(len(self.leaf), -1) \
            if self.leaf else np.empty((0, leaves))
        if f.shape[1] != inner or t.shape[1] != inner or v.shape[1] != leaves:
            raise ValueError(f"trees of depth {self.depth} need {inner} nodes and {leaves} leaves")
        if not (np.isfinite(t).all() and np.isfinite(v).all() and np.isfinite(self.base)):
            raise ValueError("tree thresholds and values must be finite numbers")
        if (f != np.round(f)).any() or (f < -1).any() or (f >= n_inputs).any():
            raise ValueError(f"tree features must be input indices in -1..{n_inputs - 1}")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inner, leaves = 2 ** self.depth - 1, 2 ** self.depth
        n = self.n_trees
        f = np.asarray(self.feature, dtype=np.int64).reshape(n, inner)
        t = np.asarray(self.threshold, dtype=np.float64).reshape(n, inner)
        v = np.asarray(self.leaf, dtype=np.float64).reshape(n, leaves)
        return f, t, v

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``x`` (shape ``(n, n_inputs)``), all trees at once."""
        return predict_arrays(self.base, self.depth, *self.arrays(), x)

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "base": self.base, "feature": [list(r) for r in self.feature],
                "threshold": [list(r) for r in self.threshold],
                "leaf": [list(r) for r in self.leaf]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TreeEnsemble:
        return cls(depth=int(d["depth"]), base=float(d["base"]),
                   feature=tuple(tuple(int(v) for v in row) for row in d["feature"]),
                   threshold=tuple(tuple(float(v) for v in row) for row in d["threshold"]),
                   leaf=tuple(tuple(float(v) for v in row) for row in d["leaf"]))


def predict_arrays(base: float, depth: int, feature: np.ndarray, threshold: np.ndarray,
                   leaf: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Vectorised over rows: per tree, ``depth`` gathers over all rows at once (no per-row
    Python). Measured faster than gathering every tree at once, whose ``(rows, trees)``
    temporaries cost more memory traffic than the per-tree loop costs in calls."""
    x = np.asarray(x, dtype=np.float64)
    n, n_trees = x.shape[0], feature.shape[0]
    out = np.full(n, base)
    if n_trees == 0 or n == 0:
        return out
    xt = np.ascontiguousarray(x.T)
    rows = np.arange(n)
    first_leaf = 2 ** depth - 1
    for f_k, t_k, v_k in zip(feature, threshold, leaf, strict=True):
        node = np.zeros(n, dtype=np.intp)
        for _ in range(depth):
            f = f_k[node]
            with np.errstate(invalid="ignore"):
                right = (xt[np.maximum(f, 0), rows] >= t_k[node]) & (f >= 0)
            node = 2 * node + 1 + right
        out += v_k[node - first_leaf]
    return out


@dataclass(frozen=True)
class LossModel:
    """Direct loss estimation: expected |error| and error² of the model from its inputs.

    ``inputs`` name the columns in order; ``categories`` give, for a categorical input, the
    reference categories its codes index. ``rows`` is how many reference rows it was fitted on
    and ``holdout`` the realised and estimated MAE/RMSE on the rows held out while fitting.
    """

    inputs: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    absolute: TreeEnsemble
    squared: TreeEnsemble
    rows: int
    holdout: dict[str, float]

    def validate(self) -> None:
        if len(set(self.inputs)) != len(self.inputs) or PREDICTION_INPUT not in self.inputs:
            raise ValueError("loss model inputs must be distinct and include the prediction")
        unknown = set(self.categories) - set(self.inputs)
        if unknown:
            raise ValueError(f"categories given for unknown inputs {sorted(unknown)}")
        self.absolute.validate(len(self.inputs))
        self.squared.validate(len(self.inputs))

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs),
                "categories": {k: list(v) for k, v in self.categories.items()},
                "absolute": self.absolute.to_dict(), "squared": self.squared.to_dict(),
                "rows": self.rows, "holdout": dict(self.holdout)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossModel:
        model = cls(inputs=tuple(str(v) for v in d["inputs"]),
                    categories={str(k): tuple(str(c) for c in v)
                                for k, v in (d.get("categories") or {}).items()},
                    absolute=TreeEnsemble.from_dict(d["absolute"]),
                    squared=TreeEnsemble.from_dict(d["squared"]), rows=int(d["rows"]),
                    holdout={str(k): float(v) for k, v in (d.get("holdout") or {}).items()
                             if v is not None})
        model.validate()
        return model
