"""Confusion-matrix metrics of a classifier: CBPE estimates without labels, realised values with.

Estimated (confidence-based performance estimation, NannyML's CBPE): every row contributes its
calibrated probabilities to an *expected* confusion matrix. For a binary model with calibrated
positive-class probability ``p`` and predicted label ``ŷ``, a row adds ``p`` to TP and ``1 − p``
to FP when ``ŷ = 1``, ``p`` to FN and ``1 − p`` to TN when ``ŷ = 0``; precision, recall, F1 and
specificity are the usual ratios of those expected counts. ROC AUC is estimated as NannyML
documents it: every distinct ``p`` is a threshold (``ŷ = p ≥ t``), each threshold gets expected
TPR and FPR, and the area under that curve (trapezoids, starting at (0, 0)) is the estimate.
That equals the ROC AUC of the data in which each row appears once as a positive with weight
``p`` and once as a negative with weight ``1 − p`` — which is how the tests check it.

Multiclass: one-vs-rest per class (class ``k`` against the rest, with ``p_k`` and ``ŷ = k``),
then the plain mean over classes (macro average, as NannyML). Accuracy is the mean calibrated
probability of the predicted class.

Realised values follow ``sklearn.metrics`` on the same rows: binary metrics of the positive
class, macro averages over the labels that occur in the labels or the predictions, a class
whose ratio has a zero denominator counting 0 in a macro average. A binary ratio with a zero
denominator is NaN (reported as null: the window cannot have one).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "CLASSIFICATION_METRICS",
    "estimated_metrics",
    "expected_roc_auc",
    "realised_metrics",
    "roc_auc",
]

#: Metric names of a classifier, in the order dashboards show them.
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "f1", "precision", "recall",
                                           "specificity")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _rates(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    return {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2.0 * tp, 2.0 * tp + fp + fn), "specificity": _ratio(tn, tn + fp)}


def expected_roc_auc(p_positive: np.ndarray) -> float:
    """CBPE ROC AUC from calibrated positive-class probabilities; NaN without both classes.

    >>> round(expected_roc_auc(np.array([0.9, 0.5])), 6)  # hand-checked in the tests
    0.738095
    """
    p = np.asarray(p_positive, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    pos_total = float(p.sum())
    neg_total = float((1.0 - p).sum())
    if p.size == 0 or pos_total <= 0 or neg_total <= 0:
        return math.nan
    s = np.sort(p)[::-1]
    tp = np.cumsum(s)
    fp = np.cumsum(1.0 - s)
    # one point per distinct threshold; the curves start at 0 (written into arrays made
    # once: ``np.r_`` cost a third of the function at 1000 rows)
    last = np.empty(s.size, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=last[:-1])
    last[-1] = True
    tpr = _from_zero(tp[last] / pos_total)
    fpr = _from_zero(fp[last] / neg_total)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _from_zero(x: np.ndarray) -> np.ndarray:
    """``np.r_[0.0, x]``."""
    out = np.empty(x.size + 1)
    out[0] = 0.0
    out[1:] = x
    return out


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Realised binary ROC AUC (Mann–Whitney with average ranks for ties, as sklearn); NaN
    unless both classes occur."""
    y = np.asarray(is_positive, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata  # lazily: scipy.stats costs ~0.5 s to import

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _macro(values: list[float]) -> float:
    return float(np.mean([0.0 if math.isnan(v) else v for v in values])) if values else math.nan


def estimated_metrics(calibrated: np.ndarray, predicted_index: np.ndarray,
                      positive: int | None = None) -> dict[str, float]:
    """CBPE estimates of :data:`CLASSIFICATION_METRICS` for one window.

    ``calibrated`` is ``(n, k)`` in class order, rows with a missing value already removed;
    ``predicted_index`` the model's predicted class per row (its own decision, or the argmax).
    ``positive`` is the positive column of a binary model (default: the second class).
    """
    cal = np.asarray(calibrated, dtype=np.float64)
    pred = np.asarray(predicted_index, dtype=np.int64)
    n = cal.shape[0] if cal.ndim == 2 else 0
    if n == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS, math.nan)
    k = cal.shape[1]
    accuracy = float(cal[np.arange(n), pred].mean())
    if k == 2:
        pos = 1 if positive is None else positive
        p = cal[:, pos]
        hit = pred == pos
        tp, fp = float(p[hit].sum()), float((1.0 - p[hit]).sum())
        fn, tn = float(p[~hit].sum()), float((1.0 - p[~hit]).sum())
        return {"accuracy": accuracy, "roc_auc": expected_roc_auc(p), **_rates(tp, fp, fn, tn)}
    per: dict[str, list[float]] = {"precision": [], "recall": [], "f1": [], "specificity": []}
    aucs: list[float] = []
    for j in range(k):
        p = cal[:, j]
        hit = pred == j
        tp, fp = float(p[hit].sum()), float((1.0 - p[hit]).sum())
        fn, tn = float(p[~hit].sum()), float((1.0 - p[~hit]).sum())
        for name, v in _rates(tp, fp, fn, tn).items():
            per[name].append(v)
        aucs.append(expected_roc_auc(p))
    finite_aucs = [a for a in aucs if not math.isnan(a)]
    return {"accuracy": accuracy,
            "roc_auc": float(np.mean(finite_aucs)) if finite_aucs else math.nan,
            **{name: _macro(v) for name, v in per.items()}}


def realised_metrics(predicted_index: np.ndarray, true_index: np.ndarray, k: int,
                     scores: np.ndarray | None = None,
                     positive: int | None = None) -> dict[str, float]:
    """Realised :data:`CLASSIFICATION_METRICS` over the rows with a known prediction and label.

    Indices are class codes ``0..k-1``; ``k`` stands for a label outside the model's classes
    (it is wrong for every prediction), ``-1`` for missing (the row is skipped). ``scores``
    (``(n, k)`` probabilities) add ROC AUC: binary of the positive column, multiclass the
    one-vs-rest macro average over the classes that have both positives and negatives.
    """
    pred = np.asarray(predicted_index, dtype=np.int64).ravel()
    true = np.asarray(true_index, dtype=np.int64).ravel()
    ok = (pred >= 0) & (true >= 0)
    pred, true = pred[ok], true[ok]
    n = pred.size
    out = dict.fromkeys(CLASSIFICATION_METRICS, math.nan)
    if scores is None:
        del out["roc_auc"]
    if n == 0:
        return out
    out["accuracy"] = float(np.count_nonzero(pred == true)) / n
    m = k + 1
    cm = np.bincount(true * m + pred, minlength=m * m).reshape(m, m).astype(np.float64)
    tp_all = np.diag(cm)
    fp_all = cm.sum(axis=0) - tp_all
    fn_all = cm.sum(axis=1) - tp_all
    tn_all = n - tp_all - fp_all - fn_all
    if k == 2:
        pos = 1 if positive is None else positive
        out.update(_rates(tp_all[pos], fp_all[pos], fn_all[pos], tn_all[pos]))
    else:
        # macro over every class of the model, as NannyML (sklearn's ``labels=classes``): a
        # class absent from the window's labels and predictions counts 0, a label outside the
        # classes only as a miss of the class predicted for it
        per = [_rates(tp_all[j], fp_all[j], fn_all[j], tn_all[j]) for j in range(k)]
        for name in ("precision", "recall", "f1", "specificity"):
            out[name] = _macro([r[name] for r in per])
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)[ok]
        fine = np.isfinite(s).all(axis=1)
        s, t = s[fine], true[fine]
        if k == 2:
            pos = 1 if positive is None else positive
            out["roc_auc"] = roc_auc(t == pos, s[:, pos])
        else:
            aucs = [roc_auc(t == j, s[:, j]) for j in range(k)]
            finite = [a for a in aucs if not math.isnan(a)]
            out["roc_auc"] = float(np.mean(finite)) if finite else math.nan
    return out
