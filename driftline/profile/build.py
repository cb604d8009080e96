"""Build a :class:`~driftline.profile.format.BaselineProfile` from reference data in one streaming pass.

Memory does not grow with the number of rows: numeric columns feed a deterministic quantile
sketch (:mod:`driftline.profile.sketch`, exact up to ``max(16384, summary_size)`` values, normalised rank
error ``<= levels / k`` beyond), categorical columns a Misra–Gries counter, and the calibration
data a deterministic stride sample of at most ``calibration_rows`` rows. The rank-error bound
actually achieved is stored in ``settings["quantile_rank_error"]``.

>>> opts = BuildOptions(prediction="pred", target="label")
>>> opts.special_columns()
['pred', 'label']
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.errors import InputError
from driftline.io.readers import (
    DataFile,
    is_categorical_type,
    is_numeric_type,
    iter_batches,
    read_schema,
    to_float,
    to_strings,
)
from driftline.labels import canonical_label
from driftline.profile.format import (
    BaselineProfile,
    Calibration,
    CategoricalFeature,
    Columns,
    Feature,
    NumericFeature,
    OutputProfile,
)
from driftline.profile.sketch import FrequentItems, Moments, QuantileSketch

MAX_CLASSES = 1000
#: Float predictions with at most this many distinct integral values are taken as class labels.
AUTO_CLASS_LIMIT = 50


@dataclass(frozen=True)
class BuildOptions:
    """The options of ``driftline baseline build`` (a contract: see docs/analyze.md)."""

    features: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    prediction: str | None = None
    proba: dict[str, str] = field(default_factory=dict)
    proba_binary: str | None = None
    target: str | None = None
    id: str | None = None
    timestamp: str | None = None
    model_name: str = "model"
    model_version: str = "1"
    task: str | None = None
    bins: int = 10
    top_k: int = 20
    summary_size: int = 20_000
    calibration_rows: int = 200_000

    def special_columns(self) -> list[str]:
        cols = [self.prediction, self.proba_binary, *self.proba.values(), self.target, self.id,
                self.timestamp]
        return [c for c in cols if c]


def parse_proba(text: str | None) -> tuple[str | None, dict[str, str]]:
    """``COL`` (binary, positive-class probability) or ``CLASS=COL,CLASS=COL,...``."""
    if not text:
        return None, {}
    if "=" not in text:
        return text.strip(), {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if "=" not in part:
            raise InputError(f"--proba item {part!r} is not CLASS=COL",
                             fix="use --proba COL for a binary model or --proba a=COL1,b=COL2")
        cls, col = part.split("=", 1)
        label = canonical_label(cls)
        if label is None or not col.strip():
            raise InputError(f"--proba item {part!r} is not CLASS=COL",
                             fix="use --proba a=COL1,b=COL2")
        out[label] = col.strip()
    return None, out


# --- per-column accumulators --------------------------------------------------------------------

class _Numeric:
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

    def result(self, bins: int, summary_size: int) -> NumericFeature:
        n = self.sketch.n
        if n == 0:
            return NumericFeature(self.name, (), (1.0,), (), True, 0, 1.0 if self.rows else 0.0,
                                  math.nan, math.nan, math.nan, math.nan)
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
            summary=tuple(summary.tolist()), summary_exact=exact, count=n,
            missing_ratio=(self.rows - n) / self.rows if self.rows else 0.0,
            minimum=self.moments.minimum, maximum=self.moments.maximum, mean=self.moments.mean,
            std=self.moments.std,
        )


class _Categorical:
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

    def result(self, top_k: int) -> CategoricalFeature:
        n = self.rows - self.missing
        top = self.items.top(top_k)
        cats = tuple(c for c, _ in top)
        props = [cnt / n for _, cnt in top] if n else [0.0] * len(top)
        other = max(0.0, 1.0 - sum(props)) if n else 1.0
        return CategoricalFeature(self.name, cats, (*props, other), n,
                                  self.missing / self.rows if self.rows else 0.0)


class _Labels:
    """Canonical class labels of a column, coded against a growing class index."""

    def __init__(self, index: dict[str, int], what: str, path_of: Callable[[], str]) -> None:
        self.index = index
        self.what = what
        self.path_of = path_of
        self.integral = True

    def codes(self, col: pa.Array, column: str, *, guess: bool = False) -> np.ndarray | None:
        """Class codes per row (-1 missing). With ``guess`` (float predictions, task unknown),
        None as soon as the values look like a regressor's: not whole numbers, or too many."""
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        enc = pc.dictionary_encode(col)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        values = enc.dictionary.to_pylist()
        if guess:
            if any(isinstance(v, float) and not float(v).is_integer() for v in values):
                self.integral = False
                return None
            new = {canonical_label(v) for v in values} - set(self.index) - {None}
            if len(self.index) + len(new) > AUTO_CLASS_LIMIT:
                self.integral = False
                return None
        dict_codes = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            label = canonical_label(v)
            if label is None:
                dict_codes[i] = -1
                continue
            code = self.index.get(label)
            if code is None:
                if len(self.index) >= MAX_CLASSES:
                    raise InputError(
                        f"more than {MAX_CLASSES} distinct {self.what} classes", path=self.path_of(),
                        column=column, fix="for a regression model pass --task regression",
                    )
                code = self.index[label] = len(self.index)
            dict_codes[i] = code
        idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        out = np.full(len(idx), -1, dtype=np.int64)
        ok = idx >= 0
        out[ok] = dict_codes[idx[ok]]
        return out


class _StrideSample:
    """Deterministic bounded row sample: keeps every ``stride``-th row, doubling the stride
    (and dropping every other kept row) whenever ``capacity`` is reached."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stride = 1
        self.seen = 0
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0

    def update(self, probs: np.ndarray, codes: np.ndarray) -> None:
        start = (-self.seen) % self.stride
        self.seen += len(codes)
        p, c = probs[start::self.stride], codes[start::self.stride]
        self.parts.append((p, c))
        self.size += len(c)
        while self.size > self.capacity:
            p_all, c_all = self.arrays()
            # keep the rows whose global position is a multiple of the doubled stride
            self.parts = [(p_all[::2], c_all[::2])]
            self.size = len(self.parts[0][1])
            self.stride *= 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.parts:
            return np.empty((0, 0)), np.empty(0, dtype=np.int64)
        return (np.concatenate([p for p, _ in self.parts]),
                np.concatenate([c for _, c in self.parts]))


# --- the builder ----------------------------------------------------------------------------------

@dataclass
class _Plan:
    numeric: list[str]
    categorical: list[str]
    task: str | None
    proba_cols: list[str]


def _plan(opts: BuildOptions, files: Sequence[DataFile]) -> _Plan:
    schemas = [(f, read_schema(f)) for f in files]
    first_file, schema = schemas[0]
    wanted = opts.special_columns() + list(opts.features or ()) + list(opts.categorical)
    for f, s in schemas:
        for col in wanted:
            if col not in s.names:
                raise InputError("column not found", path=f.path, column=col,
                                 fix=f"the file has columns {s.names}; check the option naming it")
    special = set(opts.special_columns())
    if opts.features is not None:
        names = [c for c in opts.features if c not in opts.exclude]
    else:
        names = [c for c in schema.names if c not in special and c not in opts.exclude]
    for col in names:
        if col in special:
            raise InputError("a column cannot be both a feature and a special column",
                             column=col, fix="drop it from --features")
    numeric: list[str] = []
    categorical: list[str] = []
    for col in names:
        t = schema.field(col).type
        if col in opts.categorical or is_categorical_type(t):
            categorical.append(col)
        elif is_numeric_type(t):
            numeric.append(col)
        elif opts.features is not None:
            raise InputError(f"unsupported column type {t}", path=first_file.path, column=col,
                             fix="cast it to a number or a string, or leave it out of --features")
    if not numeric and not categorical:
        raise InputError("no feature columns", path=first_file.path,
                         fix="name them with --features a,b,c")
    proba_cols = [c for c in [opts.proba_binary, *opts.proba.values()] if c]
    for f, s in schemas:
        for col in proba_cols:
            t = s.field(col).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                raise InputError(f"probability column has type {t}, not a number", path=f.path,
                                 column=col, fix="point --proba at a numeric column in [0, 1]")
        if opts.timestamp:
            t = s.field(opts.timestamp).type
            if not (pa.types.is_temporal(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
                    or pa.types.is_string(t)):
                raise InputError(f"timestamp column has type {t}", path=f.path,
                                 column=opts.timestamp, fix="use a timestamp or epoch-seconds column")
    task = opts.task
    if task is None and (opts.prediction or proba_cols):
        if proba_cols:
            task = "classification"
        else:
            assert opts.prediction is not None
            t = schema.field(opts.prediction).type
            task = None if pa.types.is_floating(t) else "classification"  # None: decide after pass
    if task not in (None, "classification", "regression"):
        raise InputError(f"unknown task {task!r}", fix="use --task classification or regression")
    if task == "regression" and proba_cols:
        raise InputError("--proba given for a regression model", fix="drop --proba or --task")
    return _Plan(numeric, categorical, task, proba_cols)


def _class_sort_key(labels: Sequence[str]) -> Callable[[str], tuple[float, str]]:
    def num(s: str) -> float:
        try:
            return float(s)
        except ValueError:
            return math.nan

    if all(math.isfinite(num(s)) for s in labels):
        return lambda s: (num(s), s)
    return lambda s: (0.0, s)


def build_profile(files: Sequence[DataFile], opts: BuildOptions, *,
                  progress: bool | None = None) -> BaselineProfile:
    """Read ``files`` once and return the profile. Raises InputError before writing anything."""
    if not files:
        raise InputError("no input data given", fix="pass one or more files, directories or globs")
    plan = _plan(opts, files)
    k = max(16_384, opts.summary_size + 1)
    nums = {c: _Numeric(c, k) for c in plan.numeric}
    cats = {c: _Categorical(c, max(10_000, 50 * opts.top_k)) for c in plan.categorical}
    class_index: dict[str, int] = {}
    current = {"path": files[0].path}
    pred_labels = _Labels(class_index, "prediction", lambda: current["path"])
    target_labels = _Labels(class_index, "target", lambda: current["path"])
    for cls in opts.proba:
        class_index.setdefault(cls, len(class_index))
    pred_numeric = _Numeric("prediction", k)
    confidence = _Numeric("confidence", k)
    pred_counts = np.zeros(MAX_CLASSES, dtype=np.int64)
    target_counts = np.zeros(MAX_CLASSES, dtype=np.int64)
    # binary model without a prediction column: predicted positive iff p > 0.5, counted per
    # target class because the positive class is only known once every label has been seen
    binary: dict[str, Any] = {"hi": 0, "lo": 0, "hi_by_target": np.zeros(MAX_CLASSES, dtype=np.int64),
              "lo_by_target": np.zeros(MAX_CLASSES, dtype=np.int64)}
    correct = 0
    labelled = 0
    sample = _StrideSample(opts.calibration_rows)
    n_rows = 0
    task = plan.task
    columns = [*plan.numeric, *plan.categorical, *opts.special_columns()]
    columns = list(dict.fromkeys(c for c in columns if c not in (opts.id, opts.timestamp)))
    # Multiclass probabilities are gathered into a fixed class order; binary: one column.
    multi = list(opts.proba.items())

    bar = _progress(progress, len(files))
    try:
        for file in files:
            current["path"] = file.path
            rows_in_file = 0
            for batch in iter_batches(file, columns):
                rows = batch.num_rows
                rows_in_file += rows
                n_rows += rows
                for c, acc in nums.items():
                    acc.update(to_float(batch.column(c)))
                for c, cat in cats.items():
                    cat.update(batch.column(c))
                pred_codes = None
                probs = None
                if opts.prediction:
                    col = batch.column(opts.prediction)
                    if task != "regression":
                        pred_codes = pred_labels.codes(col, opts.prediction, guess=task is None)
                        if pred_codes is None:
                            task = "regression"  # float predictions that are not class labels
                    if task != "classification":
                        pred_numeric.update(to_float(col))
                if plan.proba_cols:
                    if opts.proba_binary:
                        probs = to_float(batch.column(opts.proba_binary))[:, None]
                        conf = np.maximum(probs[:, 0], 1.0 - probs[:, 0])
                    else:
                        probs = np.column_stack([to_float(batch.column(col)) for _, col in multi])
                        with np.errstate(all="ignore"):
                            conf = np.max(probs, axis=1)
                    confidence.update(conf)
                    if pred_codes is None and not opts.proba_binary:
                        pred_codes = _argmax_codes(probs, [class_index[c] for c, _ in multi])
                target_codes = None
                if opts.target and task != "regression":
                    target_codes = target_labels.codes(batch.column(opts.target), opts.target)
                    assert target_codes is not None
                    target_counts += np.bincount(target_codes[target_codes >= 0],
                                                 minlength=MAX_CLASSES)
                if pred_codes is not None:
                    pred_counts += np.bincount(pred_codes[pred_codes >= 0], minlength=MAX_CLASSES)
                if probs is not None and target_codes is not None:
                    sample.update(probs, target_codes)
                if probs is not None and opts.proba_binary and pred_codes is None:
                    p = probs[:, 0]
                    hi, lo = p > 0.5, p <= 0.5
                    binary["hi"] += int(hi.sum())
                    binary["lo"] += int(lo.sum())
                    if target_codes is not None:
                        t = target_codes
                        binary["hi_by_target"] += np.bincount(t[hi & (t >= 0)], minlength=MAX_CLASSES)
                        binary["lo_by_target"] += np.bincount(t[lo & (t >= 0)], minlength=MAX_CLASSES)
                if pred_codes is not None and target_codes is not None:
                    both = (pred_codes >= 0) & (target_codes >= 0)
                    labelled += int(both.sum())
                    correct += int((pred_codes[both] == target_codes[both]).sum())
                if bar is not None:
                    bar.update(rows)
            if rows_in_file == 0:
                raise InputError("the file holds no rows", path=file.path,
                                 fix="give a non-empty data file")
            if bar is not None:
                bar.file_done()
    finally:
        if bar is not None:
            bar.close()

    features: dict[str, Feature] = {}
    for c in [*plan.numeric, *plan.categorical]:
        features[c] = nums[c].result(opts.bins, opts.summary_size) if c in nums else \
            cats[c].result(opts.top_k)
    if task is None and opts.prediction:
        task = "classification"  # float predictions that stayed whole numbers and few
    output = None
    proba_columns: dict[str, str] = {}
    if task is not None:
        output, proba_columns = _output(
            opts, task, class_index, pred_counts, pred_numeric,
            confidence, sample, correct, labelled, bins=opts.bins, summary_size=opts.summary_size,
            multi=multi, binary=binary, target_counts=target_counts,
        )
    errors = [nums[c].sketch.rank_error_bound() for c in nums]
    settings = {
        "bins": opts.bins, "top_k": opts.top_k, "summary_size": opts.summary_size,
        "sketch_k": k, "quantile_rank_error": max(errors, default=0.0),
        "category_count_error": max((cats[c].items.error_bound() for c in cats), default=0),
        "calibration_rows": sample.size,
    }
    return BaselineProfile(
        model_name=opts.model_name, model_version=opts.model_version,
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        n_records=n_rows, features=features,
        columns=Columns(prediction=opts.prediction, proba=proba_columns, target=opts.target,
                        id=opts.id, timestamp=opts.timestamp),
        output=output, sources=tuple(f.path for f in files), settings=settings,
    )


def _argmax_codes(probs: np.ndarray, codes: list[int]) -> np.ndarray:
    valid = ~np.isnan(probs).any(axis=1)
    out = np.full(len(probs), -1, dtype=np.int64)
    if valid.any():
        out[valid] = np.asarray(codes)[np.argmax(probs[valid], axis=1)]
    return out


def _output(opts: BuildOptions, task: str, class_index: dict[str, int], pred_counts: np.ndarray,
            pred_numeric: _Numeric, confidence: _Numeric,
            sample: _StrideSample, correct: int, labelled: int, *, bins: int, summary_size: int,
            multi: list[tuple[str, str]], binary: dict[str, Any], target_counts: np.ndarray,
            ) -> tuple[OutputProfile, dict[str, str]]:
    if task == "regression":
        pred = pred_numeric.result(bins, summary_size) if opts.prediction else None
        return OutputProfile("regression", opts.prediction, {}, (), None, pred, None, None), {}
    labels = list(class_index)
    positive: str | None = None
    if opts.proba_binary:
        if set(labels) <= {"0", "1"}:
            labels = ["0", "1"]
        if len(labels) != 2:
            raise InputError(
                f"--proba {opts.proba_binary} is one column (a binary model) but the labels hold "
                f"{len(labels)} classes {labels[:10]}", column=opts.proba_binary,
                fix="give one column per class: --proba a=COL1,b=COL2,...",
            )
        for lab in labels:
            class_index.setdefault(lab, len(class_index))
    classes = sorted(labels, key=_class_sort_key(labels))
    if opts.proba_binary:
        positive = classes[1]
        proba_columns = {positive: opts.proba_binary}
    else:
        proba_columns = dict(multi)
    if opts.proba_binary and not opts.prediction:
        assert positive is not None
        pos_code, neg_code = class_index[positive], class_index[classes[0]]
        pred_counts = np.zeros(MAX_CLASSES, dtype=np.int64)
        pred_counts[pos_code], pred_counts[neg_code] = binary["hi"], binary["lo"]
        correct = int(binary["hi_by_target"][pos_code] + binary["lo_by_target"][neg_code])
        labelled = int(binary["hi_by_target"].sum() + binary["lo_by_target"].sum())
    # class counts in profile order
    order = [class_index[c] for c in classes]
    pc_counts = np.asarray(pred_counts)[order].astype(float)
    prediction: Feature | None = None
    if pc_counts.sum() > 0:
        total = pc_counts.sum()
        prediction = CategoricalFeature("prediction", tuple(classes),
                                        (*(pc_counts / total).tolist(), 0.0), int(total), 0.0)
    conf = confidence.result(bins, summary_size) if proba_columns else None
    accuracy = correct / labelled if labelled else None
    calibration: dict[str, Calibration] = {}
    probs, codes = sample.arrays()
    if proba_columns and len(codes):
        from driftline.detectors.performance import fit_calibration

        mat = _class_matrix(probs, classes, positive, multi)
        ok = (codes >= 0) & ~np.isnan(mat).any(axis=1)
        inv = {class_index[c]: j for j, c in enumerate(classes)}
        y = np.array([inv.get(int(c), -1) for c in codes[ok]], dtype=np.int64)
        if ok.any():
            for j, c in enumerate(classes):
                calibration[c] = fit_calibration(mat[ok, j], (y == j).astype(np.float64))
    labelled_total = int(target_counts.sum())
    shares = ({c: float(target_counts[class_index[c]]) / labelled_total for c in classes}
              if labelled_total else {})
    return OutputProfile(
        task="classification", prediction_column=opts.prediction, proba_columns=proba_columns,
        classes=tuple(classes), positive_class=positive, prediction=prediction, confidence=conf,
        reference_accuracy=accuracy, calibration=calibration, class_proportions=shares,
    ), proba_columns


def _class_matrix(probs: np.ndarray, classes: list[str], positive: str | None,
                  multi: list[tuple[str, str]]) -> np.ndarray:
    if positive is not None:
        p = probs[:, 0]
        pos = classes.index(positive)
        mat = np.empty((len(p), 2))
        mat[:, pos] = p
        mat[:, 1 - pos] = 1.0 - p
        return mat
    col_of = {c: i for i, (c, _) in enumerate(multi)}
    mat = np.full((len(probs), len(classes)), 0.0)
    for j, c in enumerate(classes):
        if c in col_of:
            mat[:, j] = probs[:, col_of[c]]
    return mat


class _Bar:
    def __init__(self, n_files: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.progress.start()
        self.task = self.progress.add_task("reading", total=n_files)
        self.rows = 0

    def update(self, rows: int) -> None:
        self.rows += rows
        self.progress.update(self.task, description=f"reading ({self.rows:,} rows)")

    def file_done(self) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()


def _progress(flag: bool | None, n_files: int) -> _Bar | None:
    show = sys.stderr.isatty() if flag is None else flag
    return _Bar(n_files) if show else None
