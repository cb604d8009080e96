"""Native ingest (``POST /ingest`` and the SDK): JSON records grouped by model.

A record is ``{"model_name", "model_version"?, "id"?, "features": {...}, "prediction"?,
"probabilities"?, "label"?, "timestamp"?}``. A body is one record, a list of records, or
``{"model_name", "model_version"?, "records": [...]}`` whose records inherit the model. Records are
grouped by (model, version) so each group becomes one columnar
:class:`~driftline.engine.records.RecordBatch` (:func:`to_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.collectors.label_values import label_value, safe_label
from driftline.collectors.payloads import ModelSchema, PayloadError, loads
from driftline.engine.records import RecordBatch, numeric_column
from driftline.labels import canonical_labels

GroupKey = tuple[str, str | None]


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

    def refuse_label(self, model: Any) -> None:
        name = safe_label(model)
        self.bad_labels[name] = self.bad_labels.get(name, 0) + 1


def split_records(body: Any, *, default_model: str | None = None,
                  default_version: str | None = None) -> IngestGroups:
    """Group the records of one ingest body. Raises PayloadError only for a body that is not
    JSON, has no record shape at all, or names its shared model with a bad label value."""
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
    groups = out.groups
    for rec in items:
        if not isinstance(rec, Mapping):
            out.bad += 1
            continue
        raw_name = rec.get("model_name", model)
        try:
            name = label_value(raw_name, "model_name")
            ver = label_value(rec.get("model_version", version), "model_version")
            endpoint = label_value(rec.get("endpoint"), "endpoint")
        except PayloadError:
            out.refuse_label(raw_name)
            continue
        feats = rec.get("features")
        if name is None or not isinstance(feats, Mapping):
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


def to_batch(schema: ModelSchema, records: Sequence[Mapping[str, Any]]) -> RecordBatch:
    """Columns of one model's records (validated by :func:`split_records`: ``features`` is a
    mapping). Numeric columns go through numpy in one call each; outputs take the same
    vectorised path as v1/v2 payloads. Raises PayloadError for outputs that fit no shape."""
    n = len(records)
    rows = [r["features"] for r in records]
    feats = {name: schema.column(name, [f.get(name) for f in rows]) for name in schema.order}
    for name in schema.extra:
        feats[name] = schema.column(name, schema.pick(rows, name))
    for name in schema.profile.features:
        if name not in feats:
            feats[name] = schema.column(name, [f.get(name) for f in rows])

    def col(key: str) -> list[Any] | None:
        vals = [r.get(key) for r in records]
        return None if all(v is None for v in vals) else vals

    pred_raw, proba_raw = col("prediction"), col("probabilities")
    pred = proba = None
    if pred_raw is not None or proba_raw is not None:
        pred, proba = schema.outputs(pred_raw, proba_raw, n)
    ids_raw = col("id")
    ids = None if ids_raw is None else np.array(
        [None if v is None else str(v) for v in ids_raw], dtype=object)
    ts_raw = col("timestamp")
    timestamps = None if ts_raw is None else numeric_column(ts_raw)
    labels_raw = col("label")
    targets = None if labels_raw is None else canonical_labels(
        np.array(labels_raw, dtype=object))
    return RecordBatch(feats, pred, proba, ids, timestamps, targets, n=n)
