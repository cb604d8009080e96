"""``driftline demo``'s parser, apart from :mod:`driftline_demo.scenario` so that listing the
commands (``driftline --help``) does not import numpy, yaml and the demo stack; the scenario is
imported only when the demo runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

#: the first paragraph of :mod:`driftline_demo.scenario`'s docstring (a test keeps them equal)
DESCRIPTION = "`driftline demo`: the whole chain on one machine, from a model's traffic to a rollback."
DEFAULT_SEED = 7


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo (model server, sidecar, Prometheus, "
                                    "Alertmanager, receiver) on 127.0.0.1",
                       description=DESCRIPTION)
    p.add_argument("--workdir", default=".demo", help="where configs, models, logs and the audit "
                   "database go (default: .demo; emptied first)")
    p.add_argument("--keep-running", action="store_true",
                   help="after the summary keep everything running until Ctrl-C, to browse the URLs")
    p.add_argument("--no-prometheus", action="store_true",
                   help="skip Prometheus/Alertmanager and post the alerts to the receiver directly")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                   help="seed of the generated data and traffic (default %(default)s)")
    p.add_argument("--mlserver", metavar="PATH", default=os.environ.get("DRIFTLINE_MLSERVER"),
                   help="serve the models with this MLServer executable (e.g. <venv>/bin/mlserver, "
                        "with mlserver-sklearn) instead of the built-in server; env DRIFTLINE_MLSERVER")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from driftline_demo.scenario import run

    return run(args)
