"""KServe v1 and OIP v2 payloads → RecordBatch columns."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serve_support import make_profile

from driftline.collectors.payloads import (
    ModelSchema,
    PayloadError,
    Route,
    detect,
    parse,
    parse_v1,
    parse_v2,
    route,
)


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    return ModelSchema(make_profile(with_category=True))


def test_routes() -> None:
    assert route("/v1/models/car-loan:predict") == Route("v1", "car-loan")
    assert route("/v2/models/car-loan/infer?x=1") == Route("v2", "car-loan", None)
    assert route("/v2/models/m/versions/7/infer") == Route("v2", "m", "7")
    assert route("/v1/models/m:explain") is None
    assert route("/v2/models/m/ready") is None
    assert route("/predict") is None


def test_v2_tensor_50x4_is_50_records() -> None:
    schema = ModelSchema(make_profile(n_numeric=4))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    proba = rng.uniform(size=50)
    req = {"id": "r1", "inputs": [{"name": "input-0", "shape": [50, 4], "datatype": "FP64",
                                   "data": x.ravel().tolist()}]}
    resp = {"model_name": "car-loan", "id": "r1", "outputs": [
        {"name": "predict", "shape": [50], "datatype": "INT64",
         "data": (proba > 0.5).astype(int).tolist()},
        {"name": "predict_proba", "shape": [50, 2], "datatype": "FP64",
         "data": np.column_stack([1 - proba, proba]).tolist()},
    ]}
    batch = parse_v2(schema, orjson.dumps(req), orjson.dumps(resp))
    assert batch.n == 50
    for j in range(4):
        np.testing.assert_array_equal(batch.features[f"f{j}"], x[:, j])
    assert list(batch.prediction) == [str(int(p > 0.5)) for p in proba]
    np.testing.assert_allclose(batch.probabilities[:, 1], proba)
    assert batch.ids[0] == "r1:0" and batch.ids[49] == "r1:49"


def test_v2_nested_data_and_named_tensors_and_bytes(schema: ModelSchema) -> None:
    req = {"inputs": [
        {"name": "f0", "shape": [3, 1], "datatype": "FP32", "data": [[1.0], [2.0], [3.0]]},
        {"name": "f2", "shape": [3], "datatype": "INT64", "data": [4, 5, 6]},
        {"name": "color", "shape": [3], "datatype": "BYTES", "data": ["red", "blue", "red"]},
    ]}
    batch = parse_v2(schema, req, None, request_id="hdr")
    assert batch.n == 3
    assert batch.features["f0"].tolist() == [1.0, 2.0, 3.0]
    assert batch.features["f2"].tolist() == [4.0, 5.0, 6.0]
    assert np.isnan(batch.features["f1"]).all()  # absent feature → missing
    assert batch.features["color"].tolist() == ["red", "blue", "red"]
    assert batch.prediction is None
    assert batch.ids.tolist() == ["hdr:0", "hdr:1", "hdr:2"]


def test_v2_custom_output_names_and_probabilities_only() -> None:
    schema = ModelSchema(make_profile(n_numeric=2), prediction_output="label",
                         probabilities_output="scores")
    req = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    resp = {"outputs": [{"name": "scores", "shape": [2, 2], "datatype": "FP64",
                         "data": [0.9, 0.1, 0.2, 0.8]}]}
    batch = parse_v2(schema, req, resp)
    assert batch.prediction.tolist() == ["0", "1"]  # argmax of the probabilities
    np.testing.assert_allclose(batch.probabilities, [[0.9, 0.1], [0.2, 0.8]])


def test_v2_shape_mismatch(schema: ModelSchema) -> None:
    bad_width = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [0] * 6}]}
    with pytest.raises(PayloadError) as e:
        parse_v2(schema, bad_width)
    assert e.value.reason == "schema_mismatch"
    bad_size = {"inputs": [{"name": "x", "shape": [2, 5], "datatype": "FP64", "data": [0] * 9}]}
    with pytest.raises(PayloadError) as e:
        parse_v2(schema, bad_size)
    assert e.value.reason == "schema_mismatch"
    with pytest.raises(PayloadError) as e:
        parse_v2(schema, b"{not json")
    assert e.value.reason == "parse_error"


def test_v1_instances_lists_and_objects(schema: ModelSchema) -> None:
    rows = [[0.1, 0.2, 0.3, 0.4, "red"], [1.0, None, 3.0, 4.0, "green"]]
    batch = parse_v1(schema, {"instances": rows}, {"predictions": [1, 0]}, request_id="x")
    assert batch.n == 2
    assert batch.features["f0"].tolist() == [0.1, 1.0]
    assert np.isnan(batch.features["f1"][1])
    assert batch.features["color"].tolist() == ["red", "green"]
    assert batch.prediction.tolist() == ["1", "0"]
    assert batch.ids.tolist() == ["x:0", "x:1"]
    objs = [{"f0": 1.5, "color": "blue"}, {"f3": 2.5, "extra": 1}]
    batch = parse_v1(schema, {"instances": objs}, {"predictions": [[0.3, 0.7], [0.6, 0.4]]})
    assert batch.features["f0"][0] == 1.5 and np.isnan(batch.features["f0"][1])
    assert batch.features["color"].tolist() == ["blue", None]
    assert batch.prediction.tolist() == ["1", "0"]
    np.testing.assert_allclose(batch.probabilities, [[0.3, 0.7], [0.6, 0.4]])


def test_v1_columnar_inputs(schema: ModelSchema) -> None:
    batch = parse_v1(schema, {"inputs": {"f0": [1, 2], "color": ["red", "red"]}},
                     {"predictions": ["1", "1"]})
    assert batch.n == 2 and batch.features["f0"].tolist() == [1.0, 2.0]
    assert np.isnan(batch.features["f1"]).all()
    with pytest.raises(PayloadError):
        parse_v1(schema, {"inputs": {"f0": [1, 2], "f1": [1]}})


def test_v1_errors(schema: ModelSchema) -> None:
    with pytest.raises(PayloadError) as e:
        parse_v1(schema, {"instances": [[1, 2]]})
    assert e.value.reason == "schema_mismatch"
    with pytest.raises(PayloadError) as e:
        parse_v1(schema, {"instances": [[1, 2, 3, 4, "a"]]}, {"predictions": [1, 0, 1]})
    assert e.value.reason == "schema_mismatch"
    with pytest.raises(PayloadError) as e:
        parse_v1(schema, {"foo": 1})
    assert e.value.reason == "schema_mismatch"
    with pytest.raises(PayloadError) as e:
        parse_v1(schema, b"[1,")
    assert e.value.reason == "parse_error"


def test_regression_outputs() -> None:
    schema = ModelSchema(make_profile(n_numeric=1, task="regression"))
    batch = parse_v1(schema, {"instances": [1.0, 2.0]}, {"predictions": [0.5, 1.5]})
    assert batch.features["f0"].tolist() == [1.0, 2.0]
    assert batch.prediction.dtype == np.float64 and batch.prediction.tolist() == [0.5, 1.5]


def test_detect() -> None:
    assert detect({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}) == "v2"
    assert detect({"instances": []}) == "v1"
    assert detect({"inputs": {"a": [1]}}) == "v1"
    assert detect([1]) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_v1_and_v2_agree(n: int, seed: int) -> None:
    """The same rows sent as v1 instances and as a v2 tensor give the same columns."""
    schema = ModelSchema(make_profile(n_numeric=3))
    x = np.random.default_rng(seed).normal(size=(n, 3))
    b1 = parse(schema, None, {"instances": x.tolist()})
    b2 = parse(schema, None, {"inputs": [{"name": "t", "shape": [n, 3], "datatype": "FP64",
                                          "data": x.ravel().tolist()}]})
    assert b1.n == b2.n == n
    for k in b1.features:
        np.testing.assert_array_equal(b1.features[k], b2.features[k])


_values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.integers(-5, 5), st.sampled_from(["red", "blue", "1.5", "x", ""]),
                    st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(
    {"features": st.dictionaries(st.sampled_from(["f0", "f1", "color", "zz"]), _values)},
    optional={"prediction": st.sampled_from([0, 1, "1", None, 1.0]),
              "id": st.one_of(st.none(), st.integers(0, 9), st.text(max_size=3)),
              "label": st.sampled_from([0, 1, True, None])}), min_size=1, max_size=20))
def test_ingest_columns_equal_the_kernel_reference(records: list) -> None:  # type: ignore[type-arg]
    """The vectorised ingest builder gives the same columns as driftline.engine.records.from_records."""
    from driftline.collectors.ingest import to_batch
    from driftline.engine.records import from_records

    profile = make_profile(n_numeric=2, with_category=True)
    got = to_batch(ModelSchema(profile), records)
    want = from_records(profile, records)
    assert got.n == want.n
    for name in profile.features:
        a, b = got.features[name], want.features[name]
        if a.dtype == np.float64:
            np.testing.assert_array_equal(a, b)
        else:
            assert a.tolist() == b.tolist()
    for attr in ("prediction", "ids", "targets"):
        a, b = getattr(got, attr), getattr(want, attr)
        assert (a is None) == (b is None) or (a is None and all(v is None for v in b)), attr
        if a is not None and b is not None:
            assert a.tolist() == b.tolist(), attr
