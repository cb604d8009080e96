"""Local paths and object-storage URIs (``s3://``, ``gs://``, ``abfs://``) behind one small API.

Every path Driftline reads or writes — data, baseline profiles, ``-o`` outputs, the sidecar's
baseline — goes through here, so each may be a URI. Object stores are reached with pyarrow's
filesystems (already a dependency): S3 and S3-compatible stores (MinIO, Ceph) with the standard
AWS variables (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` or
``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for a non-AWS endpoint); Google Cloud
Storage with ``GOOGLE_APPLICATION_CREDENTIALS`` (``STORAGE_EMULATOR_HOST`` for an emulator);
Azure with ``AZURE_STORAGE_ACCOUNT_NAME`` and
``AZURE_STORAGE_ACCOUNT_KEY`` or the Azure SDK's default chain.

Writes are atomic. Locally: a temporary file beside the target, then ``os.replace``. On an object
store: the complete content is built in memory first and sent as one object (a single PUT, or a
multipart upload that the store publishes only on completion), so a reader sees the old object
or the new one, never a part; a failure before the upload completes leaves nothing behind.

>>> is_uri("s3://bucket/ref.json"), is_uri("/data/ref.json"), is_uri("C:/x")
(True, False, False)
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from driftline.errors import InputError

SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
_FIX = {
    "s3": "check the bucket and key, and the credentials (AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and, for MinIO or another S3-compatible "
          "store, AWS_ENDPOINT_URL",
    "gs": "check the bucket and key and GOOGLE_APPLICATION_CREDENTIALS",
    "abfs": "check the container and path and AZURE_STORAGE_ACCOUNT_NAME / "
            "AZURE_STORAGE_ACCOUNT_KEY",
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
    an object is sent whole; a local file goes through :func:`driftline.io.atomic.atomic_write`
    (temporary file beside the target, the umask's mode, rename on success)."""
    p = str(path)
    if not is_uri(p):
        from driftline.io.atomic import atomic_write

        with atomic_write(p, binary=True) as fh:
            fh.write(data)
        return
    fs, inner = filesystem(p)
    try:
        with fs.open_output_stream(inner) as out:
            out.write(data)
    except OSError as exc:
        raise storage_error(exc, p, "write") from None


def list_uri(path: str) -> list[str] | None:
    """URIs of the objects a URI names: itself (an object), everything under it (a prefix or
    "directory"), or the objects matching a glob in its last parts. None when nothing exists."""
    import pyarrow.fs as pafs

    s = scheme(path)
    assert s is not None
    prefix = str(path).split("://", 1)[0] + "://"
    fs, inner = filesystem(path)
    try:
        if any(ch in inner for ch in "*?["):
            base = inner[: min(inner.index(ch) for ch in "*?[" if ch in inner)].rsplit("/", 1)[0]
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            return sorted(prefix + i.path for i in infos
                          if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, inner))
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.File:
            return [prefix + inner]
        if info.type == pafs.FileType.NotFound:
            return None
        infos = fs.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=True))
        return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File
                      and not os.path.basename(i.path).startswith((".", "_")))
    except OSError as exc:
        raise storage_error(exc, path, "list") from None

