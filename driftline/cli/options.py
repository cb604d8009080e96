"""The options several commands share, spelt once so every command says them the same way.

``--target`` is the true-label column everywhere, ``--proba`` takes ``COL`` or
``CLASS=COL,...`` everywhere, ``--output/-o`` is the file written, ``--format`` picks the
output form, ``--log-level`` accepts any case, and ``--progress/--no-progress``/``--quiet``
control the bar. Old spellings (``replay --label``, ``--to``, ``--out``, ``--json``) stay as
hidden aliases that still work and print a deprecation note on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

#: The log levels of ``--log-level``, lower case; any case is accepted.
LOG_LEVELS = ("debug", "info", "warning", "error")

PROBA_METAVAR = "COL|CLASS=COL,..."
PROBA_HELP = ("probability columns: COL, the positive-class probability of a binary model; or "
              "CLASS=COL,... one column per class")
TARGET_HELP = "true label column"


def log_level(text: str) -> str:
    """``--log-level`` in any case (``INFO``, ``info``), as its lower-case name."""
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(LOG_LEVELS)}, in any case)")
    return value


def add_log_level(p: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    p.add_argument("--log-level", type=log_level, default=default, metavar="LEVEL",
                   help=f"{help}: {'|'.join(LOG_LEVELS)}, any case")


def add_target(p: argparse.ArgumentParser, *, old: Sequence[str] = ()) -> None:
    p.add_argument("--target", metavar="COL", help=TARGET_HELP)
    for name in old:
        alias(p, name, "--target", metavar="COL")


def add_proba(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proba", metavar=PROBA_METAVAR, help=PROBA_HELP)


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr over the rows and bytes read (default: when "
                   "stderr is a terminal)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar and no summary line on stderr (errors still print)")


def deprecated(old: str, new: str) -> None:
    print(f"driftline: note: {old} is deprecated, use {new}", file=sys.stderr)


class _Alias(argparse.Action):
    """A hidden old spelling: stores into the new option's dest and says so on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str,
                 const_value: Any = None, **kwargs: Any) -> None:
        self.new = new
        self.const_value = const_value
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        deprecated(option_string or self.option_strings[0], self.new)
        setattr(namespace, self.dest, self.const_value if self.nargs == 0 else values)


def alias(p: argparse.ArgumentParser, old: str, new: str, *, const: Any = None,
          metavar: str | None = None, type: Any = None) -> None:
    """Keep ``old`` working as a hidden alias of the option ``new`` (its dest). With ``const``
    the alias is a flag that sets ``new`` to that value (``--json`` → ``--format json``)."""
    dest = new.lstrip("-").split(" ")[0].replace("-", "_")
    shown = f"{new} {const}" if const is not None else new
    if const is not None:
        p.add_argument(old, action=_Alias, dest=dest, nargs=0, new=shown, const_value=const,
                       help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    else:
        p.add_argument(old, action=_Alias, dest=dest, new=shown, metavar=metavar, type=type,
                       help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def is_alias(action: argparse.Action) -> bool:
    """Whether ``action`` is one of the hidden old spellings (the help walk skips them)."""
    return isinstance(action, _Alias)
