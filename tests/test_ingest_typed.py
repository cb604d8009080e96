"""The typed ``/ingest`` decoder (``TypedIngest``, msgspec) serves exactly what the general
path (orjson, ``split_records``) serves: on bodies mixing valid and invalid records, on JSON
number and string texts at the edges of what the two decoders read alike, and for a model
whose feature names are no identifiers. Whatever it does not take whole goes to the general
path, which then counts and drops what it always did."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_ingest_one_pass import PROFILE, T0, bodies
from test_serve_support import categorical_feature, make_profile, numeric_feature

from driftline.collectors.ingest import split_records
from driftline.collectors.ingest_typed import TypedIngest
from driftline.collectors.payloads import PayloadError
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.profile.format import BaselineProfile


def _sidecar(profile: BaselineProfile = PROFILE) -> Sidecar:
    return Sidecar([(ModelConfig(profile.model_name, baseline=None, version="1"), profile)],  # type: ignore[arg-type]
                   limits=LimitsConfig(),
                   monitor_factory=engine_factory(WindowPolicy(records=4, max_age=None),
                                                  DriftPolicy()),
                   clock=lambda: T0)


def _served(body: bytes, typed: bool, profile: BaselineProfile = PROFILE) -> Any:
    """Records accepted, drops, every monitor's snapshot and the id store, as plain data."""
    sc = _sidecar(profile)
    try:
        groups = split_records(body, typed=sc.typed_split() if typed else None)
        n = sc.handle_ingest(groups)
    except PayloadError as exc:
        return ("refused", exc.reason, str(exc))
    snaps = sorted((repr(s.model_name), repr(s.endpoint), repr(s.records_by_source),
                    repr(s.quantile_rank), repr(s.categories), repr(s.prediction_classes),
                    repr(s.windows_total), repr(s.last_window), repr(s.records_sampled))
                   for s in sc.snapshots())
    return n, sc.dropped, snaps, repr(sc.store._items)


def _typed_takes(body: bytes, profile: BaselineProfile = PROFILE) -> bool:
    split = _sidecar(profile).typed_split()
    assert split is not None
    return split(body) is not None


@settings(max_examples=150, deadline=None)
@given(bodies())
@example([{"model_name": "car-loan", "model_version": "1",
           "features": {"f0": 1.0, "f1": 2, "f2": None, "color": "red"}}])
@example({"model_name": "car-loan", "records": [
    {"features": {"f0": 1.0, "f1": 2.0, "f2": 3.0, "color": "red"}, "model_name": "x y"}]})
def test_typed_decoder_serves_what_the_general_path_serves(body: Any) -> None:
    raw = orjson.dumps(body)
    assert _served(raw, typed=True) == _served(raw, typed=False)


def _record(i: int, f0: str, color: str, extra: str) -> str:
    return ('{"model_name": "car-loan", "model_version": "1", "id": "r' + str(i) + '", '
            '"features": {"f0": ' + f0 + ', "f1": 0.5, "f2": -1, "color": ' + color + "}"
            + extra + "}")


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
    st.sampled_from(["-0.0", "1e400", "-1e400", "1e-400", "4.9e-324", "1E5", "0.1e1",
                     "18446744073709551615", "18446744073709551616", "9223372036854775807",
                     "9223372036854775808", "-9223372036854775809", "NaN", "Infinity",
                     "true", "null", '"1.5"', "[1]", "{}"]))
strings = st.one_of(
    st.text(max_size=4).map(json.dumps),
    st.sampled_from(['"red"', "null", "1", "true", '"\\ud800"', '"\\u00e9"', '"a\\"b"',
                     '"\\/"', '""']))
extras = st.sampled_from(["", ', "prediction": 1', ', "prediction": "0"',
                          ', "prediction": 18446744073709551616',
                          ', "probabilities": [0.2, 0.8]', ', "probabilities": [0, 1]',
                          ', "probabilities": 0.7', ', "probabilities": {"1": 0.5}',
                          ', "label": true', ', "label": 1.5', ', "timestamp": 1800000000',
                          ', "timestamp": "now"', ', "endpoint": "b"', ', "endpoint": null',
                          ', "model_name": null', ', "features": {"f0": 1}',
                          ', "id": 18446744073709551616', ', "id": 9223372036854775807',
                          ', "id": 7', ', "id": 1.5'])
wrappers = st.sampled_from(['"model_name": "car-loan"', '"model_name": "a b"',
                            '"model_name": "car-loan", "model_version": "a b"',
                            '"model_name": "fraud"', '"model_version": "1"', '"model_name": 1'])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(numbers, strings, extras), min_size=1, max_size=5),
       st.sampled_from(["list", "records", "one"]), wrappers)
@example([("1e400", '"red"', "")], "list", "")
@example([("9223372036854775808", '"red"', "")], "list", "")
@example([("1", '"red"', ', "id": 18446744073709551616')], "list", "")
@example([("1", '"\\ud800"', "")], "records", '"model_name": "car-loan"')
@example([("1", '"red"', "")], "records", '"model_name": "a b"')  # the body's label is bad
def test_json_texts_read_alike(recs: list[tuple[str, str, str]], form: str,
                               wrapper: str) -> None:
    """Number and string texts where decoders may differ (huge, tiny and 64-bit-edge
    numbers, non-JSON constants, escapes, lone surrogates) and output fields of every type:
    the typed decoder either serves what orjson's reading serves or leaves the body to it."""
    items = [_record(i, f0, color, extra) for i, (f0, color, extra) in enumerate(recs)]
    if form == "list":
        text = "[" + ", ".join(items) + "]"
    elif form == "records":
        text = ("{" + (wrapper + ", " if wrapper else "") + '"records": ['
                + ", ".join(items) + "]}")
    else:
        text = items[0]
    raw = text.encode()
    assert _served(raw, typed=True) == _served(raw, typed=False)


def test_a_usual_body_is_decoded_typed_and_an_unusual_one_is_not() -> None:
    rec = {"model_name": "car-loan", "id": "r1", "prediction": 1, "probabilities": [0.4, 0.6],
           "features": {"f0": 0.5, "f1": 1, "f2": None, "color": "red", "other": [1]}}
    assert _typed_takes(orjson.dumps([rec, rec]))
    assert _typed_takes(orjson.dumps({"model_name": "car-loan", "records": [rec]}))
    for unusual in ({**rec, "features": {"f0": 0.5, "f1": 1, "color": "red"}},  # lacks f2
                    {**rec, "features": {**rec["features"], "f0": "0.5"}},  # a string
                    {**rec, "features": {**rec["features"], "f0": True}},  # a boolean
                    {**rec, "features": {**rec["features"], "color": 1}},  # a number
                    {**rec, "model_name": "fraud"},  # two models
                    {**rec, "endpoint": "b"},  # two endpoints
                    {**rec, "id": 2**63}):  # beyond 64-bit ints
        assert not _typed_takes(orjson.dumps([rec, unusual]))
    assert not _typed_takes(orjson.dumps(rec))  # one record, not a list: the general path


def test_feature_names_that_are_no_identifiers() -> None:
    prof = make_profile()
    feats = {"my feature": numeric_feature("my feature", np.arange(50.0)),
             "class": numeric_feature("class", np.arange(50.0)),
             "kind-of": categorical_feature("kind-of", ["a", "b"], [0.5, 0.5])}
    prof = BaselineProfile(prof.model_name, prof.model_version, prof.created_at, 3, feats,
                           prof.columns, prof.output)
    body = orjson.dumps([{"model_name": "car-loan", "id": f"r{i}", "prediction": i % 2,
                          "features": {"my feature": i, "class": 2.5, "kind-of": "b"}}
                         for i in range(6)])
    assert _typed_takes(body, prof)
    assert _served(body, True, prof) == _served(body, False, prof)
    assert _served(body, True, prof)[0] == 6


def test_several_models_or_embedding_features_have_no_typed_decoder() -> None:
    two = Sidecar([(ModelConfig("car-loan", baseline=None), PROFILE),  # type: ignore[arg-type]
                   (ModelConfig("fraud", baseline=None), make_profile("fraud"))],  # type: ignore[arg-type]
                  limits=LimitsConfig())
    assert two.typed_split() is None
    assert _sidecar().typed_split() is not None


def test_a_replaced_schema_gets_a_new_decoder_and_a_group_read_for_the_old_is_read_again(
        ) -> None:
    from driftline.collectors.payloads import ModelSchema
    sc = _sidecar()
    body = orjson.dumps([{"model_name": "car-loan", "model_version": "1", "id": "r1",
                          "features": {"f0": 0.5, "f1": 1, "f2": 2.0, "color": "red"}}] * 1)
    groups = split_records(body, typed=sc.typed_split())
    assert groups.columns
    old = sc.entries[0].schema
    sc.entries[0].schema = ModelSchema(PROFILE, feature_order=("color", "f2", "f1", "f0"))
    split = sc.typed_split()
    assert split is not None and isinstance(split.__self__, TypedIngest)  # type: ignore[attr-defined]
    assert split.__self__.schema is sc.entries[0].schema is not old  # type: ignore[attr-defined]
    assert sc.handle_ingest(groups) == 1  # read again with the new schema
    want = _sidecar()
    want.entries[0].schema = sc.entries[0].schema
    assert want.handle_ingest(split_records(body)) == 1
    assert repr(sc.snapshots()) == repr(want.snapshots())


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b"null", b"[1]", b'{"records": 3}'])
def test_bodies_with_no_records_go_to_the_general_path(body: bytes) -> None:
    assert not _typed_takes(body)
    assert _served(body, True) == _served(body, False)


def _mixed_profile() -> BaselineProfile:
    """Categorical features between numeric ones: the decoder lays the numeric fields out
    first, side by side, whatever the profile's order."""
    from driftline.profile.format import CategoricalFeature, NumericFeature
    prof = make_profile()
    feats: dict[str, NumericFeature | CategoricalFeature] = {
             "c_a": categorical_feature("c_a", ["x", "y"], [0.5, 0.5]),
             "n_b": numeric_feature("n_b", np.arange(50.0)),
             "c_c": categorical_feature("c_c", ["u", "v"], [0.5, 0.5]),
             "n_d": numeric_feature("n_d", np.arange(50.0)),
             "n_e": numeric_feature("n_e", np.arange(50.0))}
    return BaselineProfile(prof.model_name, prof.model_version, prof.created_at, 3, feats,
                           prof.columns, prof.output)


MIXED = _mixed_profile()
MIXED_NAMES = ("c_a", "n_b", "c_c", "n_d", "n_e")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries(
    {n: (st.one_of(st.none(), st.sampled_from(["x", "y", "u", "zz"])) if n[0] == "c" else
         st.one_of(st.none(), st.integers(-5, 5), st.floats(-1e6, 1e6)))
     for n in MIXED_NAMES}), min_size=1, max_size=6),
       st.permutations(MIXED_NAMES), st.booleans())
def test_typed_columns_with_categorical_features_between_numeric_ones(
        rows: list[dict[str, Any]], order: list[str], reorder_schema: bool) -> None:
    """Each column the typed decoder reads (numeric fields laid out first) is the general
    reading's, in the general reading's order, for any key order of the body and of the
    schema's features."""
    from driftline.collectors import ingest
    from driftline.collectors.payloads import ModelSchema
    schema = ModelSchema(MIXED, feature_order=tuple(order) if reorder_schema else None)
    body = orjson.dumps([{"model_name": "car-loan", "features": {k: r[k] for k in order}}
                         for r in rows])
    got = TypedIngest(schema).split(body)
    assert got is not None
    ((_, cols),) = got.columns.values()
    want = ingest._feature_columns(schema, [r["features"] for r in orjson.loads(body)])
    assert list(cols) == list(want)
    for name, col in want.items():
        assert cols[name].dtype == col.dtype, name
        assert (np.array_equal(cols[name], col, equal_nan=True) if col.dtype.kind == "f"
                else cols[name].tolist() == col.tolist()), name
