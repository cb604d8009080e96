"""An order-independent digest of the rows a baseline was built from (``provenance.content_hash``).

Each row is hashed from the values of the columns read (column names mixed in), and the row
hashes are *added* modulo 2**64 in two independent lanes. Addition commutes, so the digest is
the same whatever the row order, the file split or the Spark partitioning — a Spark build and a
local build of the same rows agree, and partial profiles merge by adding their sums — while
changing, adding or removing any row changes it (up to a 2**-128-ish collision chance; this is
an integrity fingerprint of the data, not a cryptographic signature of the files).

Numbers are hashed from their float64 bits as the profile reads them (NaN and null alike);
other values from their strings as the profile spells them (:func:`~driftline.io.readers.to_strings`),
one blake2b call per distinct value per batch, never per row.

>>> import pyarrow as pa
>>> a = pa.record_batch({"x": [1.0, 2.0, 3.0], "c": ["a", "b", None]})
>>> b = pa.record_batch({"x": [3.0, 1.0, 2.0], "c": [None, "a", "b"]})
>>> RowDigest.of(a, ["x", "c"]).hex() == RowDigest.of(b, ["x", "c"]).hex()
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.io.readers import is_numeric_type, to_float, to_strings

_M = 2**64
_NULL = np.uint64(0x6A09E667F3BCC908)


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _column(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if is_numeric_type(col.type):
        v = to_float(col)
        bits = np.where(np.isnan(v), np.nan, v + 0.0).view(np.uint64)  # one NaN, -0.0 → 0.0
        return np.where(np.isnan(v), _NULL, bits)
    strings = pa.array(to_strings(col), type=pa.string())
    enc = pc.dictionary_encode(strings)
    table = np.array([_h64(s) for s in enc.dictionary.to_pylist()] + [int(_NULL)],
                     dtype=np.uint64)
    idx = enc.indices.fill_null(len(table) - 1).to_numpy(zero_copy_only=False)
    return table[idx]


@dataclass
class RowDigest:
    """Two 64-bit lanes of summed row hashes, and the row count."""

    a: int = 0
    b: int = 0
    rows: int = 0

    @classmethod
    def of(cls, batch: pa.RecordBatch, columns: Sequence[str]) -> RowDigest:
        out = cls()
        out.update(batch, columns)
        return out

    def update(self, batch: pa.RecordBatch, columns: Sequence[str]) -> None:
        n = batch.num_rows
        if n == 0:
            return
        h = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for name in sorted(columns):
                h = _mix(h ^ np.uint64(_h64(name)) ^ _column(batch.column(name)))
            second = _mix(h ^ np.uint64(0xD1B54A32D192ED03))
            self.a = (self.a + int(h.sum(dtype=np.uint64))) % _M
            self.b = (self.b + int(second.sum(dtype=np.uint64))) % _M
        self.rows += n

    def merge(self, other: RowDigest) -> None:
        self.a = (self.a + other.a) % _M
        self.b = (self.b + other.b) % _M
        self.rows += other.rows

    def hex(self) -> str:
        return f"{self.a:016x}{self.b:016x}"
