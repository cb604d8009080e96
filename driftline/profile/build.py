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

import dataclasses
import datetime as _dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from driftline.errors import InputError, did_you_mean
from driftline.io.readers import (
    DataFile,
    is_categorical_type,
    is_numeric_type,
    is_vector_type,
    iter_batches,
    read_schema,
)
from driftline.labels import canonical_label
from driftline.profile.format import (
    BaselineProfile,
    Calibration,
    CategoricalFeature,
    Columns,
    Feature,
    OutputProfile,
)
from driftline.profile.partial import (
    AUTO_CLASS_LIMIT,
    MAX_CLASSES,
    NumericAccumulator,
    PartialProfile,
    StrideSample,
)

if TYPE_CHECKING:  # derived.py imports detectors; the plain tabular build does not need them
    from driftline.profile.derived import Derived, DerivedOptions

__all__ = ["AUTO_CLASS_LIMIT", "MAX_CLASSES", "BuildOptions", "build_profile", "finish_profile",
           "new_partial", "parse_proba", "plan_columns"]


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
    dle_rows: int = 50_000
    #: Fit the PCA reconstruction model of the tabular features (two more reads of the data).
    multivariate: bool = True
    #: Vector (embedding) columns; fixed-size-list columns are found without being named.
    embeddings: tuple[str, ...] = ()
    #: Text columns, profiled through their descriptors ``<col>.<descriptor>``.
    text: tuple[str, ...] = ()
    #: Principal directions of an embedding whose projections are tracked.
    embedding_components: int = 5
    #: Reference vectors kept per embedding for the MMD test.
    mmd_sample: int = 1000
    #: Reference tokens kept per text column (``unseen_token_share``).
    vocabulary: int = 10_000
    #: The data's version (a DVC or Git revision, a table snapshot id), recorded in the profile.
    source_revision: str | None = None

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


# --- the builder ----------------------------------------------------------------------------------

@dataclass
class _Plan:
    numeric: list[str]
    categorical: list[str]
    task: str | None
    proba_cols: list[str]
    numeric_target: bool = False


def _plan(opts: BuildOptions, files: Sequence[DataFile]) -> _Plan:
    return _plan_schemas(opts, [(f.path, read_schema(f)) for f in files])


def _plan_schemas(opts: BuildOptions, schemas: Sequence[tuple[str, pa.Schema]]) -> _Plan:
    first_path, schema = schemas[0]
    wanted = opts.special_columns() + list(opts.features or ()) + list(opts.categorical)
    for f, s in schemas:
        for col in wanted:
            if col not in s.names:
                raise InputError("column not found", path=f, column=col,
                                 fix=f"the file has columns {s.names}; check the option naming it"
                                 f"{did_you_mean(col, s.names)}")
    special = set(opts.special_columns())
    derived = {*opts.embeddings, *opts.text}
    for f, s in schemas:
        for col in sorted(derived):
            if col not in s.names:
                raise InputError("column not found", path=f, column=col,
                                 fix=f"the file has columns {s.names}; check --embedding/--text"
                                 f"{did_you_mean(col, s.names)}")
            if col in opts.embeddings and not is_vector_type(s.field(col).type):
                raise InputError(f"an --embedding column must be a list of numbers, not "
                                 f"{s.field(col).type}", path=f, column=col,
                                 fix="store vectors as a Parquet list / fixed-size-list column")
    skip = special | set(opts.exclude) | derived
    if opts.features is not None:
        names = [c for c in opts.features if c not in skip]
    else:
        names = [c for c in schema.names if c not in skip]
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
            raise InputError(f"unsupported column type {t}", path=first_path, column=col,
                             fix="cast it to a number or a string, or leave it out of --features")
    if not numeric and not categorical and not derived:
        raise InputError("no feature columns", path=first_path,
                         fix="name them with --features a,b,c")
    proba_cols = [c for c in [opts.proba_binary, *opts.proba.values()] if c]
    for f, s in schemas:
        for col in proba_cols:
            t = s.field(col).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                raise InputError(f"probability column has type {t}, not a number", path=f,
                                 column=col, fix="point --proba at a numeric column in [0, 1]")
        if opts.timestamp:
            t = s.field(opts.timestamp).type
            if not (pa.types.is_temporal(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
                    or pa.types.is_string(t)):
                raise InputError(f"timestamp column has type {t}", path=f,
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
    numeric_target = False
    if opts.target and task != "classification":
        for f, s in schemas:
            t = s.field(opts.target).type
            numeric_target = pa.types.is_integer(t) or pa.types.is_floating(t)
            if task == "regression" and not numeric_target:
                raise InputError(
                    f"the target of a regression model has type {t}, not a number", path=f,
                    column=opts.target, fix="point --target at the numeric label column (cast it "
                    "to a number), or build a classifier's baseline without --task regression")
    return _Plan(numeric, categorical, task, proba_cols, numeric_target)


def _class_sort_key(labels: Sequence[str]) -> Callable[[str], tuple[float, str]]:
    def num(s: str) -> float:
        try:
            return float(s)
        except ValueError:
            return math.nan

    if all(math.isfinite(num(s)) for s in labels):
        return lambda s: (num(s), s)
    return lambda s: (0.0, s)


def plan_columns(opts: BuildOptions, schemas: Sequence[tuple[str, pa.Schema]]) -> _Plan:
    """Check the options against the schemas (``(path, schema)``; a Spark engine passes its
    table's) and decide which columns are numeric or categorical features."""
    return _plan_schemas(opts, schemas)


def new_partial(opts: BuildOptions, plan: _Plan, *, offset: int = 0) -> PartialProfile:
    """An empty build state for ``plan`` whose first row is row ``offset`` of the data; every
    part of one build must start from the same plan and options."""
    return PartialProfile(
        numeric=plan.numeric, categorical=plan.categorical, task=plan.task,
        prediction=opts.prediction, target=opts.target, proba_binary=opts.proba_binary,
        proba=list(opts.proba.items()), k=sketch_k(opts), capacity=max(10_000, 50 * opts.top_k),
        calibration_rows=opts.calibration_rows, dle_rows=opts.dle_rows,
        numeric_target=plan.numeric_target, offset=offset,
    )


def sketch_k(opts: BuildOptions) -> int:
    return max(16_384, opts.summary_size + 1)


def read_columns(opts: BuildOptions, plan: _Plan) -> list[str]:
    """The columns one build reads, in a fixed order."""
    columns = [*plan.numeric, *plan.categorical, *opts.special_columns()]
    return list(dict.fromkeys(c for c in columns if c not in (opts.id, opts.timestamp)))


def build_profile(files: Sequence[DataFile], opts: BuildOptions, *,
                  progress: bool | None = None, console: Any = None) -> BaselineProfile:
    """Read ``files`` once and return the profile. Raises InputError before writing anything.

    ``progress``: draw a bar over the rows/bytes read on ``console`` (rich's stderr console by
    default); None draws it when stderr is a terminal."""
    if not files:
        raise InputError("no input data given", fix="pass one or more files, directories or globs")
    check_model_labels(opts)
    opts = with_detected_embeddings(opts, read_schema(files[0]))
    plan = _plan(opts, files)
    state = new_partial(opts, plan)
    columns = read_columns(opts, plan)
    from driftline.io.progress import read_progress, wanted

    bar = read_progress(wanted(progress), files, console=console)
    try:
        for i, file in enumerate(files):
            state.path = file.path
            rows_in_file = 0
            for batch in iter_batches(file, columns,
                                      progress=bar.file(i) if bar is not None else None):
                rows_in_file += batch.num_rows
                state.update(batch)
                if bar is not None:
                    bar.rows(batch.num_rows)
            if rows_in_file == 0:
                raise InputError("the file holds no rows", path=file.path,
                                 fix="give a non-empty data file")
    finally:
        if bar is not None:
            bar.close()
    profile = finish_profile(state, opts, plan, sources=tuple(f.path for f in files))
    if opts.multivariate:
        # the PCA model needs the univariate means and shares first: two more reads
        from driftline.profile.multivariate import fit_multivariate

        tabular = {c: profile.features[c] for c in [*plan.numeric, *plan.categorical]}
        mv = fit_multivariate(files, tabular, profile.n_records)
        profile = dataclasses.replace(profile, multivariate=mv)
    if opts.embeddings or opts.text:
        from driftline.profile.derived import build_derived

        profile = with_derived(profile, build_derived(files, opts.embeddings, opts.text,
                                                      derived_options(opts)))
    return profile


def derived_options(opts: BuildOptions) -> DerivedOptions:
    """What the embedding and text parts of a build keep (from the build's options)."""
    from driftline.profile.derived import DerivedOptions

    return DerivedOptions(components=opts.embedding_components, mmd_sample=opts.mmd_sample,
                          vocabulary=opts.vocabulary, bins=opts.bins,
                          summary_size=opts.summary_size, sketch_k=sketch_k(opts))


def with_derived(profile: BaselineProfile, derived: Derived) -> BaselineProfile:
    """``profile`` with the embedding and text references and their derived features."""
    embs, texts, feats = derived
    for f in feats:
        if f.name in profile.features:
            raise InputError("a derived feature has the name of a column", column=f.name,
                             fix="rename the column or leave it out with --exclude")
    return dataclasses.replace(profile, features={**profile.features,
                                                  **{f.name: f for f in feats}},
                               embeddings=embs, text=texts)


def with_detected_embeddings(opts: BuildOptions, schema: pa.Schema) -> BuildOptions:
    """Fixed-size-list columns of numbers are embeddings even when not named by --embedding
    (unless named elsewhere: features, exclude, special or text columns)."""
    taken = {*opts.embeddings, *opts.text, *opts.exclude, *opts.special_columns(),
             *(opts.features or ())}
    found = tuple(f.name for f in schema if f.name not in taken
                  and pa.types.is_fixed_size_list(f.type) and is_vector_type(f.type))
    return dataclasses.replace(opts, embeddings=(*opts.embeddings, *found)) if found else opts


def finish_profile(state: PartialProfile, opts: BuildOptions, plan: _Plan, *,
                   sources: tuple[str, ...]) -> BaselineProfile:
    """The profile of a (merged) build state."""
    features: dict[str, Feature] = {}
    for c in [*plan.numeric, *plan.categorical]:
        features[c] = state.nums[c].result(opts.bins, opts.summary_size) if c in state.nums else \
            state.cats[c].result(opts.top_k)
    task = state.task
    if task is None and opts.prediction:
        task = "classification"  # float predictions that stayed whole numbers and few
    output = None
    proba_columns: dict[str, str] = {}
    if task is not None:
        binary = {"hi": state.hi, "lo": state.lo, "hi_by_target": state.hi_by_target,
                  "lo_by_target": state.lo_by_target}
        output, proba_columns = _output(
            opts, task, state.class_index, state.pred_counts, state.pred_numeric,
            state.confidence, state.sample, state.correct, state.labelled, bins=opts.bins,
            summary_size=opts.summary_size, multi=list(opts.proba.items()), binary=binary,
            target_counts=state.target_counts,
        )
        if task == "regression":
            output = _with_loss_model(output, features, plan, state)
    errors = [acc.sketch.rank_error_bound() for acc in state.nums.values()]
    settings = {
        "bins": opts.bins, "top_k": opts.top_k, "summary_size": opts.summary_size,
        "sketch_k": sketch_k(opts), "quantile_rank_error": max(errors, default=0.0),
        "category_count_error": max((c.items.error_bound() for c in state.cats.values()),
                                    default=0),
        "calibration_rows": state.sample.size,
    }
    if output is not None and output.loss_model is not None:
        settings["dle_rows"] = state.reg_num.size
    return BaselineProfile(
        model_name=opts.model_name, model_version=opts.model_version,
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        n_records=state.rows, features=features,
        columns=Columns(prediction=opts.prediction, proba=proba_columns, target=opts.target,
                        id=opts.id, timestamp=opts.timestamp),
        output=output, sources=sources, settings=settings,
        provenance=provenance(state, opts, sources),
    )


def provenance(state: PartialProfile, opts: BuildOptions,
               sources: tuple[str, ...]) -> dict[str, Any]:
    """Which data the profile describes: the sources, their row count, the order-independent
    digest of every value read (:mod:`driftline.profile.digest`) and the revision when given."""
    out: dict[str, Any] = {"sources": list(sources), "rows": state.rows,
                           "content_hash": f"rows2x64:{state.digest.hex()}"}
    if opts.source_revision:
        out["revision"] = check_revision(opts.source_revision)
    return out


def check_model_labels(opts: BuildOptions) -> None:
    """The model's name and version become the ``model_name`` / ``model_version`` labels of
    every series: an empty one would be dropped by Prometheus (an empty label is no label) and
    kept by OTLP, so the two exports would disagree."""
    for flag, value, default in (("--model-name", opts.model_name, "model"),
                                 ("--model-version", opts.model_version, "1")):
        if not str(value).strip():
            raise InputError(f"{flag} is empty", fix=f"give {flag} a value (default: {default})")


_REVISION = re.compile(r"[A-Za-z0-9._/:@+=-]{1,100}")


def check_revision(text: str) -> str:
    """A revision is one bounded token (it becomes a metric label value)."""
    if not _REVISION.fullmatch(text):
        raise InputError(f"--source-revision {text!r} is not a revision",
                         fix="give a Git/DVC revision or tag: up to 100 of A-Z a-z 0-9 . _ / : "
                         "@ + = -")
    return text


def _with_loss_model(output: OutputProfile, features: dict[str, Feature], plan: _Plan,
                     state: PartialProfile) -> OutputProfile:
    """Add the realised reference errors and the DLE model fitted on the sampled rows."""
    from driftline.detectors.dle import fit_loss_model
    from driftline.engine.window_stats import loss_inputs

    reference = state.reg_sums.result()
    x_num, y = state.reg_num.arrays()
    if x_num.ndim != 2 or len(y) == 0:
        return dataclasses.replace(output, reference_performance=reference)
    pred = x_num[:, -1]
    columns = {c: x_num[:, i] for i, c in enumerate(plan.numeric)}
    if plan.categorical:
        x_cat, _ = state.reg_cat.arrays()
        columns.update({c: x_cat[:, i] for i, c in enumerate(plan.categorical)})
    inputs, categories, x = loss_inputs(features, columns, pred)
    try:
        model = fit_loss_model(x, pred, y, inputs, categories)
    except ValueError:  # too few labelled rows: no estimate, realised values only
        return dataclasses.replace(output, reference_performance=reference)
    return dataclasses.replace(output, reference_performance=reference, loss_model=model)


def _output(opts: BuildOptions, task: str, class_index: dict[str, int], pred_counts: np.ndarray,
            pred_numeric: NumericAccumulator, confidence: NumericAccumulator,
            sample: StrideSample, correct: int, labelled: int, *, bins: int, summary_size: int,
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
                                        (*(pc_counts / total).tolist(), 0.0), int(total), 0.0,
                                        counts=(*(int(c) for c in pc_counts), 0))
    conf = confidence.result(bins, summary_size) if proba_columns else None
    accuracy = correct / labelled if labelled else None
    calibration: dict[str, Calibration] = {}
    reference_performance: dict[str, float] = {}
    probs, both = sample.arrays()
    if proba_columns and len(both):
        from driftline.detectors.classification import realised_metrics
        from driftline.detectors.performance import fit_calibration

        codes, pred_codes = both[:, 0], both[:, 1]
        mat = _class_matrix(probs, classes, positive, multi)
        ok = (codes >= 0) & ~np.isnan(mat).any(axis=1)
        inv = np.full(max(class_index.values(), default=0) + 1, -1, dtype=np.int64)
        for j, c in enumerate(classes):
            inv[class_index[c]] = j
        y = inv[np.maximum(codes[ok], 0)]
        if ok.any():
            for j, c in enumerate(classes):
                calibration[c] = fit_calibration(mat[ok, j], (y == j).astype(np.float64))
            pred_j = np.where(pred_codes[ok] >= 0, inv[np.maximum(pred_codes[ok], 0)], -1)
            pos_j = classes.index(positive) if positive is not None else None
            if pos_j is not None:  # binary without a prediction column: positive iff p > 0.5
                pred_j = np.where(pred_j >= 0, pred_j,
                                  np.where(mat[ok, pos_j] > 0.5, pos_j, 1 - pos_j))
            found = realised_metrics(pred_j, y, len(classes), mat[ok], positive=pos_j)
            reference_performance = {k: v for k, v in found.items() if math.isfinite(v)}
    if accuracy is not None:  # every labelled row, not only the sample
        reference_performance["accuracy"] = accuracy
    labelled_total = int(target_counts.sum())
    shares = ({c: float(target_counts[class_index[c]]) / labelled_total for c in classes}
              if labelled_total else {})
    return OutputProfile(
        task="classification", prediction_column=opts.prediction, proba_columns=proba_columns,
        classes=tuple(classes), positive_class=positive, prediction=prediction, confidence=conf,
        reference_accuracy=accuracy, calibration=calibration, class_proportions=shares,
        reference_performance=reference_performance,
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

