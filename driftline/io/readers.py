"""Streaming readers for reference and analysis data (Parquet, CSV, JSONL, Arrow IPC).

Everything is read with pyarrow as a stream of record batches, so memory is bounded by one batch
whatever the file size. Paths may be files, directories (every supported file inside, sorted) or
glob patterns. Every failure is an :class:`~driftline.errors.InputError` that names the file, the
column and the fix, raised before anything is written.

>>> sorted(FORMATS)
['arrow', 'csv', 'jsonl', 'parquet']
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from driftline.errors import InputError, did_you_mean
from driftline.io.arrow_numpy import numpy_view
from driftline.io.column_groups import chunk_bytes, is_wide, row_group_batches
from driftline.io.storage import filesystem, fix_for, is_uri, list_uri, storage_error

#: File suffix → format name.
SUFFIXES: dict[str, str] = {
    ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet",
    ".csv": "csv", ".tsv": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
}
FORMATS = frozenset(SUFFIXES.values())
#: Rows per record batch: large enough for numpy to be efficient, small enough to bound memory.
BATCH_ROWS = 65_536
#: Decoded bytes per record batch: a wide file's batches hold fewer rows (400 float columns:
#: about 10k), so a batch and what is made from it stay this size whatever the width.
BATCH_BYTES = 32 << 20
#: Fewest rows per batch, however wide the file (per-batch costs stay small beside the rows').
MIN_BATCH_ROWS = 256
#: Bytes of a Parquet column chunk read at a time. Without it pyarrow reads every column chunk
#: of the row group whole before decoding (a 400-column row group: its compressed size at once).
READ_BUFFER = 64 << 10
_CSV_BLOCK = 8 << 20


@dataclass(frozen=True)
class DataFile:
    """One input file and its format."""

    path: str
    format: str


def _format_of(path: str) -> str | None:
    name = path.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    return SUFFIXES.get(Path(name).suffix)


def discover(inputs: Sequence[str]) -> list[DataFile]:
    """Expand files, directories and globs into a sorted, de-duplicated list of data files."""
    if not inputs:
        raise InputError("no input data given", fix="pass one or more files, directories or globs")
    found: list[DataFile] = []
    seen: set[str] = set()

    def add(path: str, *, explicit: bool) -> None:
        fmt = _format_of(path)
        if fmt is None:
            if explicit:
                raise InputError(
                    "unknown data format", path=path,
                    fix="use a .parquet, .csv, .jsonl/.ndjson/.json or .arrow/.feather/.ipc file",
                )
            return
        real = path if is_uri(path) else os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(DataFile(path, fmt))

    for item in inputs:
        if is_uri(item):
            objects = list_uri(item)
            if not objects:
                raise InputError("no such object, prefix or matching objects", path=item,
                                 fix=fix_for(item))
            explicit = len(objects) == 1 and objects[0] == item
            for uri in objects:
                add(uri, explicit=explicit)
            if not found:
                raise InputError("holds no supported data files", path=item,
                                 fix="put .parquet, .csv, .jsonl or .arrow objects under it")
            continue
        if os.path.isdir(item):
            inside = sorted(
                os.path.join(root, f) for root, _, files in os.walk(item) for f in files
                if not f.startswith((".", "_"))
            )
            supported = [p for p in inside if _format_of(p) is not None]
            for path in supported:
                add(path, explicit=False)
            if not supported:
                raise InputError("directory holds no supported data files", path=item,
                                 fix="put .parquet, .csv, .jsonl or .arrow files in it")
        elif os.path.exists(item):
            add(item, explicit=True)
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError("no files match this pattern", path=item,
                                 fix="check the glob (quote it so the shell does not expand it)")
            for path in matches:
                add(path, explicit=True)
        else:
            raise InputError("no such file or directory", path=item, fix="check the path")
    return found


def read_schema(file: DataFile) -> pa.Schema:
    """The schema of a file, from its metadata or its first batch."""
    if file.format == "parquet":
        import pyarrow.parquet as pq

        try:  # the footer alone: reading a first batch would decode a whole row group
            with pq.ParquetFile(_open(file.path, random=True)) as pf:
                if pf.metadata.num_rows > 0:
                    return pf.schema_arrow
        except (OSError, pa.ArrowInvalid, ValueError):
            pass  # iter_batches below raises the error that names the file and the fix
    for batch in iter_batches(file):
        return batch.schema
    raise InputError("the file holds no rows", path=file.path, fix="give a non-empty data file")


#: Called after each batch with the share of the file read so far (0 to 1).
Progress = Callable[[float], None]


def parquet_rows(file: DataFile) -> int | None:
    """The row count of a Parquet file from its footer (no data read); None for another format
    or a footer that cannot be read (:func:`iter_batches` then raises the error that names it)."""
    if file.format != "parquet":
        return None
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(_open(file.path, random=True)) as pf:
            return int(pf.metadata.num_rows)
    except (OSError, pa.ArrowInvalid, ValueError):
        return None


def iter_batches(file: DataFile, columns: Sequence[str] | None = None,
                 batch_rows: int = BATCH_ROWS, *,
                 progress: Progress | None = None, first_row: int = 0,
                 dictionary: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    """Stream a file as record batches (only ``columns`` when given), bounded memory.

    ``progress`` is told how much of the file is read after every batch: the rows out of the
    metadata's row count for Parquet and Arrow IPC files, the bytes parsed out of the file size
    for CSV, JSONL and Arrow streams, so that one large file moves a progress bar too.
    ``first_row``: start at that row of the file (a Parquet file skips the row groups before it
    unread; other formats read and drop the rows before it). ``dictionary``: string columns a
    Parquet file gives as Arrow dictionaries (its dictionary pages as they are, never each
    value decoded to a string: :func:`to_strings` maps the dictionary once per batch)."""
    try:
        batches = _iter(file, columns, batch_rows, progress or _ignore, first_row, dictionary)
        yield from batches if file.format == "parquet" else _skip(batches, first_row)
        if progress is not None:
            progress(1.0)
    except InputError:
        raise
    except OSError as exc:
        if is_uri(file.path) and not isinstance(exc, pa.ArrowInvalid):
            raise storage_error(exc, file.path, "read") from None
        raise InputError(f"cannot read as {file.format}: {_short(exc)}", path=file.path,
                         fix=_HINTS[file.format]) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
        raise InputError(f"cannot read as {file.format}: {_short(exc)}", path=file.path,
                         fix=_HINTS[file.format]) from None


_HINTS = {
    "parquet": "check the file is a complete Parquet file (not truncated, not renamed)",
    "arrow": "check the file is a complete Arrow IPC file or stream",
    "csv": "give a header row and keep each column's type the same throughout the file",
    "jsonl": "write one JSON object per line (JSON Lines) with consistent value types; "
             "a single JSON array is not supported",
}


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _ignore(_: float) -> None:
    pass


def _skip(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` without their first ``rows`` rows."""
    for batch in batches:
        if rows and rows >= batch.num_rows:
            rows -= batch.num_rows
            continue
        yield batch.slice(rows) if rows else batch
        rows = 0


def _iter(file: DataFile, columns: Sequence[str] | None, batch_rows: int,
          progress: Progress, first_row: int = 0,
          dictionary: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    cols = list(columns) if columns is not None else None
    if file.format == "parquet":
        import pyarrow.parquet as pq

        meta = None  # the footer, when read here already: not parsed a second time below
        if dictionary:  # only string columns: another type is not read as a dictionary
            with pq.ParquetFile(_open(file.path, random=True)) as pf:
                schema, meta = pf.schema_arrow, pf.metadata
            names = set(schema.names)
            dictionary = [c for c in dictionary if c in names and (
                pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type))]
        # One row group at a time and no pre-buffering: pyarrow otherwise reads ahead across row
        # groups, and memory grows with the file instead of staying at one row group.
        with pq.ParquetFile(_open(file.path, random=True), metadata=meta, pre_buffer=False,
                            buffer_size=READ_BUFFER,
                            read_dictionary=list(dictionary) or None) as pf:
            total, done = max(1, pf.metadata.num_rows), 0
            for group in range(pf.metadata.num_row_groups):
                start = done
                done += pf.metadata.row_group(group).num_rows
                if done <= first_row:  # wholly before the first row: never decoded
                    continue
                sizes = chunk_bytes(pf.metadata.row_group(group), cols)
                rows = _row_group_rows(pf, group, sizes, batch_rows)
                seen = max(start, first_row)
                batches = (row_group_batches(pf, group, cols or pf.schema_arrow.names, sizes,
                                             rows) if is_wide(sizes) else
                           pf.iter_batches(batch_size=rows, columns=cols, row_groups=[group],
                                           use_threads=False))
                for batch in _skip(batches, seen - start):
                    yield batch
                    seen += batch.num_rows
                    progress(seen / total)
    elif file.format in ("csv", "jsonl"):
        parsed = _BytesParsed(file.path) if progress is not _ignore else None
        source = parsed.stream if parsed is not None else _open(file.path)
        if file.format == "csv":
            import pyarrow.csv as pcsv

            delimiter = "\t" if file.path.lower().removesuffix(".gz").endswith(".tsv") else ","
            reader = pcsv.open_csv(
                source, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
                convert_options=pcsv.ConvertOptions(include_columns=cols),
            )
        else:
            import pyarrow.json as pjson

            reader = pjson.open_json(source, read_options=pjson.ReadOptions(block_size=_CSV_BLOCK))
        for batch in reader:
            yield from _rechunk(batch if file.format == "csv" else _select(batch, cols, file),
                                batch_rows)
            if parsed is not None:
                progress(parsed.block_done())
    elif file.format == "arrow":
        yield from _iter_ipc(file, cols, batch_rows, progress)
    else:  # pragma: no cover - discover() only yields known formats
        raise InputError("unknown data format", path=file.path)


def rows_per_batch(row_bytes: float, batch_rows: int) -> int:
    """Rows of a batch whose rows take ``row_bytes`` each: at most ``batch_rows`` and about
    :data:`BATCH_BYTES`, never fewer than :data:`MIN_BATCH_ROWS`."""
    fit = int(BATCH_BYTES // max(row_bytes, 1.0))
    return max(1, min(batch_rows, max(MIN_BATCH_ROWS, fit)))


def _row_group_rows(pf: Any, group: int, sizes: dict[str, int], batch_rows: int) -> int:
    """Rows per batch of one Parquet row group: its decoded bytes per row estimated from the
    metadata (``sizes``: :func:`~driftline.io.column_groups.chunk_bytes`).

    Measured on a 400-feature file of 100k-row groups (``python -m benchmarks analyze --rss``):
    the earlier read — each row group decoded whole, in column groups, then sliced into
    65,536-row batches — held the row group's values beside the batches made from them;
    streaming batches of ≈ 10k rows through a 64 KB read buffer holds only each column's current
    pages (a float column of under 128k distinct values is one dictionary page: its values).
    A row group that wide is read in column groups (:mod:`driftline.io.column_groups`), so
    that only one group's pages are alive at a time."""
    return rows_per_batch(sum(sizes.values()) / max(1, pf.metadata.row_group(group).num_rows),
                          batch_rows)


def _iter_ipc(file: DataFile, cols: list[str] | None, batch_rows: int,
              progress: Progress) -> Iterator[pa.RecordBatch]:
    source = _open(file.path, random=True) if is_uri(file.path) else pa.memory_map(file.path, "r")
    try:
        try:
            reader: pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader = (
                pa.ipc.open_file(source))
            n = reader.num_record_batches
            batches: Iterator[pa.RecordBatch] = (reader.get_batch(i) for i in range(n))
            # a mapped file's batches are located by its footer: their row counts cost no data
            # read; a remote file's would, so there the batches are counted instead
            local = progress is not _ignore and not is_uri(file.path)
            total = sum(reader.get_batch(i).num_rows for i in range(n)) if local else 0
            seen = [0]

            def share(done: int) -> float:
                seen[0] += 1
                return done / total if total else seen[0] / max(1, n)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_stream(source)
            batches = iter(reader)
            size = max(1, source.size())

            def share(done: int) -> float:  # a stream has no row count: the bytes read so far
                return min(1.0, source.tell() / size)
        done = 0
        for batch in batches:
            yield from _rechunk(_select(batch, cols, file), batch_rows)
            done += batch.num_rows
            progress(share(done))
    finally:
        source.close()


_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


class _BytesParsed:
    """The share of a CSV or JSONL file parsed so far. pyarrow's streaming readers read many
    blocks ahead but emit one record batch per ``_CSV_BLOCK`` bytes of text, so the batches
    seen count the bytes parsed; a compressed file reports its compressed bytes read instead."""

    def __init__(self, path: str) -> None:
        codec = _CODECS.get(Path(path).suffix.lower())
        if is_uri(path):
            fs, inner = filesystem(path)
            self.raw = fs.open_input_stream(inner, compression=None)
            self.size = max(1, int(fs.get_file_info(inner).size or 1))
        else:
            self.raw = pa.OSFile(path, "r")
            self.size = max(1, os.path.getsize(path))
        self.codec = codec
        self.stream = pa.CompressedInputStream(self.raw, codec) if codec else self.raw
        self.blocks = 0

    def block_done(self) -> float:
        self.blocks += 1
        if self.codec:
            return min(1.0, self.raw.tell() / self.size)
        return min(1.0, self.blocks * _CSV_BLOCK / self.size)


def _open(path: str, *, random: bool = False) -> Any:
    """A local path as itself (pyarrow opens it, detecting compression by suffix); an object as
    a pyarrow stream (seekable for Parquet and Arrow files, decompressing by suffix else)."""
    if not is_uri(path):
        return path
    fs, inner = filesystem(path)
    return fs.open_input_file(inner) if random else fs.open_input_stream(inner, compression="detect")


def _select(batch: pa.RecordBatch, cols: list[str] | None, file: DataFile) -> pa.RecordBatch:
    if cols is None:
        return batch
    names = set(batch.schema.names)
    for c in cols:
        if c not in names:
            raise InputError("column not found", path=file.path, column=c,
                             fix=f"the file has columns {sorted(names)}{did_you_mean(c, names)}")
    return batch.select(cols)


def _rechunk(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    if batch.num_rows:
        rows = rows_per_batch(batch.nbytes / batch.num_rows, rows)
    if batch.num_rows <= rows:
        if batch.num_rows:
            yield batch
        return
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


# --- column conversion ------------------------------------------------------------------------

def is_categorical_type(t: pa.DataType) -> bool:
    """String, boolean and dictionary columns are categorical by default."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)
                or pa.types.is_dictionary(t) or pa.types.is_binary(t)
                or pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", _no)(t))


def _no(_: pa.DataType) -> bool:
    return False


def is_numeric_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                or pa.types.is_null(t))


def to_float(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float64 with NaN for nulls (±inf kept; detectors skip them)."""
    if pa.types.is_null(col.type):
        return np.full(len(col), np.nan)
    if not pa.types.is_float64(col.type):
        import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

        col = pc.cast(col, pa.float64(), safe=False)  # int64 beyond 2**53 rounds, as numpy does
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return numpy_view(col, fill=np.nan)


def to_strings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as an object array of ``str`` (None for nulls), spelled as records.py spells it:
    booleans as ``true``/``false``, integers without a decimal point."""
    table = string_table(col)
    if table is not None:
        labels, indices = table
        return labels[indices]
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if pa.types.is_boolean(t):
        arr = col.to_numpy(zero_copy_only=False)
        out = np.where(arr == True, "true", "false").astype(object)  # noqa: E712
        if col.null_count:
            out[np.asarray(col.is_null())] = None
        return out
    # Spelled as Python spells it ("1.0"), like records.categorical_column does for live
    # records; NaN/inf are missing. Rare for categories, so a Python pass is fine here.
    col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, t))
    return np.array([None if v is None else str(v) for v in col.to_pylist()], dtype=object)


def string_table(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, indices)`` with ``to_strings(col)`` equal to ``labels[indices]``: one Python
    ``str`` per distinct value (None last, for nulls) and an index per row, so that whatever is
    derived per value (a category's code) is derived once per label; None for the columns
    :func:`to_strings` spells value by value (booleans, floats)."""
    t = col.type
    if (pa.types.is_dictionary(t) and isinstance(col, pa.DictionaryArray)
            and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))):
        # a Parquet dictionary as it is: no value hashed or decoded
        labels = np.array([*col.dictionary.to_pylist(), None], dtype=object)
        return labels, numpy_view(col.indices, fill=len(labels) - 1)
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if pa.types.is_boolean(t) or pa.types.is_floating(t):
        return None
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col = pc.cast(col, pa.string())
    # Through the dictionary: one Python str per distinct value, and no pandas (pyarrow's
    # to_numpy imports it, ~0.45 s of every analysis; see driftline.io.arrow_numpy).
    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    labels = np.array([*enc.dictionary.to_pylist(), None], dtype=object)
    return labels, numpy_view(enc.indices, fill=len(labels) - 1)


def is_vector_type(t: pa.DataType) -> bool:
    """List, large-list or fixed-size-list of numbers: an embedding column."""
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        return False
    return is_numeric_type(t.value_type)


def to_vectors(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (values, lengths): ``values`` the concatenated float64 elements of the
    non-null rows, ``lengths`` per row (-1 for a null row)."""
    import pyarrow.compute as pc  # here only: ≈ 0.1 s of CPU to import

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    lengths = pc.list_value_length(col)
    lens = numpy_view(lengths, fill=-1).astype(np.int64)
    values = col.flatten()
    return to_float(values), lens


def vector_matrix(values: np.ndarray, lengths: np.ndarray, dim: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(``(n, dim)`` matrix with NaN rows where invalid, rows of another length, rows holding a
    NaN or infinite element) from :func:`to_vectors`' output."""
    n = len(lengths)
    out = np.full((n, dim), np.nan)
    present = np.maximum(lengths, 0)
    starts = np.concatenate([[0], np.cumsum(present)[:-1]]) if n else np.empty(0, np.int64)
    good = lengths == dim
    if good.any():
        idx = starts[good][:, None] + np.arange(dim)[None, :]
        out[good] = values[idx]
    bad_length = (lengths >= 0) & ~good
    non_finite = good & ~np.isfinite(out).all(axis=1)
    out[non_finite] = np.nan
    return out, bad_length, non_finite
