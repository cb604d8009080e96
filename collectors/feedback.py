"""Delayed labels: a bounded store of recent predictions by record id, and the feedback payload.

Labels usually arrive minutes to days after the prediction. The collectors put every record that
has both an id and a prediction into :class:`PredictionStore` (ids from native ingest, v2
request ids, ``x-request-id``, ``ce-id``); ``POST /feedback`` pops them to join label and
prediction. The store forgets entries after ``ttl`` seconds and holds at most ``max_ids``
(oldest out first), so memory stays bounded whatever the traffic; a label that finds nothing is
counted as unmatched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.collectors.label_values import label_value
from driftline.collectors.payloads import PayloadError, loads


class PredictionStore:
    """id → (monitor key, prediction: a canonical label, or a regressor's float). Single-threaded
    (the worker owns it)."""

    def __init__(self, ttl: float = 3600.0, max_ids: int = 200_000) -> None:
        self.ttl = ttl
        self.max_ids = max_ids
        self._items: OrderedDict[str, tuple[Hashable, str | float, float]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable, ids: np.ndarray, predicted: np.ndarray, now: float) -> int:
        """Remember the predictions of one batch; rows without id or prediction are skipped."""
        items = self._items
        stored = 0
        for rid, pred in zip(ids.tolist(), predicted.tolist(), strict=True):
            if rid is None or pred is None or (isinstance(pred, float) and pred != pred):
                continue
            if rid in items:
                del items[rid]
            items[rid] = (key, pred if isinstance(pred, float) else str(pred), now)
            stored += 1
        overflow = len(items) - self.max_ids
        for _ in range(max(0, overflow)):
            items.popitem(last=False)
            self.evicted += 1
        return stored

    def pop(self, rid: str, now: float) -> tuple[Hashable, str | float] | None:
        item = self._items.pop(rid, None)
        if item is None or now - item[2] > self.ttl:
            return None
        return item[0], item[1]

    def expire(self, now: float) -> int:
        n = 0
        items = self._items
        while items:
            _, (_, _, t) = next(iter(items.items()))
            if now - t <= self.ttl:
                break
            items.popitem(last=False)
            n += 1
        return n


@dataclass(frozen=True)
class Feedback:
    """One delayed label; ``model_name`` lets an unmatched label be counted on its model."""

    id: str
    label: Any
    model_name: str | None = None


def parse_feedback(body: Any) -> list[Feedback]:
    """``{"id", "label", "model_name"?}``, a list of those, or ``{"labels": [...]}``.

    Items without an id or a label are skipped; a body that holds no item, or names a model
    with something that cannot be a label value (``bad_label``), raises.
    """
    doc = loads(body)
    shared_model = None
    if isinstance(doc, Mapping) and isinstance(doc.get("labels"), list):
        shared_model = label_value(doc.get("model_name"), "model_name")
        items = doc["labels"]
    elif isinstance(doc, Mapping):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise PayloadError("parse_error", "feedback is an object or a list of objects")
    out = []
    for it in items:
        if not isinstance(it, Mapping) or it.get("id") is None or "label" not in it:
            continue
        model = label_value(it.get("model_name", shared_model), "model_name")
        out.append(Feedback(str(it["id"]), it["label"], model))
    if not out:
        raise PayloadError("schema_mismatch", 'feedback needs {"id": ..., "label": ...}')
    return out
