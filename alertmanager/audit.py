"""The append-only audit log: every alert received, what was decided, and what was sent.

It lives in the same SQLite file as the job queue so that a decision and its job are written in
one transaction (no "queued but not audited" state after a crash). Triggers make the table
append-only. Rows never hold secrets: credentials are added to requests after the audit copy is
taken, and URLs are stored without user-info.

Decisions: ``queued``, ``acted``, ``deduplicated``, ``cooling_down``, ``dry_run``, ``refused``,
``resolved``, ``no_action``, ``retrying``, ``failed``, ``requeued``, ``cancelled``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DECISIONS: tuple[str, ...] = (
    "queued", "acted", "deduplicated", "cooling_down", "dry_run", "refused", "resolved",
    "no_action", "retrying", "failed", "requeued", "cancelled",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    decision TEXT NOT NULL,
    alertname TEXT NOT NULL DEFAULT '',
    model_name TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    starts_at TEXT NOT NULL DEFAULT '',
    dedupe_key TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    method TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    status_code INTEGER,
    request_body TEXT NOT NULL DEFAULT '',
    response_body TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_dedupe ON audit(dedupe_key);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    """One audit row. ``ts`` defaults to now when 0."""

    decision: str
    alertname: str = ""
    model_name: str = ""
    model_version: str = ""
    action: str = ""
    target: str = ""
    fingerprint: str = ""
    starts_at: str = ""
    dedupe_key: str = ""
    attempt: int = 0
    method: str = ""
    url: str = ""
    status_code: int | None = None
    request_body: str = ""
    response_body: str = ""
    detail: str = ""
    remote: str = ""
    ts: float = 0.0
    id: int = 0


_COLUMNS = tuple(f.name for f in fields(AuditEntry) if f.name != "id")


def redact_url(url: str) -> str:
    """Drop ``user:password@`` from a URL before it is stored."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def truncate(text: str | bytes | None, limit: int) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"…[{len(text) - limit} more]"


def insert(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    """Append one row (inside the caller's transaction)."""
    if entry.decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {entry.decision!r}")
    row = asdict(entry)
    row["ts"] = entry.ts or time.time()
    row["url"] = redact_url(entry.url)
    conn.execute(
        f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
        [row[c] for c in _COLUMNS],
    )


def read(db: str | Path, *, limit: int = 50, dedupe_key: str | None = None) -> list[AuditEntry]:
    """Newest ``limit`` rows, oldest first (read-only connection; safe while serving)."""
    uri = f"file:{Path(db).resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        conn.row_factory = sqlite3.Row
        where, args = "", []
        if dedupe_key:
            where, args = "WHERE dedupe_key = ?", [dedupe_key]
        rows = conn.execute(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?",
                            [*args, limit]).fetchall()
    finally:
        conn.close()
    return [AuditEntry(**{k: r[k] for k in r.keys()}) for r in reversed(rows)]  # noqa: SIM118


def to_json(entries: list[AuditEntry]) -> str:
    """JSON lines, one object per row (``driftline actions log --json``)."""
    return "\n".join(json.dumps(asdict(e), sort_keys=True) for e in entries)


def render_table(entries: list[AuditEntry]) -> Any:
    """A rich table for the terminal."""
    from rich.table import Table

    table = Table(title="driftline actions audit log", show_lines=False)
    for col in ("id", "time (UTC)", "decision", "model", "action", "target", "request", "status",
                "detail"):
        # Short columns never wrap, so a decision stays greppable in a narrow terminal.
        short = col in ("id", "time (UTC)", "decision", "action", "status")
        table.add_column(col, overflow="fold", no_wrap=short)
    for e in entries:
        when = time.strftime("%m-%d %H:%M:%S", time.gmtime(e.ts))
        model = e.model_name + (f"@{e.model_version}" if e.model_version else "")
        request = f"{e.method} {e.url}".strip()
        table.add_row(str(e.id), when, e.decision, model, e.action, e.target, request,
                      "" if e.status_code is None else str(e.status_code), e.detail)
    return table
