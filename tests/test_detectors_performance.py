"""CBPE, calibration, confidence and realised accuracy against hand arithmetic and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from driftline.detectors.performance import (
    accuracy,
    binary_confusion_estimate,
    calibrate,
    estimated_accuracy,
    fit_calibration,
    mean_confidence,
    mean_entropy,
)
from driftline.profile.format import Calibration


def test_estimated_accuracy_by_hand() -> None:
    cal = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8]])
    # argmax probs: 0.9, 0.7, 0.5 (first max), 0.8 -> mean = 2.9 / 4 = 0.725
    assert estimated_accuracy(cal) == pytest.approx(0.725)
    # the model predicted class 1 on row 0: 0.1 + 0.7 + 0.5 + 0.8 = 2.1 / 4
    assert estimated_accuracy(cal, np.array([1, 1, 0, 1])) == pytest.approx(0.525)
    assert math.isnan(estimated_accuracy(np.empty((0, 2))))


def test_binary_confusion_estimate_by_hand() -> None:
    p = np.array([0.9, 0.6, 0.2, 0.4])
    pred = np.array([True, True, False, False])
    # predicted positive: TP = .9 + .6 = 1.5, FP = .1 + .4 = .5
    # predicted negative: FN = .2 + .4 = .6,  TN = .8 + .6 = 1.4
    got = binary_confusion_estimate(p, pred)
    assert got["tp"] == pytest.approx(1.5)
    assert got["fp"] == pytest.approx(0.5)
    assert got["fn"] == pytest.approx(0.6)
    assert got["tn"] == pytest.approx(1.4)
    assert got["accuracy"] == pytest.approx((1.5 + 1.4) / 4)
    assert got["precision"] == pytest.approx(1.5 / 2.0)
    assert got["recall"] == pytest.approx(1.5 / 2.1)
    assert got["f1"] == pytest.approx(3.0 / (3.0 + 0.5 + 0.6))


def test_binary_confusion_estimate_no_positive_predictions() -> None:
    got = binary_confusion_estimate(np.array([0.1, 0.2]), np.array([0, 0]))
    assert math.isnan(got["precision"])
    assert got["recall"] == 0.0


def test_calibration_equals_sklearn_isotonic() -> None:
    rng = np.random.default_rng(7)
    p = np.round(rng.uniform(size=600), 2)  # rounded: many ties
    y = (rng.uniform(size=600) < p**1.5).astype(float)
    cal = fit_calibration(p, y)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, y)
    grid = np.linspace(-0.1, 1.1, 1001)
    np.testing.assert_allclose(cal.apply(grid), iso.predict(grid), atol=1e-12)
    assert len(cal.x) < np.unique(p).size  # knots compressed


def test_calibration_degenerate_inputs() -> None:
    ident = fit_calibration(np.array([]), np.array([]))
    assert ident.apply(np.array([0.3]))[0] == pytest.approx(0.3)
    const_p = fit_calibration(np.full(10, 0.7), np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1]))
    assert const_p.apply(np.array([0.1, 0.9])).tolist() == [0.8, 0.8]
    one_class = fit_calibration(np.linspace(0, 1, 20), np.ones(20))
    assert np.all(one_class.apply(np.linspace(0, 1, 7)) == 1.0)
    with_nan = fit_calibration(np.array([0.2, np.nan, 0.8]), np.array([0.0, 1.0, 1.0]))
    assert with_nan.apply(np.array([0.2, 0.8])).tolist() == [0.0, 1.0]


def test_calibrate_binary_and_multiclass() -> None:
    cal = {"1": Calibration(x=(0.0, 1.0), y=(0.0, 0.5))}
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    out = calibrate(p, ["0", "1"], cal)
    np.testing.assert_allclose(out, [[0.6, 0.4], [0.8, 0.2]])
    multi = {"a": Calibration(x=(0.0, 1.0), y=(0.0, 0.5))}  # halves class a
    pm = np.array([[0.5, 0.3, 0.2]])
    # calibrated (0.25, 0.3, 0.2) / 0.75
    np.testing.assert_allclose(calibrate(pm, ["a", "b", "c"], multi), [[1 / 3, 0.4, 0.2 / 0.75]])
    zero = {c: Calibration(x=(0.0, 1.0), y=(0.0, 0.0)) for c in "abc"}
    np.testing.assert_allclose(calibrate(pm, ["a", "b", "c"], zero), pm)


def test_mean_confidence_and_entropy() -> None:
    p = np.array([[0.5, 0.5], [0.9, 0.1], [np.nan, 0.2]])
    assert mean_confidence(p) == pytest.approx(0.7)
    h = (math.log(2) + -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))) / 2
    assert mean_entropy(p) == pytest.approx(h)
    assert mean_confidence(np.array([0.2, 0.9])) == pytest.approx(0.85)  # 1-D: binary p_positive
    assert mean_entropy(np.array([[1.0, 0.0]])) == 0.0
    assert math.isnan(mean_confidence(np.empty((0, 3))))


def test_accuracy_skips_missing_labels() -> None:
    pred = np.array(["1", "0", "1", None, "2"], dtype=object)
    lab = np.array(["1", "1", None, "0", "2"], dtype=object)
    assert accuracy(pred, lab) == pytest.approx(2 / 3)
    assert math.isnan(accuracy(np.array([None], dtype=object), np.array(["1"], dtype=object)))


_any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([0.0, -0.0, 1.0, 0.5, 5e-324]))


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 40), k=st.integers(1, 4), data=st.data())
def test_row_reductions_are_numpys_bit_for_bit(rows: int, k: int, data: st.DataObject) -> None:
    # the binary model's column forms of the row reductions (and the general case they fall
    # back to): the same bits as numpy's axis-1 reduction, signed zeros and infinities; NaN
    # where it gives NaN
    from driftline.detectors.performance import finite_rows, row_max, row_sum

    values = data.draw(st.lists(_any_float, min_size=rows * k, max_size=rows * k))
    p = np.array(values, dtype=np.float64).reshape(rows, k)
    np.testing.assert_array_equal(finite_rows(p), np.isfinite(p).all(axis=1))
    with np.errstate(all="ignore"):
        for got, want in ((row_max(p), p.max(axis=1)), (row_sum(p), p.sum(axis=1))):
            assert got.dtype == want.dtype and got.shape == want.shape
            # every bit but a NaN's payload (which NaN a reduction passes on; the callers'
            # rows are finite)
            nan = np.isnan(want)
            np.testing.assert_array_equal(np.isnan(got), nan)
            assert got[~nan].tobytes() == want[~nan].tobytes()


@settings(max_examples=100, deadline=None)
@given(p=st.lists(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0, np.nan])),
                  max_size=60))
def test_expected_roc_auc_without_r_is_the_same_float(p: list[float]) -> None:
    # expected_roc_auc's curves built without np.r_: the same float as written with it
    from driftline.detectors.classification import expected_roc_auc

    x = np.array(p, dtype=np.float64)
    y = x[np.isfinite(x)]
    pos, neg = float(y.sum()), float((1.0 - y).sum())
    if y.size == 0 or pos <= 0 or neg <= 0:
        want = float("nan")
    else:
        s = np.sort(y)[::-1]
        tp, fp = np.cumsum(s), np.cumsum(1.0 - s)
        last = np.r_[s[1:] != s[:-1], True]
        tpr, fpr = np.r_[0.0, tp[last] / pos], np.r_[0.0, fp[last] / neg]
        want = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    got = expected_roc_auc(x)
    assert np.float64(got).tobytes() == np.float64(want).tobytes()
