"""A usual ``/ingest`` body is passed over once: ``split_records`` groups a body whose
records share their keys, model, version and endpoint in one pass (``_one_group``, whose
fields ``to_batch`` reuses), and ``_feature_columns`` reads features by position when every
record has the first one's keys in its order (``_columns_by_position``). Both are compared
here with the per-record loop and the key lookups they short-cut (forced by disabling the
fast path), on bodies mixing valid and invalid records: the same groups and drop counts, the
same batches, the same monitor counters."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_ingest_fast_paths import _same_batch, values
from test_serve_support import make_profile

import driftline.collectors.ingest as ingest
from driftline.collectors.ingest import split_records, to_batch
from driftline.collectors.payloads import ModelSchema, PayloadError
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy

PROFILE = make_profile(n_numeric=3, with_category=True)
SCHEMA = ModelSchema(PROFILE)
NAMES = ("f0", "f1", "f2", "color")
T0 = 1_800_000_000.0

labels = st.sampled_from(["car-loan", "fraud", "1", "a b", 1, True, None])
absent = object()  # a field the record does not have


@st.composite
def bodies(draw: Any) -> Any:
    """Records that mostly share one shape (so the one-pass path is taken) with, in some
    bodies, one that differs: another model, version or endpoint, a bad label, features that
    are no object, a missing or extra key, keys in another order, a record that is no object;
    features naming no baseline feature; as a list, one record, or ``{"model_name",
    "records"}``."""
    n = draw(st.integers(1, 6))
    shape = {k: draw(st.one_of(st.just(absent), labels))
             for k in ("model_name", "model_version", "endpoint")}
    extra = draw(st.sampled_from([(), ("id",), ("id", "prediction"), ("prediction", "label")]))
    recs: list[Any] = []
    for i in range(n):
        feats = {name: draw(values) for name in NAMES}
        rec: dict[str, Any] = {k: v for k, v in shape.items() if v is not absent}
        rec["features"] = feats
        for k in extra:
            rec[k] = {"id": f"r{i}", "prediction": i % 2, "label": str(i % 2)}[k]
        recs.append(rec)
    if draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        how = draw(st.sampled_from(["model", "version", "endpoint", "features", "drop key",
                                    "extra key", "reorder", "not a record", "feature order",
                                    "foreign features"]))
        rec = recs[i]
        if how == "model":
            rec["model_name"] = draw(labels)
        elif how == "version":
            rec["model_version"] = draw(labels)
        elif how == "endpoint":
            rec["endpoint"] = draw(labels)
        elif how == "features":
            rec["features"] = draw(st.sampled_from([[1.0], "x", None, 3]))
        elif how == "drop key":
            del rec["features"][draw(st.sampled_from(NAMES))]
        elif how == "extra key":
            rec["features"]["other"] = 1.0
        elif how == "reorder":
            recs[i] = dict(reversed(list(rec.items())))
        elif how == "foreign features":  # names no baseline feature: dropped by the sidecar
            rec["features"] = {"zz": 1.0}
        elif how == "not a record":
            recs[i] = draw(st.sampled_from([1, "x", None, [1]]))
        else:
            recs[i]["features"] = dict(reversed(list(rec["features"].items())))
    form = draw(st.sampled_from(["list", "one", "records"]))
    if form == "one":
        return recs[0]
    if form == "records":
        return {"model_name": draw(labels), "records": recs}
    return recs


def _groups(body: Any) -> Any:
    try:
        g = split_records(orjson.dumps(body))
    except PayloadError as exc:
        return ("refused", exc.reason, str(exc))
    return (g.groups, g.endpoints, g.bad, g.bad_models, g.bad_labels)


def _sidecar() -> Sidecar:
    models = [(ModelConfig("car-loan", baseline=None, version="1"), PROFILE),  # type: ignore[arg-type]
              (ModelConfig("fraud", baseline=None), make_profile("fraud", n_numeric=2))]  # type: ignore[arg-type]
    return Sidecar(models, limits=LimitsConfig(),  # type: ignore[arg-type]
                   monitor_factory=engine_factory(WindowPolicy(records=4, max_age=None),
                                                  DriftPolicy()),
                   clock=lambda: T0)


def _served(body: Any) -> Any:
    """What a sidecar makes of the body: records accepted, drops, and every monitor's
    snapshot (counters, windows) as plain data."""
    sc = _sidecar()
    try:
        n = sc.handle_ingest(split_records(orjson.dumps(body)))
    except PayloadError as exc:
        return ("refused", exc.reason)
    snaps = sorted((repr(s.model_name), repr(s.endpoint), repr(s.records_by_source),
                    repr(s.quantile_rank), repr(s.categories), repr(s.prediction_classes),
                    repr(s.windows_total), repr(s.last_window))
                   for s in sc.snapshots())
    return n, sc.dropped, snaps


@settings(max_examples=150, deadline=None)
@given(bodies())
@example([{"model_name": 1, "features": {"f0": 1.0}},
          {"model_name": True, "features": {"f0": 1.0}}])  # 1 == True, but True is no label
@example([{"model_name": "car-loan", "features": {"f0": 1.0}},
          {"model_name": "car-loan", "features": [1.0]}])  # features that are no object
@example([{"model_name": True, "features": {"f0": 1.0}},
          {"model_name": True, "features": {"f0": 1.0}}])  # no label value: refused each
def test_one_pass_grouping_equals_the_per_record_loop(body: Any) -> None:
    fast = _groups(body)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "_one_group", lambda *a: False)
        slow = _groups(body)
    assert fast == slow


@settings(max_examples=100, deadline=None)
@given(bodies())
@example([{"model_name": "car-loan", "features": {"f0": 1.0}},
          {"model_name": "car-loan", "features": {"zz": 1.0}}])
def test_one_pass_body_serves_what_the_per_record_reading_serves(body: Any) -> None:
    """Grouping, columns and counters together: the one-pass body, its fields reused by
    ``to_batch`` and its features read by position, against the loop and the key lookups."""
    fast = _served(body)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "_one_group", lambda *a: False)
        mp.setattr(ingest, "_columns_by_position", lambda *a: None)
        slow = _served(body)
    assert fast == slow


def test_a_usual_body_is_read_in_one_pass_and_its_fields_reused() -> None:
    recs = [{"model_name": "car-loan", "id": f"r{i}", "prediction": 1,
             "features": {"f0": 0.5, "f1": 1.0, "f2": -1.0, "color": "red"}} for i in range(3)]
    groups = split_records(orjson.dumps(recs))
    fields = groups.fields[("car-loan", None)]
    assert fields == ingest._same_keys(groups.groups[("car-loan", None)])
    assert groups.endpoints == {("car-loan", None): [None] * 3}
    recs[1]["model_name"] = "fraud"  # two models: the loop groups it, nothing is reused
    assert split_records(orjson.dumps(recs)).fields == {}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: values for n in NAMES}), min_size=1, max_size=6),
       st.sampled_from(["same", "shuffled one", "extra key", "missing key", "not a dict"]),
       st.permutations(NAMES))
def test_features_by_position_equal_the_key_lookups(rows: list[dict[str, Any]], how: str,
                                                    order: list[str]) -> None:
    rows = [{k: r[k] for k in order} for r in rows]  # one key order for the body
    if how == "shuffled one":
        rows[-1] = dict(reversed(list(rows[-1].items())))
    elif how == "extra key":
        rows[0]["zz"] = 1.0
    elif how == "missing key":
        del rows[-1]["f2"]
    elif how == "not a dict":
        from types import MappingProxyType
        rows[-1] = MappingProxyType(rows[-1])  # type: ignore[call-overload]
    records = [{"features": r} for r in rows]
    fast = to_batch(SCHEMA, records)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "_columns_by_position", lambda *a: None)
        slow = to_batch(SCHEMA, records)
    _same_batch(fast, slow)
    assert list(fast.features) == list(slow.features)
    taken = ingest._columns_by_position(SCHEMA, list(NAMES), rows) is not None
    assert taken == (how == "same" or (how == "shuffled one" and len(rows) == 1)
                     or (how == "extra key" and len(rows) == 1))
    for name in NAMES:  # and both equal the record-by-record reading
        want = SCHEMA.column(name, [r.get(name) for r in rows])
        got = fast.features[name]
        assert got.dtype == want.dtype
        assert (np.array_equal(got, want, equal_nan=True) if got.dtype.kind == "f"
                else got.tolist() == want.tolist())


# what an SDK caller may pass besides JSON's values: numpy scalars and arrays, Decimal,
# Fraction, objects with __float__, numbers too large for a float
sdk_values = st.one_of(
    values, st.floats(width=32).map(np.float32), st.integers(-9, 9).map(np.int64),
    st.booleans().map(np.bool_), st.sampled_from(["2.5", "1e3", " 7 ", "nan", "-inf"]).map(np.str_),
    st.decimals(allow_nan=False, places=2, min_value=-10, max_value=10),
    st.fractions(max_denominator=7), st.just(np.array(2.0)), st.just(np.array([2.0])),
    st.just(np.datetime64("2026-01-01")), st.just(10**400), st.just(2**70), st.just(1 + 2j))


def _outcome(read: Any) -> Any:
    """The columns a reading gives, or the type of what it raised."""
    try:
        return read()
    except Exception as exc:  # compared, not swallowed
        return type(exc)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: sdk_values for n in NAMES}), min_size=1, max_size=5),
       st.permutations(NAMES), st.booleans())
def test_matrix_columns_equal_each_column_read_alone(rows: list[dict[str, Any]],
                                                     order: list[str], by_position: bool) -> None:
    """The object matrix's one ``astype`` for all numeric features (``_matrix_columns``), by
    position and by lookups, gives each column exactly what ``ModelSchema.column`` gives it
    read alone, or fails the same way (a number too large for a float)."""
    rows = [{k: r[k] for k in order} for r in rows]
    want = _outcome(lambda: {n: SCHEMA.column(n, [r[n] for r in rows]) for n in NAMES})
    got = _outcome(lambda: ingest._feature_columns(SCHEMA, rows, by_position=by_position))
    if isinstance(want, type) or isinstance(got, type):
        assert got is want
        return
    assert list(got) == list(SCHEMA.order)
    for name in NAMES:
        assert got[name].dtype == want[name].dtype, name
        assert (np.array_equal(got[name], want[name], equal_nan=True)
                if got[name].dtype.kind == "f" else got[name].tolist() == want[name].tolist())
