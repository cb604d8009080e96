"""`driftline dashboards generate|push|configmap`: the Grafana dashboards, generated from the
metric catalogue, written as JSON, pushed to Grafana, or packaged as ConfigMaps."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from driftline.cli.options import alias


def register(sub: Any) -> None:
    p = sub.add_parser("dashboards", help="generate, push or package the Grafana dashboards")
    dsub = p.add_subparsers(dest="dashboards_command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--rules-config", type=Path, metavar="FILE",
                        help="rules config YAML, so panels query the same recording rules")
    g = dsub.add_parser("generate", parents=[common], help="write driftline-*.json")
    g.add_argument("--output-dir", type=Path, default=Path("."), metavar="DIR",
                   help="output directory (default: .)")
    alias(g, "--out", "--output-dir", metavar="DIR", type=Path)
    g.set_defaults(func=_generate)
    ps = dsub.add_parser("push", parents=[common], help="create or update the dashboards in Grafana")
    ps.add_argument("--url", default=os.environ.get("GRAFANA_URL"), help="Grafana URL ($GRAFANA_URL)")
    ps.add_argument("--token", default=os.environ.get("GRAFANA_TOKEN"),
                    help="service-account token ($GRAFANA_TOKEN)")
    ps.add_argument("--user", help="basic-auth user (password from $GRAFANA_PASSWORD)")
    ps.add_argument("--folder", default="Driftline", help="folder title (created if absent)")
    ps.set_defaults(func=_push)
    c = dsub.add_parser("configmap", parents=[common],
                        help="print ConfigMaps for the Grafana sidecar (grafana_dashboard: \"1\")")
    c.add_argument("--namespace", help="metadata.namespace of the ConfigMaps")
    c.add_argument("--folder", default="Driftline", help="grafana_folder annotation")
    c.set_defaults(func=_configmap)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _dashboards(args: argparse.Namespace) -> dict[str, Any]:
    from driftline.alertmanager.rules_config import load_rules_config
    from driftline.dashboards.generate import dashboards

    return dashboards(load_rules_config(args.rules_config))


def _generate(args: argparse.Namespace) -> int:
    from driftline.alertmanager.rules_config import load_rules_config
    from driftline.dashboards.generate import write

    for path in write(args.output_dir, load_rules_config(args.rules_config)):
        print(path)
    return 0


def _push(args: argparse.Namespace) -> int:
    from driftline.dashboards.provision import push
    from driftline.errors import ConfigError

    if not args.url:
        raise ConfigError("no Grafana URL", key="--url", fix="pass --url or set GRAFANA_URL")
    results = push(_dashboards(args), args.url, token=None if args.user else args.token, user=args.user,
                   password=os.environ.get("GRAFANA_PASSWORD"), folder=args.folder)
    for r in results:
        print(f"{r.uid}\tversion {r.version}\t{r.url or ''}")
    return 0


def _configmap(args: argparse.Namespace) -> int:
    from driftline.dashboards.provision import configmaps_yaml

    sys.stdout.write(configmaps_yaml(_dashboards(args), namespace=args.namespace, folder=args.folder))
    return 0
