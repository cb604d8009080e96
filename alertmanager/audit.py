"""The append-only audit log: every alert received, what was decided, and what was sent.

It lives in the same SQLite file as the job queue so that a decision and its job are written in
one transaction (no "queued but not audited" state after a crash). Triggers make the table
append-only. Rows never hold secrets: credentials are added to requests after the audit copy is
taken, and URLs are stored without user-info, also where a detail or an answer quotes one.

Decisions: ``queued``, ``acted``, ``deduplicated``, ``cooling_down``, ``dry_run``, ``refused``,
``resolved``, ``no_action``, ``retrying``, ``failed``, ``requeued``, ``cancelled``,
``chain_started``, and for routes that need a person's yes: ``awaiting_approval``,
``approval_notified``, ``approved``, ``rejected``, ``expired``, ``approval_refused``.

Triggers stop accidental edits, not a person with the file. So every row also carries
``prev_hash`` (the hash of the row before it) and ``hash`` = SHA-256 over ``prev_hash`` and the
row's own canonical JSON, id included: :func:`verify` recomputes the chain and names the first
row that was altered, removed or moved. A database written before hashing existed gets one
``chain_started`` row whose ``prev_hash`` is the chain computed over the old rows, so from then on
they are covered too. Deleting rows at the *end* leaves a valid shorter chain; keep the head hash
that ``driftline actions verify`` prints (or an export) elsewhere and pass it back with ``--head``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from driftline.redact import redact_text
from driftline.redact import redact_url as redact_url  # re-exported: audit.redact_url

DECISIONS: tuple[str, ...] = (
    "queued", "acted", "deduplicated", "cooling_down", "dry_run", "refused", "resolved",
    "no_action", "retrying", "failed", "requeued", "cancelled", "chain_started",
    "awaiting_approval", "approval_notified", "approved", "rejected", "expired", "approval_refused",
)
#: ``prev_hash`` of the first row of a new log.
GENESIS = "0" * 64

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
    remote TEXT NOT NULL DEFAULT '',
    baseline_id TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL DEFAULT ''
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
    baseline_id: str = ""
    #: Who made an approval decision (``name (role) via api|cli``); empty for the machine's rows.
    actor: str = ""
    ts: float = 0.0
    id: int = 0
    prev_hash: str = ""
    hash: str = ""


_COLUMNS = tuple(f.name for f in fields(AuditEntry) if f.name not in ("id", "prev_hash", "hash"))
#: Columns added after the first release; old databases get them in :func:`migrate`.
_ADDED = {"baseline_id": "TEXT NOT NULL DEFAULT ''", "actor": "TEXT NOT NULL DEFAULT ''",
          "prev_hash": "TEXT NOT NULL DEFAULT ''", "hash": "TEXT NOT NULL DEFAULT ''"}


def entry_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 of ``prev_hash`` and the row's canonical JSON: id and every column but the two
    hashes, sorted keys, empty values left out — so a column added later (empty in old rows)
    keeps every old hash valid."""
    body = {k: row[k] for k in ("id", *_COLUMNS) if row.get(k) not in ("", None)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def migrate(conn: sqlite3.Connection) -> str | None:
    """Bring an older audit table up to the hash chain (inside the caller's transaction).

    Adds missing columns; when rows without hashes end the log, appends a ``chain_started`` row
    anchoring them. Returns a message saying so, or None when nothing had to be done.
    """
    have = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
    for col, decl in _ADDED.items():
        if col not in have:
            conn.execute(f"ALTER TABLE audit ADD COLUMN {col} {decl}")
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    if last is None or last[1]:
        return None
    old = conn.execute("SELECT count(*) FROM audit WHERE hash = ''").fetchone()[0]
    detail = (f"hash chain started: the {old} earlier entr{'y was' if old == 1 else 'ies were'} "
              "written before hashing; this entry's prev_hash anchors them")
    insert(conn, AuditEntry(decision="chain_started", detail=detail))
    return detail


def baseline_of(context: Mapping[str, Any]) -> str:
    """The baseline id an alert concerns: its ``baseline_id`` label, else annotation, else ""."""
    for key in ("labels", "annotations"):
        value = context.get(key, {}).get("baseline_id", "")
        if value:
            return str(value)
    return ""


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
    # Details and answers may quote a URL (an HTTP client's error message): no user-info.
    row["detail"] = redact_text(entry.detail)
    row["response_body"] = redact_text(entry.response_body)
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    if last is None:
        row["id"], prev = 1, GENESIS
    else:
        row["id"] = int(last[0]) + 1
        # An unhashed tail only exists before migrate(); chain it virtually so it is anchored.
        prev = last[1] or _virtual_head(conn)
    row["prev_hash"], row["hash"] = prev, entry_hash(prev, row)
    cols = ("id", *_COLUMNS, "prev_hash", "hash")
    conn.execute(f"INSERT INTO audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                 [row[c] for c in cols])


def _rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]
    finally:
        conn.row_factory = None


def _virtual_head(conn: sqlite3.Connection) -> str:
    prev = GENESIS
    for r in _rows(conn):
        prev = r["hash"] or entry_hash(prev, r)
    return prev


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`verify`: ``ok``, how many rows, the head hash, the first bad row."""

    ok: bool
    entries: int
    head: str
    unhashed: int = 0
    bad_id: int | None = None
    problem: str = ""

    def message(self) -> str:
        if not self.ok:
            return f"audit log BROKEN at entry {self.bad_id}: {self.problem}"
        pre = (f"; the first {self.unhashed} entries predate hashing and are anchored by the "
               "chain_started entry") if self.unhashed else ""
        return f"audit log OK: {self.entries} entries, unbroken hash chain, head {self.head}{pre}"


def verify(db: str | Path, head: str | None = None) -> Verdict:
    """Recompute the hash chain of ``db`` (read-only) and name the first row that breaks it.

    ``head``: a head hash recorded earlier; it must still be in the chain (catches rows removed
    from the end, which a chain alone cannot see).
    """
    conn = _connect_ro(db)
    try:
        rows = _rows(conn)
    finally:
        conn.close()
    prev, prev_id, unhashed, seen_head = GENESIS, 0, 0, head is None
    chained = False
    for r in rows:
        rid = int(r["id"])
        if rid != prev_id + 1:
            return Verdict(False, len(rows), prev, unhashed, rid,
                           f"entries {prev_id + 1}–{rid - 1} are missing (removed)"
                           if rid > prev_id + 1 else f"entry {rid} is out of order")
        if not r["hash"]:
            if chained:
                return Verdict(False, len(rows), prev, unhashed, rid,
                               "has no hash although the chain had started (written or "
                               "altered outside Driftline)")
            unhashed += 1
            prev, prev_id = entry_hash(prev, r), rid
            continue
        chained = True
        if r["prev_hash"] != prev:
            return Verdict(False, len(rows), prev, unhashed, rid,
                           f"does not follow entry {prev_id}: entry {prev_id} was altered, or "
                           "entries were removed or reordered")
        if entry_hash(r["prev_hash"], r) != r["hash"]:
            return Verdict(False, len(rows), prev, unhashed, rid,
                           "its content was altered after it was written")
        prev, prev_id = r["hash"], rid
        seen_head = seen_head or prev == head
    if not seen_head:
        return Verdict(False, len(rows), prev, unhashed, prev_id + 1,
                       f"the recorded head {head} is not in the chain: entries after it were removed")
    return Verdict(True, len(rows), prev, unhashed)


def _connect_ro(db: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True, timeout=5.0)


def export_jsonl(db: str | Path) -> Iterator[str]:
    """Every row, oldest first, as one JSON object per line (hashes included), for archiving."""
    conn = _connect_ro(db)
    try:
        rows = _rows(conn)
    finally:
        conn.close()
    for r in rows:
        yield json.dumps(r, sort_keys=True, ensure_ascii=False)


def read(db: str | Path, *, limit: int = 50, dedupe_key: str | None = None) -> list[AuditEntry]:
    """Newest ``limit`` rows, oldest first (read-only connection; safe while serving)."""
    conn = _connect_ro(db)
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
    """JSON lines, one object per row (``driftline actions log --format json``)."""
    return "\n".join(json.dumps(asdict(e), sort_keys=True) for e in entries)


def render_table(entries: list[AuditEntry], width: int | None = None) -> Any:
    """A rich table for the terminal. Below 120 columns the model, target, request and detail
    share one folded column, so id, time, decision and action stay whole at 80 columns."""
    from rich.table import Table

    table = Table(title="driftline actions audit log", show_lines=False)
    narrow = width is not None and width < 120
    cols = (("id", "time (UTC)", "decision", "action", "model · request · detail") if narrow else
            ("id", "time (UTC)", "decision", "model", "action", "target", "request", "status",
             "detail"))
    for col in cols:
        # Short columns never wrap, so a decision stays greppable in a narrow terminal.
        short = col in ("id", "time (UTC)", "decision", "action", "status")
        table.add_column(col, overflow="fold", no_wrap=short)
    for e in entries:
        when = time.strftime("%m-%d %H:%M:%S", time.gmtime(e.ts))
        model = e.model_name + (f"@{e.model_version}" if e.model_version else "")
        request = f"{e.method} {e.url}".strip()
        status = "" if e.status_code is None else str(e.status_code)
        if narrow:
            rest = [model, f"target {e.target}" if e.target else "",
                    f"{request} → {status}" if status else request, e.detail]
            table.add_row(str(e.id), when, e.decision, e.action,
                          "\n".join(part for part in rest if part))
        else:
            table.add_row(str(e.id), when, e.decision, model, e.action, e.target, request,
                          status, e.detail)
    return table
