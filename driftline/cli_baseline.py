"""`driftline baseline`: placeholder until the command lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("baseline", help="build or show a baseline profile")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("driftline baseline: not available yet")
