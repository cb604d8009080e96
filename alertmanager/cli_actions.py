"""`driftline actions`: placeholder until the command lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("actions", help="run the Alertmanager webhook receiver, show its audit log")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("driftline actions: not available yet")
