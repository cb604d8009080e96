"""Atomic output files that get the permissions any Unix tool would give them.

``tempfile.mkstemp`` creates its file mode 0600 whatever the umask, so renaming it into place
left every baseline and report readable only by its owner (a CI artefact or a shared baseline
then failed for everyone else). :func:`atomic_write` writes beside the target, sets the mode an
``open(path, "w")`` would have given (``0666`` minus the umask, or the existing file's mode when
it replaces one) and renames on success only: a failure never leaves a half-written file.

An object-store URI (``s3://bucket/key``, :mod:`driftline.io.storage`) has no rename: the content
is kept in memory and sent as one object when the block ends without error, which the store
publishes whole or not at all (a single PUT, or a multipart upload completed at the end).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "creation_mode"]


def creation_mode() -> int:
    """``0666`` minus the process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, binary: bool = False) -> Iterator[Any]:
    """A text (or, with ``binary``, bytes) file handle whose content replaces ``path`` when the
    block ends without error."""
    from driftline.io.storage import is_uri, write_atomic

    if is_uri(path):
        buf: Any = io.BytesIO() if binary else io.StringIO()
        yield buf
        data = buf.getvalue()
        write_atomic(path, data if binary else data.encode("utf-8"))
        return
    target = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = creation_mode()
    import tempfile  # here: every command module imports this one, `--help` included

    fd, tmp = tempfile.mkstemp(prefix=".driftline-", suffix=".tmp", dir=target.parent or ".")
    try:
        os.fchmod(fd, mode)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
