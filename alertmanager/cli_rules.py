"""`driftline rules generate`: Prometheus rules, PrometheusRule, promtool tests and an example
Alertmanager config, from the metric catalogue and an optional rules config file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from driftline.cli.options import alias


def register(sub: Any) -> None:
    p = sub.add_parser("rules", help="generate Prometheus recording and alerting rules")
    rsub = p.add_subparsers(dest="rules_command", metavar="COMMAND")
    g = rsub.add_parser("generate", help="write driftline-rules.yaml, prometheusrule.yaml, "
                        "rules_test.yaml and alertmanager.yaml")
    g.add_argument("--config", "-c", type=Path, metavar="FILE",
                   help="rules config YAML (thresholds, for:, selectors...)")
    g.add_argument("--output-dir", type=Path, default=Path("."), metavar="DIR",
                   help="output directory (default: .)")
    alias(g, "--out", "--output-dir", metavar="DIR", type=Path)
    g.add_argument("--release", metavar="NAME", help="metadata.labels.release of the PrometheusRule "
                   "(your kube-prometheus-stack Helm release)")
    g.set_defaults(func=_generate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _generate(args: argparse.Namespace) -> int:
    from driftline.alertmanager.generate import write_files
    from driftline.alertmanager.rules_config import load_rules_config

    cfg = load_rules_config(args.config)
    if args.release:
        import dataclasses  # here: `driftline --help` imports this module

        cfg = dataclasses.replace(cfg, release=args.release)
    for path in write_files(cfg, args.output_dir):
        print(path)
    return 0
