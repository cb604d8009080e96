"""The record schema: a batch of model inputs and outputs as columns.

Collectors turn whatever they receive (JSON rows, v2 tensors, Arrow batches) into one
:class:`RecordBatch` per payload; the monitor consumes only that. Columns are numpy arrays:

* numeric features: ``float64`` with NaN for missing;
* categorical features: ``object`` arrays of ``str`` (``None`` for missing);
* ``prediction``: canonical class labels (object) for a classifier, ``float64`` for a regressor;
* ``probabilities``: ``float64`` of shape ``(n, len(profile.output.classes))`` in the profile's
  class order (a binary model's single positive-class probability ``p`` becomes ``[1-p, p]``
  in that order), NaN rows where absent;
* ``ids`` (object str), ``timestamps`` (float64 Unix seconds), ``targets`` (canonical labels;
  float64 for a regressor, NaN where missing or not a number).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.labels import canonical_label, canonical_labels
from driftline.profile.format import BaselineProfile, CategoricalFeature


@dataclass
class RecordBatch:
    """Columns of ``n`` records; see the module docstring for dtypes."""

    features: dict[str, np.ndarray]
    prediction: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    ids: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    targets: np.ndarray | None = None
    n: int = field(default=-1)
    #: categorical features' codes against the profile's categories
    #: (:func:`~driftline.engine.window_stats.category_codes`), when the producer has them
    #: cheaply (offline analysis maps an Arrow dictionary once per batch): the monitor hands
    #: them to the window instead of looking every value up again. Absent: looked up there.
    codes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n < 0:
            for col in (*self.features.values(), self.prediction, self.probabilities, self.ids):
                if col is not None:
                    self.n = len(col)
                    break
            else:
                self.n = 0

    def __len__(self) -> int:
        return self.n

    def select(self, keep: np.ndarray) -> RecordBatch:
        """The rows where the boolean mask ``keep`` is true (copies)."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        return RecordBatch(
            features={k: v[keep] for k, v in self.features.items()},
            prediction=cut(self.prediction), probabilities=cut(self.probabilities),
            ids=cut(self.ids), timestamps=cut(self.timestamps), targets=cut(self.targets),
            n=int(np.count_nonzero(keep)), codes={k: v[keep] for k, v in self.codes.items()},
        )

    def slice(self, start: int, stop: int) -> RecordBatch:
        """Rows ``start:stop`` as views (no copy)."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        return RecordBatch(
            features={k: v[start:stop] for k, v in self.features.items()},
            prediction=cut(self.prediction), probabilities=cut(self.probabilities),
            ids=cut(self.ids), timestamps=cut(self.timestamps), targets=cut(self.targets),
            n=max(0, min(stop, self.n) - max(0, start)),
            codes={k: v[start:stop] for k, v in self.codes.items()},
        )


def _float(v: Any) -> float:
    if v is None or isinstance(v, str | bytes | dict | list):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return math.nan
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _category(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def numeric_column(values: Sequence[Any]) -> np.ndarray:
    """A float64 column; anything not a finite number becomes NaN (counted as missing)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 1:
            return arr
    except (TypeError, ValueError, OverflowError):
        pass
    return np.fromiter((_float(v) for v in values), dtype=np.float64, count=len(values))


def vector_column(values: Sequence[Any] | np.ndarray, dim: int) -> tuple[np.ndarray, int]:
    """An ``(n, dim)`` float64 matrix of vectors and how many were invalid.

    Each value may be a list, tuple or array of ``dim`` numbers, or None (missing). A vector of
    another length, or holding a NaN, an infinity or a non-number, becomes a NaN row and is
    counted, so one bad vector costs only itself, never the rest of the batch."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub" and values.ndim == 2:
        if values.shape[1] != dim:
            return np.full((len(values), dim), np.nan), len(values)
        out = values.astype(np.float64, copy=True)
        bad = ~np.isfinite(out).all(axis=1)
        out[bad] = np.nan
        return out, int(bad.sum())
    n = len(values)
    out = np.full((n, dim), np.nan)
    invalid = 0
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            row = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            invalid += 1
            continue
        if row.shape != (dim,) or not np.isfinite(row).all():
            invalid += 1
            continue
        out[i] = row
    return out, invalid


def text_column(values: Sequence[Any]) -> np.ndarray:
    """An object column of str for a text feature; None where missing, for a non-string, or
    for bytes that are not UTF-8 (counted as missing by the descriptors)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                v = None
        out[i] = v if isinstance(v, str) else None
    return out


def categorical_column(values: Sequence[Any]) -> np.ndarray:
    """An object column of str, None where missing.

    A column of strings only (the usual case) is taken as it is: one type check per value in
    C instead of a Python call per value."""
    if len(values) and set(map(type, values)) == {str}:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.array([_category(v) for v in values], dtype=object)


def probability_matrix(profile: BaselineProfile, values: Sequence[Any]) -> np.ndarray | None:
    """Probabilities in the profile's class order from per-record values.

    Each value may be a list in class order, a mapping ``{class: p}``, a scalar (binary models:
    the positive-class probability) or None. Rows that fit none of these are NaN.
    """
    out = profile.output
    if out is None or out.task != "classification" or not out.classes:
        return None
    classes = out.classes
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    mat = np.full((len(values), k), np.nan)
    pos = index.get(out.positive_class) if out.positive_class is not None else None
    for row, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, Mapping):
            for key, p in v.items():
                i = index.get(canonical_label(key) or "")
                if i is not None:
                    mat[row, i] = _float(p)
        elif isinstance(v, list | tuple | np.ndarray):
            if len(v) == k:
                mat[row] = [_float(p) for p in v]
            elif len(v) == 1 and k == 2 and pos is not None:
                p = _float(v[0])
                mat[row, pos] = p
                mat[row, 1 - pos] = 1.0 - p
        elif k == 2 and pos is not None:
            p = _float(v)
            mat[row, pos] = p
            mat[row, 1 - pos] = 1.0 - p
    return mat


def from_records(profile: BaselineProfile, records: Sequence[Mapping[str, Any]]) -> RecordBatch:
    """Build a batch from JSON-like records ``{"features": {...}, "prediction"?,
    "probabilities"?, "id"?, "timestamp"?, "label"?}``. Unknown features are ignored, absent ones
    are missing. Raises nothing for bad values: they become missing."""
    n = len(records)
    feats: dict[str, np.ndarray] = {}
    rows = [r.get("features") or {} for r in records]
    for name, spec in profile.features.items():
        vals = [row.get(name) if isinstance(row, Mapping) else None for row in rows]
        if isinstance(spec, CategoricalFeature):
            feats[name] = categorical_column(vals)
        else:
            feats[name] = numeric_column(vals)
    for name, emb in profile.embeddings.items():
        feats[name], _ = vector_column([row.get(name) if isinstance(row, Mapping) else None
                                        for row in rows], emb.dim)
    for name in profile.text:
        feats[name] = text_column([row.get(name) if isinstance(row, Mapping) else None
                                   for row in rows])
    prediction = None
    if any("prediction" in r for r in records):
        raw = [r.get("prediction") for r in records]
        if profile.output is not None and profile.output.task == "regression":
            prediction = numeric_column(raw)
        else:
            prediction = canonical_labels(np.array(raw, dtype=object))
    probabilities = None
    if any("probabilities" in r for r in records):
        probabilities = probability_matrix(profile, [r.get("probabilities") for r in records])
    ids = None
    if any("id" in r for r in records):
        ids = np.array([None if r.get("id") is None else str(r.get("id")) for r in records],
                       dtype=object)
    timestamps = None
    if any("timestamp" in r for r in records):
        timestamps = numeric_column([r.get("timestamp") for r in records])
    targets = None
    if any("label" in r for r in records):
        raw_labels = [r.get("label") for r in records]
        targets = (numeric_column(raw_labels) if profile.output is not None
                   and profile.output.task == "regression"
                   else canonical_labels(np.array(raw_labels, dtype=object)))
    return RecordBatch(feats, prediction, probabilities, ids, timestamps, targets, n=n)


def predicted_from_probabilities(profile: BaselineProfile, probabilities: np.ndarray) -> np.ndarray:
    """Predicted class (canonical label) as the argmax of each probability row."""
    assert profile.output is not None
    classes = np.array(profile.output.classes, dtype=object)
    valid = ~np.isnan(probabilities).any(axis=1)
    out = np.full(len(probabilities), None, dtype=object)
    if valid.any():
        out[valid] = classes[np.argmax(probabilities[valid], axis=1)]
    return out
