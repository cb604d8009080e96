"""The loopback object-store emulators the storage tests and ``python -m benchmarks storage`` run:
moto's S3 server, gcp-storage-emulator (both from the dev extra) and Azurite (installed by
scripts/install-azurite.sh). Each is started the same way everywhere: a free 127.0.0.1 port,
in-memory storage, readiness polled, and a stop that kills the process group
(:class:`driftline_demo.stack.ManagedProcess`). One place, so the tests and the benchmark run
the same servers with the same flags.

Each ``start_*`` returns the running process and its endpoint URL; ``*_exe`` returns the
executable or ``None`` when the emulator is not installed (callers skip, saying why).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from driftline_demo.stack import ManagedProcess, StackError, free_port, start_process

__all__ = ["AZURITE_ACCOUNT", "AZURITE_HINT", "AZURITE_VERSION", "azurite_exe", "gcs_exe",
           "moto_exe", "start_azurite", "start_gcs", "start_moto"]

AZURITE_VERSION = os.environ.get("DRIFTLINE_AZURITE_VERSION", "3.35.0")  # scripts/install-azurite.sh
AZURITE_ACCOUNT = "devstoreaccount1"  # Azurite's development account (its key: storage._AZURITE_KEY)
AZURITE_HINT = ("Azurite (the Azure Storage emulator) is not installed: run scripts/install-azurite.sh "
                "(make test does; it needs Node.js and npm)")


def _beside_python(name: str) -> str | None:
    """A console script of this environment (or one on PATH)."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name)


def moto_exe() -> str | None:
    return _beside_python("moto_server")


def gcs_exe() -> str | None:
    return _beside_python("gcp-storage-emulator")


def azurite_exe() -> str | None:
    """Azurite's blob service from the shared install prefix scripts/install-azurite.sh uses
    (``$DRIFTLINE_AZURITE_PREFIX`` or ``${XDG_CACHE_HOME:-~/.cache}/driftline/azurite-VERSION``),
    else from PATH; ``None`` without Node.js."""
    prefix = Path(os.environ.get("DRIFTLINE_AZURITE_PREFIX") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftline"
        / f"azurite-{AZURITE_VERSION}")
    exe = prefix / "node_modules" / ".bin" / "azurite-blob"
    found = str(exe) if exe.exists() else shutil.which("azurite-blob")
    return found if found and shutil.which("node") else None


def _need(exe: str | None, what: str) -> str:
    if exe is None:
        raise StackError(f"{what} is not installed (pip install -e '.[dev]' installs it)")
    return exe


def start_moto(env: Mapping[str, str] | None = None) -> tuple[ManagedProcess, str]:
    """moto's standalone S3 server, ready (its API answers). ``env`` adds to its environment
    (``INITIAL_NO_AUTH_ACTION_COUNT=0`` makes it check signatures from the first request)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process("moto", [_need(moto_exe(), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                         ready_url=f"{url}/moto-api/", env=env, timeout=60)
    return proc, url


def start_gcs(bucket: str) -> tuple[ManagedProcess, str]:
    """gcp-storage-emulator in memory with ``bucket`` created, ready once the bucket answers.
    Clients reach it through ``STORAGE_EMULATOR_HOST`` set to the returned URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process("gcs-emulator", [_need(gcs_exe(), "gcp-storage-emulator"), "start", "--host",
                                          "127.0.0.1", "--port", str(port), "--in-memory",
                                          "--default-bucket", bucket],
                         ready_url=f"{url}/storage/v1/b/{bucket}", timeout=60)
    return proc, url


def start_azurite(container: str, timeout: float = 60) -> tuple[ManagedProcess, str]:
    """Azurite's blob service in memory, listening, with ``container`` created; the URL is the
    blob endpoint (``DRIFTLINE_AZURE_BLOB_ENDPOINT``). Azurite has no health URL, so readiness
    is its port accepting connections."""
    exe = azurite_exe()
    if exe is None:
        raise StackError(AZURITE_HINT)
    port = free_port()
    # --skipApiVersionCheck: pyarrow's Azure SDK may speak a newer REST API version than the
    # pinned Azurite knows; the calls Driftline makes exist in both.
    proc = ManagedProcess("azurite", [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                      "--inMemoryPersistence", "--skipApiVersionCheck"])
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if not proc.running() or time.monotonic() > deadline:
                    raise StackError(f"Azurite did not start: {proc.log_text()}") from None
                time.sleep(0.1)
        import pyarrow.fs as pafs

        from driftline.io.storage import _AZURITE_KEY

        authority = f"127.0.0.1:{port}"
        pafs.AzureFileSystem(account_name=AZURITE_ACCOUNT, account_key=_AZURITE_KEY,
                             blob_storage_authority=authority, blob_storage_scheme="http",
                             dfs_storage_authority=authority, dfs_storage_scheme="http",
                             ).create_dir(container)
    except BaseException:
        proc.stop()
        raise
    return proc, f"http://{authority}"
