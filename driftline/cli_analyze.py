"""`driftline analyze`: placeholder until the command lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="analyse a data file against a baseline, window by window")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("driftline analyze: not available yet")
