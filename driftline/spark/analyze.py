"""``analyze``: a Spark DataFrame against a baseline, window by window, on the executors.

Windows are cut as ``driftline analyze`` cuts them — by record time (``window_duration``, windows
aligned to the Unix epoch), by a window-id column, and by a record count within those (or over
the whole input in its order) — but each window is computed whole on one executor
(``groupBy(...).applyInArrow``) with the monitor ``driftline analyze`` runs, so every statistic
is the single-machine one. Two differences, both only for data that is not in time order: a
record older than the open window is counted into its own time bucket (the CLI counts it into
the open window), and records without a timestamp form one last window (the CLI counts them
into the open window). A window must fit in one executor's memory.

Record order is Spark's (``monotonically_increasing_id``): file order for file sources, which
also makes count windows reproducible; it assumes the source's partitioning does not change
between the two passes that count-only windows need (true for files and tables).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from driftline.analyze.offline import epoch_seconds, layout_for_schema, to_record_batch
from driftline.engine.monitor import DriftPolicy, Monitor, WindowPolicy
from driftline.engine.snapshot import WindowReport
from driftline.errors import InputError
from driftline.profile.format import BaselineProfile
from driftline.spark.source import arrow_schema, describe, require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Window size when only a duration or a window id cuts windows (as the CLI).
UNLIMITED = 2**62
_ROW, _KEY = "__driftline_row", "__driftline_window"
_PART, _OFFSET = "__driftline_partition", "__driftline_offset"
_LOW_BITS = (1 << 33) - 1  # monotonically_increasing_id: partition id << 33 | row in partition


def analyze(df: DataFrame, profile: BaselineProfile, *, window_size: int | None = None,
            window_duration: float | None = None, timestamp: str | None = None,
            window_column: str | None = None, drift: DriftPolicy = DriftPolicy(),  # noqa: B008
            name: str | None = None) -> Iterator[WindowReport]:
    """Yield the windows of ``df`` in order (by time bucket or window id, then record order),
    numbered from 0 like ``driftline analyze``'s."""
    require_pyspark()
    from pyspark.sql import functions as F
    from pyspark.sql.types import BinaryType, DoubleType, IntegerType, StructField, StructType

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
    keep = list(dict.fromkeys([*layout.columns, *([window_column] if window_column else [])]))
    rows = df.select(*keep).withColumn(_ROW, F.monotonically_increasing_id())
    if window_column is not None:
        keyed = rows.withColumn(_KEY, F.col(window_column))
        key_type = df.schema[window_column].dataType
    elif window_duration is not None:
        ts, duration = layout.timestamp, window_duration
        assert ts is not None

        def bucket(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                ids = np.floor(epoch_seconds(b.column(ts)) / duration)
                yield b.append_column(_KEY, pa.array(ids, pa.float64()))

        schema = StructType([*rows.schema.fields, StructField(_KEY, DoubleType())])
        keyed = rows.mapInArrow(bucket, schema)
        key_type = DoubleType()
    else:
        keyed, key_type = _count_windows(rows, size), DoubleType()
    out_schema = StructType([StructField(_KEY, key_type), StructField("chunk", IntegerType()),
                             StructField("report", BinaryType())])
    policy = WindowPolicy(records=size, max_age=None)

    def windows(table: pa.Table) -> pa.Table:
        table = table.sort_by(_ROW)
        monitor = Monitor(profile, window=policy, drift=drift, clock=None, streams=False,
                          cumulative=False)
        reports: list[WindowReport] = []
        for b in table.to_batches():
            reports.extend(monitor.observe(to_record_batch(profile, b, layout)))
        last = monitor.flush()
        if last is not None:
            reports.append(last)
        key = table.column(_KEY)[0].as_py() if table.num_rows else None
        return pa.table({_KEY: pa.array([key] * len(reports), table.schema.field(_KEY).type),
                         "chunk": pa.array(range(len(reports)), pa.int32()),
                         "report": pa.array([pickle.dumps(r) for r in reports], pa.binary())})

    done = keyed.groupBy(_KEY).applyInArrow(windows, out_schema).orderBy(_KEY, "chunk")
    accuracy: float | None = None
    try:
        for i, row in enumerate(done.toLocalIterator()):
            report: WindowReport = pickle.loads(row["report"])
            report, accuracy = _carry_accuracy(replace(report, index=i), accuracy)
            yield report
    except Exception as exc:
        raise _input_error(exc, where) from None


def _count_windows(rows: DataFrame, size: int) -> DataFrame:
    """Key = global record ordinal // size, from per-partition row counts (one extra pass)."""
    from pyspark.sql import functions as F

    part = F.shiftright(F.col(_ROW), 33)
    counts = sorted((int(r[0]), int(r[1])) for r in
                    rows.groupBy(part.alias(_PART)).count().collect())
    offsets: dict[int, int] = {}
    total = 0
    for p, n in counts:
        offsets[p], total = total, total + n
    spark = rows.sparkSession
    table = spark.createDataFrame([(p, o) for p, o in offsets.items()] or [(0, 0)],
                                  f"{_PART} long, {_OFFSET} long")
    ordinal = F.col(_OFFSET) + F.col(_ROW).bitwiseAND(F.lit(_LOW_BITS))
    return (rows.withColumn(_PART, part).join(F.broadcast(table), _PART)
            .withColumn(_KEY, F.floor(ordinal / F.lit(size)).cast("double"))
            .drop(_PART, _OFFSET))


def _carry_accuracy(report: WindowReport, last: float | None) -> tuple[WindowReport, float | None]:
    """As one monitor does across windows: a window without labels reports the last realised
    accuracy (with ``labels == 0``)."""
    perf = report.performance
    if perf.labels:
        return report, perf.accuracy
    if perf.accuracy is None and last is not None:
        return replace(report, performance=replace(perf, accuracy=last)), last
    return report, last


def _input_error(exc: Exception, where: str) -> Exception:
    """An executor's InputError arrives wrapped in a Spark PythonException: unwrap its text."""
    text = str(exc)
    marker = "InputError: "
    if marker in text:
        msg = text.split(marker, 1)[1].strip().splitlines()[0]
        return InputError(msg)
    if isinstance(exc, InputError):
        return exc
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return InputError(f"Spark analysis failed: {first}", path=where,
                      fix="check the data's column types against the baseline")
