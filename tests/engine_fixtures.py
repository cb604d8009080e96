"""Small generated data sets for the engine tests (no downloads, deterministic seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson  # noqa: F401 - imported to fail early if pyarrow lacks it
import pyarrow.parquet as pq
import pytest


def reference_table(n: int = 4000, seed: int = 0, shift: float = 0.0) -> pa.Table:
    """Features x (normal), z (uniform), c (categorical), a binary model's outputs and labels.

    The target is stored as float 1.0/0.0 and the prediction as int 1/0 on purpose."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    z = rng.uniform(0, 10, n)
    c = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    p = 1 / (1 + np.exp(-2 * x))
    y = (rng.random(n) < p).astype(np.float64)
    pred = (p > 0.5).astype(np.int64)
    return pa.table({"x": x, "z": z, "c": c, "p": p, "y": y, "pred": pred})


def write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` in the format its suffix names."""
    s = path.suffix
    if s == ".parquet":
        pq.write_table(table, path)
    elif s == ".csv":
        pcsv.write_csv(table, path)
    elif s in (".jsonl", ".ndjson"):
        with path.open("w") as fh:
            for row in table.to_pylist():
                import json

                fh.write(json.dumps(row) + "\n")
    elif s in (".arrow", ".feather"):
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table, max_chunksize=700)
    elif s == ".arrows":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table, max_chunksize=700)
    else:  # pragma: no cover
        raise ValueError(s)
    return path


def assert_json_close(a: object, b: object, *, rel: float | None = None,
                      abs: float | None = None, where: str = "") -> None:
    """``a == b`` for JSON-like values (dicts, lists, scalars), floats within ``rel`` / ``abs``
    as :func:`pytest.approx` reads them (NaN equal to NaN); the failing path in the message.
    Why: the same data read another way (another file format, Spark's partitions) adds its sums
    in another order, so floats may differ in their last bits; anything else must be equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_json_close(a[k], b[k], rel=rel, abs=abs, where=f"{where}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_json_close(x, y, rel=rel, abs=abs, where=f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float | int):
        assert a == pytest.approx(b, rel=rel, abs=abs, nan_ok=True), (where, a, b)
    else:
        assert a == b, (where, a, b)
