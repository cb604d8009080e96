"""The ingest path's batch fast paths give exactly what the per-record paths give.

``to_batch`` reads every record's features with one ``itemgetter`` and a transpose when each
record has each feature, ``categorical_column`` takes a column of plain strings as it is,
``PredictionStore.put`` stores a batch of new ids with one ``update`` and ``split_records``
checks each distinct (model, version, endpoint) once. Each is compared here with the
per-record code it short-cuts, on values JSON can carry (numbers, strings, booleans, null,
lists, objects).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serve_support import make_profile

from driftline.collectors.feedback import PredictionStore
from driftline.collectors.ingest import split_records, to_batch
from driftline.collectors.payloads import ModelSchema
from driftline.engine.records import _category, categorical_column

SCHEMA = ModelSchema(make_profile(n_numeric=3, with_category=True))
NAMES = ("f0", "f1", "f2", "color")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["red", "blue", "", "1.5", "x"]))
values = st.one_of(scalars, st.lists(st.integers(0, 2), max_size=2),
                   st.dictionaries(st.just("k"), st.integers(0, 2), max_size=1))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return a.tolist() == b.tolist()


def _per_record(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    rows = [r["features"] for r in records]
    return {name: SCHEMA.column(name, [f.get(name) for f in rows]) for name in NAMES}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: values for n in NAMES}), min_size=1, max_size=6),
       st.booleans())
def test_to_batch_columns_equal_the_per_record_reading(rows: list[dict[str, Any]],
                                                       drop_one: bool) -> None:
    records = [{"features": dict(f), "id": i} for i, f in enumerate(rows)]
    if drop_one:  # one record lacks a feature: the fallback reads it as missing
        del records[-1]["features"]["f1"]
    batch = to_batch(SCHEMA, records)
    for name, want in _per_record(records).items():
        assert _same(batch.features[name], want), (name, batch.features[name], want)
    assert batch.ids is not None and batch.ids.tolist() == [str(i) for i in range(len(rows))]


@settings(max_examples=80, deadline=None)
@given(st.lists(values, max_size=6))
def test_categorical_column_equals_per_value_categories(vals: list[Any]) -> None:
    got = categorical_column(vals)
    assert got.dtype == object and got.shape == (len(vals),)
    assert got.tolist() == [_category(v) for v in vals]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from("abcd")),
                                   st.one_of(st.none(), st.sampled_from(["0", "1"]))),
                         max_size=5), max_size=4))
def test_prediction_store_batches_equal_record_by_record(batches: list[list[Any]]) -> None:
    fast, slow = PredictionStore(max_ids=3), PredictionStore(max_ids=3)
    for t, batch in enumerate(batches):
        ids = np.array([i for i, _ in batch], dtype=object)
        preds = np.array([p for _, p in batch], dtype=object)
        stored = fast.put("m", ids, preds, float(t))
        want = slow._put_each("m", ids.tolist(), preds.tolist(), float(t), [None] * len(batch))
        for _ in range(max(0, len(slow._items) - slow.max_ids)):
            slow._items.popitem(last=False)
        assert stored == want
        assert list(fast._items.items()) == list(slow._items.items())


def test_split_records_checks_labels_per_distinct_value_without_confusing_1_and_true() -> None:
    feats = {"f0": 1.0}
    body = orjson.dumps([
        {"model_name": "m", "model_version": 1, "features": feats},
        {"model_name": "m", "model_version": True, "features": feats},   # not a label value
        {"model_name": "m", "model_version": "1", "features": feats},
        {"model_name": "m", "endpoint": "a b", "features": feats},       # bad characters
        {"model_name": "m", "endpoint": "a", "features": feats},
        {"model_name": "m", "endpoint": "a", "features": feats},
    ])
    groups = split_records(body)
    assert groups.bad_labels == {"m": 2}
    assert {k: len(v) for k, v in groups.groups.items()} == {("m", "1"): 2, ("m", None): 2}
    assert groups.endpoints[("m", None)] == ["a", "a"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "1", "", "zz"]), min_size=1, max_size=40))
def test_category_codes_of_a_string_column_are_the_reference_slots(vals: list[str]) -> None:
    from driftline.engine.window_stats import _cat_ref, category_codes
    from driftline.profile.format import CategoricalFeature

    cats = ("a", "b", "c", "1")
    ref = _cat_ref(CategoricalFeature("c", cats, (0.2, 0.2, 0.2, 0.2, 0.2), 10, 0.0))
    got = category_codes(np.array(vals, dtype=object), ref)
    assert got.dtype == np.int64
    assert got.tolist() == [cats.index(v) if v in cats else 4 for v in vals]
