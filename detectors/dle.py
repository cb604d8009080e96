"""Direct loss estimation (DLE, the method behind NannyML's estimator of the same name).

A regression model gives no confidence with its prediction, but the *size* of its error is often
predictable from where in the input space a row lies. At baseline build a small model (the
"nanny") learns, on reference rows with labels, the absolute error ``|y − ŷ|`` and the squared
error ``(y − ŷ)²`` of the monitored model from its features and its prediction ``ŷ``. On live
traffic, without labels, the window's estimated MAE is the mean predicted absolute error and
its estimated RMSE the square root of the mean predicted squared error.

The nanny is a histogram gradient-boosted tree ensemble written here in numpy (squared loss,
complete trees of a fixed depth grown level by level on up to 64 quantile bins per input, L2
regularised leaves, the learning rate folded into the leaves, early stopping on a deterministic
hold-out of every fifth row). It is stored as arrays (:mod:`driftline.profile.trees`), so a
baseline needs no learning library to build or to use — see docs/performance.md for the
comparison with scikit-learn's ``HistGradientBoostingRegressor`` that motivated writing it.
Missing inputs (NaN) always go to the left child, at fit and at prediction time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from driftline.profile.trees import PREDICTION_INPUT, LossModel, TreeEnsemble, predict_ensembles

__all__ = ["GBMParams", "estimate_losses", "fit_loss_model", "fit_trees"]

#: Threshold of a split that sends every non-missing value right (JSON has no -inf).
_ALL_RIGHT = float(np.finfo(np.float64).min)


@dataclass(frozen=True)
class GBMParams:
    """Hyper-parameters of the nanny model (defaults chosen on the benchmark data)."""

    depth: int = 4
    max_trees: int = 100
    learning_rate: float = 0.2
    min_leaf: int = 40
    l2: float = 1.0
    max_bins: int = 64
    patience: int = 0  # 0: no early stopping (see docs/performance.md)


def _edges(values: np.ndarray, max_bins: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0)
    distinct = np.unique(finite)
    if distinct.size <= max_bins:
        return distinct[1:]  # one bin per value: x >= v_i goes right of the split at v_i
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, max_bins + 1)[1:-1]))


def _codes(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Bin code per value: 0 for missing, ``1 + #(edges <= x)`` otherwise; shape ``(d, n)``
    (one contiguous row per input: the histogram loop reads one input at a time)."""
    out = np.zeros((x.shape[1], x.shape[0]), dtype=np.intp)
    for j, e in enumerate(edges):
        col = x[:, j]
        ok = np.isfinite(col)
        out[j, ok] = 1 + np.searchsorted(e, col[ok], side="right")
    return out


def _grow(codes: np.ndarray, r: np.ndarray, n_bins: int, p: GBMParams,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One tree on residuals ``r``: (feature, split bin, leaf index per row)."""
    d, n = codes.shape
    inner = 2 ** p.depth - 1
    feature = np.full(inner, -1, dtype=np.int64)
    split = np.zeros(inner, dtype=np.int64)
    node = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for level in range(p.depth):
        m = 2 ** level
        g_tot = np.bincount(node, weights=r, minlength=m)
        n_tot = np.bincount(node, minlength=m).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            parent = np.nan_to_num(g_tot ** 2 / (n_tot + p.l2))
        best_gain = np.zeros(m)
        best_f = np.full(m, -1, dtype=np.int64)
        best_b = np.zeros(m, dtype=np.int64)
        base = node * n_bins
        for j in range(d):
            idx = base + codes[j]
            g = np.bincount(idx, weights=r, minlength=m * n_bins).reshape(m, n_bins)
            c = np.bincount(idx, minlength=m * n_bins).reshape(m, n_bins).astype(np.float64)
            gl = np.cumsum(g, axis=1)[:, :-1]
            cl = np.cumsum(c, axis=1)[:, :-1]
            gr = g_tot[:, None] - gl
            cr = n_tot[:, None] - cl
            with np.errstate(invalid="ignore", divide="ignore"):  # empty sides: masked next
                gain = gl ** 2 / (cl + p.l2) + gr ** 2 / (cr + p.l2) - parent[:, None]
            gain[(cl < p.min_leaf) | (cr < p.min_leaf)] = -np.inf
            b = np.argmax(gain, axis=1)
            gb = gain[np.arange(m), b]
            better = gb > best_gain + 1e-12
            best_gain[better] = gb[better]
            best_f[better] = j
            best_b[better] = b[better]
        first = m - 1
        feature[first:first + m] = best_f
        split[first:first + m] = best_b
        f_row = best_f[node]
        right = (f_row >= 0) & (codes[np.maximum(f_row, 0), rows] > best_b[node])
        node = 2 * node + right
    return feature, split, node


def _route(codes: np.ndarray, feature: np.ndarray, split: np.ndarray, depth: int) -> np.ndarray:
    n = codes.shape[1]
    node = np.zeros(n, dtype=np.int64)  # global node index
    rows = np.arange(n)
    for _ in range(depth):
        f = feature[node]
        right = (f >= 0) & (codes[np.maximum(f, 0), rows] > split[node])
        node = 2 * node + 1 + right
    return node - (2 ** depth - 1)


def fit_trees(x: np.ndarray, y: np.ndarray, params: GBMParams = GBMParams(),
              valid: tuple[np.ndarray, np.ndarray] | None = None) -> TreeEnsemble:
    """Gradient-boosted trees for the mean of ``y`` given ``x`` (squared loss).

    With ``valid`` (inputs, targets) boosting stops once the validation loss has not improved
    for ``params.patience`` trees, and the ensemble is cut back to its best size.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs of shape {x.shape} do not match {y.shape[0]} targets")
    if y.size == 0 or not np.isfinite(y).all():
        raise ValueError("targets must be finite and at least one")
    edges = [_edges(x[:, j], params.max_bins) for j in range(x.shape[1])]
    n_bins = 2 + max((e.size for e in edges), default=0)
    codes = _codes(x, edges)
    base = float(y.mean())
    pred = np.full(y.size, base)
    v_codes = v_pred = v_y = None
    if valid is not None:
        v_codes = _codes(np.asarray(valid[0], dtype=np.float64), edges)
        v_y = np.asarray(valid[1], dtype=np.float64)
        v_pred = np.full(v_y.size, base)
    feats: list[np.ndarray] = []
    thresholds: list[np.ndarray] = []
    leaves: list[np.ndarray] = []
    best_loss, best_size, since = math.inf, 0, 0
    n_leaves = 2 ** params.depth
    for _ in range(params.max_trees):
        r = y - pred
        feature, split, leaf_of = _grow(codes, r, n_bins, params)
        sums = np.bincount(leaf_of, weights=r, minlength=n_leaves)
        counts = np.bincount(leaf_of, minlength=n_leaves)
        den = counts + params.l2
        values = params.learning_rate * np.divide(sums, den, out=np.zeros(n_leaves), where=den > 0)
        pred += values[leaf_of]
        thr = np.zeros(feature.size)
        for i, (f, b) in enumerate(zip(feature.tolist(), split.tolist(), strict=True)):
            if f >= 0:
                thr[i] = _ALL_RIGHT if b == 0 else float(edges[f][b - 1])
        feats.append(feature)
        thresholds.append(thr)
        leaves.append(values)
        if v_codes is not None and v_pred is not None and v_y is not None:
            v_pred += values[_route(v_codes, feature, split, params.depth)]
            loss = float(np.mean((v_y - v_pred) ** 2)) if v_y.size else 0.0
            if loss < best_loss - 1e-12:
                best_loss, best_size, since = loss, len(leaves), 0
            else:
                since += 1
                if params.patience and since >= params.patience:
                    break
        if not (feature >= 0).any():
            break  # nothing left to split: later trees would all be this one leaf
    size = best_size if valid is not None and params.patience else len(leaves)
    return TreeEnsemble(
        depth=params.depth, base=base,
        feature=tuple(tuple(int(v) for v in f) for f in feats[:size]),
        threshold=tuple(tuple(float(v) for v in t) for t in thresholds[:size]),
        leaf=tuple(tuple(float(v) for v in lv) for lv in leaves[:size]),
    )


def estimate_losses(model: LossModel, x: np.ndarray) -> dict[str, float]:
    """Estimated MAE and RMSE of the rows of ``x`` (inputs in ``model.inputs`` order); rows with
    a missing prediction are skipped; NaN with no rows."""
    x = np.asarray(x, dtype=np.float64)
    pred_col = model.inputs.index(PREDICTION_INPUT)
    x = x[np.isfinite(x[:, pred_col])] if x.size else x
    if x.shape[0] == 0:
        return {"mae": math.nan, "rmse": math.nan}
    abs_err, sq_err = (np.maximum(p, 0.0)
                       for p in predict_ensembles([model.absolute, model.squared], x))
    return {"mae": float(abs_err.mean()), "rmse": math.sqrt(float(sq_err.mean()))}


def fit_loss_model(x: np.ndarray, predicted: np.ndarray, labels: np.ndarray,
                   inputs: tuple[str, ...], categories: dict[str, tuple[str, ...]],
                   params: GBMParams = GBMParams()) -> LossModel:
    """Fit the DLE nanny on reference rows: ``x`` holds every input of ``inputs`` (the
    prediction among them); rows without a finite prediction and label are skipped. Every
    fifth row is held out for early stopping and for the ``holdout`` figures."""
    x = np.asarray(x, dtype=np.float64)
    pred = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(y)
    x, pred, y = x[ok], pred[ok], y[ok]
    if y.size < 10:
        raise ValueError(f"{y.size} reference rows with a prediction and a label; "
                         "direct loss estimation needs at least 10")
    err = y - pred
    hold = np.arange(y.size) % 5 == 4
    fit = ~hold
    absolute = fit_trees(x[fit], np.abs(err[fit]), params, (x[hold], np.abs(err[hold])))
    squared = fit_trees(x[fit], err[fit] ** 2, params, (x[hold], err[hold] ** 2))
    model = LossModel(inputs=inputs, categories=categories, absolute=absolute, squared=squared,
                      rows=int(y.size), holdout={})
    est = estimate_losses(model, x[hold])
    holdout = {"mae": float(np.abs(err[hold]).mean()),
               "rmse": math.sqrt(float(np.mean(err[hold] ** 2))),
               "estimated_mae": est["mae"], "estimated_rmse": est["rmse"]}
    return LossModel(inputs=inputs, categories=categories, absolute=absolute, squared=squared,
                     rows=int(y.size), holdout=holdout)
