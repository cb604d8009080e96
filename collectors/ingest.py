"""Native ingest (``POST /ingest`` and the SDK): JSON records grouped by model.

A record is ``{"model_name", "model_version"?, "id"?, "features": {...}, "prediction"?,
"probabilities"?, "label"?, "timestamp"?}``. A body is one record, a list of records, or
``{"model_name", "model_version"?, "records": [...]}`` whose records inherit the model. Records are
grouped by (model, version) so each group becomes one columnar
:class:`~driftline.engine.records.RecordBatch` (:func:`to_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import is_not, itemgetter, methodcaller
from typing import Any

import numpy as np

from driftline.collectors import columns_native
from driftline.collectors.label_values import label_value, safe_label
from driftline.collectors.payloads import ModelSchema, PayloadError, loads
from driftline.engine.records import RecordBatch, numeric_column
from driftline.labels import canonical_labels

GroupKey = tuple[str, str | None]
TypedSplit = Callable[[Any], "IngestGroups | None"]
"""A typed decoder's ``split``: the groups of a body it takes whole, else None."""


@dataclass
class IngestGroups:
    """Records by (model_name, model_version or None); ``bad`` counts records without a model
    or with ``features`` that is not an object (dropped as ``schema_mismatch``);
    ``bad_labels`` counts records whose model name, version or endpoint is no label value
    (dropped as ``bad_label``; by model when the name itself is valid). ``endpoints`` holds the
    checked endpoint of each record (None: the default), in the order of its group."""

    groups: dict[GroupKey, list[Mapping[str, Any]]] = field(default_factory=dict)
    endpoints: dict[GroupKey, list[str | None]] = field(default_factory=dict)
    bad: int = 0
    bad_models: dict[str, int] = field(default_factory=dict)
    bad_labels: dict[str | None, int] = field(default_factory=dict)
    #: per group read whole by one pass (``_one_group``): its records' fields, which
    #: :func:`to_batch` takes instead of reading them again
    fields: dict[GroupKey, dict[str, list[Any]]] = field(default_factory=dict)
    #: per group decoded by a typed decoder (:mod:`driftline.collectors.ingest_typed`): the
    #: schema it read the feature columns for, and the columns
    columns: dict[GroupKey, tuple[ModelSchema, dict[str, np.ndarray]]] = field(
        default_factory=dict)
    #: the body a typed decoder read (to read it again should its model's schema change)
    body: Any = None

    def refuse_label(self, model: Any) -> None:
        name = safe_label(model)
        self.bad_labels[name] = self.bad_labels.get(name, 0) + 1


def split_records(body: Any, *, default_model: str | None = None,
                  default_version: str | None = None,
                  typed: TypedSplit | None = None) -> IngestGroups:
    """Group the records of one ingest body. Raises PayloadError only for a body that is not
    JSON, has no record shape at all, or names its shared model with a bad label value.
    ``typed``: a typed decoder's ``split`` (:class:`~driftline.collectors.ingest_typed.TypedIngest`),
    tried first on a body without defaults; None from it means the body is read here."""
    if typed is not None and default_model is None and default_version is None:
        got = typed(body)
        if got is not None:
            return got
    doc = loads(body)
    model, version = default_model, default_version
    if isinstance(doc, Mapping) and "records" in doc:
        model = label_value(doc.get("model_name", model), "model_name")
        version = label_value(doc.get("model_version", version), "model_version")
        items = doc["records"]
        if not isinstance(items, list):
            raise PayloadError("schema_mismatch", "records must be a list")
    elif isinstance(doc, Mapping):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise PayloadError("parse_error", "ingest takes a record, a list of records or "
                           '{"records": [...]}')
    out = IngestGroups()
    if _one_group(out, items, model, version):
        return out
    groups = out.groups
    # The records of one body nearly always name the same model, version and endpoint: each
    # distinct string triple is checked once (only str/None triples are remembered, so 1 and
    # True, which hash alike, are never confused).
    checked: dict[tuple[Any, Any, Any], tuple[str | None, str | None, str | None]] = {}
    for rec in items:
        if type(rec) is not dict and not isinstance(rec, Mapping):
            out.bad += 1
            continue
        raw_name = rec.get("model_name", model)
        raw_ver, raw_ep = rec.get("model_version", version), rec.get("endpoint")
        raw = (raw_name, raw_ver, raw_ep)
        plain = ((raw_name is None or type(raw_name) is str)
                 and (raw_ver is None or type(raw_ver) is str)
                 and (raw_ep is None or type(raw_ep) is str))
        labels = checked.get(raw) if plain else None
        if labels is None:
            try:
                labels = (label_value(raw_name, "model_name"),
                          label_value(raw_ver, "model_version"),
                          label_value(raw_ep, "endpoint"))
            except PayloadError:
                out.refuse_label(raw_name)
                continue
            if plain:
                checked[raw] = labels
        name, ver, endpoint = labels
        feats = rec.get("features")
        if name is None or (type(feats) is not dict and not isinstance(feats, Mapping)):
            out.bad += 1
            if name is not None:
                out.bad_models[name] = out.bad_models.get(name, 0) + 1
            continue
        key = (name, ver)
        group = groups.get(key)
        if group is None:
            groups[key] = group = []
            out.endpoints[key] = []
        group.append(rec)
        out.endpoints[key].append(endpoint)
    return out


def _one_group(out: IngestGroups, items: list[Any], model: Any, version: Any) -> bool:
    """Group a body whose records all have the same keys, name one model, version and
    endpoint (str or None) and carry a ``features`` dict: one pass over the records
    (:func:`_same_keys`, whose fields :func:`to_batch` then reuses from ``out.fields``) and one
    label check, instead of the loop of :func:`split_records`. Fills ``out`` and returns True
    for such a body; leaves ``out`` untouched and returns False for any other (a label the
    check refuses too: the loop then refuses it record by record, as for any body).

    Why: a freshly decoded body's records are cold in the cache, so each pass over them costs
    ≈ 0.3 µs a record whatever it reads; the loop here and the field pass of ``to_batch``
    were two passes where one is enough."""
    if not items or set(map(type, items)) != {dict}:
        return False
    fields = _same_keys(items)
    if fields is None:
        return False
    n = len(items)
    raw = []
    for key, default in (("model_name", model), ("model_version", version), ("endpoint", None)):
        col = fields.get(key)
        if col is None:
            raw.append(default)
            continue
        first = col[0]
        if not (first is None or type(first) is str) or col.count(first) != n:
            return False  # 1 and True compare equal: only str or None values are taken alike
        raw.append(first)
    if set(map(type, fields["features"])) != {dict}:
        return False
    labels = one_model_labels(raw[0], raw[1], raw[2])
    if labels is None:
        return False
    name, ver, endpoint = labels
    out.groups[(name, ver)] = items
    out.endpoints[(name, ver)] = [endpoint] * n
    out.fields[(name, ver)] = fields
    return True


def one_model_labels(model: Any, version: Any,
                     endpoint: Any) -> tuple[str, str | None, str | None] | None:
    """The (model, version, endpoint) labels of a body taken whole as one model's, or None
    when one is no valid label or the model is unnamed: such a body takes the record-by-record
    path, which counts and says why."""
    try:
        name, ver, ep = (label_value(model, "model_name"), label_value(version, "model_version"),
                         label_value(endpoint, "endpoint"))
    except PayloadError:
        return None
    return None if name is None else (name, ver, ep)


def to_batch(schema: ModelSchema, records: Sequence[Any],
             fields: dict[str, list[Any]] | None = None,
             columns: dict[str, np.ndarray] | None = None) -> RecordBatch:
    """Columns of one model's records (validated by :func:`split_records`: ``features`` is a
    mapping). Numeric columns go through numpy in one call each; outputs take the same
    vectorised path as v1/v2 payloads. Raises PayloadError for outputs that fit no shape.

    Why it is shaped like this: the per-record Python work bounds the sidecar's throughput, so
    values are pulled out with C-level ``map``/``itemgetter``/``zip`` instead of one Python
    comprehension per feature (``_feature_columns``); the per-record path is
    the fallback when some record lacks a feature. ``fields``: every field's values of exactly
    these records as :func:`_same_keys` reads them (``IngestGroups.fields``), so a body is
    passed over once. ``columns``: the feature columns already read (a typed decoder's,
    ``IngestGroups.columns``), with ``fields`` holding the output fields."""
    if fields is None:
        fields = _same_keys(records)
    if fields is not None:
        return columns_batch(schema, fields.get("features", []), *(
            None if fields.get(k) is None else present(fields[k]) for k in OUTPUT_FIELDS),
            n=len(records), feats=columns)

    def col(key: str) -> list[Any] | None:
        return present(list(map(methodcaller("get", key), records)))

    return columns_batch(schema, list(map(FEATURES_OF, records)),
                         *(col(k) for k in OUTPUT_FIELDS))


OUTPUT_FIELDS = ("prediction", "probabilities", "id", "timestamp", "label")
"""The per-record fields besides ``features``, in :func:`columns_batch`'s order."""


def _same_keys(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Every field's values in one pass when all records are dicts with the first one's keys
    (the usual body: same key count, and each record has each of the first's keys), else
    None. A decoded body's objects are fresh in memory: one pass over the records instead of
    one per field is what saves the time."""
    if not records:
        return None
    first = records[0]
    if type(first) is not dict or "features" not in first:
        return None
    keys = tuple(first)
    if set(map(len, records)) != {len(keys)}:
        return None
    if len(keys) == 1:  # ``features`` alone (itemgetter of one key gives no tuple)
        return {"features": list(map(FEATURES_OF, records))}
    try:
        table = list(map(itemgetter(*keys), records))
    except (KeyError, TypeError):  # some record has other keys (or is not a dict)
        return None
    return dict(zip(keys, map(list, zip(*table, strict=True)), strict=True))


def present(values: list[Any]) -> list[Any] | None:
    """``values``, or None when every one is None (a field no record had)."""
    return values if any(map(is_not, values, repeat(None))) else None


def columns_batch(schema: ModelSchema, rows: list[Mapping[str, Any]],
                  pred_raw: list[Any] | None, proba_raw: list[Any] | None,
                  ids_raw: list[Any] | None, ts_raw: list[Any] | None,
                  labels_raw: list[Any] | None, *, by_position: bool = True,
                  n: int | None = None,
                  feats: dict[str, np.ndarray] | None = None) -> RecordBatch:
    """One batch from per-record values already pulled apart: each record's ``features``
    mapping and, per output field, one value per record (None where a record had none) or
    None for a field no record had. :func:`to_batch` and the SDK's ``log()`` records
    (buffered as plain tuples) both end here; ``by_position`` as for
    :func:`_feature_columns`. ``feats``: the feature columns already read (then ``rows`` is
    not read and ``n`` is the record count)."""
    if feats is None:
        n = len(rows)
        feats = _feature_columns(schema, rows, by_position=by_position)
    assert n is not None
    pred = proba = None
    if pred_raw is not None or proba_raw is not None:
        pred, proba = schema.outputs(pred_raw, proba_raw, n)
    ids = None if ids_raw is None else _id_column(ids_raw)
    timestamps = None if ts_raw is None else numeric_column(ts_raw)
    targets = None if labels_raw is None else canonical_labels(
        np.array(labels_raw, dtype=object))
    return RecordBatch(feats, pred, proba, ids, timestamps, targets, n=n)


FEATURES_OF = itemgetter("features")
"""A record's ``features`` object (C-level, for ``map``)."""


def _feature_columns(schema: ModelSchema, rows: list[Mapping[str, Any]], *,
                     by_position: bool = True) -> dict[str, np.ndarray]:
    """Every baseline feature's column from the records' ``features`` objects: by position
    when every record has the first one's keys in its order (:func:`_columns_by_position`),
    else one ``itemgetter`` over all plain feature names per record into one object matrix
    (:func:`_matrix_columns`) when every record has every one, else ``.get`` per feature
    (missing values).
    The three give the same columns (``tests/test_ingest_one_pass.py``). ``by_position=False``
    skips the first: the SDK's ``log()`` dicts are warm in memory when the worker reads them,
    where the lookups are ≈ 0.1 µs a record cheaper than the key-order check (1.65 against
    1.78 µs, min per block of 15 rounds). Before all three, for two plain features or more,
    the compiled builder (:mod:`~driftline.collectors.columns_native`) is tried: it takes
    exact dicts with str keys holding every plain feature and values it converts exactly as
    numpy does, and gives the same columns as they would (``tests/test_rowcore.py``); it
    declines anything else.
    Embedding and text features are read by :meth:`ModelSchema.pick` (their request field may
    be renamed)."""
    plain = plain_features(schema)
    # one feature: the Python path reads it with .get, no matrix to replace
    cols = columns_native.dict_columns(schema, plain, rows) if len(plain) > 1 else None
    if cols is None and by_position:
        cols = _columns_by_position(schema, plain, rows)
    if cols is None and len(plain) > 1 and rows:
        try:
            mat = np.fromiter(chain.from_iterable(map(itemgetter(*plain), rows)),
                              dtype=object, count=len(rows) * len(plain))
        except (KeyError, TypeError):  # some record lacks a feature (or is not a dict)
            pass
        else:
            cols = _matrix_columns(schema, plain, list(range(len(plain))),
                                   mat.reshape(len(rows), len(plain)))
    if cols is None:
        cols = {name: schema.column(name, [f.get(name) for f in rows]) for name in plain}
    out = {name: cols[name] for name in schema.order if name in cols}
    for name in schema.extra:
        out[name] = schema.column(name, schema.pick(rows, name))
    for name in plain:
        out.setdefault(name, cols[name])
    return out


def plain_features(schema: ModelSchema) -> list[str]:
    """The features read straight from a record's ``features`` object, in
    :func:`_feature_columns`'s order: all but the embedding and text features."""
    extra = set(schema.extra)
    return [n for n in dict.fromkeys((*schema.order, *schema.profile.features))
            if n not in extra]


def _columns_by_position(schema: ModelSchema, names: list[str],
                         rows: list[Mapping[str, Any]]) -> dict[str, np.ndarray] | None:
    """The columns of ``names`` when every row is a dict with the first row's keys in the
    first row's order (a client serialising one structure: the usual body), else None.

    Why: each record's values are then read with ``dict.values`` and transposed by position,
    with no key lookup at all. On a freshly decoded body that is ≈ 1.4 µs less per
    25-feature record than one ``itemgetter`` of every name per record (4.8–6.6 → 3.9–5.1
    µs, min per body of 15 rounds, interleaved). The key order is checked with one tuple of
    keys per record and one ``list.count`` (key equality is what a dict lookup uses, so a row
    passes only where the lookups would have found the same values). A row that lacks a name,
    has other keys or another order, or is no dict, sends the whole body to the lookups.
    The values land in one object matrix (:func:`_matrix_columns`)."""
    if not rows or type(rows[0]) is not dict:
        return None
    keys = tuple(rows[0])
    where = {k: i for i, k in enumerate(keys)}
    if any(name not in where for name in names):
        return None
    if list(map(tuple, rows)).count(keys) != len(rows):
        return None
    try:
        mat = np.fromiter(chain.from_iterable(map(dict.values, rows)),  # type: ignore[arg-type,type-var]
                          dtype=object, count=len(rows) * len(keys))
    except TypeError:  # a row that is a Mapping but no dict
        return None
    return _matrix_columns(schema, names, [where[name] for name in names],
                           mat.reshape(len(rows), len(keys)))


def _matrix_columns(schema: ModelSchema, names: list[str], positions: list[int],
                    mat: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of ``names`` from an ``(n, width)`` object matrix of the records' values,
    ``names[i]`` in column ``positions[i]``: the numeric features in one ``astype`` of their
    columns, the others by :meth:`ModelSchema.column` as before.

    Why: one conversion call for all numeric features instead of one ``np.asarray`` of a
    tuple per feature, and no transposed tuples (``zip(*rows)``) to build: ≈ 0.6 µs less per
    25-feature record (2.5 → 1.9 µs, min per freshly decoded body, interleaved). An object
    array's ``astype(float64)`` converts each value as ``np.asarray(values, float64)`` does
    (``float()``: None → NaN, bools, numeric strings); where it cannot (a string that is no
    number, a list, a dict), the numeric columns are read one by one by
    :meth:`ModelSchema.column` as before, so a bad value stays missing
    (``tests/test_ingest_one_pass.py`` compares both with the record-by-record reading)."""
    numeric = [i for i, name in enumerate(names) if name not in schema.categorical]
    out: dict[str, np.ndarray] = {}
    block = None
    if numeric:
        at = [positions[i] for i in numeric]
        try:
            if at == list(range(at[0], at[0] + len(at))):
                # side by side (the typed decoder lays them out so): their slice converted in
                # the matrix's order, then transposed, ≈ 0.1 µs a record less than gathering
                # the transposed columns (25 features, 20 numeric)
                block = mat[:, at[0]:at[0] + len(at)].astype(np.float64).T.copy()
            else:
                block = mat.T[at].astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            block = None
    if block is not None:
        out.update((names[i], row) for i, row in zip(numeric, block, strict=True))
    for i, name in enumerate(names):
        if name not in out:
            out[name] = schema.column(name, mat[:, positions[i]].tolist())
    return {name: out[name] for name in names}


def _id_column(values: list[Any]) -> np.ndarray:
    """Record ids as an object column of str (None where missing)."""
    out = np.empty(len(values), dtype=object)
    if set(map(type, values)) == {str}:
        out[:] = values
    else:
        out[:] = [None if v is None else str(v) for v in values]
    return out
