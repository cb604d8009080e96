"""What an atomic object-store write costs: :func:`driftline.io.storage.write_atomic` (upload a
hidden temporary object, then a server-side rename or copy, then delete it) beside streaming the
same bytes straight into the target (not atomic: see docs/scale.md), per store, on the loopback
emulators the tests use — moto's S3 server, gcp-storage-emulator and Azurite (each skipped when
it is not installed).

For each size (``DRIFTLINE_BENCH_STORAGE_KIB``, default ``64,4096``: a small baseline and a
large one) the two ways alternate, 7 rounds, and the minimum wall and CPU milliseconds of this
process are printed. The emulators are local processes, so the wall figure is mostly their own
work per request: it shows how many more round trips the atomic write makes, not a cloud's
latency. ``python -m benchmarks storage`` runs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIZES_KIB = tuple(int(s) for s in os.environ.get("DRIFTLINE_BENCH_STORAGE_KIB", "64,4096").split(","))
ROUNDS = 7


@contextmanager
def _s3() -> Iterator[str | None]:
    from driftline_demo.emulators import moto_exe, start_moto

    if moto_exe() is None:
        yield None
        return
    proc, url = start_moto()
    with proc:
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_REGION="us-east-1",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="bench")
        yield "s3://bench"


@contextmanager
def _gcs() -> Iterator[str | None]:
    from driftline_demo.emulators import gcs_exe, start_gcs

    if gcs_exe() is None:
        yield None
        return
    proc, url = start_gcs("bench")
    with proc:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        yield "gs://bench"


@contextmanager
def _azure() -> Iterator[str | None]:
    from driftline.io.storage import _AZURITE_KEY
    from driftline_demo.emulators import AZURITE_ACCOUNT, azurite_exe, start_azurite

    if azurite_exe() is None:
        yield None
        return
    proc, url = start_azurite("bench")
    with proc:
        os.environ.update(AZURE_STORAGE_ACCOUNT_NAME=AZURITE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY=_AZURITE_KEY,
                          DRIFTLINE_AZURE_BLOB_ENDPOINT=url)
        yield "abfs://bench"


def _stream(uri: str, data: bytes) -> None:
    """The non-atomic way: stream into the target itself."""
    from driftline.io.storage import filesystem

    fs, inner = filesystem(uri)
    with fs.open_output_stream(inner) as out:
        out.write(data)


def _timed(fn: Callable[[str, bytes], Any], uri: str, data: bytes) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn(uri, data)
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def main() -> None:
    saved = dict(os.environ)  # the stores' variables are set for this benchmark only
    try:
        _run()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run() -> None:
    from driftline.io.storage import read_bytes, write_atomic

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; min of {ROUNDS} "
          "rounds, the two ways alternating; wall ms [CPU ms of this process]")
    for name, store in (("S3 (moto)", _s3), ("GCS (gcp-storage-emulator)", _gcs),
                        ("Azure Blob (Azurite)", _azure)):
        with store() as root:
            if root is None:
                print(f"{name}: not installed, skipped")
                continue
            for kib in SIZES_KIB:
                data = os.urandom(kib * 1024)
                uri = f"{root}/bench/{kib}k.json"
                best: dict[str, list[tuple[float, float]]] = {"atomic": [], "stream": []}
                for _ in range(ROUNDS):
                    best["atomic"].append(_timed(write_atomic, uri, data))
                    best["stream"].append(_timed(_stream, uri, data))
                assert read_bytes(uri) == data
                a = min(w for w, _ in best["atomic"]), min(c for _, c in best["atomic"])
                s = min(w for w, _ in best["stream"]), min(c for _, c in best["stream"])
                print(f"{name:28s} {kib:6d} KiB  atomic {a[0]:7.1f} [{a[1]:5.1f}]  "
                      f"stream {s[0]:7.1f} [{s[1]:5.1f}]  ratio {a[0] / s[0]:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
