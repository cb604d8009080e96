"""The usual OIP v2 request's feature columns are read straight from each tensor's ``data``
list (``_v2_feature_tensors``); compared here with the general tensor-by-tensor reading
(forced by disabling the straight path) on requests mixing valid and invalid tensors: the
same batch, or the same refusal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_ingest_fast_paths import _same_batch
from test_serve_support import make_profile

import driftline.collectors.payloads as payloads
from driftline.collectors.payloads import ModelSchema, PayloadError, parse_v2

SCHEMA = ModelSchema(make_profile(n_numeric=3, with_category=True))
NAMES = ("f0", "f1", "f2", "color")

cells = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-3, 3),
                  st.booleans(), st.none(), st.sampled_from(["red", "blue", "1.5", ""]),
                  st.lists(st.integers(0, 2), max_size=2))
datatypes = st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "fp64", "STRING", ""])


@st.composite
def requests(draw: Any) -> Any:
    """Per-feature tensors of ``[n]`` or ``[n, 1]`` with data of their type, mostly; in some
    requests one tensor with another length, shape or name, a duplicate, data of the wrong
    type or nested, a tensor that is no object, or a missing feature."""
    n = draw(st.integers(0, 4))
    tensors: list[Any] = []
    for name in draw(st.permutations(NAMES)):
        numeric = name != "color" or draw(st.booleans())
        data: list[Any] = (draw(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n))
                           if numeric else
                           draw(st.lists(st.sampled_from(["red", "green", "x"]), min_size=n,
                                         max_size=n)))
        shape: list[Any] = draw(st.sampled_from([[n], [n, 1]]))
        if shape == [n, 1] and draw(st.booleans()):
            data = [[v] for v in data]
        tensors.append({"name": name, "shape": shape,
                        "datatype": "FP64" if numeric else "BYTES", "data": data})
    if draw(st.booleans()):
        i = draw(st.integers(0, len(tensors) - 1))
        t = tensors[i]
        how = draw(st.sampled_from(["length", "shape", "name", "duplicate", "cells", "type",
                                    "not a tensor", "missing", "no data", "bool shape"]))
        if how == "length":  # another length, its data too (or not)
            t["shape"] = [n + 1]
            if draw(st.booleans()):
                t["data"] = [*t["data"], t["data"][0] if t["data"] else "x"]
        elif how == "shape":
            t["shape"] = draw(st.sampled_from([[n, 2], [1, n], [], [-1], "n", [n, 1, 1]]))
        elif how == "name":
            t["name"] = draw(st.sampled_from(["zz", 3, None, "f9"]))
        elif how == "duplicate":  # the same tensor twice, or with other data
            tensors.append(dict(t, data=list(reversed(t["data"]))))
        elif how == "cells":
            t["data"] = draw(st.lists(cells, min_size=n, max_size=n))
        elif how == "type":
            t["datatype"] = draw(datatypes)
        elif how == "not a tensor":
            tensors[i] = draw(st.sampled_from([1, "x", None, [1]]))
        elif how == "missing":
            del tensors[i]
        elif how == "no data":
            del t["data"]
        else:
            t["shape"] = [True] if n == 1 else [n, True]
    return {"id": "q", "inputs": tensors}


def _parsed(req: Any) -> Any:
    try:
        return parse_v2(SCHEMA, orjson.dumps(req))
    except PayloadError as exc:
        return ("refused", exc.reason, str(exc))


@settings(max_examples=200, deadline=None)
@given(requests())
@example({"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [[1, 2]]}]})
@example({"inputs": [{"name": "f0", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]},
                     {"name": "f1", "shape": [2], "datatype": "FP64", "data": [1, 2]}]})
@example({"inputs": [{"name": "color", "shape": [2], "datatype": "BYTES",
                      "data": [["a"], ["b"]]}]})  # nested strings: refused by the shape
def test_straight_tensor_columns_equal_the_general_reading(req: Any) -> None:
    fast = _parsed(req)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(payloads, "_v2_feature_tensors", lambda *a: None)
        slow = _parsed(req)
    if isinstance(slow, tuple):
        assert fast == slow
    else:
        assert not isinstance(fast, tuple), fast
        _same_batch(fast, slow)
        assert list(fast.features) == list(slow.features)


def test_the_usual_request_takes_the_straight_path() -> None:
    req = {"inputs": [{"name": n, "shape": [2], "datatype": "BYTES" if n == "color" else "FP64",
                       "data": ["red", "x"] if n == "color" else [0.5, 1.5]} for n in NAMES]}
    got = payloads._v2_feature_tensors(SCHEMA, req["inputs"])
    assert got is not None and got[1] == 2
    assert got[0]["color"].tolist() == ["red", "x"] and got[0]["f1"].tolist() == [0.5, 1.5]
    req["inputs"][0]["shape"] = [3]  # lengths differ: the general reading refuses it
    assert payloads._v2_feature_tensors(SCHEMA, req["inputs"]) is None
    with pytest.raises(PayloadError):
        parse_v2(SCHEMA, req)


def _columns_or_error(inputs: Any, together: bool) -> Any:
    try:
        got = payloads._v2_feature_tensors(SCHEMA, inputs, together)
    except Exception as exc:  # the same exception either way
        return ("raised", type(exc))
    if got is None:
        return None
    cols, n = got
    return n, list(cols), [(c.dtype.str, c.shape, c.tolist()) for c in cols.values()]


@settings(max_examples=300, deadline=None)
@given(requests())
@example({"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [1, None]},
                     {"name": "f1", "shape": [2], "datatype": "INT64", "data": [True, "1.5"]}]})
@example({"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                     {"name": "f1", "shape": [2], "datatype": "FP64", "data": [1, "x"]}]})
@example({"inputs": [{"name": "f0", "shape": [2, 1], "datatype": "FP64", "data": [[1], [2]]},
                     {"name": "f1", "shape": [2], "datatype": "FP64", "data": [3, 4]}]})
@example({"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [1, 2, 3]}]})
@example({"inputs": [{"name": "f0", "shape": [2], "datatype": "FP64", "data": [10**400, 1]},
                     {"name": "zz", "shape": [2], "datatype": "FP64", "data": [1, 2]}]})
def test_numeric_tensors_together_equal_tensor_by_tensor(req: Any) -> None:
    """One ``np.fromiter`` over every numeric tensor gives the columns (values, dtypes, order)
    of one ``np.asarray`` per tensor, or the same None or exception."""
    got, want = _columns_or_error(req["inputs"], True), _columns_or_error(req["inputs"], False)
    assert repr(got) == repr(want)  # repr: NaN cells compare equal
