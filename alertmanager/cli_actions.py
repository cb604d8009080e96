"""`driftline actions`: run the Alertmanager webhook receiver, check its config, show its audit log.

    driftline actions serve --config actions.yaml [--listen HOST:PORT] [--db FILE] [--dry-run]
    driftline actions check --config actions.yaml
    driftline actions log [--config actions.yaml | --db FILE] [--format json] [--limit N]
    driftline actions verify [--config actions.yaml | --db FILE] [--head HASH]
    driftline actions export [--config actions.yaml | --db FILE] [--output FILE.jsonl]
    driftline actions pending [--config actions.yaml | --db FILE | --url URL --token-file F]
                              [--format json]
    driftline actions approve ID --reason WHY [same options]
    driftline actions reject ID --reason WHY [same options]

``pending``/``approve``/``reject`` either call the receiver's HTTP API as you (``--url`` and your
own token) or, with ``--db``/``--config``, write the database directly as ``local:<user>`` with
the admin role — whoever can write that file controls the receiver anyway.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from driftline.cli.options import add_log_level, alias
from driftline.errors import ConfigError

DEFAULT_CONFIG = "actions.yaml"


def register(sub: Any) -> None:
    p = sub.add_parser("actions", help="run the Alertmanager webhook receiver, show its audit log",
                       description="Alertmanager webhook receiver that retrains and rolls back "
                       "models, with a durable queue and an audit log.")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    s = p.add_subparsers(dest="actions_command", metavar="SUBCOMMAND")

    serve = s.add_parser("serve", help="listen for Alertmanager webhooks and act on them")
    serve.add_argument("--config", "-c", default=DEFAULT_CONFIG, metavar="FILE",
                       help="the receiver's config YAML (default %(default)s)")
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="overrides the config's listen address (port 0 = any free port)")
    serve.add_argument("--db", metavar="FILE",
                       help="SQLite file of the queue and audit log, overrides the config")
    serve.add_argument("--dry-run", action="store_true", help="record what would be done, send nothing")
    add_log_level(serve, default="info", help="log level (default info)")
    serve.set_defaults(func=_serve)

    check = s.add_parser("check", help="validate the config and exit")
    check.add_argument("--config", "-c", default=DEFAULT_CONFIG, metavar="FILE",
                       help="the receiver's config YAML (default %(default)s)")
    check.set_defaults(func=_check)

    show = s.add_parser("log", help="show the audit log")
    show.add_argument("--config", "-c", help="take the database path from this config")
    show.add_argument("--db", help="SQLite file (default: the config's database)")
    show.add_argument("--format", choices=("table", "json"), default="table",
                      help="table (default) or JSON lines")
    alias(show, "--json", "--format", const="json")
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
    exp.add_argument("--output", "-o", metavar="FILE",
                     help="output file (default: standard output)")
    alias(exp, "--out", "--output", metavar="FILE")
    exp.set_defaults(func=_export)

    def where(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", "-c", metavar="FILE",
                       help="take the database path from this config")
        q.add_argument("--db", metavar="FILE",
                       help="SQLite file of the receiver (local mode, acts as admin)")
        q.add_argument("--url", metavar="URL",
                       help="the receiver's base URL: use its HTTP API as you")
        q.add_argument("--token-file", metavar="FILE", help="your bearer token (with --url)")

    pend = s.add_parser("pending", help="list actions waiting for an approver")
    where(pend)
    pend.add_argument("--format", choices=("table", "json"), default="table",
                      help="table (default) or JSON lines")
    alias(pend, "--json", "--format", const="json")
    pend.set_defaults(func=_pending)
    for verb in ("approve", "reject"):
        d = s.add_parser(verb, help=f"{verb} a pending action (audited with your reason)")
        d.add_argument("id", type=int, help="the action id shown by `driftline actions pending`")
        d.add_argument("--reason", "-r", required=True, help="why (goes into the audit log)")
        where(d)
        d.set_defaults(func=_decide, approve=verb == "approve")


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
    import logging  # here, not at import: `driftline --help` loads every command module
    import sqlite3

    from driftline.alertmanager.receiver import WEBHOOK_PATH, Receiver

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
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


def _database_errors(fn: Any) -> Any:
    """A damaged database is a clean error naming the file, not a traceback."""
    import functools

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        import sqlite3  # when the command runs: `driftline --help` decorates every command

        try:
            return int(fn(args))
        except sqlite3.DatabaseError as exc:
            from driftline.alertmanager.store import database_error

            raise database_error(Path(args.db or "the configured database"), exc) from None

    return run


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


@_database_errors
def _verify(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    verdict = audit.verify(_db(args), head=args.head)
    print(verdict.message())
    return 0 if verdict.ok else 1


@_database_errors
def _export(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    lines = audit.export_jsonl(_db(args))
    if args.output:
        n = 0
        with open(args.output, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
                n += 1
        print(f"wrote {n} entries to {args.output}")
    else:
        for line in lines:
            print(line)
    return 0


@_database_errors
def _log(args: argparse.Namespace) -> int:
    from driftline.alertmanager import audit

    db = _db(args)
    entries = audit.read(db, limit=args.limit, dedupe_key=args.dedupe_key)
    if args.format == "json":
        if entries:
            print(audit.to_json(entries))
        return 0
    from rich.console import Console

    console = Console()
    console.print(audit.render_table(entries, width=console.width))
    return 0


def _api(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import json
    import urllib.error
    import urllib.request

    if not args.token_file:
        raise ConfigError("--url needs --token-file (your own token)", key="--token-file")
    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.token_file}: {exc.strerror}", key="--token-file") from exc
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach {args.url}: {exc}", key="--url") from exc


def _local_admin() -> Any:
    import getpass

    from driftline.alertmanager.access import Principal

    return Principal(f"local:{getpass.getuser()}", "admin", via="cli")


def _pending(args: argparse.Namespace) -> int:
    import json

    from driftline.alertmanager import approval
    from driftline.alertmanager.approval_api import job_view

    if args.url:
        status, doc = _api(args, "GET", "/api/v1/actions/pending")
        if status != 200:
            print(f"refused ({status}): {doc.get('error', doc)}", file=sys.stderr)
            return 1
        rows = doc["pending"]
    else:
        from driftline.alertmanager.store import Store

        store = Store(_db(args))
        try:
            rows = [job_view(j) for j in approval.pending(store)]
        finally:
            store.close()
    if args.format == "json":
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    if not rows:
        print("no actions are waiting for approval")
    for r in rows:
        print(f"{r['id']:>5}  {r['action']} {r['model_name']} {r['model_version']} via {r['target']}"
              f" ({r['alertname']}), expires {r['expires_at']}: {r['summary']}")
    return 0


def _decide(args: argparse.Namespace) -> int:
    verb = "approve" if args.approve else "reject"
    if args.url:
        status, doc = _api(args, "POST", f"/api/v1/actions/{args.id}/{verb}", {"reason": args.reason})
        ok, message = status == 200 and bool(doc.get("ok")), doc.get("message") or doc.get("error")
    else:
        from driftline.alertmanager import approval
        from driftline.alertmanager.store import Store

        store = Store(_db(args))
        try:
            d = approval.decide(store, args.id, args.approve, _local_admin(), args.reason)
        finally:
            store.close()
        ok, message = d.ok, d.message
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
