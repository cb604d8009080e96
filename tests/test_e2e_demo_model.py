"""The demo's dataset and model server: deterministic data, real OIP v2 / KServe v1 wire formats."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from driftline_demo.data import CATEGORICAL, FEATURES, NUMERIC, TARGET, generate, records
from driftline_demo.model import LoanModel, ModelServer


def _post(url: str, doc: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def model() -> LoanModel:
    train = generate(4000, seed=11)
    return LoanModel.fit(train, train[TARGET])


@pytest.fixture(scope="module")
def server(model: LoanModel) -> Iterator[ModelServer]:
    srv = ModelServer({"car-loan": model}).start()
    yield srv
    srv.stop()


def test_generate_is_deterministic_and_shift_moves_the_population() -> None:
    a, b = generate(2000, seed=3), generate(2000, seed=3)
    for k in (*FEATURES, TARGET):
        np.testing.assert_array_equal(a[k], b[k])
    ref, drifted = generate(20000, seed=5), generate(20000, seed=5, shift=1.0)
    assert np.nanmean(drifted["credit_score"]) < np.nanmean(ref["credit_score"]) - 40
    assert (drifted["employment"] == "unemployed").mean() > 2 * (ref["employment"] == "unemployed").mean()
    assert drifted[TARGET].mean() > ref[TARGET].mean() + 0.2
    assert 0.005 < np.isnan(ref["annual_income"]).mean() < 0.02
    with pytest.raises(ValueError, match="shift"):
        generate(10, shift=2.0)


def test_model_beats_the_majority_class(model: LoanModel) -> None:
    test = generate(5000, seed=12)
    acc = float((model.predict(test).astype(int) == test[TARGET]).mean())
    assert acc > 1.0 - test[TARGET].mean() + 0.02


def test_v2_named_tensors_and_2d_tensor_agree_with_the_model(server: ModelServer, model: LoanModel) -> None:
    cols = generate(50, seed=13)
    rows = records(cols)
    named = [{"name": k, "shape": [50], "datatype": "FP64" if k in NUMERIC else "BYTES",
              "data": [r[k] for r in rows]} for k in FEATURES]
    status, doc = _post(f"{server.url}/v2/models/car-loan/infer", {"id": "r1", "inputs": named})
    assert status == 200 and doc["id"] == "r1" and doc["model_name"] == "car-loan"
    outs = {o["name"]: o for o in doc["outputs"]}
    assert outs["predict_proba"]["shape"] == [50, 2]
    np.testing.assert_allclose(np.array(outs["predict_proba"]["data"]).reshape(50, 2),
                               model.predict_proba(cols), rtol=1e-12)
    assert outs["predict"]["data"] == model.predict(cols).astype(int).tolist()

    flat = [r[k] for r in rows for k in FEATURES]
    status, doc2 = _post(f"{server.url}/v2/models/car-loan/versions/1/infer",
                         {"inputs": [{"name": "input-0", "shape": [50, len(FEATURES)], "datatype": "BYTES",
                                      "data": flat}], "outputs": [{"name": "predict"}]})
    assert status == 200 and [o["name"] for o in doc2["outputs"]] == ["predict"]
    assert doc2["outputs"][0]["data"] == outs["predict"]["data"]


def test_v1_predict_and_errors(server: ModelServer, model: LoanModel) -> None:
    cols = generate(5, seed=14)
    status, doc = _post(f"{server.url}/v1/models/car-loan:predict", {"instances": records(cols)})
    assert status == 200 and doc["predictions"] == model.predict(cols).astype(int).tolist()
    assert _post(f"{server.url}/v1/models/nope:predict", {"instances": []})[0] == 404
    status, err = _post(f"{server.url}/v2/models/car-loan/infer", {"inputs": [{"name": "age", "data": [1]}]})
    assert status == 400 and "missing input tensors" in err["error"]
    with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{server.url}/v2/models/car-loan", timeout=5) as r:
        meta = json.loads(r.read())
    assert [i["name"] for i in meta["inputs"]] == [*NUMERIC, *CATEGORICAL]


def test_demo_regression_scenario_estimates_follow_realised_error() -> None:
    from driftline_demo.regression import run_regression

    r = run_regression(seed=3, rows=2000)
    assert r.labels == 2000 and r.records == 1000
    # the downturn makes the model worse than on the reference, and DLE sees it without labels
    assert r.realised["mae"] > 1.1 * r.reference["mae"]
    assert r.estimated["mae"] == pytest.approx(r.realised["mae"], rel=0.15)
    assert r.estimated["rmse"] == pytest.approx(r.realised["rmse"], rel=0.15)
