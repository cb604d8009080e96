"""The ingest path's batch fast paths give exactly what the per-record paths give.

``to_batch`` reads every record's features with one ``itemgetter`` and a transpose when each
record has each feature, ``categorical_column`` takes a column of plain strings as it is,
``PredictionStore.put`` stores a batch of new ids with one ``update`` and ``split_records``
checks each distinct (model, version, endpoint) once. Each is compared here with the
per-record code it short-cuts, on values JSON can carry (numbers, strings, booleans, null,
lists, objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_serve_support import make_profile

from driftline.collectors.feedback import PredictionStore, row_bytes
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
        while len(slow._items) > slow.max_ids:  # oldest out first, one at a time
            del slow._items[next(iter(slow._items))]
        assert stored == want
        assert list(fast._items.items()) == list(slow._items.items())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.integers(1, 4), st.data())
def test_stored_probability_rows_equal_each_row_s_bytes(n: int, k: int, data: Any) -> None:
    cells = st.one_of(st.floats(0, 1), st.just(float("nan")))
    rows = np.array(data.draw(st.lists(st.lists(cells, min_size=k, max_size=k), min_size=n,
                                       max_size=n)), dtype=np.float64).reshape(n, k)
    if data.draw(st.booleans()):  # a column slice: not contiguous
        rows = np.column_stack([rows, rows])[:, ::2]
    want = [r.tobytes() if np.isfinite(r).all() else None for r in rows]
    assert row_bytes(rows) == want
    store = PredictionStore()
    ids = np.array([f"i{j}" for j in range(n)], dtype=object)
    store.put("m", ids, np.array(["1"] * n, dtype=object), 0.0, rows)
    for j in range(n):
        hit = store.pop_scored(f"i{j}", 0.0)
        assert hit is not None
        got = hit[2]
        assert (got is None) == (want[j] is None)
        if got is not None:
            assert got.tobytes() == rows[j].tobytes()


def test_expire_forgets_the_oldest_and_keeps_the_fresh() -> None:
    store = PredictionStore(ttl=10.0)
    for t in range(5):
        store.put("m", np.array([f"a{t}", f"b{t}"], dtype=object),
                  np.array(["1", "0"], dtype=object), float(t))
    assert store.expire(13.0) == 6  # stored at 0, 1 and 2 are older than 10 s at 13
    assert list(store._items) == ["a3", "b3", "a4", "b4"]
    assert store.expire(13.0) == 0


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


outputs = st.one_of(st.none(), st.integers(0, 1), st.sampled_from(["0", "1"]))
probas = st.one_of(st.none(), st.tuples(st.floats(0, 1), st.floats(0, 1)).map(list))


def _same_batch(a: Any, b: Any) -> None:
    assert a.n == b.n and a.features.keys() == b.features.keys()
    for name in a.features:
        assert _same(a.features[name], b.features[name]), name
    for field in ("prediction", "probabilities", "ids", "timestamps", "targets"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert _same(x, y), (field, x, y)


def _same_batch_or_refused_alike(fast: Callable[[], Any], reference: Callable[[], Any]) -> None:
    """The fast path's batch equals the reference reading's, or both refuse the records with the
    same error (outputs that fit no shape)."""
    try:
        want = reference()
    except Exception as exc:
        try:
            fast()
        except Exception as got:
            assert type(got) is type(exc) and str(got) == str(exc)
        else:
            raise AssertionError("the fast path accepted what the reference refused") from None
        return
    _same_batch(fast(), want)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.fixed_dictionaries({n: values for n in NAMES}), outputs, probas,
                          st.one_of(st.none(), st.integers(0, 9), st.text(max_size=3)),
                          st.one_of(st.none(), st.sampled_from(["0", "1"])),
                          st.one_of(st.none(), st.floats(0, 1e9))),
                min_size=1, max_size=6))
def test_sdk_log_records_read_as_the_same_records_sent_to_ingest(logged: list[Any]) -> None:
    """``log()`` buffers its arguments as a tuple; the worker's columns equal those of the
    record ``log()`` used to build (and ``/ingest`` reads): a field is set only when given,
    the id as ``str``."""
    from driftline.collectors.sdk import logged_batch

    records = []
    for feats, pred, proba, rid, label, ts in logged:
        rec: dict[str, Any] = {"features": feats}
        for key, v in (("prediction", pred), ("probabilities", proba), ("label", label),
                       ("timestamp", ts)):
            if v is not None:
                rec[key] = v
        if rid is not None:
            rec["id"] = str(rid)
        records.append(rec)
    _same_batch_or_refused_alike(lambda: logged_batch(SCHEMA, logged),
                                 lambda: to_batch(SCHEMA, records))


ops = st.lists(st.one_of(st.tuples(st.just("log"), st.integers(0, 99)),
                         st.tuples(st.just("batch"), st.integers(1, 4)),
                         st.tuples(st.just("mark"), st.just(0)),
                         st.tuples(st.just("drain"), st.integers(1, 5))), max_size=40)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), ops)
def test_sdk_buffer_keeps_order_bound_and_drop_count(capacity: int, steps: list[Any]) -> None:
    """Records (lock-free tuples) and control items (batches, marks) come out in the order
    they went in; a record is refused when ``capacity`` records wait, a batch when it would
    pass the bound; every refused record is counted; the depth is the records waiting."""
    from driftline.collectors.sdk import _BATCH, _MARK, _Buffer

    buf = _Buffer(capacity, wake_at=1 << 30)
    queued: list[tuple[Any, int]] = []  # the reference: (item, weight)
    out: list[Any] = []
    dropped = 0
    for op, arg in steps:
        depth = sum(w for _, w in queued)
        if op == "log":
            ok = buf.record({"f0": float(arg)}, None, None, arg, None, None)
            assert ok == (depth < capacity)
            if ok:
                queued.append(((({"f0": float(arg)}, None, None, arg, None, None)), 1))
            else:
                dropped += 1
        elif op in ("batch", "mark"):
            kind, w = (_BATCH, arg) if op == "batch" else (_MARK, 0)
            ok = buf.offer(kind, op, w)
            assert ok == (not queued or depth + w <= capacity)
            if ok:
                queued.append(((kind, op, w), w))
            else:
                dropped += w
        else:
            got = buf.drain(arg, timeout=0)
            assert got == [it for it, _ in queued[:arg]]
            out += got
            del queued[:arg]
        assert buf.depth == sum(w for _, w in queued)
        assert buf.dropped == dropped
    assert buf.drain(timeout=0) == [it for it, _ in queued]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.fixed_dictionaries({n: values for n in NAMES}),
                          st.dictionaries(st.sampled_from(["prediction", "probabilities", "id",
                                                           "timestamp", "label", "model_name"]),
                                          st.one_of(outputs, probas, st.floats(0, 9))),
                          st.booleans()),
                min_size=1, max_size=6))
@example([({}, {}, False), ({}, {"prediction": 0}, False)])  # only the first lacks a field
def test_to_batch_one_pass_fields_equal_each_field_read_per_record(
        rows: list[tuple[dict[str, Any], dict[str, Any], bool]]) -> None:
    """Records with the same keys are read in one pass; records with different keys (some
    lack a field, or carry others) field by field: both give each field read record by
    record (None where a record has none, no column where none has it)."""
    from driftline.collectors.ingest import OUTPUT_FIELDS, columns_batch, present

    records = []
    for feats, fields, same in rows:  # ``same``: take the first record's fields instead
        records.append({"features": feats, **(rows[0][1] if same else fields)})
    _same_batch_or_refused_alike(
        lambda: to_batch(SCHEMA, records),
        lambda: columns_batch(SCHEMA, [r["features"] for r in records],
                              *(present([r.get(k) for r in records]) for k in OUTPUT_FIELDS)))


cells = st.one_of(st.floats(), st.integers(-3, 3), st.booleans(), st.none(),
                  st.sampled_from(["0.5", "x", ""]), st.lists(st.floats(0, 1), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.lists(cells, min_size=2, max_size=2), st.lists(cells, max_size=3),
                          st.tuples(st.floats(0, 1), st.floats(0, 1)), st.none(),
                          st.floats(0, 1)), min_size=1, max_size=6))
def test_probability_rows_read_in_one_pass_equal_asarray(rows: list[Any]) -> None:
    """``_float_rows`` (one ``fromiter`` over equal-length lists) gives what
    ``np.asarray(rows, float64)`` gives, or leaves the rows to it."""
    from driftline.collectors.payloads import _as_array, _float_rows
    got = _float_rows(rows)
    if got is not None:
        want = np.asarray(rows, dtype=np.float64)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True)
    try:
        want_any: Any = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        want_any = None
    if want_any is not None:
        assert _same(_as_array(rows), want_any)
