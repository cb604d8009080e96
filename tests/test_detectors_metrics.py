"""CBPE metrics against hand-computed expected confusion matrices; realised classification and
regression metrics against sklearn.metrics on the same rows; DLE against a hand-checked case
and against realised errors where the loss is learnable."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from driftline.detectors.classification import (
    estimated_metrics,
    expected_roc_auc,
    realised_metrics,
    roc_auc,
)
from driftline.detectors.dle import GBMParams, estimate_losses, fit_loss_model, fit_trees
from driftline.detectors.regression import realised_regression
from driftline.profile.trees import (
    PREDICTION_INPUT,
    LossModel,
    TreeEnsemble,
    predict_ensembles,
)

# --- CBPE ------------------------------------------------------------------------------------


def test_binary_estimates_equal_hand_computed_expected_confusion_matrix() -> None:
    # rows (p, predicted positive): (0.9, y) (0.6, y) (0.3, n) (0.2, n)
    p = np.array([0.9, 0.6, 0.3, 0.2])
    cal = np.column_stack([1 - p, p])
    pred = np.array([1, 1, 0, 0])
    # TP = .9 + .6 = 1.5, FP = .1 + .4 = .5, FN = .3 + .2 = .5, TN = .7 + .8 = 1.5
    got = estimated_metrics(cal, pred)
    assert got["accuracy"] == pytest.approx(3.0 / 4)
    assert got["precision"] == pytest.approx(1.5 / 2.0)
    assert got["recall"] == pytest.approx(1.5 / 2.0)
    assert got["f1"] == pytest.approx(3.0 / 4.0)
    assert got["specificity"] == pytest.approx(1.5 / 2.0)
    # thresholds .9 .6 .3 .2: TP 0.9 1.5 1.8 2.0 of 2.0; FP 0.1 0.5 1.2 2.0 of 2.0
    tpr = [0, .45, .75, .9, 1]
    fpr = [0, .05, .25, .6, 1]
    area = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(4))
    assert got["roc_auc"] == pytest.approx(area)


def test_expected_roc_auc_two_rows_by_hand() -> None:
    # pairs (positive weight × negative weight): (.9 pos, .1 neg) tie .045, (.9 pos, .5 neg) .45,
    # (.5 pos, .5 neg) tie .125 → .62 / (1.4 × .6)
    assert expected_roc_auc(np.array([0.9, 0.5])) == pytest.approx(0.62 / 0.84)


@settings(max_examples=40)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40))
def test_expected_roc_auc_is_weighted_roc_auc_of_soft_labels(ps: list[float]) -> None:
    p = np.asarray(ps)
    if p.sum() <= 0 or (1 - p).sum() <= 0:
        assert math.isnan(expected_roc_auc(p))
        return
    y = np.r_[np.ones(p.size), np.zeros(p.size)]
    w = np.r_[p, 1 - p]
    keep = w > 0
    ref = skm.roc_auc_score(y[keep], np.r_[p, p][keep], sample_weight=w[keep])
    assert expected_roc_auc(p) == pytest.approx(ref, abs=1e-9)


def test_multiclass_estimates_are_macro_of_one_vs_rest() -> None:
    cal = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    pred = np.array([0, 1, 2, 0])
    got = estimated_metrics(cal, pred)
    prec, rec, f1, spec, auc = [], [], [], [], []
    for k in range(3):
        p = cal[:, k]
        hit = pred == k
        tp, fp = p[hit].sum(), (1 - p[hit]).sum()
        fn, tn = p[~hit].sum(), (1 - p[~hit]).sum()
        prec.append(tp / (tp + fp))
        rec.append(tp / (tp + fn))
        f1.append(2 * tp / (2 * tp + fp + fn))
        spec.append(tn / (tn + fp))
        auc.append(expected_roc_auc(p))
    assert got["accuracy"] == pytest.approx((0.7 + 0.6 + 0.5 + 0.5) / 4)
    for name, vals in [("precision", prec), ("recall", rec), ("f1", f1), ("specificity", spec),
                       ("roc_auc", auc)]:
        assert got[name] == pytest.approx(np.mean(vals)), name


def test_estimates_match_realised_on_average_when_calibrated() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 40_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    pred = (p > 0.5).astype(int)
    est = estimated_metrics(np.column_stack([1 - p, p]), pred)
    real = realised_metrics(pred, y, 2, np.column_stack([1 - p, p]))
    for name in ("accuracy", "roc_auc", "f1", "precision", "recall", "specificity"):
        assert est[name] == pytest.approx(real[name], abs=0.01), name


# --- realised classification ------------------------------------------------------------------


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0, 1)), min_size=1,
                max_size=60))
def test_realised_binary_equals_sklearn(rows: list[tuple[int, int, float]]) -> None:
    y = np.array([r[0] for r in rows])
    pred = np.array([r[1] for r in rows])
    score = np.array([r[2] for r in rows])
    got = realised_metrics(pred, y, 2, np.column_stack([1 - score, score]))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    tp = int(((pred == 1) & (y == 1)).sum())
    for name, fn, defined in [
        ("precision", skm.precision_score, (pred == 1).any()),
        ("recall", skm.recall_score, (y == 1).any()),
        ("f1", skm.f1_score, tp > 0 or (pred != y).any()),
    ]:
        if defined:
            assert got[name] == pytest.approx(fn(y, pred, zero_division=0)), name
        else:
            assert math.isnan(got[name]), name
    if (y == 0).any():  # specificity = recall of the negative class
        assert got["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    if len(set(y.tolist())) == 2:
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    else:
        assert math.isnan(got["roc_auc"])


def test_realised_multiclass_equals_sklearn_macro() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    scores = rng.dirichlet([1, 1, 1], 300)
    pred = np.where(rng.uniform(size=300) < 0.6, y, rng.integers(0, 3, 300))
    got = realised_metrics(pred, y, 3, scores)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    spec = np.mean([skm.recall_score(y != k, pred != k) for k in range(3)])
    assert got["specificity"] == pytest.approx(spec)
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, scores, multi_class="ovr", average="macro"))


def test_realised_macro_counts_every_model_class_like_nannyml() -> None:
    # class 3 of 4 occurs in neither labels nor predictions: NannyML passes labels=classes to
    # sklearn, so that class's precision, recall and F1 count 0 in the macro mean
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 200)
    pred = np.where(rng.uniform(size=200) < 0.7, y, rng.integers(0, 3, 200))
    got = realised_metrics(pred, y, 4)
    labels = [0, 1, 2, 3]
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        want = fn(y, pred, average="macro", labels=labels, zero_division=0)
        assert got[name] == pytest.approx(want), name
    assert got["f1"] < skm.f1_score(y, pred, average="macro")  # not sklearn's default


def test_realised_skips_missing_and_counts_unknown_labels_wrong() -> None:
    got = realised_metrics(np.array([0, 1, -1, 1]), np.array([0, 2, 1, -1]), 2)
    assert got["accuracy"] == 0.5  # rows 0 (right) and 1 (label outside the classes)
    assert "roc_auc" not in got


def test_roc_auc_ties_like_sklearn() -> None:
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([0.5, 0.5, 0.8, 0.1, 0.5])
    assert roc_auc(y == 1, s) == pytest.approx(skm.roc_auc_score(y, s))


# --- realised regression ----------------------------------------------------------------------


@settings(max_examples=40)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=50))
def test_realised_regression_equals_sklearn(rows: list[tuple[float, float]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    got = realised_regression(p, y)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p))
    if y.size >= 2 and np.var(y) > 0:
        assert got["r2"] == pytest.approx(skm.r2_score(y, p), abs=1e-9)
    else:
        assert math.isnan(got["r2"])


def test_realised_regression_skips_missing() -> None:
    got = realised_regression(np.array([1.0, np.nan, 3.0]), np.array([2.0, 5.0, np.nan]))
    assert got["mae"] == 1.0
    assert math.isnan(realised_regression(np.array([np.nan]), np.array([1.0]))["mae"])


# --- trees and DLE ----------------------------------------------------------------------------


def test_tree_evaluation_by_hand() -> None:
    # depth 2: root splits input 0 at 5; left child input 1 at 0; right child no split
    t = TreeEnsemble(depth=2, base=1.0, feature=((0, 1, -1),), threshold=((5.0, 0.0, 0.0),),
                     leaf=((10.0, 20.0, 30.0, 40.0),))
    x = np.array([[1.0, -1.0], [1.0, 2.0], [7.0, 2.0], [np.nan, 3.0], [5.0, 0.0]])
    # row 0 left,left → 10; row 1 left,right → 20; row 2 right, no split → left leaf 30;
    # row 3 NaN → left, then 3 >= 0 → right → 20; row 4: 5 >= 5 → right → 30
    assert t.predict(x).tolist() == [11.0, 21.0, 31.0, 21.0, 31.0]


def test_ensembles_walked_together_by_hand() -> None:
    # the hand tree above beside a depth-2 ensemble of two trees on input 1; +inf goes right at
    # a split and left at a node without one, -inf goes left
    a = TreeEnsemble(depth=2, base=1.0, feature=((0, 1, -1),), threshold=((5.0, 0.0, 0.0),),
                     leaf=((10.0, 20.0, 30.0, 40.0),))
    b = TreeEnsemble(depth=2, base=0.5, feature=((1, -1, -1), (-1, 1, -1)),
                     threshold=((1.0, 0.0, 0.0), (0.0, 2.0, 0.0)),
                     leaf=((1.0, 2.0, 3.0, 4.0), (100.0, 200.0, 300.0, 400.0)))
    x = np.array([[1.0, -1.0], [1.0, 2.0], [7.0, 2.0], [np.nan, 3.0], [5.0, 0.0],
                  [np.inf, np.inf], [-np.inf, -np.inf]])
    got_a, got_b = predict_ensembles([a, b], x)
    assert got_a.tolist() == [11.0, 21.0, 31.0, 21.0, 31.0, 31.0, 11.0]
    # b: tree 1 is x1 >= 1 → leaf 3 else leaf 1; tree 2 goes left at its root, then x1 >= 2
    assert got_b.tolist() == [0.5 + 1 + 100, 0.5 + 3 + 200, 0.5 + 3 + 200, 0.5 + 3 + 200,
                              0.5 + 1 + 100, 0.5 + 3 + 200, 0.5 + 1 + 100]


def _per_tree(t: TreeEnsemble, x: np.ndarray) -> np.ndarray:
    """The evaluator the stored trees had before they were walked all at once: per tree, one
    gather per level over every row, leaves added tree after tree."""
    feature, threshold, leaf = t.arrays()
    out = np.full(x.shape[0], t.base)
    rows = np.arange(x.shape[0])
    for f_k, t_k, v_k in zip(feature, threshold, leaf, strict=True):
        node = np.zeros(x.shape[0], dtype=np.intp)
        for _ in range(t.depth):
            f = f_k[node]
            with np.errstate(invalid="ignore"):
                right = (x[rows, np.maximum(f, 0)] >= t_k[node]) & (f >= 0)
            node = 2 * node + 1 + right
        out += v_k[node - (2 ** t.depth - 1)]
    return out


def _random_ensemble(rng: np.random.Generator, depth: int, n_trees: int, n_inputs: int,
                     grid: np.ndarray) -> TreeEnsemble:
    inner = 2 ** depth - 1
    f = rng.integers(-1, n_inputs, (n_trees, inner))
    thr = rng.choice(grid, (n_trees, inner))  # thresholds on the value grid: ties are common
    v = rng.normal(size=(n_trees, inner + 1)) * 10.0 ** rng.integers(-6, 6, (n_trees, inner + 1))
    return TreeEnsemble(depth=depth, base=float(rng.normal()),
                        feature=tuple(tuple(int(c) for c in r) for r in f),
                        threshold=tuple(tuple(float(c) for c in r) for r in thr),
                        leaf=tuple(tuple(float(c) for c in r) for r in v))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(0, 12), st.integers(0, 3000))
def test_ensembles_walked_together_equal_the_per_tree_evaluator(seed: int, depth: int,
                                                                n_trees: int, rows: int) -> None:
    # rows up to 3000 cross the block boundary (~1300 rows for 200 trees, fewer for more)
    rng = np.random.default_rng(seed)
    grid = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    x = rng.choice(np.array([*grid, 1.0, np.nan, np.inf, -np.inf]), (rows, 3))
    ensembles = [_random_ensemble(rng, depth, n_trees, 3, grid),
                 _random_ensemble(rng, depth, rng.integers(0, 200), 3, grid)]
    for got, t in zip(predict_ensembles(ensembles, x), ensembles, strict=True):
        assert np.array_equal(got, _per_tree(t, x))  # bit-identical, not approximately
    assert np.array_equal(ensembles[0].predict(x), _per_tree(ensembles[0], x))


def test_ensembles_of_different_depths_walk_apart() -> None:
    rng = np.random.default_rng(3)
    grid = np.array([-1.0, 0.0, 1.0])
    x = rng.normal(size=(50, 2))
    e = [_random_ensemble(rng, 2, 5, 2, grid), _random_ensemble(rng, 4, 7, 2, grid)]
    for got, t in zip(predict_ensembles(e, x), e, strict=True):
        assert np.array_equal(got, _per_tree(t, x))


def test_tree_validation_rejects_bad_arrays() -> None:
    good = TreeEnsemble(1, 0.0, ((0,),), ((1.0,),), ((1.0, 2.0),))
    good.validate(1)
    for bad in [TreeEnsemble(1, 0.0, ((3,),), ((1.0,),), ((1.0, 2.0),)),
                TreeEnsemble(1, 0.0, ((0,),), ((1.0,),), ((1.0,),)),
                TreeEnsemble(1, 0.0, ((0,),), ((math.nan,),), ((1.0, 2.0),)),
                TreeEnsemble(0, 0.0, (), (), ())]:
        with pytest.raises(ValueError):
            bad.validate(1)


def test_gbm_learns_a_step_like_sklearn_tree() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (2000, 2))
    y = np.where(x[:, 0] > 3, 5.0, 1.0)
    t = fit_trees(x, y, GBMParams(depth=2, max_trees=200, learning_rate=0.3, min_leaf=5))
    assert np.abs(t.predict(np.array([[1.0, 5.0], [9.0, 5.0]])) - [1.0, 5.0]).max() < 0.05
    assert t.predict(np.array([[np.nan, 5.0]]))[0] < 3  # missing goes left


def test_gbm_accuracy_close_to_sklearn_hist_gradient_boosting() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 4))
    y = np.sin(x[:, 0]) * 2 + np.abs(x[:, 1]) + rng.normal(0, 0.3, 6000)
    tr, te = slice(0, 4000), slice(4000, None)
    ours = fit_trees(x[tr], y[tr], GBMParams(patience=20), valid=(x[4000:5000], y[4000:5000]))
    with threadpool_limits(1):  # OpenMP threads on a busy machine make it minutes, not seconds
        sk = HistGradientBoostingRegressor(random_state=0).fit(x[tr], y[tr])
    mse_ours = np.mean((ours.predict(x[te]) - y[te]) ** 2)
    mse_sk = np.mean((sk.predict(x[te]) - y[te]) ** 2)
    assert mse_ours < 1.15 * mse_sk


def _heteroscedastic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 2))
    y = 2 * x[:, 0] + rng.normal(0, 0.05 + x[:, 0], n)  # noise grows with x0
    pred = 2 * x[:, 0]
    return x, pred, y


def test_dle_estimates_follow_realised_errors_where_loss_is_learnable() -> None:
    x, pred, y = _heteroscedastic(12_000, 0)
    inputs = ("a", "b", PREDICTION_INPUT)
    model = fit_loss_model(np.column_stack([x, pred]), pred, y, inputs, {})
    xa, pa, ya = _heteroscedastic(40_000, 1)
    for region in (xa[:, 0] < 0.3, xa[:, 0] > 0.7):  # easy and hard region (covariate shift)
        est = estimate_losses(model, np.column_stack([xa, pa])[region])
        real = realised_regression(pa[region], ya[region])
        assert est["mae"] == pytest.approx(real["mae"], rel=0.05)
        assert est["rmse"] == pytest.approx(real["rmse"], rel=0.05)
    assert model.holdout["estimated_mae"] == pytest.approx(model.holdout["mae"], rel=0.05)


def test_dle_hand_checked_constant_error() -> None:
    # the error is +2 on rows with x < 0 and -1 elsewhere: |e| is 2 or 1, e² is 4 or 1
    x = np.repeat([-1.0, 1.0], 200)
    pred = np.zeros(400)
    y = np.where(x < 0, 2.0, -1.0)
    model = fit_loss_model(np.column_stack([x, pred]), pred, y, ("x", PREDICTION_INPUT), {},
                           GBMParams(depth=1, learning_rate=0.5, min_leaf=5, l2=0.0))
    half = estimate_losses(model, np.array([[-1.0, 0.0], [1.0, 0.0]]))
    assert half["mae"] == pytest.approx(1.5, abs=1e-6)
    assert half["rmse"] == pytest.approx(math.sqrt(2.5), abs=1e-6)
    # a missing prediction is skipped
    assert math.isnan(estimate_losses(model, np.array([[1.0, np.nan]]))["mae"])


def test_loss_model_round_trips_and_validates() -> None:
    x, pred, y = _heteroscedastic(500, 2)
    m = fit_loss_model(np.column_stack([x, pred]), pred, y, ("a", "b", PREDICTION_INPUT), {},
                       GBMParams(max_trees=5))
    again = LossModel.from_dict(m.to_dict())
    probe = np.column_stack([x, pred])[:50]
    assert estimate_losses(again, probe) == estimate_losses(m, probe)
    bad = m.to_dict()
    bad["absolute"]["feature"][0][0] = 9
    with pytest.raises(ValueError, match="input indices"):
        LossModel.from_dict(bad)
