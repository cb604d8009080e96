"""Object storage on Google Cloud Storage's API: data, baseline and report on a real GCS
emulator (``gcp-storage-emulator`` from the dev extra, started on 127.0.0.1), reached through
the same code path as ``s3://`` (pyarrow's filesystem, ``STORAGE_EMULATOR_HOST``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_storage_s3 import build_and_analyze_on_store, dropped_upload_keeps_the_old_object

from driftline.errors import ProfileError
from driftline.profile.format import BaselineProfile
from driftline_demo.emulators import gcs_exe, start_gcs

BUCKET = "models"
pytestmark = pytest.mark.skipif(
    gcs_exe() is None, reason="gcp-storage-emulator is not installed (pip install -e '.[dev]' installs it)")


@pytest.fixture(scope="module")
def gcs_host() -> Iterator[str]:
    proc, url = start_gcs(BUCKET)
    with proc:
        yield url


def test_build_and_analyze_with_every_path_on_gcs(gcs_host: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    build_and_analyze_on_store(f"gs://{BUCKET}/run-{tmp_path.name}", tmp_path)


def test_missing_gcs_object_names_the_uri(gcs_host: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    uri = f"gs://{BUCKET}/nothing-{tmp_path.name}/base.json"
    with pytest.raises(ProfileError, match=rf"{uri}: baseline profile not found.*fix"):
        BaselineProfile.load(uri)


def test_dropped_upload_keeps_the_old_object(gcs_host: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    dropped_upload_keeps_the_old_object(f"gs://{BUCKET}/drop-{tmp_path.name}/base.json",
                                        monkeypatch)
