"""Delayed labels: a bounded store of recent predictions by record id, and the feedback payload.

Labels usually arrive minutes to days after the prediction. The collectors put every record that
has both an id and a prediction into :class:`PredictionStore` (ids from native ingest, v2
request ids, ``x-request-id``, ``ce-id``); ``POST /feedback`` pops them to join label and
prediction. The store forgets entries after ``ttl`` seconds and holds at most ``max_ids``
(oldest out first), so memory stays bounded whatever the traffic.

A label can also arrive *before* its prediction is stored: ``/feedback`` and the proxied exchange
travel through different queues, and a client that posts the label right after the response
often wins the race. :class:`PendingLabels` holds such labels for ``wait`` seconds (at most
``max_ids`` of them) and hands them back when the prediction arrives; only a label still
unmatched after the wait (or pushed out by newer ones) counts as unmatched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice, repeat
from typing import Any, cast

import numpy as np

from driftline.collectors.label_values import label_value
from driftline.collectors.payloads import PayloadError, loads


class PredictionStore:
    """id → (monitor key, prediction: a canonical label, or a regressor's float, and the
    record's class probabilities when it had them). Single-threaded (the worker owns it).

    The probabilities are what make a realised ROC AUC possible once the label arrives. They
    are kept as the raw bytes of a float64 row (``33 + 8·k`` bytes for ``k`` classes, 49 for a
    binary model) rather than a tuple of Python floats (about 100 bytes for two), so a full
    store of ``max_ids`` stays close to its size without them.
    """

    def __init__(self, ttl: float = 3600.0, max_ids: int = 200_000) -> None:
        self.ttl = ttl
        self.max_ids = max_ids
        # a plain dict (insertion-ordered, oldest first): its bulk update is what a batch of
        # new ids costs, and it is about a third cheaper than an OrderedDict's
        self._items: dict[str, tuple[Hashable, str | float, float, bytes | None]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable, ids: np.ndarray, predicted: np.ndarray, now: float,
            probabilities: np.ndarray | None = None) -> int:
        """Remember the predictions (and the ``(n, k)`` probabilities, a row of NaN where a
        record had none) of one batch; rows without id or prediction are skipped."""
        items = self._items
        rids, preds = ids.tolist(), predicted.tolist()
        scores = [None] * len(rids) if probabilities is None else row_bytes(probabilities)
        kinds = set(map(type, preds))
        if (len(rids) == len(preds) and None not in rids
                and (kinds == {str} or (kinds == {float} and not np.isnan(predicted).any()))
                and len(set(rids)) == len(rids) and items.keys().isdisjoint(rids)):
            # the usual batch: new, distinct ids and class labels (or a regressor's numbers);
            # one C-level update instead of a Python step per record
            items.update(zip(rids, zip(repeat(key), preds, repeat(now), scores), strict=True))
            stored = len(rids)
        else:
            stored = self._put_each(key, rids, preds, now, scores)
        overflow = len(items) - self.max_ids
        if overflow > 0:  # oldest first
            for rid in list(islice(items, overflow)):
                del items[rid]
            self.evicted += overflow
        return stored

    def _put_each(self, key: Hashable, rids: list[Any], preds: list[Any], now: float,
                  scores: Sequence[bytes | None]) -> int:
        """Record by record: skips missing ids and predictions, moves a re-sent id last."""
        items = self._items
        stored = 0
        for rid, pred, score in zip(rids, preds, scores, strict=True):
            if rid is None or pred is None or (isinstance(pred, float) and pred != pred):
                continue
            if rid in items:
                del items[rid]
            items[rid] = (key, pred if isinstance(pred, float) else str(pred), now, score)
            stored += 1
        return stored

    def pop(self, rid: str, now: float) -> tuple[Hashable, str | float] | None:
        hit = self.pop_scored(rid, now)
        return None if hit is None else (hit[0], hit[1])

    def pop_scored(self, rid: str, now: float
                   ) -> tuple[Hashable, str | float, np.ndarray | None] | None:
        """Like :meth:`pop`, with the stored probabilities (None when the record had none)."""
        item = self._items.pop(rid, None)
        if item is None or now - item[2] > self.ttl:
            return None
        scores = None if item[3] is None else np.frombuffer(item[3], dtype=np.float64)
        return item[0], item[1], scores

    def expire(self, now: float) -> int:
        items = self._items
        stale = []
        for rid, item in items.items():  # oldest first: stop at the first one still fresh
            if now - item[2] <= self.ttl:
                break
            stale.append(rid)
        for rid in stale:
            del items[rid]
        return len(stale)


def row_bytes(probabilities: np.ndarray) -> list[bytes | None]:
    """Each ``(n, k)`` row's float64 bytes (None for a row with a NaN: no probabilities), read
    out in C through a ``k × 8``-byte void view rather than one ``tobytes`` call per row."""
    rows = np.ascontiguousarray(probabilities, dtype=np.float64)
    if rows.ndim != 2 or not rows.shape[1]:
        return [rows[i].tobytes() if np.isfinite(rows[i]).all() else None
                for i in range(len(rows))]
    # a void scalar's tolist() is its bytes
    out = cast("list[bytes | None]",
               rows.view(np.dtype((np.void, 8 * rows.shape[1]))).ravel().tolist())
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return out


class PendingLabels:
    """Labels waiting for their prediction, oldest first. Single-threaded (the worker owns it).

    Every method returns the labels that are given up on (expired, pushed out, replaced by a
    newer label for the same id, or drained at shutdown): the caller counts them unmatched."""

    def __init__(self, wait: float = 10.0, max_ids: int = 10_000) -> None:
        self.wait = wait
        self.max_ids = max_ids
        self._items: OrderedDict[str, tuple[Feedback, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def hold(self, fb: Feedback, now: float) -> list[Feedback]:
        items = self._items
        given_up = []
        old = items.pop(fb.id, None)
        if old is not None:
            given_up.append(old[0])
        items[fb.id] = (fb, now)
        while len(items) > self.max_ids:
            given_up.append(items.popitem(last=False)[1][0])
        return given_up

    def take(self, ids: list[Any]) -> list[Feedback]:
        """The held labels of ``ids`` (just stored predictions), removed from the wait."""
        items = self._items
        if not items:
            return []
        out = []
        for rid in ids:
            hit = items.pop(rid, None) if rid is not None else None
            if hit is not None:
                out.append(hit[0])
        return out

    def expire(self, now: float) -> list[Feedback]:
        items = self._items
        out = []
        while items:
            fb, t = next(iter(items.values()))
            if now - t <= self.wait:
                break
            items.popitem(last=False)
            out.append(fb)
        return out

    def drain(self) -> list[Feedback]:
        out = [fb for fb, _ in self._items.values()]
        self._items.clear()
        return out


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
