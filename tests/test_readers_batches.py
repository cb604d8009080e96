"""Batches bounded in bytes: whatever the row groups, the batch and byte bounds and the
columns asked, a file's batches are its rows in order, with the columns in the order asked,
each within the bounds — for Parquet (streamed row group by row group), CSV, JSONL and Arrow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import driftline.io.readers as readers
from driftline.io.readers import DataFile, rows_per_batch


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = pa.array(rng.normal(0, 1, n), mask=rng.uniform(size=n) < 0.1)  # nulls, not NaN
    k = pa.array([None if i % 7 == 0 else int(i % 5) for i in range(n)], pa.int64())
    c = pa.array([None if i % 11 == 0 else f"v{i % 4}" for i in range(n)])
    return pa.table({"x": x, "k": k, "c": c, "w": rng.uniform(0, 1, n)})


def _equal(got: list[pa.RecordBatch], want: pa.Table, cols: list[str]) -> None:
    assert all(b.schema.names == cols for b in got)
    table = pa.Table.from_batches(got, schema=got[0].schema) if got else None
    assert table is not None and table.num_rows == want.num_rows
    for c in cols:
        assert table.column(c).to_pylist() == want.column(c).to_pylist()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3000), group=st.integers(1, 1500), batch_rows=st.integers(1, 2000),
       budget=st.sampled_from([1, 4000, 30_000, 1 << 30]), least=st.integers(1, 600),
       cols=st.permutations(["x", "k", "c", "w"]).flatmap(
           lambda p: st.integers(1, 4).map(lambda m: list(p[:m]))))
def test_parquet_batches_are_the_rows_in_order_within_the_bounds(
        tmp_path: Path, n: int, group: int, batch_rows: int, budget: int, least: int,
        cols: list[str]) -> None:
    table = _table(n, n)
    path = tmp_path / f"t{n}-{group}.parquet"
    pq.write_table(table, path, row_group_size=group)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(readers, "BATCH_BYTES", budget)
        mp.setattr(readers, "MIN_BATCH_ROWS", least)
        got = list(readers.iter_batches(DataFile(str(path), "parquet"), cols, batch_rows))
        # the estimate: at least 8 bytes per value of each column asked
        rows = rows_per_batch(8 * len(cols), batch_rows)
    _equal(got, table.select(cols), cols)
    assert max(b.num_rows for b in got) <= min(batch_rows, max(least, rows, 1))
    assert max(b.num_rows for b in got) <= max(1, batch_rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "arrow"])
def test_other_formats_keep_the_bound(tmp_path: Path, fmt: str) -> None:
    table = _table(5000, 3).select(["x", "k", "w"])
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        pcsv.write_csv(table, path)
    elif fmt == "jsonl":
        rows = table.to_pylist()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        feather.write_feather(table, path, chunksize=5000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(readers, "BATCH_BYTES", 24 * 300)  # three float-sized columns: 300 rows
        mp.setattr(readers, "MIN_BATCH_ROWS", 1)
        got = list(readers.iter_batches(DataFile(str(path), fmt), ["x", "k", "w"], 4096))
    assert max(b.num_rows for b in got) <= 300
    assert len(got) >= 5000 // 300
    _equal(got, table, ["x", "k", "w"])


def test_rows_per_batch_bounds() -> None:
    assert rows_per_batch(8 * 400, 65_536) == readers.BATCH_BYTES // 3200
    assert rows_per_batch(8 * 25, 65_536) == 65_536
    assert rows_per_batch(1e9, 65_536) == readers.MIN_BATCH_ROWS
    assert rows_per_batch(1e9, 10) == 10
