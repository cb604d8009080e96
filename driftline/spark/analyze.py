"""``analyze``: a Spark DataFrame against a baseline, window by window, on the executors.

Windows are cut as ``driftline analyze`` cuts them — by record time (``window_duration``, windows
aligned to the Unix epoch), by a window-id column, and by a record count within those (or over
the whole input in its order) — and every window is computed whole, with the monitor
``driftline analyze`` runs, so every statistic is the single-machine one (KS, Wasserstein and
the realised ROC AUC need a window's values in order: they are not mergeable from parts).

No row is shuffled unless its window is spread over partitions:

1. a first pass reads only the key's column (the timestamp or the window id; nothing for count
   windows) and sends the driver, per partition, its window keys with their row counts and
   how many separate runs of rows each has — a few numbers per window;
2. a window key that lives in one run of one partition (nearly all of them for data in time
   order) is computed where its rows are (``mapInArrow``, one monitor per partition, closed at
   each key change as the CLI closes at each time bucket); only the rows of the other keys
   (windows straddling a partition boundary, out-of-order records) go through
   ``groupBy(key).applyInArrow``, sorted back into record order there.

The driver receives window reports (a few kB each), never rows, sorts them by key and chunk
and numbers them from 0 like ``driftline analyze``. Two differences from the CLI, both only for
data not in time order: a record older than the open window is counted into its own time bucket
(the CLI counts it into the open window), and records without a timestamp (or window id) form
one last window. A window must fit in one executor's memory.

Record order is Spark's partition order (file order for file sources, which also makes count
windows reproducible); it assumes the source's partitioning does not change between the two
passes (true for files and tables; checked, an error otherwise).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.analyze.offline import (
    WindowRunner,
    carry_accuracy,
    domain_classifier_hook,
    epoch_seconds,
    layout_for_schema,
    to_record_batch,
)
from driftline.engine.monitor import DEFAULT_MIN_RECORDS, DriftPolicy, Monitor, WindowPolicy
from driftline.engine.snapshot import WindowReport
from driftline.engine.window_stats import WindowColumns
from driftline.errors import InputError
from driftline.profile.format import BaselineProfile
from driftline.spark.source import arrow_schema, describe, partition_id, require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Window size when only a duration or a window id cuts windows (as the CLI).
UNLIMITED = 2**62
_KEY, _ROW = "__driftline_window", "__driftline_row"
#: a row's order key: partition << 33 | position in the partition
_SHIFT = 33

#: per batch: the window key of every row (None where there is none), from the raw Arrow batch
#: and the index of its first row in the partition
KeyFn = Callable[[pa.RecordBatch, int, int], pa.Array]


def analyze(df: DataFrame, profile: BaselineProfile, *, window_size: int | None = None,
            window_duration: float | None = None, timestamp: str | None = None,
            window_column: str | None = None, drift: DriftPolicy = DriftPolicy(),  # noqa: B008
            min_records: int = DEFAULT_MIN_RECORDS, domain_classifier: bool = False,
            name: str | None = None) -> Iterator[WindowReport]:
    """Yield the windows of ``df`` in order (by time bucket or window id, then record order),
    numbered from 0 like ``driftline analyze``'s. ``domain_classifier``: also the
    cross-validated domain-classifier AUC of each window (``--domain-classifier``), seeded by
    the window's index as the CLI seeds it, so the values are the CLI's."""
    require_pyspark()
    where = name or describe(df, None)[0]
    size = window_size if window_size is not None else (
        UNLIMITED if window_duration is not None or window_column else 1000)
    if size < 1:
        raise InputError(f"--window-size must be at least 1, got {size}",
                         fix="use e.g. --window-size 1000")
    layout = layout_for_schema(profile, arrow_schema(df), where, timestamp)
    if window_duration is not None and not layout.timestamp:
        raise InputError("--window-duration needs a timestamp column", path=where,
                         fix="name it with --timestamp COL (or build the baseline with --timestamp)")
    if window_column is not None and window_column not in df.columns:
        raise InputError("window column not found", path=where, column=window_column,
                         fix=f"the data has columns {sorted(df.columns)}")
    if window_column is not None:
        source: list[str] = [window_column]
        key_of: KeyFn = _column_keys(window_column)
    elif window_duration is not None:
        assert layout.timestamp is not None
        source, key_of = [layout.timestamp], _time_keys(layout.timestamp, window_duration)
    else:
        source, key_of = [], _count_keys(size)
    keep = list(dict.fromkeys([*layout.columns, *source]))
    policy = WindowPolicy(records=size, max_age=None, min_records=min_records)
    try:
        inventory = _inventory(df.select(*(source or keep[:1])), key_of)
        offsets, split = _plan(inventory, None if source else size)
        if not source:  # count windows: keys from every partition's first global row index
            key_of = _count_keys(size, offsets)
        index_of = _window_index(inventory, size, counted=not source) if domain_classifier \
            else None
        payloads = _windows(df.select(*keep), profile, layout, policy, drift, key_of,
                            inventory, split, index_of)
    except InputError:
        raise
    except Exception as exc:
        raise _input_error(exc, where) from None
    found = sorted((pickle.loads(p) for p in payloads), key=lambda t: (_order(t[0]), t[1]))
    accuracy: float | None = None
    for i, (_, _, report) in enumerate(found):
        report, accuracy = carry_accuracy(replace(report, index=i), accuracy)
        yield report


# --- window keys ---------------------------------------------------------------------------------

def _time_keys(ts: str, duration: float) -> KeyFn:
    def keys(batch: pa.RecordBatch, first: int, part: int) -> pa.Array:
        ids = np.floor(epoch_seconds(batch.column(ts)) / duration)
        return pa.array(ids, pa.float64(), mask=np.isnan(ids))
    return keys


def _column_keys(column: str) -> KeyFn:
    def keys(batch: pa.RecordBatch, first: int, part: int) -> pa.Array:
        return batch.column(column)
    return keys


def _count_keys(size: int, offsets: dict[int, int] | None = None) -> KeyFn:
    """Global record ordinal // size; None (no key) before the partition offsets are known."""
    def keys(batch: pa.RecordBatch, first: int, part: int) -> pa.Array:
        if offsets is None:
            return pa.nulls(batch.num_rows, pa.int64())
        start = offsets[part] + first
        return pa.array((start + np.arange(batch.num_rows, dtype=np.int64)) // size)
    return keys


def _runs(keys: pa.Array) -> list[tuple[int, int, Any]]:
    """Maximal runs of equal keys: (start, stop, key as a Python value, None for none)."""
    n = len(keys)
    if n == 0:
        return []
    codes = pc.dictionary_encode(keys, null_encoding="encode")
    idx = codes.indices.to_numpy(zero_copy_only=False)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    values = [None if isinstance(v, float) and math.isnan(v) else v
              for v in codes.dictionary.to_pylist()]
    return [(int(lo), int(hi), values[idx[lo]])
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True)]


def _order(key: Any) -> tuple[int, Any]:
    """Keys in ascending order, rows without a key (None, NaN) last."""
    if key is None or (isinstance(key, float) and math.isnan(key)):
        return (1, 0)
    return (0, key)


# --- pass 1: which keys live where ---------------------------------------------------------------

#: per partition: row count, and per key its runs and rows
Inventory = dict[int, tuple[int, dict[Any, tuple[int, int]]]]


def _inventory(df: DataFrame, key_of: KeyFn) -> Inventory:
    def scan(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part, seen, last = partition_id(), 0, _NONE
        keys: dict[Any, tuple[int, int]] = {}
        for b in batches:
            for lo, hi, key in _runs(key_of(b, seen, part)):
                runs, rows = keys.get(key, (0, 0))
                keys[key] = (runs + (key != last), rows + hi - lo)
                last = key
            seen += b.num_rows
        yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps((part, seen, keys))])],
                                         names=["inventory"])

    found = df.mapInArrow(scan, "inventory binary").collect()
    out: Inventory = {}
    for row in found:
        part, seen, keys = pickle.loads(row[0])
        out[part] = (seen, keys)
    return out


_NONE = object()  # no key seen yet (None is a key: rows without one)


def _plan(inventory: Inventory, size: int | None) -> tuple[dict[int, int], list[Any]]:
    """Each partition's first global row index, and the keys that must be shuffled: in more
    than one partition, or in more than one run of one. Count windows (``size``) have keys
    only from the offsets: a partition's first and last window may be shared."""
    offsets: dict[int, int] = {}
    total = 0
    where: dict[Any, int] = {}
    split: set[Any] = set()
    for part in sorted(inventory):
        seen, keys = inventory[part]
        offsets[part], total = total, total + seen
        if size is not None:
            keys = ({} if not seen else
                    dict.fromkeys({offsets[part] // size, (total - 1) // size}, (1, 0)))
        for key, (runs, _) in keys.items():
            if runs > 1 or where.setdefault(key, part) != part:
                split.add(key)
    return offsets, sorted(split, key=_order)


def _window_index(inventory: Inventory, size: int, *,
                  counted: bool) -> Callable[[Any, int], int]:
    """``(key, chunk) → the window's global index``: the driver numbers windows by key, then
    chunk, and a key of ``n`` rows gives ``ceil(n / size)`` windows (count windows: the key is
    the index)."""
    if counted:
        return lambda key, chunk: int(key) + chunk
    rows: dict[Any, int] = {}
    for _, keys in inventory.values():
        for key, (_, n) in keys.items():
            rows[key] = rows.get(key, 0) + n
    first, index = {}, 0
    for key in sorted(rows, key=_order):
        first[key], index = index, index + -(-rows[key] // size)
    return lambda key, chunk: first[key] + chunk


# --- pass 2: the windows -------------------------------------------------------------------------

class _At:
    """The window key a monitor is on and how many of its windows closed, for the domain
    classifier's seed."""

    def __init__(self) -> None:
        self.key: Any = None
        self.chunk = 0


def _windows(df: DataFrame, profile: BaselineProfile, layout: Any, policy: WindowPolicy,
             drift: DriftPolicy, key_of: KeyFn, inventory: Inventory,
             split: list[Any], index_of: Callable[[Any, int], int] | None = None,
             ) -> list[bytes]:
    """Pickled ``(key, chunk, report)`` of every window; with ``index_of``, with the
    domain-classifier AUC seeded by the window's global index ``index_of(key, chunk)``."""
    from pyspark.sql.types import BinaryType, LongType, StructField, StructType

    split_index = {k: i for i, k in enumerate(split)}

    def runner(at: _At) -> WindowRunner:
        hook = None
        if index_of is not None:
            where = index_of
            inner = domain_classifier_hook(profile, lambda _: where(at.key, at.chunk))
            if inner is not None:
                def hook(cols: WindowColumns, report: WindowReport) -> WindowReport:
                    # counted at each close: a monitor may close several windows of one batch
                    # before it yields the first
                    out = inner(cols, report)
                    at.chunk += 1
                    return out
        return WindowRunner(profile, Monitor(profile, window=policy, drift=drift, clock=None,
                                             streams=False, cumulative=False, on_close=hook))

    def local(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part, seen = partition_id(), 0
        at = _At()
        run, current, chunk = runner(at), _NONE, 0
        out: list[bytes] = []

        def emit(report: WindowReport | None) -> None:
            nonlocal chunk
            if report is not None:
                out.append(pickle.dumps((current, chunk, report)))
                chunk += 1

        for b in batches:
            for lo, hi, key in _runs(key_of(b, seen, part)):
                if key in split_index:
                    continue
                if key != current:
                    if current is not _NONE:
                        emit(run.flush())
                    current, chunk = key, 0
                    at.key, at.chunk = key, 0
                batch = to_record_batch(profile, b.slice(lo, hi - lo), layout, offset=seen + lo)
                for report in run.observe(batch):
                    emit(report)
            seen += b.num_rows
        if current is not _NONE:
            emit(run.flush())
        expected = inventory.get(part, (0, {}))[0]
        if seen != expected:
            raise InputError(f"partition {part} had {expected} rows in the first pass and "
                             f"{seen} in the second",
                             fix="analyze a table or files that do not change while it runs")
        yield pa.RecordBatch.from_arrays([pa.array(out, pa.binary())], names=["report"])

    done = df.mapInArrow(local, "report binary")
    if split:
        def tagged(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            part, seen = partition_id(), 0
            for b in batches:
                idx = np.full(b.num_rows, -1, dtype=np.int64)
                for lo, hi, key in _runs(key_of(b, seen, part)):
                    idx[lo:hi] = split_index.get(key, -1)
                row = (part << _SHIFT) + seen + np.arange(b.num_rows, dtype=np.int64)
                seen += b.num_rows
                keep = np.flatnonzero(idx >= 0)
                if len(keep):
                    yield (b.append_column(_KEY, pa.array(idx)).append_column(_ROW, pa.array(row))
                           .take(pa.array(keep)))

        def whole(table: pa.Table) -> pa.Table:
            table = table.sort_by(_ROW)
            key = split[table.column(_KEY)[0].as_py()]
            at = _At()
            at.key = key
            run, out = runner(at), list[WindowReport]()
            for b in table.to_batches():
                out.extend(run.observe(to_record_batch(profile, b, layout)))
            last = run.flush()
            if last is not None:
                out.append(last)
            return pa.table({"report": pa.array(
                [pickle.dumps((key, i, r)) for i, r in enumerate(out)], pa.binary())})

        rows = StructType([*df.schema.fields, StructField(_KEY, LongType()),
                           StructField(_ROW, LongType())])
        shuffled = (df.mapInArrow(tagged, rows).groupBy(_KEY)
                    .applyInArrow(whole, StructType([StructField("report", BinaryType())])))
        done = done.unionByName(shuffled)
    return [bytes(r[0]) for r in done.collect()]


def _input_error(exc: Exception, where: str) -> Exception:
    """An executor's InputError arrives wrapped in a Spark PythonException: unwrap its text."""
    text = str(exc)
    marker = "InputError: "
    if marker in text:
        msg = text.split(marker, 1)[1].strip().splitlines()[0]
        return InputError(msg)
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return InputError(f"Spark analysis failed: {first}", path=where,
                      fix="check the data's column types against the baseline")
