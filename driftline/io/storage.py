"""Local paths and object-storage URIs (``s3://``, ``gs://``, ``abfs://``) behind one small API.

Every path Driftline reads or writes — data, baseline profiles, ``-o`` outputs, the sidecar's
baseline — goes through here, so each may be a URI. Object stores are reached with pyarrow's
filesystems (already a dependency): S3 and S3-compatible stores (MinIO, Ceph) with the standard
AWS variables (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` or
``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for a non-AWS endpoint); Google Cloud
Storage with ``GOOGLE_APPLICATION_CREDENTIALS`` (``STORAGE_EMULATOR_HOST`` for an emulator);
Azure Blob Storage / ADLS Gen2 with ``AZURE_STORAGE_CONNECTION_STRING``, or
``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``,
or the Azure SDK's default credential chain (``DRIFTLINE_AZURE_BLOB_ENDPOINT`` for an emulator
such as Azurite; see :func:`azure_settings`).

Writes are atomic. Locally: a temporary file beside the target, then ``os.replace``. On an object
store: the complete content is built in memory, uploaded as a hidden temporary object beside the
target (``dir/.name.<random>.tmp``), then renamed (ADLS Gen2) or copied server-side onto the
target and the temporary object deleted, so a reader sees the old object or the whole new one,
never a part; a failure before the rename or copy leaves the target as it was.

>>> is_uri("s3://bucket/ref.json"), is_uri("/data/ref.json"), is_uri("C:/x")
(True, False, False)
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import uuid
from pathlib import Path
from typing import Any

from driftline.errors import InputError

SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
_FIX = {
    "s3": "check the bucket and key, and the credentials (AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and, for MinIO or another S3-compatible "
          "store, AWS_ENDPOINT_URL",
    "gs": "check the bucket and key and GOOGLE_APPLICATION_CREDENTIALS",
    "abfs": "check the container and path, the account (AZURE_STORAGE_ACCOUNT_NAME or "
            "abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH) and the credentials "
            "(AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or "
            "AZURE_STORAGE_CONNECTION_STRING) and, for an emulator, DRIFTLINE_AZURE_BLOB_ENDPOINT",
    "hdfs": "check the namenode address and the path",
}


def scheme(path: str) -> str | None:
    """The URI scheme of ``path`` when it names an object store, else None (a local path)."""
    head, sep, _ = str(path).partition("://")
    if not sep:
        return None
    head = head.lower()
    if head in SCHEMES:
        return head
    if head == "file":
        return None
    raise InputError(f"unsupported storage scheme {head}://", path=path,
                     fix=f"use a local path or one of {', '.join(s + '://' for s in SCHEMES)}")


def is_uri(path: str | os.PathLike[str]) -> bool:
    return scheme(str(path)) is not None


def fix_for(path: str) -> str:
    s = scheme(path) or "file"
    key = {"gcs": "gs", "abfss": "abfs", "az": "abfs"}.get(s, s)
    return _FIX.get(key, "check the path")


def filesystem(path: str) -> tuple[Any, str]:
    """The pyarrow filesystem for a URI and the path inside it (``bucket/key``)."""
    import pyarrow.fs as pafs

    s = scheme(path)
    rest = str(path).split("://", 1)[1]
    try:
        if s == "s3":
            fs: Any = pafs.S3FileSystem(
                endpoint_override=os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None,
                region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
                connect_timeout=float(os.environ.get("DRIFTLINE_S3_CONNECT_TIMEOUT", "5")),
                request_timeout=float(os.environ.get("DRIFTLINE_S3_REQUEST_TIMEOUT", "60")),
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
            )
            return fs, rest
        if s in ("gs", "gcs"):
            return _gcs(pafs), rest
        if s in ("abfs", "abfss", "az"):
            container, _, key = rest.partition("/")
            container, _, host = container.partition("@")
            settings = azure_settings(host)
            if not hasattr(pafs, "AzureFileSystem"):
                raise ImportError(f"pyarrow {_pyarrow_version()} has no AzureFileSystem: "
                                  "install pyarrow 16 or newer for abfs://")
            return pafs.AzureFileSystem(**settings), f"{container}/{key}" if key else container
        fs, inner = pafs.FileSystem.from_uri(str(path))
        return fs, inner
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise InputError(f"cannot open the object store: {_short(exc)}", path=path,
                         fix=fix_for(path)) from None


def _gcs(pafs: Any) -> Any:
    """Google Cloud Storage with the default credentials, or the emulator named by
    ``STORAGE_EMULATOR_HOST`` (the variable Google's client libraries read, e.g.
    ``http://127.0.0.1:9023``; anonymous). Retries give up after
    ``DRIFTLINE_GCS_RETRY_SECONDS`` (15) so an unreachable store fails instead of hanging."""
    import datetime

    limit = datetime.timedelta(seconds=float(os.environ.get("DRIFTLINE_GCS_RETRY_SECONDS", "15")))
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if host:
        head, sep, rest = host.partition("://")
        return pafs.GcsFileSystem(anonymous=True, endpoint_override=rest if sep else head,
                                  scheme=head if sep else "http", retry_time_limit=limit)
    return pafs.GcsFileSystem(retry_time_limit=limit)


def _pyarrow_version() -> str:
    import pyarrow

    return str(pyarrow.__version__)


def _connection_string(text: str) -> dict[str, str]:
    """``Key=Value;...`` of an Azure Storage connection string (values may hold ``=``)."""
    parts = (p.partition("=") for p in text.split(";") if p.strip())
    return {k.strip().lower(): v.strip() for k, _, v in parts}


# Azurite's documented development account (public, the same in every installation).
_AZURITE_ACCOUNT = "devstoreaccount1"
_AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
                "K1SZFPTOtr/KBHBeksoGMGw==")


def azure_settings(host: str = "") -> dict[str, Any]:
    """Keyword arguments of pyarrow's ``AzureFileSystem`` from the standard Azure variables.

    ``host`` is the part after ``@`` in ``abfs://container@account.dfs.core.windows.net/path``
    (Hadoop's form, the one Spark users write); its first label is the account. The plain
    ``abfs://container/path`` (fsspec's form) takes the account from the environment:

    * ``AZURE_STORAGE_CONNECTION_STRING`` — ``AccountName``, ``AccountKey`` or
      ``SharedAccessSignature``, ``BlobEndpoint`` / ``DefaultEndpointsProtocol`` /
      ``EndpointSuffix``; ``UseDevelopmentStorage=true`` means Azurite on 127.0.0.1:10000;
    * else ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or
      ``AZURE_STORAGE_SAS_TOKEN``; with neither, the Azure SDK's default credential chain
      (``AZURE_CLIENT_ID`` / ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_SECRET``, managed identity,
      the Azure CLI's login);
    * ``DRIFTLINE_AZURE_BLOB_ENDPOINT`` (e.g. ``http://127.0.0.1:10000``) overrides the
      endpoint, for an emulator; an endpoint with no account in its host name is addressed the
      emulator's way, ``http://HOST:PORT/ACCOUNT/CONTAINER``.

    The same endpoint serves the Data Lake (``dfs``) calls.
    """
    conn = _connection_string(os.environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    env = os.environ.get
    endpoint = env("DRIFTLINE_AZURE_BLOB_ENDPOINT") or conn.get("blobendpoint", "")
    if conn.get("usedevelopmentstorage", "").lower() == "true":
        account, key, sas = _AZURITE_ACCOUNT, _AZURITE_KEY, ""
        endpoint = endpoint or "http://127.0.0.1:10000"
    else:
        account = (host.split(".", 1)[0] if host else "") or conn.get("accountname") \
            or env("AZURE_STORAGE_ACCOUNT_NAME") or ""
        key = conn.get("accountkey") or env("AZURE_STORAGE_ACCOUNT_KEY") or ""
        sas = conn.get("sharedaccesssignature") or env("AZURE_STORAGE_SAS_TOKEN") or ""
    if not account:
        raise ValueError("no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME or write "
                         "abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH")
    out: dict[str, Any] = {"account_name": account}
    if key:
        out["account_key"] = key
    elif sas:
        out["sas_token"] = sas.lstrip("?")
    if endpoint:
        head, sep, rest = endpoint.partition("://")
        authority = (rest if sep else head).split("/", 1)[0]
        proto = head if sep else "https"
        if authority.lower().startswith(account.lower() + "."):
            authority = authority[len(account):]  # ".blob.core.windows.net": account in the host
        dfs = authority.replace(".blob.", ".dfs.", 1)
        out.update(blob_storage_authority=authority, blob_storage_scheme=proto,
                   dfs_storage_authority=dfs, dfs_storage_scheme=proto)
    elif conn.get("endpointsuffix"):
        proto = conn.get("defaultendpointsprotocol", "https")
        out.update(blob_storage_authority=".blob." + conn["endpointsuffix"],
                   dfs_storage_authority=".dfs." + conn["endpointsuffix"],
                   blob_storage_scheme=proto, dfs_storage_scheme=proto)
    return out


def uri_of(path: str, inner: str) -> str:
    """The URI, in the form ``path`` was written in, of ``inner`` (a path inside the
    filesystem :func:`filesystem` gave for ``path``): listings keep ``container@host``."""
    head, _, rest = str(path).partition("://")
    first = rest.split("/", 1)[0]
    if "@" in first and scheme(path) in ("abfs", "abfss", "az"):
        container, _, key = inner.partition("/")
        return f"{head}://{container}@{first.split('@', 1)[1]}/{key}"
    return f"{head}://{inner}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def storage_error(exc: BaseException, path: str, what: str) -> InputError:
    """An object store's error as an InputError naming the path and the likely fix."""
    text = _short(exc)
    low = text.lower()
    if "network_connection" in low or "could not connect" in low or "resolve host" in low \
            or "timed out" in low or "timeout" in low:
        reason = "store unreachable"
    elif "credential" in low or "access denied" in low or "accessdenied" in low \
            or re.search(r"\b403\b", low) or "signature" in low or "access key" in low \
            or "access_key" in low or "accesskey" in low or "expiredtoken" in low \
            or "expired_token" in low:
        reason = "access denied or no credentials"
    elif "nosuchbucket" in low or "bucket does not exist" in low or "no such bucket" in low:
        reason = "no such bucket"
    elif "containernotfound" in low or "container does not exist" in low:
        reason = "no such container"
    elif "not found" in low or "nosuchkey" in low or "path does not exist" in low:
        reason = "no such object"
    else:
        reason = "storage error"
    return InputError(f"cannot {what}: {reason} ({text})", path=path, fix=fix_for(path))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a local file or an object (FileNotFoundError when it is missing)."""
    p = str(path)
    if not is_uri(p):
        return Path(p).read_bytes()
    import pyarrow.fs as pafs

    fs, inner = filesystem(p)
    try:
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(p)
        with fs.open_input_stream(inner) as fh:
            return bytes(fh.read())
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise storage_error(exc, p, "read") from None


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that a reader sees the old content or all of the new (module doc):
    an object goes through a hidden temporary object and a server-side rename or copy; a
    local file goes through :func:`driftline.io.atomic.atomic_write`
    (temporary file beside the target, the umask's mode, rename on success)."""
    p = str(path)
    if not is_uri(p):
        from driftline.io.atomic import atomic_write

        with atomic_write(p, binary=True) as fh:
            fh.write(data)
        return
    fs, inner = filesystem(p)
    head, sep, name = inner.rpartition("/")
    if not sep:  # a bare bucket or container: the store refuses it with its own message
        head, name = inner, ""
    temp = f"{head}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        # Never stream into the target itself: pyarrow's Azure stream replaces the blob with an
        # empty one when it opens and commits what was written when it is closed or collected,
        # even after an error; S3 and GCS streams also complete on close. The temporary object
        # (hidden from listings by its leading dot) takes that risk; the target only ever gets
        # a complete object by a server-side rename or copy.
        with fs.open_output_stream(temp) as out:
            out.write(data)
        try:
            fs.move(temp, inner)  # a rename on ADLS Gen2; copy then delete on S3 and GCS
            return
        except (NotImplementedError, OSError):
            fs.copy_file(temp, inner)  # Blob Storage without hierarchical namespace
    except OSError as exc:
        _discard(fs, temp)
        raise storage_error(exc, p, "write") from None
    _discard(fs, temp)


def _discard(fs: Any, path: str) -> None:
    """Delete a temporary object if it is there (best effort: the write's outcome stands)."""
    with contextlib.suppress(OSError):
        fs.delete_file(path)


def list_uri(path: str) -> list[str] | None:
    """URIs of the objects a URI names: itself (an object), everything under it (a prefix or
    "directory"), or the objects matching a glob in its last parts. None when nothing exists."""
    import pyarrow.fs as pafs

    assert scheme(path) is not None
    fs, inner = filesystem(path)
    try:
        if any(ch in inner for ch in "*?["):
            base = inner[: min(inner.index(ch) for ch in "*?[" if ch in inner)].rsplit("/", 1)[0]
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            return sorted(uri_of(path, i.path) for i in infos
                          if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, inner))
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.File:
            return [str(path)]
        if info.type == pafs.FileType.NotFound:
            return None
        infos = fs.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=True))
        return sorted(uri_of(path, i.path) for i in infos if i.type == pafs.FileType.File
                      and not os.path.basename(i.path).startswith((".", "_")))
    except OSError as exc:
        raise storage_error(exc, path, "list") from None

