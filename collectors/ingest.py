"""Native ingest (``POST /ingest`` and the SDK): JSON records grouped by model.

A record is ``{"model_name", "model_version"?, "id"?, "features": {...}, "prediction"?,
"probabilities"?, "label"?, "timestamp"?}``. A body is one record, a list of records, or
``{"model_name", "model_version"?, "records": [...]}`` whose records inherit the model. Records are
grouped by (model, version) so each group becomes one columnar
:class:`~driftline.records.RecordBatch` (:func:`driftline.records.from_records`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.collectors.payloads import PayloadError, loads

GroupKey = tuple[str, str | None]


@dataclass
class IngestGroups:
    """Records by (model_name, model_version or None); ``bad`` counts records without a model
    or with ``features`` that is not an object (dropped as ``schema_mismatch``)."""

    groups: dict[GroupKey, list[Mapping[str, Any]]] = field(default_factory=dict)
    bad: int = 0
    bad_models: dict[str, int] = field(default_factory=dict)


def split_records(body: Any, *, default_model: str | None = None,
                  default_version: str | None = None) -> IngestGroups:
    """Group the records of one ingest body. Raises PayloadError only for a body that is not
    JSON or has no record shape at all."""
    doc = loads(body)
    model, version = default_model, default_version
    if isinstance(doc, Mapping) and "records" in doc:
        model = doc.get("model_name", model)
        version = doc.get("model_version", version)
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
        name = rec.get("model_name", model)
        feats = rec.get("features")
        if name is None or not isinstance(feats, Mapping):
            out.bad += 1
            if name is not None:
                out.bad_models[str(name)] = out.bad_models.get(str(name), 0) + 1
            continue
        ver = rec.get("model_version", version)
        key = (str(name), None if ver is None else str(ver))
        group = groups.get(key)
        if group is None:
            groups[key] = group = []
        group.append(rec)
    return out
