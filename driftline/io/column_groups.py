"""A wide Parquet row group read a group of columns at a time, its rows assembled in slabs.

Streaming a row group with every column at once keeps every column's current pages alive
together. pyarrow writes a float column of fewer than about 128k distinct values per row group
as one dictionary page, so its current page is all of the row group's values: at 400 float
columns in 100k-row groups, that is ≈ 455 MB of pyarrow's pool while the row group is read, for
batches of 32 MB.

A row group whose wanted column chunks hold more than :data:`WIDE_BYTES` uncompressed is read
instead in column groups of at most :data:`GROUP_BYTES` of column chunks each, so that only
one group's pages are alive at a time. A batch needs every column of its rows, so the row
group is cut into slabs of rows (a whole number of batches, about :data:`SLAB_BYTES` decoded);
for each slab, each column group is read from the start of the row group up to the end of
the slab, only the slab's rows are kept, and the groups' columns make the slab. A Parquet
reader cannot start inside a column chunk, so slab ``s`` decodes ``s + 1`` slabs of each
column: the row group is decoded ``(S + 1) / 2`` times for ``S`` slabs. That decoding is what
this path costs; bigger slabs cost fewer re-reads and more memory. ``S`` is capped at
:data:`MAX_SLABS` (slabs grow past :data:`SLAB_BYTES` instead), so a row group far larger than
the benchmark's 100k rows (pyarrow writes up to 1M rows a group by default) is decoded at most
``(MAX_SLABS + 1) / 2`` times, for memory of a slab of an ``S``-th of the row group.

The batches are those :func:`~driftline.io.readers.iter_batches` gives the streamed way: the
same rows, the same columns in the same order, cut at the same rows, so everything computed
from them is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

#: A row group is read in column groups when its wanted column chunks hold more than this many
#: bytes uncompressed (400 float columns of 100k rows: ≈ 400 MB; 25 of them: 25 MB).
WIDE_BYTES = 128 << 20
#: Uncompressed bytes of column chunks per column group: the most of pyarrow's pages alive at
#: once on this path (a few columns more for one wider than that alone).
GROUP_BYTES = 16 << 20
#: Decoded bytes of a slab of rows, assembled from the column groups before its batches are
#: handed on (a whole number of batches, at least one).
SLAB_BYTES = 64 << 20
#: At most this many slabs per row group: the decoding stays within (MAX_SLABS + 1) / 2 times
#: the row group's, whatever its size; past it a slab holds more than SLAB_BYTES.
MAX_SLABS = 8


def chunk_bytes(meta: Any, cols: Sequence[str] | None) -> dict[str, int]:
    """Uncompressed bytes per top-level column of one row group's metadata (all of a nested
    column's leaves together), only ``cols`` when given, at least 8 bytes a value: a
    dictionary-encoded column decodes to its values, not its indices."""
    wanted = set(cols) if cols is not None else None
    out: dict[str, int] = {}
    for i in range(meta.num_columns):
        chunk = meta.column(i)
        name = chunk.path_in_schema.split(".")[0]
        if wanted is None or name in wanted:
            out[name] = out.get(name, 0) + max(8 * meta.num_rows, chunk.total_uncompressed_size)
    return out


def is_wide(sizes: dict[str, int]) -> bool:
    """Whether a row group with these column chunk ``sizes`` is read in column groups."""
    return len(sizes) > 1 and sum(sizes.values()) > WIDE_BYTES


def column_groups(names: Sequence[str], sizes: dict[str, int]) -> list[list[str]]:
    """``names`` in order, cut into runs of at most :data:`GROUP_BYTES` (a column larger than
    that alone is a group of its own)."""
    groups: list[list[str]] = []
    size = 0
    for name in names:
        s = sizes.get(name, 0)
        if groups and size + s <= GROUP_BYTES:
            groups[-1].append(name)
            size += s
        else:
            groups.append([name])
            size = s
    return groups


def row_group_batches(pf: Any, group: int, names: Sequence[str], sizes: dict[str, int],
                      rows: int) -> Iterator[pa.RecordBatch]:
    """The row group ``group`` of the open ``ParquetFile`` ``pf`` as batches of ``rows`` rows
    (the last one shorter) with the columns ``names`` in that order, read in column groups."""
    n = pf.metadata.row_group(group).num_rows
    slab = slab_rows(n, rows, sum(sizes.values()))
    groups = column_groups(names, sizes)
    for start in range(0, n, slab):
        stop = min(n, start + slab)
        parts = [_rows_of(pf, group, cols, rows, start, stop) for cols in groups]
        for lo in range(0, stop - start, rows):
            columns: dict[str, pa.Array] = {}
            for part in parts:
                piece = part.slice(lo, rows)
                for name, col in zip(piece.column_names, piece.columns, strict=True):
                    columns[name] = (col.chunk(0) if col.num_chunks == 1
                                     else pa.concat_arrays(col.chunks))
            yield pa.RecordBatch.from_arrays([columns[c] for c in names], names=list(names))
        del parts


def slab_rows(n: int, rows: int, group_bytes: int) -> int:
    """Rows per slab of an ``n``-row row group of ``group_bytes`` read in batches of ``rows``:
    whole batches of about :data:`SLAB_BYTES`, but no more than :data:`MAX_SLABS` slabs."""
    per_slab = max(1, SLAB_BYTES // max(1, rows * group_bytes // max(1, n)))
    batches = -(-n // rows)
    return rows * max(per_slab, -(-batches // MAX_SLABS))


def _rows_of(pf: Any, group: int, cols: list[str], rows: int, start: int,
             stop: int) -> pa.Table:
    """Rows ``start:stop`` of one row group's ``cols``, read from the row group's start (the
    reader is closed as soon as ``stop`` is reached, and its pages with it)."""
    kept: list[pa.RecordBatch] = []
    at = 0
    reader = pf.iter_batches(batch_size=rows, columns=cols, row_groups=[group],
                             use_threads=False)
    try:
        for batch in reader:
            end = at + batch.num_rows
            if end > start:
                kept.append(batch.slice(max(0, start - at), min(end, stop) - max(at, start)))
            at = end
            if at >= stop:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(kept)
