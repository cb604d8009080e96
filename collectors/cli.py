"""``driftline serve``: run the sidecar (proxy, payload logger sink, ingest, /metrics).

    driftline serve --config driftline.yaml
    driftline serve --config driftline.yaml --check      # validate and exit

Every config key can also come from the environment (``DRIFTLINE_PROXY_UPSTREAM`` …, see
:mod:`driftline.config`). SIGTERM or SIGINT drains the queue, closes the open windows, flushes
OTLP and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="run the sidecar collector (proxy, ingest, /metrics)",
        description="Run the Driftline sidecar: reverse proxy, KServe payload-logger sink, "
        "native ingest and feedback endpoints, and /metrics on the metrics port.")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="YAML config (default: $DRIFTLINE_CONFIG, else environment only)")
    p.add_argument("--check", action="store_true",
                   help="validate the config and the baselines, print a summary and exit")
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="overrides metrics.listen")
    p.add_argument("--proxy-listen", metavar="HOST:PORT", help="overrides proxy.listen")
    p.add_argument("--proxy-upstream", metavar="URL", help="overrides proxy.upstream")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="overrides log_level")
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, key in (("metrics_listen", "metrics.listen"), ("proxy_listen", "proxy.listen"),
                      ("proxy_upstream", "proxy.upstream"), ("log_level", "log_level")):
        value = getattr(args, attr, None)
        if value is not None:
            out[key] = value
    return out


def _run(args: argparse.Namespace) -> int:
    import os

    from driftline.collectors.runtime import serve
    from driftline.collectors.sidecar import load_models

    from driftline.config import load_config

    path = args.config or os.environ.get("DRIFTLINE_CONFIG")
    cfg = load_config(path, overrides=_overrides(args))
    if args.check:
        models = load_models(cfg)
        for m, profile in models:
            print(f"model {m.name} version {m.version}: baseline {m.baseline} "
                  f"(id {profile.id}, {len(profile.features)} features)")
        proxy = f"{cfg.proxy.listen} -> {cfg.proxy.upstream}" if cfg.proxy else "off"
        print(f"metrics {cfg.metrics}; proxy {proxy}; OTLP {'on' if cfg.otlp.active() else 'off'}")
        print("config OK")
        return 0
    return serve(cfg, out=sys.stderr)
