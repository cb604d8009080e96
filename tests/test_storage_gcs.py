"""Object storage on Google Cloud Storage's API: data, baseline and report on a real GCS
emulator (``gcp-storage-emulator`` from the dev extra, started on 127.0.0.1), reached through
the same code path as ``s3://`` (pyarrow's filesystem, ``STORAGE_EMULATOR_HOST``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from engine_fixtures import reference_table
from test_storage_s3 import OPTS, _put_parquet

from driftline.cli import main
from driftline.errors import ProfileError
from driftline.io.storage import read_bytes
from driftline.profile.format import BaselineProfile
from driftline_demo.stack import free_port

BUCKET = "models"
EXE = Path(sys.executable).with_name("gcp-storage-emulator")
pytestmark = pytest.mark.skipif(
    not EXE.exists() and shutil.which("gcp-storage-emulator") is None,
    reason="gcp-storage-emulator is not installed (pip install -e '.[dev]' installs it)")


@pytest.fixture(scope="module")
def gcs_host() -> Iterator[str]:
    exe = str(EXE) if EXE.exists() else str(shutil.which("gcp-storage-emulator"))
    port = free_port()
    proc = subprocess.Popen([exe, "start", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory", "--default-bucket", BUCKET],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/storage/v1/b/{BUCKET}", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gcp-storage-emulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_build_and_analyze_with_every_path_on_gcs(gcs_host: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    gs = f"gs://{BUCKET}/run-{tmp_path.name}"
    ref, cur = reference_table(3000, seed=1), reference_table(2000, seed=2, shift=0.5)
    _put_parquet(f"{gs}/ref/part-0.parquet", ref.slice(0, 1500))
    _put_parquet(f"{gs}/ref/part-1.parquet", ref.slice(1500))
    _put_parquet(f"{gs}/cur.parquet", cur)
    (tmp_path / "ref").mkdir()  # the same two parts: the same sums in the same order
    pq.write_table(ref.slice(0, 1500), tmp_path / "ref" / "part-0.parquet")
    pq.write_table(ref.slice(1500), tmp_path / "ref" / "part-1.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")

    assert main(["baseline", "build", f"{gs}/ref/", "-o", f"{gs}/base.json", *OPTS]) == 0
    assert main(["baseline", "build", str(tmp_path / "ref"), "-o",
                 str(tmp_path / "base.json"), *OPTS]) == 0
    remote = BaselineProfile.load(f"{gs}/base.json")
    local = BaselineProfile.load(tmp_path / "base.json")
    assert remote.sources == (f"{gs}/ref/part-0.parquet", f"{gs}/ref/part-1.parquet")
    assert remote.features == local.features and remote.n_records == 3000
    assert remote.provenance["content_hash"] == local.provenance["content_hash"]

    assert main(["analyze", f"{gs}/cur.parquet", "--baseline", f"{gs}/base.json",
                 "--window-size", "500", "-o", f"{gs}/out/report.json"]) == 0
    assert main(["analyze", str(tmp_path / "cur.parquet"), "--baseline",
                 str(tmp_path / "base.json"), "--window-size", "500",
                 "-o", str(tmp_path / "report.json")]) == 0
    a = json.loads(read_bytes(f"{gs}/out/report.json"))
    b = json.loads((tmp_path / "report.json").read_text())
    assert a["windows"] == b["windows"] and len(a["windows"]) == 4


def test_missing_gcs_object_names_the_uri(gcs_host: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    uri = f"gs://{BUCKET}/nothing-{tmp_path.name}/base.json"
    with pytest.raises(ProfileError, match=rf"{uri}: baseline profile not found.*fix"):
        BaselineProfile.load(uri)
