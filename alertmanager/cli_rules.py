"""`driftline rules`: placeholder until the command lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("rules", help="generate Prometheus recording and alerting rules")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("driftline rules: not available yet")
