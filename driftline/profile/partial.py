"""A baseline build's running state, mergeable: profile disjoint parts of the data anywhere
(a Spark partition, a file, a thread) and merge the parts into the profile of the whole.

:class:`PartialProfile` holds every accumulator of one pass (per-column sketches and moments,
class counts, the calibration sample). ``a.merge(b)`` gives the state of one pass over ``a``'s
rows followed by ``b``'s, within these bounds (docs/scale.md states them with the proofs):

* row counts, missing counts, category counts while the distinct values fit the counter, class
  counts, labelled/correct counts: **exact**;
* quantile sketch: the merged sketch pushes the other's levels into its own, so every
  compaction still halves at least ``k`` values of one weight and the one-pass rank bound
  ``levels / k`` holds unchanged (``settings.quantile_rank_error`` is the merged sketch's);
  exact (bit-identical edges and KS summary) while a column's values total at most ``k``;
* frequent items: counts added, then the Misra–Gries cut of the merged counter (Agarwal et al.,
  "Mergeable summaries"): each count under by at most ``n / (capacity + 1)``, as in one pass;
* moments: Chan et al.'s pairwise update (mean and variance equal up to float rounding);
* calibration sample (and a regressor's loss-estimation sample): the rows at multiples of a
  stride of global row positions, so when each part starts at its first global row
  (``offset``) and parts are merged in row order, **exactly** the one-pass sample whatever the
  parts (``merge`` refuses parts that are not consecutive);
* a regressor's realised reference errors: sums, exact up to float rounding.

:meth:`PartialProfile.to_bytes` is the transport between Driftline processes of the same
version (a Spark executor and its driver); it is never stored as a file.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.errors import InputError
from driftline.io.readers import to_float, to_strings
from driftline.labels import canonical_label
from driftline.profile.digest import RowDigest
from driftline.profile.format import CategoricalFeature, NumericFeature, frozen_floats
from driftline.profile.sketch import FrequentItems, Moments, QuantileSketch

MAX_CLASSES = 1000
#: Float predictions with at most this many distinct integral values are taken as class labels.
AUTO_CLASS_LIMIT = 50
#: Tag of the byte transport; a state from another layout is refused, not misread.
STATE_VERSION = 3


class NumericAccumulator:
    """Sketch and moments of one numeric column."""

    def __init__(self, name: str, k: int) -> None:
        self.name = name
        self.sketch = QuantileSketch(k)
        self.moments = Moments()
        self.rows = 0

    def update(self, values: np.ndarray) -> None:
        self.rows += len(values)
        finite = values[np.isfinite(values)]
        self.sketch.update(finite)
        self.moments.update(finite)

    def merge(self, other: NumericAccumulator) -> None:
        self.rows += other.rows
        self.sketch.merge(other.sketch)
        self.moments.merge(other.moments)

    def result(self, bins: int, summary_size: int) -> NumericFeature:
        n = self.sketch.n
        if n == 0:
            return NumericFeature(self.name, (), (1.0,), frozen_floats(()), True, 0,
                                  1.0 if self.rows else 0.0, math.nan, math.nan, math.nan,
                                  math.nan)
        probs = np.arange(1, bins) / bins
        edges = np.unique(self.sketch.quantiles(probs))
        v, w = self.sketch.weighted()
        cum = np.concatenate([[0.0], np.cumsum(w)])
        below = cum[np.searchsorted(v, edges, side="left")]  # weight of values < edge
        props = np.diff(np.concatenate([[0.0], below, [cum[-1]]])) / cum[-1]
        if self.sketch.exact and n <= summary_size:
            summary, exact = v, True
        else:
            grid = (np.arange(summary_size) + 0.5) / summary_size
            summary, exact = self.sketch.quantiles(grid), False
        return NumericFeature(
            name=self.name, edges=tuple(edges.tolist()), proportions=tuple(props.tolist()),
            summary=frozen_floats(summary), summary_exact=exact, count=n,
            missing_ratio=(self.rows - n) / self.rows if self.rows else 0.0,
            minimum=self.moments.minimum, maximum=self.moments.maximum, mean=self.moments.mean,
            std=self.moments.std,
        )


class CategoricalAccumulator:
    """Frequent items and missing count of one categorical column."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.items = FrequentItems(capacity)
        self.rows = 0
        self.missing = 0

    def update(self, col: pa.Array) -> None:
        self.rows += len(col)
        strings = pa.array(to_strings(col), type=pa.string())
        self.missing += strings.null_count
        vc = pc.value_counts(strings.drop_null())
        self.items.update(vc.field("values").to_pylist(), vc.field("counts").to_pylist())

    def merge(self, other: CategoricalAccumulator) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.items.merge(other.items)

    def result(self, top_k: int) -> CategoricalFeature:
        n = self.rows - self.missing
        top = self.items.top(top_k)
        cats = tuple(c for c, _ in top)
        props = [cnt / n for _, cnt in top] if n else [0.0] * len(top)
        other = max(0.0, 1.0 - sum(props)) if n else 1.0
        counts = (*(cnt for _, cnt in top), max(0, n - sum(cnt for _, cnt in top)))
        return CategoricalFeature(self.name, cats, (*props, other), n,
                                  self.missing / self.rows if self.rows else 0.0, counts=counts)


def label_codes(col: pa.Array, index: dict[str, int], *, what: str, column: str, path: str,
                guess: bool = False) -> np.ndarray | None:
    """Class codes per row (-1 missing) against the growing class ``index``. With ``guess``
    (float predictions, task unknown), None as soon as the values look like a regressor's: not
    whole numbers, or more than :data:`AUTO_CLASS_LIMIT` classes."""
    if pa.types.is_floating(col.type):
        col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    values = enc.dictionary.to_pylist()
    if guess:
        if any(isinstance(v, float) and not float(v).is_integer() for v in values):
            return None
        new = {canonical_label(v) for v in values} - set(index) - {None}
        if len(index) + len(new) > AUTO_CLASS_LIMIT:
            return None
    dict_codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        label = canonical_label(v)
        if label is None:
            dict_codes[i] = -1
            continue
        code = index.get(label)
        if code is None:
            if len(index) >= MAX_CLASSES:
                raise InputError(f"more than {MAX_CLASSES} distinct {what} classes", path=path,
                                 column=column, fix="for a regression model pass --task regression")
            code = index[label] = len(index)
        dict_codes[i] = code
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(len(idx), -1, dtype=np.int64)
    ok = idx >= 0
    out[ok] = dict_codes[idx[ok]]
    return out


class StrideSample:
    """Deterministic bounded row sample: the rows whose global position is a multiple of
    ``stride``, the stride doubling (every other kept row dropped) whenever more than
    ``capacity`` rows would be kept.

    Positions count from ``offset``, the global position of the part's first row, so a part of
    the data keeps exactly the rows one pass over all of it would keep at that stride; merging
    consecutive parts in order (each built with its own first row as ``offset``) gives the
    one-pass sample whatever the parts are."""

    def __init__(self, capacity: int, offset: int = 0) -> None:
        self.capacity = capacity
        self.stride = 1
        #: global position of the part's first row, and of the row after its last one
        self.begin = self.seen = offset
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0

    def update(self, probs: np.ndarray, codes: np.ndarray) -> None:
        start = (-self.seen) % self.stride
        self.seen += len(codes)
        self._add(probs[start::self.stride], codes[start::self.stride])

    def _add(self, p: np.ndarray, c: np.ndarray) -> None:
        self.parts.append((p, c))
        self.size += len(c)
        while self.size > self.capacity:
            self._thin(self.stride * 2)

    def _thin(self, stride: int) -> None:
        """Keep only the rows at multiples of ``stride`` (a multiple of the current stride)."""
        if stride != self.stride and self.parts:
            p_all, c_all = self.arrays()

            def first(s: int) -> int:  # the part's first position that is a multiple of s
                return -(-self.begin // s) * s

            skip = (first(stride) - first(self.stride)) // self.stride
            step = stride // self.stride
            self.parts = [(p_all[skip::step], c_all[skip::step])]
            self.size = len(self.parts[0][1])
        self.stride = stride

    def merge(self, other: StrideSample, remap: np.ndarray | None) -> None:
        """Append ``other``'s rows, the part right after this one (class codes through
        ``remap``; None: values kept as they are), both at the larger stride."""
        if self.seen == self.begin and other.seen == other.begin:
            return  # no rows on either side (or a sample this build does not keep)
        if other.begin != self.seen:
            raise ValueError(f"sample parts are not consecutive (rows {self.begin}-{self.seen}, "
                             f"then from {other.begin}): give each part its first global row "
                             "as offset and merge them in row order")
        stride = max(self.stride, other.stride)
        self._thin(stride)
        if other.size:
            other._thin(stride)
            p, c = other.arrays()
            if remap is not None:
                c = np.where(c >= 0, remap[np.maximum(c, 0)], -1)
            self._add(p, c)
        self.seen = max(self.seen, other.seen)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.parts:
            return np.empty((0, 0)), np.empty(0, dtype=np.int64)
        return (np.concatenate([p for p, _ in self.parts]),
                np.concatenate([c for _, c in self.parts]))


class RegressionSums:
    """Streamed realised errors of a regressor over every row with a prediction and a label."""

    def __init__(self) -> None:
        self.n = 0
        self.abs = self.sq = self.ape = self.sy = self.syy = 0.0
        self.shift: float | None = None  # first batch's mean label: R² sums without cancellation

    def update(self, pred: np.ndarray, y: np.ndarray) -> None:
        ok = np.isfinite(pred) & np.isfinite(y)
        p, t = pred[ok], y[ok]
        if not t.size:
            return
        if self.shift is None:
            self.shift = float(t.mean())
        err = t - p
        self.n += t.size
        self.abs += float(np.abs(err).sum())
        self.sq += float(np.dot(err, err))
        self.ape += float((np.abs(err) / np.maximum(np.abs(t), np.finfo(np.float64).eps)).sum())
        c = t - self.shift
        self.sy += float(c.sum())
        self.syy += float(np.dot(c, c))

    def merge(self, other: RegressionSums) -> None:
        if other.shift is None:
            return
        if self.shift is None:
            self.__dict__.update(other.__dict__)
            return
        d = other.shift - self.shift  # other's labels relative to this shift
        self.sy, self.syy = (self.sy + other.sy + other.n * d,
                             self.syy + other.syy + 2 * d * other.sy + other.n * d * d)
        self.n += other.n
        self.abs += other.abs
        self.sq += other.sq
        self.ape += other.ape

    def result(self) -> dict[str, float]:
        """MAE, RMSE, MAPE and (two rows or more, labels not all equal) R², sklearn's way."""
        if not self.n:
            return {}
        ss_tot = self.syy - self.sy ** 2 / self.n
        out = {"mae": self.abs / self.n, "rmse": math.sqrt(self.sq / self.n),
               "mape": self.ape / self.n}
        if self.n >= 2 and ss_tot > 0:
            out["r2"] = 1.0 - self.sq / ss_tot
        return out


def _check_probabilities(probs: np.ndarray, columns: Sequence[str | None], path: str) -> None:
    """A probability outside [0, 1] is a score, not a probability: refuse it by column."""
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(probs) & ((probs < 0.0) | (probs > 1.0))
    if bad.any():
        row, j = (int(v[0]) for v in np.nonzero(bad))
        raise InputError(
            f"probability {float(probs[row, j])!r} is outside [0, 1] ({int(bad.sum())} values in this "
            "batch)", path=path, column=columns[j],
            fix="give calibrated probabilities (apply the model's sigmoid or softmax to raw scores)")


def _argmax_codes(probs: np.ndarray, codes: list[int]) -> np.ndarray:
    valid = ~np.isnan(probs).any(axis=1)
    out = np.full(len(probs), -1, dtype=np.int64)
    if valid.any():
        out[valid] = np.asarray(codes)[np.argmax(probs[valid], axis=1)]
    return out


class PartialProfile:
    """Everything one pass over some rows accumulates, before the profile is assembled.

    ``task`` is ``None`` while float predictions may still be class labels; ``"regression"``
    once a part saw non-integral values or too many classes (a merge takes the stronger one).
    """

    def __init__(self, *, numeric: Sequence[str], categorical: Sequence[str], task: str | None,
                 prediction: str | None, target: str | None, proba_binary: str | None,
                 proba: Sequence[tuple[str, str]], k: int, capacity: int,
                 calibration_rows: int, dle_rows: int = 50_000,
                 numeric_target: bool = False, offset: int = 0) -> None:
        self.nums = {c: NumericAccumulator(c, k) for c in numeric}
        self.cats = {c: CategoricalAccumulator(c, capacity) for c in categorical}
        self.task = task
        self.prediction, self.target = prediction, target
        self.proba_binary, self.multi = proba_binary, list(proba)
        self.class_index: dict[str, int] = {}
        for cls, _ in self.multi:
            self.class_index.setdefault(cls, len(self.class_index))
        self.pred_numeric = NumericAccumulator("prediction", k)
        self.confidence = NumericAccumulator("confidence", k)
        self.pred_counts = np.zeros(MAX_CLASSES, dtype=np.int64)
        self.target_counts = np.zeros(MAX_CLASSES, dtype=np.int64)
        # binary model without a prediction column: predicted positive iff p > 0.5, counted per
        # target class because the positive class is only known once every label has been seen
        self.hi = self.lo = 0
        self.hi_by_target = np.zeros(MAX_CLASSES, dtype=np.int64)
        self.lo_by_target = np.zeros(MAX_CLASSES, dtype=np.int64)
        self.correct = self.labelled = 0
        self.sample = StrideSample(calibration_rows, offset)
        # regressor with a numeric target: the loss-estimation rows (numeric inputs + prediction
        # | label) and, kept in step, the categorical inputs (coded once their reference
        # categories are known), and the streamed reference errors
        self.numeric_target = numeric_target
        self.reg_num = StrideSample(dle_rows, offset)
        self.reg_cat = StrideSample(dle_rows, offset)
        self.reg_sums = RegressionSums()
        self.rows = 0
        #: Order-independent digest of every value read (``provenance.content_hash``).
        self.digest = RowDigest()
        #: Where the rows come from, for error messages (a file path, a table, a partition).
        self.path = ""

    @property
    def has_proba(self) -> bool:
        return bool(self.proba_binary or self.multi)

    @property
    def samples_rows(self) -> bool:
        """Whether :meth:`update` feeds a row sample (then parts need their first global row
        as ``offset`` to merge into the one-pass sample)."""
        return bool(self.has_proba and self.target) or bool(
            self.target and self.prediction and self.numeric_target
            and self.task != "classification")

    def update(self, batch: pa.RecordBatch) -> None:
        """Add one Arrow batch holding the plan's columns."""
        self.rows += batch.num_rows
        self.digest.update(batch, batch.schema.names)
        for c, acc in self.nums.items():
            acc.update(to_float(batch.column(c)))
        for c, cat in self.cats.items():
            cat.update(batch.column(c))
        pred_codes = None
        probs = None
        if self.prediction:
            col = batch.column(self.prediction)
            if self.task != "regression":
                pred_codes = label_codes(col, self.class_index, what="prediction",
                                         column=self.prediction, path=self.path,
                                         guess=self.task is None)
                if pred_codes is None:
                    self.task = "regression"  # float predictions that are not class labels
            if self.task != "classification":
                self.pred_numeric.update(to_float(col))
        if self.has_proba:
            if self.proba_binary:
                probs = to_float(batch.column(self.proba_binary))[:, None]
                conf = np.maximum(probs[:, 0], 1.0 - probs[:, 0])
            else:
                probs = np.column_stack([to_float(batch.column(col)) for _, col in self.multi])
                with np.errstate(all="ignore"):
                    conf = np.max(probs, axis=1)
            _check_probabilities(probs, [self.proba_binary] if self.proba_binary
                                 else [c for _, c in self.multi], self.path)
            self.confidence.update(conf)
            if pred_codes is None and not self.proba_binary:
                pred_codes = _argmax_codes(probs, [self.class_index[c] for c, _ in self.multi])
        if (self.target and self.prediction and self.numeric_target
                and self.task != "classification"):
            y = to_float(batch.column(self.target))
            p_num = to_float(batch.column(self.prediction))
            self.reg_sums.update(p_num, y)
            self.reg_num.update(np.column_stack(
                [*(to_float(batch.column(c)) for c in self.nums), p_num]), y)
            if self.cats:
                self.reg_cat.update(np.column_stack(
                    [to_strings(batch.column(c)) for c in self.cats]), np.zeros(batch.num_rows))
        target_codes = None
        if self.target and self.task != "regression":
            target_codes = label_codes(batch.column(self.target), self.class_index, what="target",
                                       column=self.target, path=self.path)
            assert target_codes is not None
            self.target_counts += np.bincount(target_codes[target_codes >= 0],
                                              minlength=MAX_CLASSES)
        if pred_codes is not None:
            self.pred_counts += np.bincount(pred_codes[pred_codes >= 0], minlength=MAX_CLASSES)
        if probs is not None and target_codes is not None:  # codes: (target, prediction)
            self.sample.update(probs, np.column_stack(
                [target_codes, pred_codes if pred_codes is not None
                 else np.full(batch.num_rows, -1, dtype=np.int64)]))
        if probs is not None and self.proba_binary and pred_codes is None:
            p = probs[:, 0]
            hi, lo = p > 0.5, p <= 0.5
            self.hi += int(hi.sum())
            self.lo += int(lo.sum())
            if target_codes is not None:
                t = target_codes
                self.hi_by_target += np.bincount(t[hi & (t >= 0)], minlength=MAX_CLASSES)
                self.lo_by_target += np.bincount(t[lo & (t >= 0)], minlength=MAX_CLASSES)
        if pred_codes is not None and target_codes is not None:
            both = (pred_codes >= 0) & (target_codes >= 0)
            self.labelled += int(both.sum())
            self.correct += int((pred_codes[both] == target_codes[both]).sum())

    def merge(self, other: PartialProfile) -> PartialProfile:
        """Add ``other``'s rows (the part of the same data right after this one, built with the
        same plan; with :attr:`samples_rows`, from ``offset`` = its first global row)."""
        if set(other.nums) != set(self.nums) or set(other.cats) != set(self.cats):
            raise ValueError("partial profiles of different column plans cannot be merged")
        self.rows += other.rows
        self.digest.merge(other.digest)
        for c, acc in self.nums.items():
            acc.merge(other.nums[c])
        for c, cat in self.cats.items():
            cat.merge(other.cats[c])
        self.pred_numeric.merge(other.pred_numeric)
        self.confidence.merge(other.confidence)
        remap = np.full(MAX_CLASSES, -1, dtype=np.int64)
        for label, code in other.class_index.items():
            mine = self.class_index.get(label)
            if mine is None:
                if len(self.class_index) >= MAX_CLASSES:
                    raise InputError(f"more than {MAX_CLASSES} distinct classes", path=self.path,
                                     fix="for a regression model pass --task regression")
                mine = self.class_index[label] = len(self.class_index)
            remap[code] = mine
        for name in ("pred_counts", "target_counts", "hi_by_target", "lo_by_target"):
            mine_arr: np.ndarray = getattr(self, name)
            theirs: np.ndarray = getattr(other, name)
            used = np.flatnonzero(theirs)
            np.add.at(mine_arr, remap[used], theirs[used])
        self.hi += other.hi
        self.lo += other.lo
        self.correct += other.correct
        self.labelled += other.labelled
        self.sample.merge(other.sample, remap)
        self.reg_num.merge(other.reg_num, None)
        self.reg_cat.merge(other.reg_cat, None)
        self.reg_sums.merge(other.reg_sums)
        guessed_too_many = self.task is None and len(self.class_index) > AUTO_CLASS_LIMIT
        if "regression" in (self.task, other.task) or guessed_too_many:
            self.task = "regression"
        return self

    def to_bytes(self) -> bytes:
        """This state for another Driftline process of the same version (never a file)."""
        return pickle.dumps((STATE_VERSION, self.__dict__), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> PartialProfile:
        version, state = pickle.loads(data)  # our own executors' output only, never a file
        if version != STATE_VERSION:
            raise ValueError(f"partial profile state version {version}, expected {STATE_VERSION}"
                             " (driver and executors run different Driftline versions)")
        out = cls.__new__(cls)
        out.__dict__.update(state)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__
