"""Object storage on Azure Blob Storage / ADLS Gen2: data, baseline and report as ``abfs://``
objects on a real Azure Storage emulator (Azurite, installed by scripts/install-azurite.sh and
started on 127.0.0.1), reached through pyarrow's AzureFileSystem like the ``s3://`` and ``gs://``
paths; atomic writes and clear errors for a missing object or container, refused credentials,
an unknown account and an unreachable endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from engine_fixtures import reference_table
from test_storage_s3 import OPTS, build_and_analyze_on_store, dropped_upload_keeps_the_old_object

from driftline.cli import main
from driftline.errors import InputError, ProfileError
from driftline.io.readers import discover
from driftline.io.storage import _AZURITE_KEY, azure_settings, read_bytes
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile
from driftline_demo.emulators import AZURITE_ACCOUNT, AZURITE_HINT, azurite_exe, start_azurite
from driftline_demo.stack import free_port

ACCOUNT = AZURITE_ACCOUNT
CONTAINER = "models"


@pytest.fixture(scope="module")
def azurite() -> Iterator[str]:
    """Azurite's blob service (in memory) on a free loopback port, with the ``models``
    container; yields its endpoint URL. Skips, saying why, when Azurite is not installed."""
    if azurite_exe() is None:
        pytest.skip(AZURITE_HINT)
    proc, url = start_azurite(CONTAINER)
    with proc:
        yield url


_VARS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME",
         "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "DRIFTLINE_AZURE_BLOB_ENDPOINT")


@pytest.fixture
def az(azurite: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard account variables plus the endpoint override, pointing at Azurite."""
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", _AZURITE_KEY)
    monkeypatch.setenv("DRIFTLINE_AZURE_BLOB_ENDPOINT", azurite)
    return f"abfs://{CONTAINER}"


def test_build_and_analyze_with_every_path_on_abfs(az: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    remote = build_and_analyze_on_store(f"{az}/run-{tmp_path.name}", tmp_path)
    # Hadoop's form (the account in the host name, as Spark users write it) lists the same
    # objects and keeps its form in the profile's sources
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME")
    hadoop = f"abfss://{CONTAINER}@{ACCOUNT}.dfs.core.windows.net/run-{tmp_path.name}"
    files = discover([f"{hadoop}/ref/"])
    assert [f.path for f in files] == [f"{hadoop}/ref/part-0.parquet",
                                       f"{hadoop}/ref/part-1.parquet"]
    assert BaselineProfile.load(f"{hadoop}/base.json").id == remote.id


def test_connection_string_alone_reaches_the_store(az: str, azurite: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """AZURE_STORAGE_CONNECTION_STRING (the emulator's documented form, with BlobEndpoint)
    carries the account, the key and the endpoint."""
    pq.write_table(reference_table(400), tmp_path / "r.parquet")
    uri = f"{az}/conn-{tmp_path.name}/base.json"
    assert main(["baseline", "build", str(tmp_path / "r.parquet"), "-o", uri, *OPTS]) == 0
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};"
                       f"AccountKey={_AZURITE_KEY};BlobEndpoint={azurite}/{ACCOUNT};")
    assert BaselineProfile.load(uri).n_records == 400


def test_failed_build_leaves_the_old_baseline_whole(az: str, tmp_path: Path) -> None:
    """A build that fails (bad data) after a good one leaves the good object as it was: the
    write is one upload of the complete content, never a part."""
    pq.write_table(reference_table(400), tmp_path / "good.parquet")
    pq.write_table(reference_table(400).drop_columns(["p"]), tmp_path / "bad.parquet")
    uri = f"{az}/atomic-{tmp_path.name}/base.json"
    assert main(["baseline", "build", str(tmp_path / "good.parquet"), "-o", uri, *OPTS]) == 0
    before = read_bytes(uri)
    assert main(["baseline", "build", str(tmp_path / "bad.parquet"), "-o", uri, *OPTS]) == 2
    assert read_bytes(uri) == before
    fresh = f"{az}/atomic-{tmp_path.name}/never.json"
    assert main(["baseline", "build", str(tmp_path / "bad.parquet"), "-o", fresh, *OPTS]) == 2
    with pytest.raises(ProfileError, match="not found"):
        BaselineProfile.load(fresh)


def test_dropped_upload_keeps_the_old_object(az: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's Azure stream empties the blob when it opens and commits the half it got when
    closed: only the temporary object sees that."""
    dropped_upload_keeps_the_old_object(f"{az}/drop-{tmp_path.name}/base.json", monkeypatch)


def test_missing_object_and_container_name_the_uri(az: str, tmp_path: Path) -> None:
    uri = f"{az}/nothing-{tmp_path.name}/base.json"
    with pytest.raises(ProfileError, match=rf"{uri}: baseline profile not found.*fix"):
        BaselineProfile.load(uri)
    with pytest.raises(InputError, match=r"abfs://nope/x.parquet.*no such object.*"
                                         r"AZURE_STORAGE_ACCOUNT_NAME"):
        discover(["abfs://nope/x.parquet"])
    pq.write_table(reference_table(300), tmp_path / "r.parquet")
    profile = build_profile(discover([str(tmp_path / "r.parquet")]), BuildOptions())
    with pytest.raises(InputError, match=r"abfs://nope/base.json.*no such container.*fix"):
        profile.save("abfs://nope/base.json")


def test_refused_key_is_a_clear_error(az: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "A" * 4 + _AZURITE_KEY[4:])
    with pytest.raises(InputError, match=r"abfs://models/ref.parquet.*access denied.*"
                                         r"AZURE_STORAGE_ACCOUNT_KEY"):
        discover([f"{az}/ref.parquet"])
    pq.write_table(reference_table(300), tmp_path / "r.parquet")
    code = main(["baseline", "build", str(tmp_path / "r.parquet"), "-o", f"{az}/b.json", *OPTS])
    assert code == 2


def test_unknown_account_and_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputError, match=r"abfs://models/ref.parquet.*no Azure storage account"
                                         r".*AZURE_STORAGE_ACCOUNT_NAME"):
        discover(["abfs://models/ref.parquet"])
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", _AZURITE_KEY)
    monkeypatch.setenv("DRIFTLINE_AZURE_BLOB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InputError, match=r"abfs://models/ref.parquet.*unreachable.*"
                                         r"DRIFTLINE_AZURE_BLOB_ENDPOINT"):
        discover(["abfs://models/ref.parquet"])


@pytest.mark.parametrize(("env", "host", "expected"), [
    ({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=x"}, "",
     {"account_name": "acct", "sas_token": "sv=1&sig=x"}),
    ({"AZURE_STORAGE_ACCOUNT_NAME": "other"}, "acct.dfs.core.windows.net",
     {"account_name": "acct"}),
    ({"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acct;"
      "AccountKey=k==;EndpointSuffix=core.chinacloudapi.cn"}, "",
     {"account_name": "acct", "account_key": "k==",
      "blob_storage_authority": ".blob.core.chinacloudapi.cn", "blob_storage_scheme": "https",
      "dfs_storage_authority": ".dfs.core.chinacloudapi.cn", "dfs_storage_scheme": "https"}),
    ({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct;AccountKey=k;"
      "BlobEndpoint=https://acct.blob.example.net/"}, "",
     {"account_name": "acct", "account_key": "k",
      "blob_storage_authority": ".blob.example.net", "blob_storage_scheme": "https",
      "dfs_storage_authority": ".dfs.example.net", "dfs_storage_scheme": "https"}),
    ({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "",
     {"account_name": ACCOUNT, "account_key": _AZURITE_KEY,
      "blob_storage_authority": "127.0.0.1:10000", "blob_storage_scheme": "http",
      "dfs_storage_authority": "127.0.0.1:10000", "dfs_storage_scheme": "http"}),
])
def test_azure_settings_from_the_standard_variables(
        env: dict[str, str], host: str, expected: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """How each documented variable maps onto pyarrow's AzureFileSystem arguments (the
    emulator tests above exercise the account-key and BlobEndpoint forms end to end)."""
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert azure_settings(host) == expected
