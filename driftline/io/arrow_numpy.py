"""Arrow arrays as numpy without pyarrow's pandas bridge.

``pyarrow.Array.to_numpy`` (and ``np.asarray`` of an Arrow array) goes through pyarrow's pandas
conversion layer, which imports pandas on first use when it is installed: about 0.45 s of CPU
in every ``driftline analyze`` process that never needs pandas. A fixed-width primitive array
without nulls is one little buffer, so :func:`numpy_view` reads it with ``np.frombuffer``
instead: the same values, dtype and zero-copy read-only result as ``to_numpy``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: Arrow primitive type id → numpy dtype (booleans are bit-packed, so they are not here).
_DTYPES: dict[pa.DataType, np.dtype] = {
    t: np.dtype(d) for t, d in [
        (pa.float64(), np.float64), (pa.float32(), np.float32), (pa.float16(), np.float16),
        (pa.int64(), np.int64), (pa.int32(), np.int32), (pa.int16(), np.int16),
        (pa.int8(), np.int8), (pa.uint64(), np.uint64), (pa.uint32(), np.uint32),
        (pa.uint16(), np.uint16), (pa.uint8(), np.uint8)]
}


def numpy_view(arr: pa.Array | pa.ChunkedArray, fill: float | None = None) -> np.ndarray:
    """``arr.to_numpy(zero_copy_only=False)`` (``arr.fill_null(fill)`` first when ``fill`` is
    given), without pandas for numeric arrays: null-free, a read-only view of the Arrow buffer;
    with nulls filled, a new array. Any other array goes through pyarrow."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    dtype = _DTYPES.get(arr.type)
    if dtype is None or (arr.null_count and fill is None):
        return (arr if fill is None else arr.fill_null(fill)).to_numpy(zero_copy_only=False)
    bitmap, data = arr.buffers()[:2]
    n, offset = len(arr), arr.offset
    if data is None:  # an empty array may carry no buffer
        return np.empty(0, dtype=dtype)
    view = np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)
    if arr.null_count:  # pa.scalar(fill), which fill_null makes, imports pandas too
        valid = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=offset + n,
                              bitorder="little")[offset:].astype(bool)
        return np.where(valid, view, np.asarray(fill, dtype=dtype))
    view.flags.writeable = False
    return view


__all__ = ["numpy_view"]
