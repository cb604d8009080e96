"""numpy_view gives what pyarrow's to_numpy gives (values, dtype, read-only), with and without
fill_null, on slices, chunked arrays, nulls and empty arrays; and `driftline analyze` imports
no pandas (pyarrow's to_numpy and fill_null would, ~0.45 s of CPU per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.io.arrow_numpy import numpy_view

TYPES = [pa.float64(), pa.float32(), pa.int64(), pa.int32(), pa.int16(), pa.int8(),
         pa.uint64(), pa.uint32(), pa.uint8(), pa.bool_()]


@settings(max_examples=60, deadline=None)
@given(t=st.sampled_from(TYPES), n=st.integers(0, 40), start=st.integers(0, 10),
       nulls=st.booleans(), chunks=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_numpy_view_equals_to_numpy(t: pa.DataType, n: int, start: int, nulls: bool,
                                    chunks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 100, n + start).tolist()
    values = [None if nulls and rng.uniform() < 0.2 else v for v in raw]
    arr = pa.array(values, type=pa.int64()).cast(t).slice(start)  # an offset into the buffer
    cut = [arr.slice(i * len(arr) // chunks, (i + 1) * len(arr) // chunks - i * len(arr) // chunks)
           for i in range(chunks)]
    for a in (arr, pa.chunked_array(cut, type=t)):
        want = a.to_numpy() if isinstance(a, pa.ChunkedArray) else a.to_numpy(zero_copy_only=False)
        got = numpy_view(a)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        if a.null_count == 0 and t != pa.bool_():
            assert not got.flags.writeable  # a view of Arrow's buffer: nobody writes into it
        fill = True if t == pa.bool_() else 7
        filled = numpy_view(a, fill=fill)
        want = a.fill_null(fill)
        want = want.to_numpy() if isinstance(want, pa.ChunkedArray) else want.to_numpy(
            zero_copy_only=False)
        assert filled.dtype == want.dtype
        np.testing.assert_array_equal(filled, want)


def test_analyze_cli_imports_no_pandas(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for name, n, shift in (("ref", 3000, 0.0), ("cur", 2000, 0.5)):
        x = rng.normal(shift, 1, n)
        x[::50] = np.nan
        pq.write_table(pa.table({"x": x, "i": rng.integers(0, 9, n),
                                 "c": pa.array([[None, "a", "b"][int(i)] for i in rng.integers(0, 3, n)]),
                                 "label": pa.array(rng.choice(["p", "q"], n).tolist())}),
                       tmp_path / f"{name}.parquet")
    base, out = tmp_path / "b.json", tmp_path / "out.json"
    code = ("import sys\nfrom driftline.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print('pandas' in sys.modules, code)\n")
    run = [sys.executable, "-c", code]
    subprocess.run([*run, "baseline", "build", str(tmp_path / "ref.parquet"), "-o", str(base),
                    "--target", "label"], check=True, capture_output=True)
    res = subprocess.run([*run, "analyze", str(tmp_path / "cur.parquet"), "--baseline",
                          str(base), "--window-size", "500", "-o", str(out), "-q"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "0"]
    assert out.read_text().count('"index"') == 4
