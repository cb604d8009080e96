"""A window's prediction drift and estimated performance share their work: the same floats.

The window reports mean confidence and entropy from one validation of the probability rows
(``confidence_and_entropy``), and takes the CBPE accuracy and a binary model's precision,
recall and F1 from ``estimated_metrics`` instead of computing them again with
``estimated_accuracy`` and ``binary_confusion_estimate``. The definition here is the
previous composition of those functions, which every field must equal float for float.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.classification import estimated_metrics
from driftline.detectors.performance import (
    binary_confusion_estimate,
    calibrate,
    confidence_and_entropy,
    estimated_accuracy,
    mean_confidence,
    mean_entropy,
)
from driftline.engine.window_stats import (
    ReferenceArrays,
    WindowColumns,
    _performance,
    category_codes,
    predicted_labels,
)
from driftline.profile.format import (
    BaselineProfile,
    Calibration,
    CategoricalFeature,
    Columns,
    OutputProfile,
)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _probabilities(draw: st.DrawFn, n: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.dirichlet(np.full(k, draw(st.sampled_from([0.3, 1.0, 5.0]))), n)
    if draw(st.booleans()):  # some exact 0s, 1s and ties
        p = np.round(p, 1)
        p /= np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1)
    bad = rng.random(n) < draw(st.sampled_from([0.0, 0.1, 1.0]))
    p[bad, rng.integers(0, k, int(bad.sum()))] = draw(st.sampled_from([np.nan, np.inf]))
    return p


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(0, 300), k=st.sampled_from([1, 2, 3]))
def test_confidence_and_entropy_equal_each_alone(data: st.DataObject, n: int, k: int) -> None:
    p = _probabilities(data.draw, n, max(k, 2))
    if k == 1:
        p = p[:, 1]  # a 1-D array is a binary p_positive
    conf, ent = confidence_and_entropy(p)
    assert _same(conf, mean_confidence(p)) and _same(ent, mean_entropy(p))


def _old_performance(ref: ReferenceArrays, cols: WindowColumns,
                     ) -> tuple[float | None, float | None, float | None, float | None,
                                dict[str, float]]:
    """What the window computed before: (accuracy, precision, recall, F1, estimated)."""
    out = ref.profile.output
    assert out is not None
    probs = cols.probabilities
    assert probs is not None
    k = len(ref.classes)
    est = prec = rec = f1 = None
    estimated = estimated_metrics(np.empty((0, k)), np.empty(0, dtype=np.int64))
    ok = np.isfinite(probs).all(axis=1)
    if len(probs) and ok.any():
        cal = calibrate(probs[ok], ref.classes, out.calibration)
        pred_idx = None
        if cols.prediction is not None:
            idx = category_codes(cols.prediction[ok], ref.class_ref)
            known = (idx >= 0) & (idx < k)
            pred_idx = np.where(known, idx, np.argmax(cal, axis=1))
        est = estimated_accuracy(cal, pred_idx)
        if ref.positive_index is not None and k == 2:
            pos = ref.positive_index
            chosen = pred_idx if pred_idx is not None else np.argmax(probs[ok], axis=1)
            conf = binary_confusion_estimate(cal[:, pos], chosen == pos)
            prec, rec, f1 = conf["precision"], conf["recall"], conf["f1"]
        chosen_idx = pred_idx if pred_idx is not None else np.argmax(probs[ok], axis=1)
        estimated = estimated_metrics(cal, chosen_idx, ref.binary_positive)
    return est, prec, rec, f1, estimated


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(0, 300), k=st.sampled_from([2, 3]),
       positive=st.booleans(), calibrated=st.booleans(), prediction=st.booleans())
def test_estimated_performance_equals_its_definition(data: st.DataObject, n: int, k: int,
                                                     positive: bool, calibrated: bool,
                                                     prediction: bool) -> None:
    classes = tuple(str(i) for i in range(k))
    cal = {}
    if calibrated:  # a monotone map that is not symmetric about 1/2
        xs = sorted(data.draw(st.lists(st.floats(0, 1), min_size=2, max_size=5, unique=True)))
        ys = sorted(data.draw(st.lists(st.floats(0, 1), min_size=len(xs), max_size=len(xs))))
        cal = {classes[-1]: Calibration(tuple(xs), tuple(ys))}
    pred = CategoricalFeature("y", classes, (*([1 / k] * k), 0.0), 1000, 0.0)
    out = OutputProfile("classification", "y", {c: f"p{c}" for c in classes}, classes,
                        classes[-1] if positive else None, pred, None, 0.8, cal)
    prof = BaselineProfile("m", "1", "", 1000, {}, Columns("y", out.proba_columns), out)
    ref = ReferenceArrays(prof)
    probs = _probabilities(data.draw, n, k)
    labels = None
    if prediction:  # the model's own decision: mostly its argmax, some other or unknown
        rng = np.random.default_rng(n)
        chosen = np.where(rng.random(n) < 0.8, np.nan_to_num(probs).argmax(axis=1),
                          rng.integers(0, k + 1, n))
        labels = np.array([classes[i] if i < k else "other" for i in chosen], dtype=object)
        labels[rng.random(n) < 0.05] = None
    cols = WindowColumns(n, {}, labels, probs, None, None, None)
    got = _performance(ref, cols, predicted_labels(ref, cols), (None, 0), {})
    est, prec, rec, f1, estimated = _old_performance(ref, cols)
    assert _same(got.estimated_accuracy, est)
    assert _same(got.estimated_precision, prec) and _same(got.estimated_recall, rec)
    assert _same(got.estimated_f1, f1)
    assert got.estimated.keys() == estimated.keys()
    assert all(_same(got.estimated[m], estimated[m]) for m in estimated)
