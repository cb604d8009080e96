"""The compiled column builder (``native/rowcore.c``, :mod:`driftline.collectors.columns_native`)
gives exactly the Python path's columns or declines.

Each record path is run twice, the builder on and off (``DRIFTLINE_NATIVE=0``, or the module
patched away), on generated records: the SDK's ``log()`` records (``logged_batch``), feature
rows (``_feature_columns`` with and without the by-position reading) and ``/ingest`` bodies
(``split_records`` typed and general, then ``to_batch`` and the sidecar). The columns must be
equal bit for bit (NaN payloads, -0.0), object columns element by element and in type, the
batches and served counters equal, and the same exception where the Python path raises. The
builder must take exactly the rows it can read exactly (a spy counts what it returned), so a
test here cannot pass by the builder declining everything. Then hand-computed values, the
argument checks (a bad output buffer is refused with a clear error) and reference counts
(nothing leaked, declines midway included)."""

from __future__ import annotations

import enum
import math
import struct
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_serve_support import categorical_feature, make_profile, numeric_feature

from driftline.collectors import columns_native, ingest
from driftline.collectors.ingest import split_records, to_batch
from driftline.collectors.ingest_typed import TypedIngest
from driftline.collectors.payloads import ModelSchema, PayloadError
from driftline.collectors.sdk import logged_batch
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.profile.format import BaselineProfile, CategoricalFeature, NumericFeature

needs_core = pytest.mark.skipif(not columns_native.native_available(),
                                reason="the compiled column builder is not built")


def _profile() -> BaselineProfile:
    """Numeric and categorical features interleaved (the typed decoder lays the numeric
    fields out first), classifier outputs."""
    prof = make_profile()
    x = np.arange(50.0)
    feats: dict[str, NumericFeature | CategoricalFeature] = {
        "n0": numeric_feature("n0", x), "c0": categorical_feature("c0", ["x", "y"], [0.5, 0.5]),
        "n1": numeric_feature("n1", x), "n2": numeric_feature("n2", x),
        "c1": categorical_feature("c1", ["u", "v"], [0.5, 0.5]), "n3": numeric_feature("n3", x)}
    return BaselineProfile(prof.model_name, prof.model_version, prof.created_at, 3, feats,
                           prof.columns, prof.output)


PROFILE = _profile()
SCHEMA = ModelSchema(PROFILE)
NAMES = ("n0", "c0", "n1", "n2", "c1", "n3")
NUMERIC = ("n0", "n1", "n2", "n3")
ONE = ModelSchema(make_profile(n_numeric=1))  # a single feature: the Python path's .get reading
T0 = 1_800_000_000.0


def _nan(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


class PlainFloat(float):
    """A float subclass whose ``__float__`` is float's own: numpy reads its value."""


class OddFloat(float):
    """``__float__`` overridden: numpy calls it (the builder declines)."""

    def __float__(self) -> float:
        return 7.0


class OddFloat64(np.float64):
    """A numpy.float64 subclass with its own ``__float__``: numpy reads the stored value."""

    def __float__(self) -> float:
        return 7.0


class Colour(enum.IntEnum):
    RED = 1


class Key(str):
    """A str subclass key equal to a feature name."""


class Dict(dict):  # type: ignore[type-arg]
    """A dict subclass."""


class Frozen(Mapping[str, Any]):
    """A Mapping that is no dict."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getitem__(self, k: str) -> Any:
        return self._d[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308,
               1.7976931348623157e308, math.inf, -math.inf, math.nan, _nan(0xFFF8000000000000),
               _nan(0x7FF0000000000001), _nan(0x7FF8DEADBEEF0001)]
BIG_INTS = [2**53 + 1, 2**63, -(2**63) - 1, 2**64 + 1, 10**308, 2**1024 - 2**971,
            2**1024 - 2**970, 10**309, -(10**400)]

numbers = st.one_of(
    st.none(), st.floats(), st.sampled_from(EDGE_FLOATS), st.integers(-(2**70), 2**70),
    st.sampled_from(BIG_INTS), st.booleans(),
    st.sampled_from(["1.5", "nan", " 2 ", "inf", "1_0", "abc", ""]),
    st.floats().map(np.float64), st.floats(width=32).map(np.float32),
    st.integers(-10, 10).map(np.int64), st.booleans().map(np.bool_),
    st.floats().map(PlainFloat), st.floats().map(OddFloat), st.floats().map(OddFloat64),
    st.just(Colour.RED), st.just(Decimal("1.5")), st.just([1.0]), st.just({}),
    st.just(np.array(2.0)))
categories = st.one_of(
    st.none(), st.sampled_from(["x", "y", "u", "", "zz"]), st.text(max_size=3),
    st.integers(-3, 3), st.floats(), st.booleans(), st.just(np.str_("x")), st.just(Key("y")),
    st.just([1]), st.just(np.int64(1)))
plain_numbers = st.one_of(st.none(), st.floats(), st.sampled_from(EDGE_FLOATS),
                          st.integers(-(2**64), 2**64), st.booleans())
plain_categories = st.one_of(st.none(), st.sampled_from(["x", "y", "u", "zz"]))


@st.composite
def feature_rows(draw: Any) -> list[Any]:
    """Rows of plain values (floats, ints, bools, None; str or None) sharing one key order,
    with, in some rows, a change: any other value (a numeric string, a numpy scalar, a float
    subclass, a huge int, ...), a missing or an extra key (str or not), another order, fresh
    key objects (equal, not identical), a str subclass key, a dict subclass or a non-dict
    Mapping, no mapping at all. Mostly plain, so that a batch is often one change away from
    one the builder takes: a wrongly taken value shows."""
    order = draw(st.permutations(NAMES))
    extra = draw(st.sampled_from([(), ("zz",), ("a", "zz")]))
    rows: list[Any] = []
    for _ in range(draw(st.integers(0, 6))):
        row = {name: draw(plain_categories if name[0] == "c" else plain_numbers)
               for name in order}
        row.update((k, draw(plain_numbers)) for k in extra)
        rows.append(row)
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        i = draw(st.integers(0, len(rows) - 1))
        how = draw(st.sampled_from(["value", "value", "value", "drop", "extra", "extra int key",
                                    "reorder", "fresh keys", "str subclass key",
                                    "dict subclass", "mapping", "not a row", "same object"]))
        row = rows[i]
        if not isinstance(row, dict):
            continue
        if how == "value":
            name = draw(st.sampled_from(NAMES))
            row[name] = draw(categories if name[0] == "c" else numbers)
        elif how == "drop":
            row.pop(draw(st.sampled_from(NAMES)), None)
        elif how == "extra":
            row["other"] = draw(numbers)
        elif how == "extra int key":
            row[7] = "x"
        elif how == "reorder":
            rows[i] = dict(reversed(list(row.items())))
        elif how == "fresh keys":
            rows[i] = {"".join(list(k)) if isinstance(k, str) else k: v for k, v in row.items()}
        elif how == "str subclass key":
            name = draw(st.sampled_from(NAMES))
            rows[i] = {Key(k) if k == name else k: v for k, v in row.items()}
        elif how == "dict subclass":
            rows[i] = Dict(row)
        elif how == "mapping":
            rows[i] = Frozen(row)
        elif how == "not a row":
            rows[i] = draw(st.sampled_from([None, 1, [1.0], "x"]))
        else:
            rows[i] = rows[0]
    return rows


# -- comparing ---------------------------------------------------------------------------------

def _same_array(got: Any, want: Any, what: str) -> None:
    if want is None:
        assert got is None, what
        return
    assert type(got) is np.ndarray and type(want) is np.ndarray, what
    assert (got.dtype, got.shape, got.strides) == (want.dtype, want.shape, want.strides), what
    assert (got.base is None) == (want.base is None), what
    if want.base is not None:
        assert (got.base.shape, got.base.dtype) == (want.base.shape, want.base.dtype), what
    if want.dtype.kind != "O":
        assert got.tobytes() == want.tobytes(), (what, got, want)  # bit for bit
        return
    for i, (a, b) in enumerate(zip(got.tolist(), want.tolist(), strict=True)):
        assert type(a) is type(b), (what, i, a, b)
        assert a is b or a == b or (a != a and b != b), (what, i, a, b)


def assert_same_columns(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        _same_array(got[name], want[name], name)


def assert_same_batch(got: RecordBatch, want: RecordBatch) -> None:
    assert type(got) is type(want) and got.n == want.n
    assert_same_columns(got.features, want.features)
    for field in ("prediction", "probabilities", "ids", "timestamps", "targets"):
        _same_array(getattr(got, field), getattr(want, field), field)
    assert got.codes.keys() == want.codes.keys()


class Spy:
    """The compiled module, counting what its functions returned (taken or declined)."""

    def __init__(self, mod: Any) -> None:
        self.mod, self.taken, self.declined = mod, 0, 0

    def _count(self, got: Any) -> Any:
        if got is None:
            self.declined += 1
        else:
            self.taken += 1
        return got

    def dict_columns(self, *args: Any) -> Any:
        return self._count(self.mod.dict_columns(*args))

    def struct_columns(self, *args: Any) -> Any:
        return self._count(self.mod.struct_columns(*args))


@contextmanager
def builder(on: bool, how: str = "env") -> Iterator[Spy]:
    """The compiled builder on (spied on) or off: ``DRIFTLINE_NATIVE=0``, or the module
    patched away (``how="missing"``)."""
    spy = Spy(columns_native._module())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTLINE_NATIVE", "1" if on or how == "missing" else "0")
        if on:
            mp.setattr(columns_native, "_module", lambda: spy)
        elif how == "missing":
            mp.setattr(columns_native, "_module", lambda: None)
        yield spy


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # the same error both ways
        return ("raised", type(exc), str(exc))


def _both(fn: Callable[[], Any], how: str = "env") -> tuple[Any, Any, Spy]:
    with builder(True) as spy:
        got = _outcome(fn)
    with builder(False, how):
        want = _outcome(fn)
    return got, want, spy


def _compare(got: Any, want: Any, check: Callable[[Any, Any], None]) -> None:
    if isinstance(want, tuple) and want and want[0] == "raised":
        assert got == want
    else:
        check(got, want)


def _exact(v: Any) -> bool:
    """A numeric value the builder reads exactly as astype(float64) does."""
    t = type(v)
    if v is None or t is float or t is bool:
        return True
    if t is int:
        try:
            float(v)
        except OverflowError:
            return False
        return True
    if isinstance(v, np.float64):
        return True
    return isinstance(v, float) and t.__float__ is float.__float__


def _takes(rows: list[Any], names: tuple[str, ...], numeric: tuple[str, ...]) -> bool:
    """Whether the builder must take these rows (else it must decline)."""
    return bool(rows) and all(
        type(r) is dict and all(type(k) is str for k in r) and all(n in r for n in names)
        and all(_exact(r[n]) for n in numeric) for r in rows)


# -- the record paths, both ways ---------------------------------------------------------------

@needs_core
@settings(max_examples=300, deadline=None)
@given(feature_rows(), st.booleans())
@example([{"n0": 1.0, "c0": "x", "n1": None, "n2": 2, "c1": None, "n3": True}], True)
@example([{"n0": 10**400, "c0": "x", "n1": 1.0, "n2": 2, "c1": None, "n3": True}], False)
@example([{"n0": "1.5", "c0": "x", "n1": 1.0, "n2": 2, "c1": None, "n3": True}], True)
@example([], True)
def test_feature_columns_equal_the_python_path(rows: list[Any], by_position: bool) -> None:
    got, want, spy = _both(lambda: ingest._feature_columns(SCHEMA, rows,
                                                           by_position=by_position))
    _compare(got, want, assert_same_columns)
    assert spy.taken == _takes(rows, NAMES, NUMERIC), rows


ODD_NUMBERS = [*EDGE_FLOATS, *BIG_INTS, True, False, None, 0, -7, "1.5", "nan", "abc", "",
               np.float64(1.5), np.float32(1.5), np.int64(2), np.bool_(True), PlainFloat(1.5),
               OddFloat(1.5), OddFloat64(1.5), Colour.RED, Decimal("1.5"), [1.0], {},
               np.array(2.0), 1j]
ODD_CATEGORIES = [None, "", 3, 1.5, math.nan, True, np.str_("x"), Key("y"), [1], b"x"]
CHANGES = ["drop first", "drop middle", "drop last", "extra str key", "extra int key",
           "reorder", "fresh keys", "str subclass key", "dict subclass", "mapping", "None",
           "same object", "all fresh keys"]


def _clean_rows(n: int = 5) -> list[Any]:
    return [{"n0": float(i), "c0": "x", "n1": i, "n2": None, "c1": None, "n3": -0.0}
            for i in range(n)]


def _changed(rows: list[Any], i: int, change: str) -> list[Any]:
    row = rows[i]
    if change.startswith("drop"):
        del row[{"first": "n0", "middle": "n2", "last": "n3"}[change.split()[1]]]
    elif change == "extra str key":
        row["zz"] = 1.0
    elif change == "extra int key":
        row[7] = 1.0
    elif change == "reorder":
        rows[i] = dict(reversed(list(row.items())))
    elif change == "fresh keys":
        rows[i] = {"".join(list(k)): v for k, v in row.items()}
    elif change == "all fresh keys":
        rows = [{"".join(list(k)): v for k, v in r.items()} for r in rows]
    elif change == "str subclass key":
        rows[i] = {Key(k) if k == "n1" else k: v for k, v in row.items()}
    elif change == "dict subclass":
        rows[i] = Dict(row)
    elif change == "mapping":
        rows[i] = Frozen(row)
    elif change == "None":
        rows[i] = None
    else:
        rows[i] = rows[0 if i else -1]
    return rows


@needs_core
@pytest.mark.parametrize("by_position", [True, False])
@pytest.mark.parametrize(("name", "value"), [("n1", v) for v in ODD_NUMBERS]
                         + [("c1", v) for v in ODD_CATEGORIES], ids=repr)
def test_each_value_in_a_batch_equals_the_python_path(name: str, value: Any,
                                                      by_position: bool) -> None:
    """Each kind of value, alone in a batch of plain rows: taken exactly where it reads as
    numpy reads it, and the same columns (or the same error) both ways."""
    rows = _clean_rows()
    rows[2][name] = value
    got, want, spy = _both(lambda: ingest._feature_columns(SCHEMA, rows,
                                                           by_position=by_position))
    _compare(got, want, assert_same_columns)
    assert spy.taken == _takes(rows, NAMES, NUMERIC)


@needs_core
@pytest.mark.parametrize("by_position", [True, False])
@pytest.mark.parametrize("at", [0, 2, 4])
@pytest.mark.parametrize("change", CHANGES)
def test_each_change_of_a_row_equals_the_python_path(change: str, at: int,
                                                     by_position: bool) -> None:
    """Each change of one row's shape (the first, one between, the last), alone in a batch
    of plain rows: taken exactly where every row is an exact dict of str keys holding every
    feature, and the same columns both ways."""
    rows = _changed(_clean_rows(), at, change)
    got, want, spy = _both(lambda: ingest._feature_columns(SCHEMA, rows,
                                                           by_position=by_position))
    _compare(got, want, assert_same_columns)
    assert spy.taken == _takes(rows, NAMES, NUMERIC)


@needs_core
@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.builds(dict, f0=numbers), st.builds(dict, f0=numbers, x=numbers),
                          st.just({})), max_size=5), st.booleans())
def test_a_single_feature_is_left_to_the_python_path(rows: list[Any], by_position: bool) -> None:
    """One plain feature is read with ``.get`` (no object matrix to replace): the builder is
    not asked, and the columns stay the Python path's (standalone arrays, not rows of a
    matrix)."""
    got, want, spy = _both(lambda: ingest._feature_columns(ONE, rows, by_position=by_position),
                           how="missing")
    _compare(got, want, assert_same_columns)
    assert spy.taken == spy.declined == 0


outputs = st.tuples(st.one_of(st.none(), st.sampled_from(["0", "1", 1, 0.5])),
                    st.one_of(st.none(), st.floats(0, 1), st.just([0.3, 0.7])),
                    st.one_of(st.none(), st.integers(0, 9), st.just("r")),
                    st.one_of(st.none(), st.sampled_from(["0", "1"])),
                    st.one_of(st.none(), st.floats(T0, T0 + 10)))


@needs_core
@settings(max_examples=200, deadline=None)
@given(feature_rows(), st.data())
def test_logged_batches_equal_the_python_path(rows: list[Any], data: Any) -> None:
    """The SDK's ``log()`` records (buffered tuples) read into the same batch both ways."""
    if not rows:
        return
    records = [(f, *data.draw(outputs)) for f in rows]  # (features, prediction, ..., timestamp)
    got, want, spy = _both(lambda: logged_batch(SCHEMA, records))
    _compare(got, want, assert_same_batch)
    assert spy.taken == _takes(rows, NAMES, NUMERIC)


def _json_number(v: Any) -> bytes:
    return v if isinstance(v, bytes) else orjson.dumps(v)


json_numbers = st.one_of(
    st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**64 - 1),
    st.booleans(), st.sampled_from(["1.5", "x"]),
    st.sampled_from([b"-0.0", b"1e400", b"-1e400", b"4.9e-324", b"1e-400", b"18446744073709551616",
                     b"9223372036854775808", b"1E5", b"123456789012345678901234567890"]))
json_categories = st.one_of(st.none(), st.sampled_from(["x", "y", "u", "zz"]), st.integers(0, 2),
                            st.booleans(), st.just(1.5))


@st.composite
def ingest_bodies(draw: Any) -> bytes:
    """``/ingest`` bodies as JSON text: one key order for most records, sometimes a record with
    another order, a missing or extra feature; outputs or none."""
    order = draw(st.permutations(NAMES))
    n = draw(st.integers(1, 6))
    out = draw(st.sampled_from(["", ', "prediction": "1", "probabilities": [0.4, 0.6]',
                                ', "id": "r", "label": "0"']))
    recs = []
    for i in range(n):
        keys = list(order)
        if draw(st.integers(0, 5)) == 0:
            how = draw(st.sampled_from(["drop", "extra", "reorder"]))
            if how == "drop":
                keys.remove(draw(st.sampled_from(keys)))
            elif how == "extra":
                keys.append("zz")
            else:
                keys.reverse()
        feats = b", ".join(b'"%s": %s' % (k.encode(), _json_number(draw(
            json_categories if k[0] == "c" else json_numbers))) for k in keys)
        recs.append(b'{"model_name": "car-loan", "features": {%s}%s}' % (
            feats, (out.replace('"r"', f'"r{i}"')).encode()))
    return b"[" + b", ".join(recs) + b"]"


def _sidecar() -> Sidecar:
    return Sidecar([(ModelConfig("car-loan", baseline=None, version="1"), PROFILE)],  # type: ignore[arg-type]
                   limits=LimitsConfig(),
                   monitor_factory=engine_factory(WindowPolicy(records=4, max_age=None),
                                                  DriftPolicy()),
                   clock=lambda: T0)


def _batches(body: bytes, typed: bool) -> Any:
    """Each group's batch as the sidecar builds it (``to_batch`` with the group's fields and
    a typed decoder's columns)."""
    split = TypedIngest(SCHEMA).split if typed else None
    groups = split_records(body, typed=split)
    out = {}
    for key, records in groups.groups.items():
        typed_cols = groups.columns.get(key)
        out[key] = to_batch(SCHEMA, records, groups.fields.get(key),
                            None if typed_cols is None else typed_cols[1])
    return out, groups.bad, groups.bad_models, groups.bad_labels


def _served(body: bytes) -> Any:
    sc = _sidecar()
    try:
        n = sc.handle_ingest(split_records(body, typed=sc.typed_split()))
    except PayloadError as exc:
        return ("refused", exc.reason)
    snaps = sorted((repr(s.model_name), repr(s.records_by_source), repr(s.quantile_rank),
                    repr(s.categories), repr(s.prediction_classes), repr(s.windows_total),
                    repr(s.last_window)) for s in sc.snapshots())
    return n, sc.dropped, snaps


def _same_groups(got: Any, want: Any) -> None:
    assert got[1:] == want[1:]
    assert list(got[0]) == list(want[0])
    for key in want[0]:
        assert_same_batch(got[0][key], want[0][key])


@needs_core
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ingest_bodies(), st.booleans())
@example(b'[{"model_name": "car-loan", "features": {"n0": 1, "c0": "x", "n1": -0.0, '
         b'"n2": null, "c1": null, "n3": 4.9e-324}}]', True)
def test_ingest_bodies_equal_the_python_path(body: bytes, typed: bool) -> None:
    """``split_records`` (typed decoder or the general path) and ``to_batch``: the same
    batches; the sidecar serves the same counters and windows."""
    got, want, spy = _both(lambda: _batches(body, typed))
    _compare(got, want, _same_groups)
    if typed and TypedIngest(SCHEMA).split(body) is not None:
        assert spy.taken >= 1 and not spy.declined  # a typed body: the builder never declines
    got, want, _ = _both(lambda: _served(body))
    assert got == want


@needs_core
def test_a_typed_body_is_read_by_the_builder() -> None:
    body = orjson.dumps([{"model_name": "car-loan", "features": {
        "n0": float(i), "c0": "x", "n1": -0.0, "n2": None, "c1": None, "n3": 5e-324}}
        for i in range(3)])
    with builder(True) as spy:
        got = TypedIngest(SCHEMA).split(body)
    assert got is not None and spy.taken == 1
    ((_, cols),) = got.columns.values()
    assert cols["n0"].tolist() == [0.0, 1.0, 2.0] and np.isnan(cols["n2"]).all()
    assert cols["c0"].tolist() == ["x"] * 3 and cols["c1"].tolist() == [None] * 3
    with builder(False):
        again = TypedIngest(SCHEMA).split(body)
    assert again is not None
    ((_, want),) = again.columns.values()
    assert_same_columns(cols, want)


# -- hand-computed values -------------------------------------------------------------------

core = columns_native._module()


def _objects(n: int, k: int = 1) -> tuple[np.ndarray, ...]:
    return tuple(np.empty(n, dtype=object) for _ in range(k))


def _fill(rows: Any, numeric: tuple[str, ...] = ("a",), categorical: tuple[str, ...] = (),
          ) -> tuple[np.ndarray, Any, tuple[np.ndarray, ...]]:
    out = np.full((len(numeric), len(rows)), -1.0)
    cats = _objects(len(rows), len(categorical))
    return out, core.dict_columns(rows, numeric, categorical, out, cats, np.float64), cats


@needs_core
@pytest.mark.parametrize(("value", "bits"), [
    (None, 0x7FF8000000000000), (math.nan, 0x7FF8000000000000), (-0.0, 0x8000000000000000),
    (_nan(0x7FF0000000000001), 0x7FF0000000000001), (5e-324, 1), (True, 0x3FF0000000000000),
    (False, 0), (1, 0x3FF0000000000000), (2**53 + 1, 0x4340000000000000),
    (2**1024 - 2**971, 0x7FEFFFFFFFFFFFFF), (PlainFloat(-0.0), 0x8000000000000000),
    (np.float64(1.5), 0x3FF8000000000000), (OddFloat64(1.5), 0x3FF8000000000000)])
def test_values_read_as_numpy_reads_them(value: Any, bits: int) -> None:
    out, all_str, _ = _fill([{"a": value}])
    assert all_str == []
    assert out.view(np.uint64)[0, 0] == bits
    assert np.array([value], dtype=object).astype(np.float64).view(np.uint64)[0] == bits


@needs_core
@pytest.mark.parametrize("value", [2**1024 - 2**970, 10**400, -(10**400), "1.5", OddFloat(1.0),
                                   np.float32(1.0), np.int64(1), np.bool_(True), Colour.RED,
                                   Decimal(1), [1.0], np.array(1.0), 1j])
def test_values_it_declines(value: Any) -> None:
    assert _fill([{"a": 1.0}, {"a": value}])[1] is None


@needs_core
@pytest.mark.parametrize("row", [Dict(a=1.0), Frozen({"a": 1.0}), {"b": 1.0}, {Key("a"): 1.0},
                                 {"a": 1.0, 1: 2.0}, types.MappingProxyType({"a": 1.0}), None])
def test_rows_it_declines(row: Any) -> None:
    assert _fill([{"a": 1.0}, row])[1] is None
    assert _fill([row, {"a": 1.0}])[1] is None


@needs_core
def test_categorical_values_are_stored_as_they_are() -> None:
    """The objects themselves; a column of exact str only is flagged (``categorical_column``
    takes such a column as it is), any other not."""
    vals = ["x", None, 3, Key("y"), np.str_("z"), [1]]
    rows = [{"a": float(i), "c": v, "s": f"s{i}"} for i, v in enumerate(vals)]
    out, all_str, (col, plain) = _fill(rows, ("a",), ("c", "s"))
    assert all_str == [False, True]
    assert all(a is b for a, b in zip(col.tolist(), vals, strict=True))
    assert plain.tolist() == [f"s{i}" for i in range(6)]
    assert out.tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    for one in vals[1:]:  # one non-str value is enough
        assert _fill([{"a": 0.0, "c": "x"}, {"a": 0.0, "c": one}], ("a",), ("c",))[1] == [False]


@needs_core
def test_rows_by_position_and_by_name_agree() -> None:
    """The same values whether a row has the first row's key objects in its order (read by
    position), equal but fresh keys, or another order (read by name)."""
    first = {"a": 1.0, "z": 0.0, "c": "p"}
    rows = [first, {"a": 2.0, "z": 0.0, "c": "q"},
            {"".join("a"): 3.0, "".join("z"): 0.0, "".join("c"): "r"},
            {"c": "s", "a": 4.0}, {"x": 9.0, "a": 5.0, "c": "t", "z": 1.0}]
    out, all_str, (col,) = _fill(rows, ("a",), ("c",))
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0]] and all_str == [True]
    assert col.tolist() == ["p", "q", "r", "s", "t"]


@needs_core
def test_no_rows_no_features() -> None:
    assert core.dict_columns([], ("a", "b"), ("c",), np.empty((2, 0)), _objects(0), None) == [True]
    assert core.dict_columns([{}, {"a": 1}], (), (), np.empty((0, 2)), (), None) == []
    cls = msgspec.defstruct("R", [("a", float), ("b", str)])
    assert core.struct_columns((), cls, (cls.__dict__["a"],), (cls.__dict__["b"],),
                               np.empty((1, 0)), _objects(0), None) == [True]


# -- argument checks ------------------------------------------------------------------------

def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


BAD_OUT = [
    (np.zeros((1, 1)), ValueError, "out has another shape"),
    (np.zeros((1, 3)), ValueError, "out has another shape"),
    (np.zeros(2), ValueError, "out has another shape"),
    (np.zeros((2, 1)), ValueError, "out has another shape"),
    (np.zeros((1, 2), np.float32), ValueError, "out is not float64"),
    (np.zeros((1, 2), np.int64), ValueError, "out is not float64"),
    (np.zeros((1, 2), ">f8"), ValueError, "out is not float64"),
    (np.zeros((1, 4))[:, ::2], ValueError, "out is not C-contiguous"),
    (np.zeros((2, 2), order="F")[:1], ValueError, "out is not C-contiguous"),
    (_readonly(np.zeros((1, 2))), ValueError, "out is read-only"),
    (bytes(16), ValueError, "out is read-only"),
    (bytearray(16), ValueError, "out is not float64"),
    ([0.0, 0.0], TypeError, "bytes-like"),
    (None, TypeError, "bytes-like"),
]
BAD_CATS = [
    (list(_objects(2)), TypeError, "cat_out must be a tuple of 1 object arrays"),
    ((), TypeError, "cat_out must be a tuple of 1 object arrays"),
    (_objects(2, 2), TypeError, "cat_out must be a tuple of 1 object arrays"),
    ((np.zeros(2),), ValueError, r"cat_out\[0\] is not an object array"),
    ((np.empty(3, dtype=object),), ValueError, r"cat_out\[0\] has another shape"),
    ((np.empty((1, 2), dtype=object),), ValueError, r"cat_out\[0\] has another shape"),
    ((np.empty(4, dtype=object)[::2],), ValueError, r"cat_out\[0\] is not C-contiguous"),
    ((_readonly(np.empty(2, dtype=object)),), ValueError, r"cat_out\[0\] is read-only"),
    ((np.array([None, "x"], dtype=object),), ValueError, r"cat_out\[0\] holds another value"),
    (("xy",), TypeError, "bytes-like"),
]


@needs_core
@pytest.mark.parametrize(("out", "cats", "error", "words"),
                         [(o, _objects(2), e, w) for o, e, w in BAD_OUT]
                         + [(np.zeros((1, 2)), c, e, w) for c, e, w in BAD_CATS])
def test_a_bad_output_buffer_is_refused(out: Any, cats: Any, error: type[Exception],
                                        words: str) -> None:
    """Refused with an error that names the buffer and what is wrong; nothing is written."""
    rows = [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]
    before = [c.tolist() for c in cats if isinstance(c, np.ndarray)]
    with pytest.raises(error, match=words):
        core.dict_columns(rows, ("a",), ("b",), out, cats, None)
    cls = msgspec.defstruct("R", [("a", float), ("b", str)])
    with pytest.raises(error, match=words):
        core.struct_columns([cls(1.0, "x"), cls(2.0, "y")], cls, (cls.__dict__["a"],),
                            (cls.__dict__["b"],), out, cats, None)
    assert [c.tolist() for c in cats if isinstance(c, np.ndarray)] == before


@needs_core
def test_the_error_names_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"C-contiguous float64 matrix of shape \(1, 2\)"):
        core.dict_columns([{"a": 1.0}, {"a": 2.0}], ("a",), (), np.zeros((1, 3)), (), None)
    with pytest.raises(ValueError, match=r"object array of 2 Nones \(numpy.empty\(2, object\)\)"):
        core.dict_columns([{"a": 1.0}, {"a": 2.0}], (), ("a",), np.zeros((0, 2)),
                          (np.zeros(2),), None)


ROW = [{"a": 1.0}]
OUT = np.zeros((1, 1))


@needs_core
@pytest.mark.parametrize(("args", "words"), [
    (({"a": 1.0}, ("a",), (), OUT, (), None), "rows must be a list or a tuple"),
    ((ROW, ["a"], (), OUT, (), None), "numeric must be a tuple"),
    ((ROW, (1,), (), OUT, (), None), "numeric must hold str"),
    ((ROW, ("a",), (Key("a"),), OUT, (), None), "categorical must hold str"),
    ((ROW, ("a",), (), OUT, (), int), "scalar must be a subclass of float"),
    ((ROW, ("a",), (), OUT, (), 1.0), "scalar must be a subclass of float"),
    ((ROW, ("a",), (), OUT, ()), "takes exactly 6 arguments"),
])
def test_bad_arguments_raise(args: tuple[Any, ...], words: str) -> None:
    with pytest.raises(TypeError, match=words):
        core.dict_columns(*args)


@needs_core
def test_struct_arguments_are_checked() -> None:
    cls = msgspec.defstruct("R", [("a", float), ("b", str)])
    other = msgspec.defstruct("O", [("a", float)])
    rows = [cls(1.0, "x")]
    out = np.zeros((1, 1))
    for bad, words in [((other.__dict__["a"],), "member descriptors of"),
                       (("a",), "member descriptors of"),
                       ((float.__dict__["real"],), "member descriptors of"),
                       ([cls.__dict__["a"]], "must be tuples")]:
        with pytest.raises(TypeError, match=words):
            core.struct_columns(rows, cls, bad, (), out, (), None)
    with pytest.raises(TypeError):
        core.struct_columns(rows, "R", (cls.__dict__["a"],), (), out, (), None)
    meta = type("Meta", (type,), {})  # a member that is no object slot (type.__basicsize__)
    with pytest.raises(TypeError, match="is no plain object slot"):
        core.struct_columns([meta("X", (), {})], meta, (type.__dict__["__basicsize__"],), (),
                            out, (), None)
    cats = _objects(1)
    assert core.struct_columns(rows, cls, (cls.__dict__["a"],), (cls.__dict__["b"],), out,
                               cats, None) == [True]
    assert out.tolist() == [[1.0]] and cats[0].tolist() == ["x"]


@needs_core
def test_structs_it_declines() -> None:
    cls = msgspec.defstruct("R", [("a", float | None), ("b", str | None)], gc=False)
    sub = msgspec.defstruct("S", [("a", float | None), ("b", str | None)], gc=False)
    a, b = cls.__dict__["a"], cls.__dict__["b"]
    unset_a = cls(1.0, "x")
    del unset_a.a
    unset_b = cls(1.0, "x")
    del unset_b.b
    cases = [[cls(1.0, "x"), sub(2.0, "y")], [cls(1.0, "x"), unset_a], [unset_b],
             [cls("1.5", "x")], [cls(10**400, "x")], [cls(1.0, "x"), {"a": 1.0, "b": "x"}]]  # type: ignore[arg-type]
    for rows in cases:
        assert core.struct_columns(rows, cls, (a,), (b,), np.zeros((1, len(rows))),
                                   _objects(len(rows)), None) is None


# -- references -----------------------------------------------------------------------------

@needs_core
def test_no_reference_is_leaked_or_lost() -> None:
    """The reference counts of the rows, their values, the names and the outputs are what
    they were after thousands of calls: taken, declined midway (a bad value, a missing key,
    a row of another type) and refused (a bad buffer)."""
    rng = np.random.default_rng(5)
    cls = msgspec.defstruct("R", [("a", float | None), ("b", str | None)], gc=False)
    da, db = cls.__dict__["a"], cls.__dict__["b"]
    n = 40
    cats = [f"cat{i}" for i in range(n)]  # not interned, each counted on its own
    nums = [float(x) for x in rng.normal(size=n)]
    rows = [{"a": nums[i], "b": cats[i], "z": nums[i]} for i in range(n)]
    structs = [cls(nums[i], cats[i]) for i in range(n)]
    bad_rows = [*rows[: n // 2], {"a": "1.5", "b": cats[0]}, *rows[n // 2:]]
    missing = [*rows[: n // 2], {"b": cats[0]}, *rows[n // 2:]]
    bad_structs = [*structs[: n // 2], cls(10**400, "x"), *structs[n // 2:]]  # type: ignore[arg-type]
    numeric, categorical = ("a",), ("b",)
    out, wrong = np.zeros((1, n)), np.zeros((1, n + 1))
    watched = [rows, structs, numeric, categorical, da, db, out, wrong, None, *rows, *structs,
               *nums, *cats]
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(1000):
        col = _objects(n)
        assert core.dict_columns(rows, numeric, categorical, out, col, np.float64) == [True]
        assert col[0].tolist() == cats
        del col
        for bad in (bad_rows, missing):
            assert core.dict_columns(bad, numeric, categorical, np.zeros((1, n + 1)),
                                     _objects(n + 1), None) is None
        col = _objects(n)
        assert core.struct_columns(structs, cls, (da,), (db,), out, col, None) == [True]
        del col
        assert core.struct_columns(bad_structs, cls, (da,), (db,), np.zeros((1, n + 1)),
                                   _objects(n + 1), None) is None
        with pytest.raises(ValueError):
            core.dict_columns(rows, numeric, categorical, wrong, _objects(n), None)
        with pytest.raises(ValueError):
            core.dict_columns(rows, numeric, categorical, out, _objects(n + 1), None)
    after = [sys.getrefcount(o) for o in watched]
    none_drift = after[8] - before[8]  # None: counted by everything, checked loosely
    assert abs(none_drift) < 100, none_drift
    del after[8], before[8]
    assert after == before
