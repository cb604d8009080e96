"""Performance end to end through the engine: baseline build (reference metrics, the DLE fit, the
stored trees), ``analyze`` windows (estimated and realised dicts against sklearn on the same
rows) and the live label join of the monitor, for regressors and classifiers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from driftline.analyze.offline import analyze, report_document
from driftline.detectors.classification import CLASSIFICATION_METRICS
from driftline.detectors.performance import calibrate
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import from_records
from driftline.errors import InputError, ProfileError
from driftline.io.readers import DataFile
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile
from tests.engine_fixtures import reference_table, write


def regression_table(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    """A regressor whose error grows with ``a`` and is larger for colour ``z``: learnable loss."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, n) + shift
    b = rng.normal(size=n)
    c = rng.choice(["x", "y", "z"], n)
    pred = 2 * a + b
    y = pred + rng.normal(0, 0.05 + a * (1 + (c == "z")), n)
    return pa.table({"a": a, "b": b, "c": c, "pred": pred, "y": y,
                     "id": [f"r{i}" for i in range(n)]})


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaselineProfile, Path]:
    d = tmp_path_factory.mktemp("reg")
    ref = write(regression_table(8000, 0), d / "ref.parquet")
    cur = write(regression_table(3000, 1, shift=0.3), d / "cur.parquet")
    opts = BuildOptions(prediction="pred", target="y", id="id", task="regression")
    profile = build_profile([DataFile(str(ref), "parquet")], opts, progress=False)
    path = d / "b.json"
    profile.save(path)
    return BaselineProfile.load(path), cur


def test_regression_profile_holds_reference_errors_and_validated_trees(regression) -> None:
    profile, _ = regression
    out = profile.output
    assert out is not None and out.loss_model is not None
    table = regression_table(8000, 0)
    y, p = table.column("y").to_numpy(), table.column("pred").to_numpy()
    ref = out.reference_performance
    assert ref["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert ref["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert ref["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p))
    assert ref["r2"] == pytest.approx(skm.r2_score(y, p))
    assert out.loss_model.inputs == ("a", "b", "c", "__prediction__")
    assert set(out.loss_model.categories["c"]) == {"x", "y", "z"}


def test_analyze_regression_windows_realised_equal_sklearn_and_dle_follows(regression) -> None:
    profile, cur = regression
    windows = list(analyze(profile, [DataFile(str(cur), "parquet")], window_size=1000))
    doc = json.loads(json.dumps(report_document(profile, windows)))
    table = regression_table(3000, 1, shift=0.3)
    y, p = table.column("y").to_numpy(), table.column("pred").to_numpy()
    for i, w in enumerate(doc["windows"]):
        perf = w["performance"]
        assert set(perf["estimated"]) == {"mae", "rmse"}
        assert set(perf["realised"]) == {"mae", "rmse", "mape", "r2"}
        rows = slice(1000 * i, 1000 * (i + 1))
        assert perf["realised"]["mae"] == pytest.approx(skm.mean_absolute_error(y[rows], p[rows]))
        assert perf["realised"]["r2"] == pytest.approx(skm.r2_score(y[rows], p[rows]))
        assert perf["realised"]["mape"] == pytest.approx(
            skm.mean_absolute_percentage_error(y[rows], p[rows]))
        # covariate shift towards the noisy region: DLE follows the realised error
        assert perf["estimated"]["mae"] == pytest.approx(perf["realised"]["mae"], rel=0.12)
        assert perf["estimated"]["rmse"] == pytest.approx(perf["realised"]["rmse"], rel=0.15)
        assert perf["estimated_accuracy"] is None and perf["accuracy"] is None


def test_regression_target_not_numeric_is_a_clear_error(tmp_path: Path, regression) -> None:
    t = regression_table(200, 3)
    bad = t.set_column(t.schema.get_field_index("y"), "y", pa.array(["high"] * 200))
    path = write(bad, tmp_path / "bad.parquet")
    opts = BuildOptions(prediction="pred", target="y", task="regression")
    with pytest.raises(InputError, match=r"column 'y'.*not a number.*fix:"):
        build_profile([DataFile(str(path), "parquet")], opts, progress=False)
    profile, _ = regression
    with pytest.raises(InputError, match=r"column 'y'.*not a number"):
        list(analyze(profile, [DataFile(str(path), "parquet")], window_size=100))


def test_probability_outside_unit_interval_is_a_clear_error(tmp_path: Path) -> None:
    n = 200
    rng = np.random.default_rng(8)
    p = rng.uniform(size=n)
    p[17] = 1.3
    t = pa.table({"x": rng.normal(size=n), "p": p, "pred": (p > 0.5).astype(np.int64),
                  "y": rng.integers(0, 2, n)})
    path = write(t, tmp_path / "scores.parquet")
    opts = BuildOptions(prediction="pred", proba_binary="p", target="y")
    with pytest.raises(InputError, match=r"column 'p'.*outside \[0, 1\].*fix:"):
        build_profile([DataFile(str(path), "parquet")], opts, progress=False)
    good = write(t.set_column(1, "p", pa.array(np.clip(p, 0, 1))), tmp_path / "good.parquet")
    profile = build_profile([DataFile(str(good), "parquet")], opts, progress=False)
    with pytest.raises(InputError, match=r"column 'p'.*outside \[0, 1\].*fix:"):
        list(analyze(profile, [DataFile(str(path), "parquet")], window_size=100))


def test_damaged_loss_model_is_refused_on_load(tmp_path: Path, regression) -> None:
    profile, _ = regression
    d = profile.to_dict()
    d["output"]["loss_model"]["squared"]["leaf"][0] = [1.0]  # wrong number of leaves
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match=r"output\.loss_model is invalid"):
        BaselineProfile.load(path)
    d = profile.to_dict()
    d["output"]["loss_model"]["inputs"][0] = "nope"
    path.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="not features of the baseline"):
        BaselineProfile.load(path)


def test_live_regression_labels_joined_by_id(regression) -> None:
    profile, _ = regression
    table = regression_table(600, 4).to_pylist()
    mon = Monitor(profile, window=WindowPolicy(records=300, max_age=None), clock=None)
    recs = [{"features": {k: r[k] for k in ("a", "b", "c")}, "prediction": r["pred"],
             "id": r["id"]} for r in table]
    mon.observe(from_records(profile, recs[:300]))
    mon.observe_labels(np.array([r["pred"] for r in table[:300]]),
                       np.array([r["y"] for r in table[:300]] + [], dtype=np.float64))
    report = mon.observe(from_records(profile, recs[300:]))[0]
    y = np.array([r["y"] for r in table[:300]])
    p = np.array([r["pred"] for r in table[:300]])
    assert report.performance.realised["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert report.performance.realised["r2"] == pytest.approx(skm.r2_score(y, p))
    assert report.performance.labels == 300
    assert report.performance.estimated["mae"] > 0


# --- classifiers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaselineProfile, Path]:
    d = tmp_path_factory.mktemp("bin")
    ref = write(reference_table(6000, 0), d / "ref.parquet")
    cur = write(reference_table(2000, 1, shift=0.5), d / "cur.parquet")
    opts = BuildOptions(prediction="pred", proba_binary="p", target="y")
    return build_profile([DataFile(str(ref), "parquet")], opts, progress=False), cur


def test_binary_windows_estimated_and_realised(binary) -> None:
    profile, cur = binary
    windows = list(analyze(profile, [DataFile(str(cur), "parquet")], window_size=1000))
    t = reference_table(2000, 1, shift=0.5)
    y = t.column("y").to_numpy().astype(int)
    pred = t.column("pred").to_numpy()
    p = t.column("p").to_numpy()
    out = profile.output
    assert out is not None
    assert set(out.reference_performance) == set(CLASSIFICATION_METRICS)
    for i, w in enumerate(windows):
        perf = w.to_dict()["performance"]
        rows = slice(1000 * i, 1000 * (i + 1))
        real = perf["realised"]
        assert real["accuracy"] == pytest.approx(skm.accuracy_score(y[rows], pred[rows]))
        assert real["accuracy"] == pytest.approx(perf["accuracy"])
        assert real["f1"] == pytest.approx(skm.f1_score(y[rows], pred[rows]))
        assert real["precision"] == pytest.approx(skm.precision_score(y[rows], pred[rows]))
        assert real["recall"] == pytest.approx(skm.recall_score(y[rows], pred[rows]))
        assert real["roc_auc"] == pytest.approx(skm.roc_auc_score(y[rows], p[rows]))
        est = perf["estimated"]
        assert set(est) == set(CLASSIFICATION_METRICS)
        assert est["accuracy"] == pytest.approx(perf["estimated_accuracy"])
        assert est["f1"] == pytest.approx(perf["estimated_f1"])
        # the model is calibrated by construction: estimates near the realised values
        for name in CLASSIFICATION_METRICS:
            assert est[name] == pytest.approx(real[name], abs=0.06), name


def test_multiclass_windows_macro_like_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=n)
    logits = np.column_stack([x, -x, 0.3 * np.ones(n)])
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in prob])
    names = np.array(["a", "b", "c"])
    t = pa.table({"x": x, "pa": prob[:, 0], "pb": prob[:, 1], "pc": prob[:, 2],
                  "y": names[y]})
    path = write(t, tmp_path / "m.parquet")
    opts = BuildOptions(proba={"a": "pa", "b": "pb", "c": "pc"}, target="y")
    profile = build_profile([DataFile(str(path), "parquet")], opts, progress=False)
    (w,) = list(analyze(profile, [DataFile(str(path), "parquet")], window_size=n))
    real = w.performance.realised
    pred = names[np.argmax(prob, axis=1)]
    assert real["f1"] == pytest.approx(skm.f1_score(names[y], pred, average="macro"))
    assert real["recall"] == pytest.approx(skm.recall_score(names[y], pred, average="macro"))
    assert real["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"))
    est = w.performance.estimated
    cal = calibrate(prob, profile.output.classes, profile.output.calibration)  # type: ignore[union-attr]
    assert est["accuracy"] == pytest.approx(float(cal[np.arange(n), np.argmax(prob, 1)].mean()))
    for name in CLASSIFICATION_METRICS:  # in-sample calibration: estimates close to realised
        assert est[name] == pytest.approx(real[name], abs=0.03), name


def test_classifier_without_probabilities_estimates_nothing(tmp_path: Path) -> None:
    path = write(reference_table(500, 2), tmp_path / "r.parquet")
    profile = build_profile([DataFile(str(path), "parquet")],
                            BuildOptions(prediction="pred", target="y"), progress=False)
    (w,) = list(analyze(profile, [DataFile(str(path), "parquet")], window_size=500))
    d = w.to_dict()["performance"]
    assert d["estimated"] == {}
    assert set(d["realised"]) == {"accuracy", "f1", "precision", "recall", "specificity"}
    assert "loss_model" not in profile.to_dict()["output"]


def test_regression_partials_merge_to_the_one_pass_profile(regression) -> None:
    from driftline.profile.build import finish_profile, new_partial, plan_columns
    from driftline.profile.partial import PartialProfile

    one_pass, _ = regression
    table = regression_table(8000, 0)
    opts = BuildOptions(prediction="pred", target="y", id="id", task="regression")
    plan = plan_columns(opts, [("mem", table.schema)])
    parts = []
    for lo, hi in [(0, 3000), (3000, 8000)]:
        state = new_partial(opts, plan, offset=lo)
        for batch in table.slice(lo, hi - lo).to_batches(max_chunksize=1000):
            state.update(batch)
        parts.append(PartialProfile.from_bytes(state.to_bytes()))
    merged = finish_profile(parts[0].merge(parts[1]), opts, plan, sources=("mem",)).output
    assert merged is not None and one_pass.output is not None
    for k, v in one_pass.output.reference_performance.items():
        assert merged.reference_performance[k] == pytest.approx(v, rel=1e-9), k
    # every row fits the loss-estimation sample: the same rows, the same trees
    assert merged.loss_model == one_pass.output.loss_model


def test_cli_dle_rows_bounds_the_fit_sample(tmp_path: Path) -> None:
    from driftline.cli import main

    ref = write(regression_table(2000, 5), tmp_path / "ref.parquet")
    out = tmp_path / "b.json"
    assert main(["baseline", "build", str(ref), "-o", str(out), "--task", "regression",
                 "--prediction", "pred", "--target", "y", "--id", "id", "--dle-rows", "300",
                 "--no-multivariate"]) == 0
    model = BaselineProfile.load(out).output.loss_model  # type: ignore[union-attr]
    assert model is not None and 150 <= model.rows <= 300
