"""Output paths of the CLI, checked before any work is done.

``-o report.json`` into a directory that does not exist, or ``-o some_dir/``, used to end a long
``baseline build`` or ``analyze`` run in a traceback. :func:`output_path` refuses both up front
with an :class:`~driftline.errors.InputError` that names the option and the fix, and
:func:`writing` turns an OS error at write time (permissions, a full disk) into the same kind
of error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftline.errors import InputError


def output_path(path: str, option: str = "--output") -> Path:
    """``path`` as a Path, if a file can be written there; raises InputError otherwise. An
    object-store URI (``s3://…``) is checked when it is written (the store has no directories
    to create first)."""
    from driftline.io.storage import is_uri

    p = Path(path)
    if is_uri(path):
        return p
    if p.is_dir() or path.endswith(("/", "\\")):
        raise InputError(f"{option} {path} is a directory", path=path,
                         fix=f"name a file, e.g. {p / 'out.json'}")
    parent = p.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(f"{option} {path}: {parent} {what}", path=path,
                         fix=f"create it first (mkdir -p {parent}) or choose another path")
    return p


@contextmanager
def writing(path: str, option: str = "--output") -> Iterator[None]:
    """Report an OS error while writing ``path`` as an InputError naming it."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot write {option} {path}: {exc.strerror or exc}", path=path,
                         fix="check the permissions and free space there") from None
