"""`driftline actions`: run the Alertmanager webhook receiver, check its config, show its audit log.

    driftline actions serve --config actions.yaml [--listen HOST:PORT] [--db FILE] [--dry-run]
    driftline actions check --config actions.yaml
    driftline actions log [--config actions.yaml | --db FILE] [--json] [--limit N]
    driftline actions verify [--config actions.yaml | --db FILE] [--head HASH]
    driftline actions export [--config actions.yaml | --db FILE] [--out FILE.jsonl]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError

DEFAULT_CONFIG = "actions.yaml"


def register(sub: Any) -> None:
    p = sub.add_parser("actions", help="run the Alertmanager webhook receiver, show its audit log",
                       description="Alertmanager webhook receiver that retrains and rolls back "
                       "models, with a durable queue and an audit log.")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    s = p.add_subparsers(dest="actions_command", metavar="SUBCOMMAND")

    serve = s.add_parser("serve", help="listen for Alertmanager webhooks and act on them")
    serve.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="actions.yaml")
    serve.add_argument("--listen", help="HOST:PORT, overrides the config (port 0 = any free port)")
    serve.add_argument("--db", help="SQLite file of the queue and audit log, overrides the config")
    serve.add_argument("--dry-run", action="store_true", help="record what would be done, send nothing")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(func=_serve)

    check = s.add_parser("check", help="validate the config and exit")
    check.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    check.set_defaults(func=_check)

    show = s.add_parser("log", help="show the audit log")
    show.add_argument("--config", "-c", help="take the database path from this config")
    show.add_argument("--db", help="SQLite file (default: the config's database)")
    show.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show.add_argument("--limit", type=int, default=50, help="newest N rows (default 50)")
    show.add_argument("--dedupe-key", help="only rows of this alert instance")
    show.set_defaults(func=_log)

    ver = s.add_parser("verify", help="prove the audit log's hash chain unbroken, or name the "
                       "first altered, removed or reordered entry (exit 1)")
    ver.add_argument("--config", "-c", help="take the database path from this config")
    ver.add_argument("--db", help="SQLite file (default: the config's database)")
    ver.add_argument("--head", help="a head hash printed by an earlier verify; it must still be "
                     "in the chain (detects entries removed from the end)")
    ver.set_defaults(func=_verify)

    exp = s.add_parser("export", help="write the whole audit log as JSON lines (hashes included)")
    exp.add_argument("--config", "-c", help="take the database path from this config")
    exp.add_argument("--db", help="SQLite file (default: the config's database)")
    exp.add_argument("--out", "-o", help="output file (default: standard output)")
    exp.set_defaults(func=_export)


def _load(args: argparse.Namespace) -> Any:
    import dataclasses

    from driftline.alertmanager.actions_config import load_config, parse_listen

    cfg = load_config(args.config)
    changes: dict[str, Any] = {}
    if getattr(args, "listen", None):
        host, port = parse_listen(args.listen)
        changes.update(host=host, port=port)
    if getattr(args, "db", None):
        changes["database"] = Path(args.db)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _serve(args: argparse.Namespace) -> int:
    from driftline.alertmanager.receiver import WEBHOOK_PATH, Receiver

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _load(args)
    try:
        receiver = Receiver(cfg, dry_run=True if args.dry_run else None)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"cannot open the queue database {cfg.database}: {exc}", path=cfg.path,
                          key="database", fix="point it at a writable file (or pass --db)") from exc
    try:
        receiver.start()
    except OSError as exc:
        receiver.store.close()
        raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}", path=cfg.path,
                          key="listen", fix="choose a free port or pass --listen") from exc
    # One parseable line on stdout so scripts and tests can find the bound port.
    print(f"driftline actions: listening on {receiver.url}{WEBHOOK_PATH} "
          f"(db {cfg.database}{', dry run' if receiver.dry_run else ''})", flush=True)

    def _stop(signum: int, frame: Any) -> None:
        receiver.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    receiver.wait()
    return 0


def _check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(f"{args.config}: OK — {len(cfg.targets)} target(s), {len(cfg.routes)} route(s), "
          f"database {cfg.database}{', dry run' if cfg.dry_run else ''}")
    for r in cfg.routes:
        t = cfg.targets[r.target]
        print(f"  model_name={r.model_name} action={r.action} → {r.target} ({t.type})")
    return 0


def _db(args: argparse.Namespace) -> Path:
    if args.db:
        db = Path(args.db)
    else:
        from driftline.alertmanager.actions_config import load_config

        db = load_config(args.config or DEFAULT_CONFIG).database
    if not db.is_file():
        raise ConfigError(f"no audit database at {db}", key="--db",
                          fix="pass --db or --config pointing at the receiver's database")
    return db


def _verify(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    verdict = audit.verify(_db(args), head=args.head)
    print(verdict.message())
    return 0 if verdict.ok else 1


def _export(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    lines = audit.export_jsonl(_db(args))
    if args.out:
        n = 0
        with open(args.out, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
                n += 1
        print(f"wrote {n} entries to {args.out}")
    else:
        for line in lines:
            print(line)
    return 0


def _log(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    db = _db(args)
    entries = audit.read(db, limit=args.limit, dedupe_key=args.dedupe_key)
    if args.json:
        if entries:
            print(audit.to_json(entries))
        return 0
    from rich.console import Console

    Console().print(audit.render_table(entries))
    return 0
