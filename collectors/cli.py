"""``driftline serve``: run the sidecar (proxy, payload logger sink, ingest, /metrics).

    driftline serve --config driftline.yaml
    driftline serve --config driftline.yaml --check      # validate and exit
    driftline replay data.parquet --url http://127.0.0.1:9108 --model-name car-loan

Every config key can also come from the environment (``DRIFTLINE_PROXY_UPSTREAM`` …, see
:mod:`driftline.config`). SIGTERM or SIGINT drains the queue, closes the open windows, flushes
OTLP and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftline.cli.argtypes import positive_int
from driftline.cli.options import add_log_level, add_proba, add_progress, add_target, alias


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
    add_log_level(p, default=None, help="overrides log_level")
    p.set_defaults(func=_run)

    r = sub.add_parser(
        "replay", help="replay a data file into a running sidecar's /ingest",
        description="Post the rows of Parquet/CSV/JSONL/Arrow files to a running `driftline "
        "serve` (POST /ingest), waiting and retrying when its queue is full.")
    r.add_argument("data", nargs="+", metavar="DATA", help="files, directories or quoted globs")
    r.add_argument("--url", default="http://127.0.0.1:9108", metavar="URL",
                   help="the sidecar's metrics port (default %(default)s)")
    alias(r, "--to", "--url", metavar="URL")
    r.add_argument("--model-name", required=True, metavar="NAME",
                   help="the model the records belong to (a name in the sidecar's config)")
    r.add_argument("--model-version", metavar="V",
                   help="its version (default: the one in the sidecar's config)")
    r.add_argument("--prediction", metavar="COL", help="predicted class (or value) column")
    add_proba(r)
    r.add_argument("--id", metavar="COL", help="request id column (for delayed labels)")
    add_target(r, old=("--label",))
    r.add_argument("--timestamp", metavar="COL", help="event time column (Unix seconds)")
    r.add_argument("--batch-size", type=positive_int, default=500, metavar="N",
                   help="records per POST (default %(default)s)")
    r.add_argument("--rate", type=float, metavar="N",
                   help="records per second (default: as fast as accepted)")
    add_progress(r)
    r.set_defaults(func=_replay)


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
    from driftline.redact import redact_url

    path = args.config or os.environ.get("DRIFTLINE_CONFIG")
    cfg = load_config(path, overrides=_overrides(args))
    if args.check:
        models = load_models(cfg)
        for m, profile in models:
            print(f"model {m.name} version {m.version}: baseline {m.baseline} "
                  f"(id {profile.id}, {len(profile.features)} features)")
        proxy = (f"{cfg.proxy.listen} -> {redact_url(cfg.proxy.upstream)}" if cfg.proxy
                 else "off")
        print(f"metrics {cfg.metrics}; proxy {proxy}; OTLP {'on' if cfg.otlp.active() else 'off'}")
        print("config OK")
        return 0
    return serve(cfg, out=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    from driftline.collectors.replay import ReplayColumns, replay
    from driftline.io.progress import wanted

    cols = ReplayColumns(prediction=args.prediction, id=args.id, label=args.target,
                         timestamp=args.timestamp, **_proba_columns(args.proba))
    res = replay(args.data, args.url, model_name=args.model_name,
                 model_version=args.model_version, columns=cols, batch_size=args.batch_size,
                 rate=args.rate, progress=wanted(args.progress, quiet=args.quiet))
    if not args.quiet:
        print(f"replayed {res.records} records in {res.requests} requests "
              f"({res.retries} retries on a full queue, {res.rejected} rejected)")
    return 0 if res.rejected == 0 else 1


def _proba_columns(text: str | None) -> dict[str, Any]:
    """``--proba`` as ``baseline build`` takes it: ``COL`` or ``CLASS=COL,...``. The old
    replay form ``COL,COL,...`` (one column per class, in the baseline's class order) still
    works, with a deprecation note."""
    from driftline.cli.options import deprecated
    from driftline.profile.build import parse_proba

    if text and "=" not in text and "," in text:
        deprecated("--proba COL,COL,...", "--proba CLASS=COL,...")
        return {"probabilities": tuple(c.strip() for c in text.split(",") if c.strip())}
    binary, multi = parse_proba(text)
    if binary:
        return {"probabilities": (binary,)}
    return {"probability_map": tuple(multi.items())}
