"""Object storage: data, baselines and outputs on a real S3-compatible server (moto's standalone
server on 127.0.0.1), atomic writes, and clear errors for a missing bucket, an unreachable
store and refused credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_fixtures import reference_table

from driftline.cli import main
from driftline.config import config_from_dict
from driftline.errors import InputError, ProfileError
from driftline.io.readers import discover
from driftline.io.storage import read_bytes, write_atomic
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile
from driftline_demo.emulators import start_moto
from driftline_demo.stack import free_port

BUCKET = "models"


def _aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str = "testing",
             secret: str = "testing") -> None:
    """The standard AWS variables, pointing at ``endpoint``."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    proc, url = start_moto()
    with proc:
        yield url


@pytest.fixture
def s3(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Standard AWS variables pointing at the local server, and an empty bucket."""
    _aws_env(monkeypatch, s3_url)
    import boto3

    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    if any(b["Name"] == BUCKET for b in client.list_buckets().get("Buckets", [])):
        for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}"


def _put_parquet(uri: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(uri, sink.getvalue().to_pybytes())


OPTS = ["--prediction", "pred", "--proba", "p", "--target", "y", "--model-name", "m"]


def build_and_analyze_on_store(store: str, tmp_path: Path) -> BaselineProfile:
    """Build a baseline from two parts and analyze a file with every path under ``store`` (a
    bucket URI), and the same locally: the profiles and reports must be equal. Returns the
    profile read back from the store."""
    ref, cur = reference_table(3000, seed=1), reference_table(2000, seed=2, shift=0.5)
    _put_parquet(f"{store}/ref/part-0.parquet", ref.slice(0, 1500))
    _put_parquet(f"{store}/ref/part-1.parquet", ref.slice(1500))
    _put_parquet(f"{store}/cur.parquet", cur)
    (tmp_path / "ref").mkdir()  # the same two parts: the same sums in the same order
    pq.write_table(ref.slice(0, 1500), tmp_path / "ref" / "part-0.parquet")
    pq.write_table(ref.slice(1500), tmp_path / "ref" / "part-1.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")

    assert main(["baseline", "build", f"{store}/ref/", "-o", f"{store}/base.json", *OPTS]) == 0
    assert main(["baseline", "build", str(tmp_path / "ref"), "-o",
                 str(tmp_path / "base.json"), *OPTS]) == 0
    remote = BaselineProfile.load(f"{store}/base.json")
    local = BaselineProfile.load(tmp_path / "base.json")
    assert remote.sources == (f"{store}/ref/part-0.parquet", f"{store}/ref/part-1.parquet")
    assert remote.features == local.features and remote.n_records == 3000
    assert remote.provenance["content_hash"] == local.provenance["content_hash"]

    assert main(["analyze", f"{store}/cur.parquet", "--baseline", f"{store}/base.json",
                 "--window-size", "500", "-o", f"{store}/out/report.json"]) == 0
    assert main(["analyze", str(tmp_path / "cur.parquet"), "--baseline",
                 str(tmp_path / "base.json"), "--window-size", "500",
                 "-o", str(tmp_path / "report.json")]) == 0
    a = json.loads(read_bytes(f"{store}/out/report.json"))
    b = json.loads((tmp_path / "report.json").read_text())
    assert a["windows"] == b["windows"] and len(a["windows"]) == 4
    return remote


class _DroppedUpload:
    """An output stream whose connection drops half-way through a write; leaving the ``with``
    closes the real stream, as pyarrow's own streams do on an error."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data[: len(data) // 2])
        raise OSError("connection reset by peer")

    def __enter__(self) -> _DroppedUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()


class _DroppingStore:
    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def open_output_stream(self, path: str, *args: Any, **kwargs: Any) -> _DroppedUpload:
        return _DroppedUpload(self.fs.open_output_stream(path, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)


def dropped_upload_keeps_the_old_object(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overwrite the object at ``uri`` with an upload that fails half-way: a reader still gets
    the old content, whole, and no temporary object is left beside it."""
    import pyarrow.fs as pafs

    from driftline.io import storage

    old = json.dumps({"baseline": "old", "pad": "x" * 5000}).encode()
    write_atomic(uri, old)
    real = storage.filesystem
    with monkeypatch.context() as m:
        m.setattr(storage, "filesystem", lambda p: (_DroppingStore(real(p)[0]), real(p)[1]))
        with pytest.raises(InputError, match=rf"{uri}: cannot write.*connection reset"):
            write_atomic(uri, json.dumps({"baseline": "new", "pad": "y" * 9000}).encode())
    assert read_bytes(uri) == old
    fs, inner = real(uri)
    beside = fs.get_file_info(pafs.FileSelector(inner.rsplit("/", 1)[0]))
    assert [i.path for i in beside] == [inner]


def test_build_and_analyze_with_every_path_on_s3(s3: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    remote = build_and_analyze_on_store(s3, tmp_path)

    # glob over objects
    files = discover([f"{s3}/ref/part-*.parquet"])
    assert [f.path for f in files] == list(remote.sources)

    # the sidecar config takes the URI as it is and loads the profile from the store
    from driftline.collectors.sidecar import load_models

    cfg = config_from_dict({"models": [{"name": "m", "baseline": f"{s3}/base.json"}]})
    [(model, profile)] = load_models(cfg)
    assert model.baseline == f"{s3}/base.json" and profile.id == remote.id


def test_missing_bucket_and_object_name_the_uri(s3: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"s3://nope-bucket/x.parquet.*(no such|fix)"):
        discover(["s3://nope-bucket/x.parquet"])
    with pytest.raises(ProfileError, match=r"s3://models/missing.json.*not found"):
        BaselineProfile.load(f"{s3}/missing.json")
    pq.write_table(reference_table(500), tmp_path / "r.parquet")
    # a failed write (no such bucket) leaves no baseline behind
    code = main(["baseline", "build", str(tmp_path / "r.parquet"), "-o",
                 "s3://nope-bucket/base.json", *OPTS])
    assert code == 2
    with pytest.raises(ProfileError):
        BaselineProfile.load("s3://nope-bucket/base.json")


def test_dropped_upload_keeps_the_old_object(s3: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dropped_upload_keeps_the_old_object(f"{s3}/drop-{tmp_path.name}/base.json", monkeypatch)


def test_failed_build_writes_nothing(s3: str, tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, 2.0], "p": ["a", "b"], "y": [0, 1]}),
                   tmp_path / "bad.parquet")
    code = main(["baseline", "build", str(tmp_path / "bad.parquet"), "-o", f"{s3}/bad.json",
                 "--proba", "p", "--target", "y"])
    assert code == 2
    with pytest.raises(ProfileError, match="not found"):
        BaselineProfile.load(f"{s3}/bad.json")


def test_unreachable_store_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_env(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("DRIFTLINE_S3_CONNECT_TIMEOUT", "1")
    with pytest.raises(InputError, match=r"s3://models/ref.parquet.*unreachable.*AWS_ENDPOINT_URL"):
        discover(["s3://models/ref.parquet"])


def test_refused_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """A server that checks signatures (moto with authentication on from the first request)
    refuses unknown keys: the error names the URI and the credential variables."""
    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    with proc:
        _aws_env(monkeypatch, url, key="AKIAUNKNOWNKEY000000", secret="wrong")
        with pytest.raises(InputError, match=r"s3://models/.*credentials.*AWS_ACCESS_KEY_ID"):
            discover(["s3://models/ref.parquet"])
        prof = build_profile(discover([str(_local(tmp_path))]), BuildOptions())
        with pytest.raises(InputError, match=r"s3://models/b.json.*access denied or no cred"):
            prof.save("s3://models/b.json")


def _local(tmp_path: Path) -> Path:
    path = tmp_path / "r.parquet"
    pq.write_table(reference_table(300), path)
    return path
