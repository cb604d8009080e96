"""Offline analysis: stream data files through a :class:`~driftline.engine.monitor.Monitor`, window by
window, exactly as the sidecar would see them (``driftline analyze`` and the benchmark use it).

Arrow batches become :class:`~driftline.engine.records.RecordBatch` columns with vectorised conversions
only: numeric features as float64 (NaN for null), categorical ones as ``str`` objects, labels
canonicalised once per distinct value (Arrow dictionary encoding), never once per row.

>>> parse_duration("1h30m"), parse_duration("90"), parse_duration("2d")
(5400.0, 90.0, 172800.0)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from driftline.engine.monitor import DEFAULT_MIN_RECORDS, DriftPolicy, Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.engine.snapshot import WindowReport
from driftline.engine.window_stats import (
    CategoricalRef,
    WindowColumns,
    _cat_ref,
    category_codes,
    without_pool,
)
from driftline.errors import InputError, did_you_mean
from driftline.io.arrow_numpy import numpy_view
from driftline.io.readers import (
    BATCH_ROWS,
    DataFile,
    is_categorical_type,
    is_numeric_type,
    is_vector_type,
    iter_batches,
    parquet_rows,
    read_schema,
    string_table,
    to_float,
    to_strings,
    to_vectors,
    vector_matrix,
)
from driftline.labels import canonical_label
from driftline.profile.format import BaselineProfile, CategoricalFeature, NumericFeature

if TYPE_CHECKING:
    from driftline.io.progress import ReadProgress

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``15s``, ``30m``, ``1h``, ``1h30m``, ``2d`` or ``1w``."""
    t = text.strip().lower()
    try:
        value = float(t)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", t)
        if not parts or "".join(a + b for a, b in parts) != t:
            raise InputError(f"cannot read duration {text!r}",
                             fix="write it like 90, 15s, 30m, 1h, 1h30m or 1d") from None
        value = sum(float(a) * _UNITS[b] for a, b in parts)
    if not value > 0:
        raise InputError(f"duration {text!r} must be positive", fix="use e.g. 1h")
    return value


def canonical_column(col: pa.Array) -> np.ndarray:
    """Canonical class labels (object str, None for missing), one Python call per distinct value."""
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    if pa.types.is_floating(col.type):
        col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    labels = np.array([canonical_label(v) for v in enc.dictionary.to_pylist()] + [None],
                      dtype=object)
    return labels[numpy_view(enc.indices, fill=len(labels) - 1)]


def epoch_seconds(col: pa.Array) -> np.ndarray:
    """Timestamps as float Unix seconds: temporal columns, ISO-8601 strings or epoch numbers."""
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:  # ISO 8601 with a zone ("…Z", "…+02:00") first, then without one (taken as UTC)
            col = pc.cast(col, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:
            col = pc.cast(col, pa.timestamp("us"))
        t = col.type
    if pa.types.is_date(t):
        col = pc.cast(col, pa.timestamp("s"))
        t = col.type
    if pa.types.is_timestamp(t):
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[t.unit]
        ints = pc.cast(col, pa.int64())
        return to_float(ints) * scale
    return to_float(col)


@dataclass(frozen=True)
class Layout:
    """Which profile columns a file has, checked once per file."""

    columns: list[str]
    prediction: str | None
    proba: dict[str, str]
    target: str | None
    timestamp: str | None
    path: str


def _layout(profile: BaselineProfile, file: DataFile, timestamp: str | None) -> Layout:
    return layout_for_schema(profile, read_schema(file), file.path, timestamp)


def layout_for_schema(profile: BaselineProfile, schema: pa.Schema, path: str,
                      timestamp: str | None) -> Layout:
    """Check ``schema`` (of a file or a table, named ``path`` in errors) against the profile."""
    names = set(schema.names)
    derived = profile.derived_features
    for name in [*profile.embeddings, *profile.text]:
        if name not in names:
            raise InputError(
                "embedding or text column of the baseline not found in the data", path=path,
                column=name, fix="analyse data with the same columns as the reference"
                f"{did_you_mean(name, names)}")
        t = schema.field(name).type
        if name in profile.embeddings and not is_vector_type(t):
            raise InputError(f"the baseline has this column as an embedding but the data has {t}",
                             path=path, column=name,
                             fix="give vectors as a list or fixed-size-list column")
    for name, spec in profile.features.items():
        if name in derived:
            continue
        if name not in names:
            raise InputError(
                "feature of the baseline not found in the data", path=path, column=name,
                fix="analyse data with the same columns as the reference, or rebuild the baseline"
                f"{did_you_mean(name, names)}",
            )
        t = schema.field(name).type
        if isinstance(spec, NumericFeature) and not is_numeric_type(t):
            raise InputError(f"the baseline has this feature as numeric but the data has {t}",
                             path=path, column=name,
                             fix="give the same column types as the reference data")
        if not isinstance(spec, NumericFeature) and not (is_categorical_type(t)
                                                         or is_numeric_type(t)):
            raise InputError(f"unsupported column type {t} for a categorical feature",
                             path=path, column=name, fix="use string values")
    cols = profile.columns
    prediction = cols.prediction if cols.prediction in names else None
    proba = {c: col for c, col in cols.proba.items() if col in names}
    for col in proba.values():
        if not is_numeric_type(schema.field(col).type):
            raise InputError(f"probability column has type {schema.field(col).type}, not a number",
                             path=path, column=col, fix="give probabilities as numbers")
    target = cols.target if cols.target in names else None
    out = profile.output
    if target is not None and out is not None and out.task == "regression":
        t = schema.field(target).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
            raise InputError(f"the target of a regression model has type {t}, not a number",
                             path=path, column=target,
                             fix="give the numeric label column (cast it to a number)")
    ts = timestamp or cols.timestamp
    if timestamp is not None and timestamp not in names:
        raise InputError("timestamp column not found", path=path, column=timestamp,
                         fix=f"the file has columns {sorted(names)}")
    ts = ts if ts in names else None
    wanted = [*profile.input_features, *profile.embeddings, *profile.text, prediction,
              *proba.values(), target, ts]
    return Layout(list(dict.fromkeys(c for c in wanted if c)), prediction, proba, target, ts,
                   path)


def to_record_batch(profile: BaselineProfile, batch: pa.RecordBatch, layout: Layout, *,
                    offset: int = 0,
                    refs: Mapping[str, CategoricalRef] | None = None) -> RecordBatch:
    """One Arrow batch as monitor columns (see :mod:`driftline.engine.records` for the dtypes);
    ``offset`` is the file row of the batch's first row, for errors that name a row. ``refs``:
    the categorical features' reference categories (:func:`categorical_refs`), whose codes
    the batch then carries, looked up once per distinct value (an Arrow dictionary's labels)
    and taken by each row's index, instead of once per value when its window closes."""
    feats: dict[str, np.ndarray] = {}
    codes: dict[str, np.ndarray] = {}
    derived = profile.derived_features
    for name, spec in profile.features.items():
        if name in derived:
            continue
        col = batch.column(name)
        if isinstance(spec, NumericFeature):
            feats[name] = to_float(col)
            continue
        ref = refs.get(name) if refs is not None else None
        table = string_table(col) if ref is not None else None
        if ref is None or table is None:
            feats[name] = to_strings(col)
            continue
        labels, indices = table
        feats[name] = labels[indices]
        codes[name] = category_codes(labels, ref)[indices]
    for name, emb in profile.embeddings.items():
        feats[name] = _vectors(batch.column(name), name, emb.dim, layout.path, offset)
    for name in profile.text:
        feats[name] = _texts(batch.column(name), name, layout.path)
    out = profile.output
    prediction = None
    if layout.prediction:
        col = batch.column(layout.prediction)
        prediction = (to_float(col) if out is not None and out.task == "regression"
                      else canonical_column(col))
    probabilities = None
    if layout.proba and out is not None and out.classes:
        n = batch.num_rows
        probabilities = np.zeros((n, len(out.classes)))
        given: list[tuple[str, np.ndarray]] = []  # (column, its values) as the file has them
        if out.positive_class is not None and len(out.classes) == 2:
            column = layout.proba[out.positive_class]
            p = to_float(batch.column(column))
            given.append((column, p))
            pos = out.classes.index(out.positive_class)
            probabilities[:, pos] = p
            probabilities[:, 1 - pos] = 1.0 - p
        else:
            for j, c in enumerate(out.classes):
                if c in layout.proba:
                    p = to_float(batch.column(layout.proba[c]))
                    given.append((layout.proba[c], p))
                    probabilities[:, j] = p
        for column, p in given:
            with np.errstate(invalid="ignore"):
                bad = np.flatnonzero(np.isfinite(p) & ((p < 0) | (p > 1)))
            if len(bad):
                raise InputError(f"probability {float(p[bad[0]])!r} is outside [0, 1] (row "
                                 f"{offset + int(bad[0])})", path=layout.path, column=column,
                                 fix="give calibrated probabilities (the model's sigmoid or "
                                 "softmax output, not raw scores)")
    targets = None
    if layout.target:
        col = batch.column(layout.target)
        targets = (to_float(col) if out is not None and out.task == "regression"
                   else canonical_column(col))
    timestamps = None
    if layout.timestamp:
        try:
            timestamps = epoch_seconds(batch.column(layout.timestamp))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"cannot read timestamps: {str(exc).splitlines()[0][:200]}",
                             path=layout.path, column=layout.timestamp,
                             fix="use a timestamp column, ISO 8601 strings or Unix seconds") from None
    return RecordBatch(feats, prediction, probabilities, None, timestamps, targets,
                       n=batch.num_rows, codes=codes)


def categorical_refs(profile: BaselineProfile) -> dict[str, CategoricalRef]:
    """The reference categories of the profile's categorical features read from the data
    (derived ones are made later), for :func:`to_record_batch`."""
    derived = profile.derived_features
    return {n: _cat_ref(f) for n, f in profile.features.items()
            if isinstance(f, CategoricalFeature) and n not in derived}


def _vectors(col: pa.Array, name: str, dim: int, path: str, offset: int = 0) -> np.ndarray:
    """An embedding column as ``(n, dim)``; a wrong length or a NaN inside a vector is an error
    offline (the live path counts such a vector as missing instead)."""
    values, lengths = to_vectors(col)
    mat, bad_length, non_finite = vector_matrix(values, lengths, dim)
    if bad_length.any():
        row = int(np.flatnonzero(bad_length)[0])
        raise InputError(f"a vector has {int(lengths[row])} elements, the baseline's have {dim} "
                         f"(row {offset + row})", path=path, column=name,
                         fix=f"give {dim}-element vectors (null for a missing one), or rebuild "
                         "the baseline from data with the new embedding size")
    if non_finite.any():
        row = int(np.flatnonzero(non_finite)[0])
        raise InputError(f"a vector holds NaN, infinity or a null element (row {offset + row})",
                         path=path, column=name,
                         fix="repair or drop those rows; null marks a missing vector")
    return mat


def _texts(col: pa.Array, name: str, path: str) -> np.ndarray:
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    t = col.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            col = pc.cast(col, pa.string())
        except pa.ArrowInvalid:
            raise InputError("the text column holds bytes that are not UTF-8", path=path,
                             column=name, fix="decode it to UTF-8 text first") from None
    elif not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
        raise InputError(f"the baseline has this column as text but the data has {t}",
                         path=path, column=name, fix="give the same column types as the reference")
    return to_strings(col)


def domain_classifier_hook(profile: BaselineProfile,
                           seed: Callable[[WindowReport], int] | None = None,
                           ) -> Callable[[WindowColumns, WindowReport], WindowReport] | None:
    """The hook adding the domain-classifier AUC to each window's multivariate result (None
    without a multivariate reference). The classifier's folds are seeded by ``seed(report)``,
    the window's index by default; an engine whose monitors number windows otherwise (Spark:
    one monitor per partition) passes the window's global index so the AUC is the CLI's."""
    from driftline.analyze.domain import domain_classifier_auc
    from driftline.engine.multivariate import MultivariateRef

    ref = MultivariateRef.of(profile)
    if ref is None:
        return None
    mv_ref = ref
    seed_of = seed or (lambda report: report.index)

    def hook(cols: WindowColumns, report: WindowReport) -> WindowReport:
        mv = report.multivariate
        if mv is None or not mv.n:
            return report
        # rounded as the stored reference sample is (float32): else a tree separates the two
        # sides by the rounding of the category shares alone
        rows = mv_ref.encoder.encode(cols.features, cols.codes).astype(np.float32).astype(
            np.float64)
        auc, note = domain_classifier_auc(mv_ref.sample, rows, seed=seed_of(report))
        return dataclasses.replace(report, multivariate=dataclasses.replace(
            mv, domain_classifier_auc=auc, note=note))

    return hook


def analyze(profile: BaselineProfile, files: Sequence[DataFile], *, window_size: int,
            window_duration: float | None = None, timestamp: str | None = None,
            drift: DriftPolicy = DriftPolicy(),  # noqa: B008
            domain_classifier: bool = False,
            min_records: int = DEFAULT_MIN_RECORDS,
            progress: ReadProgress | None = None,
            processes: int | None = None) -> Iterator[WindowReport]:
    """Yield every window of ``files`` against ``profile``: tumbling windows of ``window_size``
    records, also cut at multiples of ``window_duration`` seconds of record time when given
    (windows aligned to the Unix epoch, like Prometheus' and Grafana's time buckets). Records
    older than the open window (out of order) are counted into it. Windows with fewer than
    ``min_records`` records report "insufficient data" instead of a decision. ``progress`` is
    moved along as the files are read. ``processes``: how many processes compute the windows
    (None: :func:`split_rows` chooses; the reports are the same)."""
    if window_size < 1:
        raise InputError(f"--window-size must be at least 1, got {window_size}",
                         fix="use e.g. --window-size 1000")
    layouts = [(f, _layout(profile, f, timestamp)) for f in files]
    if window_duration is not None and not all(lay.timestamp for _, lay in layouts):
        missing = next(f for f, lay in layouts if not lay.timestamp)
        raise InputError("--window-duration needs a timestamp column", path=missing.path,
                         fix="name it with --timestamp COL (or build the baseline with --timestamp)")
    task = Task(profile, [f for f, _ in layouts], [lay for _, lay in layouts], window_size,
                drift, domain_classifier, min_records)
    parts = None if window_duration is not None else split_rows(task, processes)
    if parts is not None:
        yield from _split(task, parts, progress)
        return
    runner = task.runner()
    observe, flush = runner.observe, runner.flush

    bucket: float | None = None
    for batch in _record_batches(task, 0, None, progress):
        if window_duration is None or batch.timestamps is None:
            yield from observe(batch)
            continue
        ids = np.floor(batch.timestamps / window_duration)
        start = bucket if bucket is not None else -np.inf
        ids = np.fmax(ids, start)  # NaN (no timestamp) rows stay in the open window
        ids = np.maximum.accumulate(np.where(np.isnan(ids), start, ids))
        cuts = np.flatnonzero(np.diff(ids)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ids)], strict=True):
            seg_bucket = float(ids[lo])
            if bucket is not None and seg_bucket != bucket:
                report = flush()
                if report is not None:
                    yield report
            bucket = seg_bucket
            yield from observe(batch.slice(int(lo), int(hi)))
    report = flush()
    if report is not None:
        yield report


@dataclass(frozen=True)
class Task:
    """What one process needs to compute windows of the files (pickled to a second process)."""

    profile: BaselineProfile
    files: list[DataFile]
    layouts: list[Layout]
    window_size: int
    drift: DriftPolicy
    domain_classifier: bool
    min_records: int

    def runner(self, first_window: int = 0) -> WindowRunner:
        """A fresh monitor whose first window is numbered ``first_window``."""
        on_close = domain_classifier_hook(self.profile) if self.domain_classifier else None
        monitor = Monitor(self.profile, window=WindowPolicy(records=self.window_size,
                                                            max_age=None,
                                                            min_records=self.min_records),
                          drift=self.drift, clock=None, streams=False, cumulative=False,
                          on_close=on_close, first_window=first_window)
        return WindowRunner(self.profile, monitor)

    @functools.cached_property
    def rows(self) -> list[int | None]:
        """Each file's row count from its Parquet footer (None: another format), read once for
        the split and the parts."""
        return [parquet_rows(f) for f in self.files]


def _record_batches(task: Task, start: int, stop: int | None,
                    progress: ReadProgress | None = None,
                    rows: Sequence[int] | None = None) -> Iterator[RecordBatch]:
    """The monitor columns of rows ``start`` to ``stop`` (None: the end) of the files read
    one after the other; ``rows``: each file's row count (needed when ``start`` > 0)."""
    base = 0  # rows of the files before this one
    derived = task.profile.derived_features
    categorical = [n for n, spec in task.profile.features.items()
                   if not isinstance(spec, NumericFeature) and n not in derived]
    refs = categorical_refs(task.profile)
    for i, (file, layout) in enumerate(zip(task.files, task.layouts, strict=True)):
        if stop is not None and base >= stop:
            return
        n = rows[i] if rows is not None else None
        if n is not None and base + n <= start:
            base += n
            continue
        first = max(0, start - base)
        on_read = progress.file(i) if progress is not None else None
        batches = iter_batches(file, layout.columns, progress=on_read, first_row=first,
                               dictionary=categorical)
        wide = len(layout.columns) * BATCH_ROWS * 8 > PREFETCH_BYTES
        offset = first
        read = batches if wide else prefetched(batches)
        try:
            for arrow_batch in read:
                if stop is not None and base + offset + arrow_batch.num_rows > stop:
                    arrow_batch = arrow_batch.slice(0, stop - base - offset)
                if progress is not None:
                    progress.rows(arrow_batch.num_rows)
                yield to_record_batch(task.profile, arrow_batch, layout, offset=offset,
                                      refs=refs)
                offset += arrow_batch.num_rows
                if stop is not None and base + offset >= stop:
                    return
        finally:  # stopped at ``stop`` or early: the reader (and its read-ahead) closed now
            getattr(read, "close", lambda: None)()
        base += offset


#: From this many values (rows × columns read) on, ``analyze`` computes the later windows in
#: other processes (:func:`split_rows`): a second process costs about 0.7 s of CPU to start
#: (its imports and the baseline), so below this it would not pay.
SPLIT_VALUES = 10_000_000
#: Columns read (features, outputs, label, timestamp) up to which ``analyze`` computes windows
#: in a second process by default. Each process holds its own baseline and batches: measured
#: with ``python -m benchmarks analyze --rss`` (400k rows, the two processes' summed RSS sampled)
#: 232 MB for one process and 441 MB for two at 25 features, 433 and 855 MB at 100.
SPLIT_COLUMNS = 32
#: The share of the rows the calling process keeps, out of two: the other process first pays
#: for its start while this one already computes windows.
KEEP_SHARE = 0.56


def cpus() -> tuple[int, float]:
    """The CPUs this process may run on, and how many of them were idle on average over the
    last minute (the count less the load average)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return n, max(0.0, n - busy)


#: Idle CPUs (by the one-minute load average) from which a second process is started. It costs
#: about 1.1 s more CPU on the 1M-row workload (+16 %; its imports are 0.6 s). With cores shared
#: by runnable threads, two processes still get more of the machine than one while about half a
#: core is idle; below that they mostly add CPU. The load average lags (it still counts a job
#: that ended seconds ago), so the bound is half a core, not a whole one. Side by side (``python
#: -m benchmarks analyze --stages``, min of 3, whole CLI, one vs two processes): 11.9 vs 7.8 s at
#: load 5.5-7.4, but 4.89 vs 5.45 s at load 2.3-3.1 and 13.4 vs 15.8 s at load 9-10; at load
#: 0.6-1.5 (``python -m benchmarks peers``) 4.53 vs 3.57 s.
IDLE_CPUS = 0.5


def split_rows(task: Task, processes: int | None = None) -> list[tuple[int, int | None]] | None:
    """The rows each process computes (``[start, stop)``, whole windows; the last stop None:
    the end), or None for one process.

    ``processes`` None chooses: two processes when this process may use two CPUs and at least
    :data:`IDLE_CPUS` of them were idle over the last minute (:func:`cpus`), every file is
    Parquet (its footer gives the row count, and a second process reads from a row without
    decoding the rows before it) and there are at least :data:`SPLIT_VALUES` values to read.
    Data of more than :data:`SPLIT_COLUMNS` columns stays in one process, whose memory a second
    one would double (855 MB for two at 100 features, 433 MB for one). Each window is computed by one
    monitor from the same records either way, so the reports are the same (the carried
    accuracy is joined in :func:`_split`)."""
    if processes is not None and processes < 1:
        raise InputError(f"--processes must be at least 1, got {processes}",
                         fix="use 1 for this process only")
    if processes is None:
        n, idle = cpus()
        want = 2 if n >= 2 and idle >= IDLE_CPUS else 1
    else:
        want = processes
    if want < 2:
        return None
    rows = task.rows
    if any(n is None for n in rows):
        return None
    total = sum(n for n in rows if n is not None)
    width = max((len(lay.columns) for lay in task.layouts), default=0)
    if processes is None and (total * width < SPLIT_VALUES or width > SPLIT_COLUMNS):
        return None
    windows = -(-total // task.window_size)
    if windows < want:
        return None
    # this process keeps KEEP_SHARE of two processes' rows; the others share the rest evenly
    keep = KEEP_SHARE * 2 / want
    cuts = [round(windows * (keep + (1 - keep) * k / (want - 1))) for k in range(want - 1)]
    bounds = [0, *(c * task.window_size for c in cuts), None]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds)
            if lo is not None and (hi is None or hi > lo)]


def _split(task: Task, parts: list[tuple[int, int | None]],
           progress: ReadProgress | None) -> Iterator[WindowReport]:
    """The windows of ``parts[0]`` computed here, the others' in child processes, in order."""
    from driftline.analyze.worker import Child

    rows = [n or 0 for n in task.rows]
    children = [Child(task, lo, hi, rows, lo // task.window_size) for lo, hi in parts[1:]]
    try:
        # every process has a core: windows on this thread (the children's too, see worker.run)
        with without_pool():
            lo, hi = parts[0]
            runner = task.runner()
            last: float | None = None
            for batch in _record_batches(task, lo, hi, progress, rows):
                for report in runner.observe(batch):
                    last = carry_accuracy(report, last)[1]
                    yield report
            tail = runner.flush()  # None but at the end of the files
            if tail is not None:
                yield tail
            for child, (lo, hi) in zip(children, parts[1:], strict=True):
                reports, error = child.result()
                if progress is not None:
                    progress.rows((hi if hi is not None else sum(rows)) - lo)
                for report in reports:
                    report, last = carry_accuracy(report, last)
                    yield report
                if error is not None:
                    raise error
            if progress is not None:
                for i in range(len(task.files)):
                    progress.file(i)(1.0)
    finally:
        for child in children:
            child.close()


def carry_accuracy(report: WindowReport, last: float | None) -> tuple[WindowReport, float | None]:
    """As one monitor does across windows: a window without labels reports the last realised
    accuracy (with ``labels == 0``). Returns the report and the accuracy to carry on."""
    perf = report.performance
    if perf.labels:
        return report, perf.accuracy
    if perf.accuracy is None and last is not None:
        return dataclasses.replace(report, performance=dataclasses.replace(perf, accuracy=last)), last
    return report, last


#: Batches of at most this many bytes (columns × rows × 8) are read one ahead, on a thread.
#: Parquet decoding releases the GIL, so the next batch is read while a window is computed
#: (the window's pool rarely keeps both cores busy); a wider file is read in turn, so that
#: the batch read ahead does not add to its peak memory.
PREFETCH_BYTES = 64 << 20
_END: Any = object()


def prefetched(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches`` with the next one read on a thread while the caller works on this one: the
    same batches in the same order, errors raised where the caller would have met them."""
    with ThreadPoolExecutor(1, thread_name_prefix="driftline-read") as pool:
        ahead = pool.submit(next, batches, _END)
        try:
            while (batch := ahead.result()) is not _END:
                ahead = pool.submit(next, batches, _END)
                yield batch
        finally:  # closed early (a pipe closed, an error): let the read end, then close it
            ahead.cancel()
            if not ahead.cancelled():
                with contextlib.suppress(Exception):  # the caller's own exception is what counts
                    ahead.result()
            close = getattr(batches, "close", None)
            if close is not None:
                close()


class WindowRunner:
    """One monitor's windows as ``driftline analyze`` reports them: each report
    :func:`checked`, with the target labels the reference never had counted into the window
    their records went to. The Spark engine runs one per partition (and per shuffled window)."""

    def __init__(self, profile: BaselineProfile, monitor: Monitor) -> None:
        self.profile = profile
        self.monitor = monitor
        self._labels = _UnseenLabels(profile)

    def observe(self, batch: RecordBatch) -> Iterator[WindowReport]:
        unseen = self._labels.unseen(batch.targets)
        for report in self.monitor.observe(batch):
            yield checked(self.profile, report, self._labels.close(report.records, unseen))
        self._labels.keep(unseen)

    def flush(self) -> WindowReport | None:
        report = self.monitor.flush()
        return None if report is None else checked(self.profile, report,
                                                   self._labels.close(report.records, None))


class _UnseenLabels:
    """Target labels the reference never had, counted into the window their records went to.

    The monitor closes a window after exactly ``report.records`` records, so the rows of a
    batch are handed out in order: the first ones complete the open window, the rest open the
    next one."""

    def __init__(self, profile: BaselineProfile) -> None:
        out = profile.output
        self.classes = (frozenset(out.classes) if out is not None and out.task != "regression"
                        and out.classes else None)
        self.open: dict[str, int] = {}
        self.open_n = 0
        self._rows: list[str | None] = []
        self._pos = 0

    def unseen(self, targets: np.ndarray | None) -> list[str | None] | None:
        """Per row: the unseen label, else None; None when nothing can be unseen."""
        if self.classes is None or targets is None:
            return None
        classes = self.classes
        rows = [v if v is not None and v not in classes else None for v in targets.tolist()]
        self._rows, self._pos = rows, 0
        return rows

    def close(self, records: int, rows: list[str | None] | None) -> dict[str, int]:
        take = max(0, records - self.open_n)
        counts = self.open
        if rows is not None:
            for v in rows[self._pos:self._pos + take]:
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            self._pos += take
        self.open, self.open_n = {}, 0
        return counts

    def keep(self, rows: list[str | None] | None) -> None:
        """The rows of the batch that no window took yet stay in the open one."""
        if rows is None:
            return
        rest = rows[self._pos:]
        for v in rest:
            if v is not None:
                self.open[v] = self.open.get(v, 0) + 1
        self.open_n += len(rest)
        self._rows, self._pos = [], 0


def checked(profile: BaselineProfile, report: WindowReport,
            unseen: dict[str, int] | None = None) -> WindowReport:
    """``report`` with its data-quality failures: features entirely missing in the window (but
    not in the reference) and target labels the reference never had (scored as wrong
    otherwise, so accuracy would drop for a reason that is not the model's)."""
    issues = [f"feature {name!r} is entirely missing ({fd.n_missing} of {report.records} "
              "records)" for name, fd in report.features.items()
              if fd.n_missing > 0 and fd.n_missing >= report.records
              and getattr(profile.features.get(name), "missing_ratio", 0.0) < 1.0]
    if unseen:
        n = sum(unseen.values())
        shown = ", ".join(repr(k) for k in sorted(unseen)[:5])
        issues.append(f"{n} target label(s) the reference never had: {shown}"
                      + (" ..." if len(unseen) > 5 else ""))
    return dataclasses.replace(report, data_quality=tuple(issues)) if issues else report


def report_document(profile: BaselineProfile, windows: Sequence[WindowReport]) -> dict[str, Any]:
    """The JSON contract of ``driftline analyze --format json``."""
    return {"baseline": {"model_name": profile.model_name, "model_version": profile.model_version,
                         "id": profile.id},
            "windows": [w.to_dict() for w in windows]}
