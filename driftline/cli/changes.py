"""``driftline changes FILE... --column COL``: offline change points of one numeric column.

For a metric export or a KPI series: the values of ``COL`` in file order (files in the order
given) go through the same :class:`~driftline.detectors.ChangeDetector` the sidecar runs on its
per-record streams. Each change is reported with the index where the new regime began (counting
every row, missing values included), the index at which it was detected, and the timestamps of
both when ``--timestamp`` names a time column.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "changes", help="change points of one numeric column (a metric export, a KPI)",
        description="Find where the regime of one numeric column changed, with the detector "
        "the sidecar uses on its per-record streams (docs/statistics.md, 'Change detection').",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="files, directories or quoted globs")
    p.add_argument("--column", required=True, metavar="COL", help="the numeric column to scan")
    p.add_argument("--timestamp", metavar="COL", help="time column to report change times with")
    p.add_argument("--format", choices=("json", "table"),
                   help="default: table on a terminal, else json")
    p.set_defaults(func=_run)


def find_changes(files: Any, column: str, timestamp: str | None) -> dict[str, Any]:
    """The JSON document of ``driftline changes``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from driftline.analyze.offline import epoch_seconds
    from driftline.detectors.change import ChangeDetector
    from driftline.errors import InputError
    from driftline.io.readers import is_numeric_type, iter_batches, read_schema, to_float

    det = ChangeDetector()
    detected: list[int] = []
    times: list[np.ndarray] = []
    offset = 0
    for f in files:
        schema = read_schema(f)
        for name in (column, timestamp):
            if name and name not in schema.names:
                raise InputError("no such column", path=f.path, column=name,
                                 fix=f"use one of {', '.join(schema.names[:20])}")
        boolean = pa.types.is_boolean(schema.field(column).type)
        if not (boolean or is_numeric_type(schema.field(column).type)):
            raise InputError(f"is {schema.field(column).type}, not numeric", path=f.path,
                             column=column, fix="name a numeric column with --column")
        cols = [column] + ([timestamp] if timestamp else [])
        for batch in iter_batches(f, cols):
            col = batch.column(column)
            values = to_float(pc.cast(col, pa.float64()) if boolean else col)
            detected += [offset + i for i in det.update(values)]
            if timestamp:
                try:
                    times.append(epoch_seconds(batch.column(timestamp)))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise InputError("cannot read as time", path=f.path, column=timestamp,
                                     fix="use a timestamp column, ISO 8601 strings or Unix "
                                     "seconds") from None
            offset += batch.num_rows
    ts = np.concatenate(times) if times else None

    def when(i: int) -> float | None:
        if ts is None or not 0 <= i < len(ts) or not np.isfinite(ts[i]):
            return None
        return float(ts[i])

    changes = [{"index": int(c), "detected_at": int(d), "time": when(int(c)),
                "detected_time": when(int(d))}
               for c, d in zip(det.change_points, detected, strict=True)]
    return {"column": column, "rows": offset, "valid": det.n, "invalid": det.n_invalid,
            "model": det.model, "changes": changes}


def _iso(t: float | None) -> str:
    import datetime as dt

    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(args: argparse.Namespace) -> int:
    from driftline.io.readers import discover

    doc = find_changes(discover(args.data), args.column, args.timestamp)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if fmt == "json":
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"{doc['column']}: {doc['rows']} rows ({doc['invalid']} missing), model {doc['model']}, "
          f"{len(doc['changes'])} change(s)")
    if doc["changes"]:
        print(f"{'began at':>10}  {'detected at':>11}  {'began (UTC)':<20}  detected (UTC)")
        for c in doc["changes"]:
            print(f"{c['index']:>10}  {c['detected_at']:>11}  {_iso(c['time']):<20}  "
                  f"{_iso(c['detected_time'])}")
    return 0
