"""Driftline's exception hierarchy.

    DriftlineError
    ├── InputError      bad data file, column or value; names the file, the column and the fix
    ├── ProfileError    unreadable or incompatible baseline profile
    └── ConfigError     bad configuration; names the file, the key and the fix

Errors are raised at set-up time (loading data, a profile or a config), never on the sidecar's
hot path, where bad records are counted and dropped instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DriftlineError(Exception):
    """Base class: every error Driftline raises on purpose."""


class InputError(DriftlineError):
    """A data file, column or value cannot be used."""

    def __init__(self, message: str, *, path: str | None = None, column: str | None = None,
                 fix: str | None = None) -> None:
        parts = []
        if path:
            parts.append(f"{path}:")
        if column:
            parts.append(f"column {column!r}:")
        parts.append(message)
        text = " ".join(parts)
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
        self.path = path
        self.column = column
        self.fix = fix


class ProfileError(DriftlineError):
    """A baseline profile cannot be read or does not fit the data."""


class ConfigError(DriftlineError):
    """A configuration value is wrong; the message names the file, the key and the fix."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None,
                 fix: str | None = None) -> None:
        where = ":".join(p for p in (path, key) if p)
        text = f"{where}: {message}" if where else message
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
        #: The message without file, key and fix (to re-raise with a file name added).
        self.message = message
        self.path = path
        self.key = key
        self.fix = fix


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt column name, or
    ``""``; a typo in ``--target`` should not make a person read the whole column list."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
