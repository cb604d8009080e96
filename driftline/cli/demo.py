"""``driftline demo``: the end-to-end demo, shipped as the separate ``driftline-demo`` package.

The production wheel and image carry no demo code and no scikit-learn; this stub keeps the
command discoverable and tells a user of a plain ``pip install driftline`` what to install.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from driftline.errors import DriftlineError

INSTALL_HINT = ("the demo is the separate package driftline-demo (it needs scikit-learn): from a "
                "source checkout run `make demo`, or `pip install ./demo` and run `driftline demo` again")


def _load() -> Any:
    try:
        return importlib.import_module("driftline_demo.scenario")
    except ModuleNotFoundError as exc:
        missing = exc.name or "driftline_demo"
        raise DriftlineError(f"cannot run the demo: module {missing!r} is missing; {INSTALL_HINT}") from exc


def register(sub: Any) -> None:
    try:
        parser = importlib.import_module("driftline_demo.cli")  # the parser only: no numpy
    except ModuleNotFoundError:
        p = sub.add_parser("demo", help="run the end-to-end demo (needs the driftline-demo package)",
                           description=INSTALL_HINT)
        p.set_defaults(func=_missing)
        return
    parser.register(sub)


def _missing(args: argparse.Namespace) -> int:
    _load()
    return 0
