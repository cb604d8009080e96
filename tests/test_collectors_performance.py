"""The live path of performance: a regressor's predictions joined to delayed labels by id
(realised MAE/RMSE/MAPE/R² equal sklearn's), bad labels and probabilities outside [0, 1]
counted as drops, and the performance gauges exported under one metric with a ``metric``
label."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from sklearn import metrics as skm
from test_serve_support import categorical_feature, make_profile

from driftline import catalogue as cat
from driftline.collectors.feedback import Feedback
from driftline.collectors.ingest import split_records
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.engine.snapshot import SidecarStats
from driftline.exporters.cardinality import CardinalityGuard
from driftline.exporters.points import MetricPoints, build_points

T0 = 1_800_000_000.0


def _sidecar(task: str) -> Sidecar:
    models = [(ModelConfig("m", baseline=None, version="1"),  # type: ignore[arg-type]
               make_profile("m", "1", task=task))]
    return Sidecar(models, limits=LimitsConfig(),  # type: ignore[arg-type]
                   monitor_factory=engine_factory(WindowPolicy(records=50, max_age=None),
                                                  DriftPolicy()), clock=lambda: T0)


def _points(s) -> dict[str, MetricPoints]:  # type: ignore[no-untyped-def]
    return {m.spec.name: m for m in build_points([s], SidecarStats(), CardinalityGuard())}


def _snap(sc: Sidecar):  # type: ignore[no-untyped-def]
    (s,) = [s for s in sc.snapshots() if s.model_name == "m"]
    return s


def test_regression_labels_join_by_id_and_bad_labels_are_counted() -> None:
    sc = _sidecar("regression")
    rng = np.random.default_rng(0)
    pred = rng.normal(size=60)
    y = pred + rng.normal(0, 0.5, 60)
    body = [{"model_name": "m", "id": f"r{i}", "features": {"f0": float(pred[i])},
             "prediction": float(pred[i])} for i in range(60)]
    assert sc.handle_ingest(split_records(orjson.dumps(body))) == 60
    fb = [Feedback(f"r{i}", float(y[i])) for i in range(58)]
    fb += [Feedback("r58", "not a number"), Feedback("r59", None), Feedback("ghost", 1.0, "m")]
    assert sc.handle_feedback(fb) == 58
    assert sc.dropped == {("m", "invalid_label"): 2}
    sc.tick(T0 + 11)  # "ghost" waited 10 s for a prediction, then counts as unmatched
    s = _snap(sc)
    assert s.labels == {"true": 58, "false": 1}
    real = s.performance
    last = slice(8, 58)  # realised metrics cover the last window.records (50) joined labels
    assert real["mae"] == pytest.approx(skm.mean_absolute_error(y[last], pred[last]))
    assert real["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y[last], pred[last])))
    assert real["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[last], pred[last]))
    assert real["r2"] == pytest.approx(skm.r2_score(y[last], pred[last]))
    assert s.accuracy is None
    points = _points(s)
    series = points[cat.PERFORMANCE.name].values
    assert series[("m", "1", "default", "mae")] == pytest.approx(real["mae"])
    assert cat.ACCURACY.name not in points or not points[cat.ACCURACY.name].values


def test_probabilities_outside_unit_interval_are_dropped_and_counted() -> None:
    sc = _sidecar("classification")
    body = [{"model_name": "m", "id": f"c{i}", "features": {"f0": 0.1 * i}, "prediction": 1,
             "probabilities": p} for i, p in enumerate([0.9, 1.7, 0.2, -0.3, 0.6])]
    sc.handle_ingest(split_records(orjson.dumps(body)))
    assert sc.dropped == {("m", "invalid_probability"): 2}
    assert _snap(sc).records_sampled == 3
    # the dropped records' ids were not stored: their labels find nothing
    assert sc.handle_feedback([Feedback("c1", 1), Feedback("c0", 1)]) == 1


def test_classifier_performance_gauges_carry_the_metric_label() -> None:
    sc = _sidecar("classification")
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50)
    body = [{"model_name": "m", "id": f"k{i}", "features": {"f0": float(p[i])},
             "prediction": int(p[i] > 0.5), "probabilities": float(p[i])} for i in range(50)]
    sc.handle_ingest(split_records(orjson.dumps(body)))  # closes one 50-record window
    labels = (rng.uniform(size=50) < p).astype(int)
    sc.handle_feedback([Feedback(f"k{i}", int(labels[i])) for i in range(50)])
    s = _snap(sc)
    assert set(s.estimated_performance) == {"accuracy", "roc_auc", "f1", "precision", "recall",
                                            "specificity"}
    pred = (p > 0.5).astype(int)
    assert s.performance["f1"] == pytest.approx(skm.f1_score(labels, pred))
    assert s.performance["accuracy"] == pytest.approx(s.accuracy)
    points = _points(s)
    est = points[cat.ESTIMATED_PERFORMANCE.name].values
    assert {k[-1] for k in est} == set(s.estimated_performance)
    assert est[("m", "1", "default", "accuracy")] == pytest.approx(s.estimated_accuracy)


def test_realised_roc_auc_through_feedback_http_equals_sklearn() -> None:
    # binary: the probabilities stored with each id come back when its label is posted to
    # /feedback; records sent without probabilities join but do not enter the ROC AUC
    from test_serve_http import Stack, request

    stack = Stack()
    try:
        rng = np.random.default_rng(4)
        p = rng.uniform(size=90)
        recs = [{"model_name": "car-loan", "id": f"a{i}", "features": {"f0": float(p[i])},
                 "prediction": int(p[i] > 0.5), **({"probabilities": float(p[i])} if i < 80
                                                   else {})} for i in range(90)]
        assert request(stack.port, "POST", "/ingest", orjson.dumps(recs))[0] == 202
        y = (rng.uniform(size=90) < p).astype(int)
        fb = [{"id": f"a{i}", "label": int(y[i])} for i in range(90)]
        assert request(stack.port, "POST", "/feedback", orjson.dumps(fb))[0] == 202
    finally:
        stack.close()  # the worker drains the queue before it stops
    (s,) = stack.sidecar.snapshots()
    assert s.labels["true"] == 90
    assert s.performance["roc_auc"] == pytest.approx(skm.roc_auc_score(y[:80], p[:80]))
    assert s.performance["accuracy"] == pytest.approx(float(np.mean(y == (p > 0.5))))


def _multiclass_profile():  # type: ignore[no-untyped-def]
    import dataclasses

    base = make_profile("mc", "1")
    classes = ("a", "b", "c")
    out = dataclasses.replace(
        base.output, classes=classes, positive_class=None,
        proba_columns={c: f"p_{c}" for c in classes},
        prediction=categorical_feature("prediction", list(classes), [0.4, 0.3, 0.3]))
    return dataclasses.replace(base, output=out, columns=dataclasses.replace(
        base.columns, proba={c: f"p_{c}" for c in classes}))


def test_realised_macro_roc_auc_through_the_sdk_equals_sklearn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import driftline.sdk

    path = tmp_path / "mc.json"
    _multiclass_profile().save(path)
    rng = np.random.default_rng(5)
    n = 70
    proba = rng.dirichlet([1.0, 1.0, 1.0], n)
    y = np.array([rng.choice(3, p=row) for row in proba])
    names = np.array(["a", "b", "c"])
    with driftline.sdk.Monitor(baseline=path, window_records=40) as mon:
        for i in range(n):
            mon.log(features={"f0": float(i)}, prediction=str(names[proba[i].argmax()]),
                    probabilities=proba[i].tolist(), id=f"m{i}")
        for i in range(n):
            mon.feedback(f"m{i}", str(names[y[i]]))
        assert mon.flush()
        s = mon.snapshot()
    last = slice(n - 40, n)  # the realised metrics cover the last window.records joined labels
    assert s.labels["true"] == n
    assert s.performance["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y[last], proba[last], multi_class="ovr", average="macro"))
    assert s.performance["f1"] == pytest.approx(
        skm.f1_score(y[last], proba[last].argmax(axis=1), average="macro"))
