"""The ``driftline`` command line.

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``, which adds
its parser and sets ``func(args) -> int``. Command modules import their heavy dependencies inside
``func`` so that ``driftline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from driftline import __version__
from driftline.errors import DriftlineError

#: (module, one line of help) in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "driftline.cli.baseline",
    "driftline.cli.analyze",
    "driftline.cli.changes",
    "driftline.collectors.cli",
    "driftline.alertmanager.cli_actions",
    "driftline.alertmanager.cli_rules",
    "driftline.dashboards.cli",
    "driftline.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Drift and proxy-accuracy monitoring for ML models, exported to Prometheus "
        "and OpenTelemetry.",
    )
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except DriftlineError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _closed_pipe() -> int:
    """The reader went away (``driftline ... | head``): stop quietly with status 0 (never 1,
    which ``--fail-on-drift`` means), whichever command was writing. stdout is pointed at
    /dev/null so that the interpreter's final flush does not raise again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
