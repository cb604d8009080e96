"""The durable job queue: SQLite in WAL mode with ``synchronous=FULL`` (every commit is fsync'd).

Why SQLite: the receiver must answer Alertmanager within a second yet never lose or repeat an
action, across crashes and restarts. A row in ``jobs`` is written — together with its audit row,
in one transaction — before the HTTP 200 goes out. ``dedupe_key`` is UNIQUE, so the same alert
(``fingerprint`` + ``startsAt``) can be admitted once, ever. The per-(model, action) cooldown is
checked inside the same ``BEGIN IMMEDIATE`` transaction, so two concurrent webhooks cannot both
pass it.

Job states: ``pending`` → ``running`` → ``done`` | ``failed`` (``pending`` again between retries),
or ``dry_run`` straight away, or ``cancelled`` when the alert resolves before the first attempt.
A job found ``running`` at start-up was interrupted by a crash and goes back to ``pending``.
A route with ``require_approval`` admits its job as ``awaiting_approval``; an approver moves it to
``pending`` (then as above) or ``rejected``, and past ``expires_at`` it becomes ``expired``
(:mod:`.approval`). The worker only ever claims ``pending`` jobs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.alertmanager import audit
from driftline.alertmanager.audit import AuditEntry
from driftline.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    context TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '{}',
    expires_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, not_before);
CREATE INDEX IF NOT EXISTS jobs_cooldown ON jobs(model_name, action, created_at);
"""

#: States that count towards a cooldown (a failed or rejected action does not block the next
#: alert; one waiting for approval does, so a flapping alert cannot pile up requests).
_COOLDOWN_STATES = ("pending", "running", "done", "dry_run", "awaiting_approval")


def dedupe_key(fingerprint: str, starts_at: str) -> str:
    """Stable id of one alert instance; also used as Airflow ``dag_run_id`` suffix."""
    return hashlib.sha256(f"{fingerprint}|{starts_at}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Candidate:
    """An alert that a route maps to an action, waiting for the dedupe and cooldown check."""

    dedupe_key: str
    fingerprint: str
    starts_at: str
    alertname: str
    model_name: str
    model_version: str
    action: str
    target: str
    cooldown: float
    dry_run: bool
    not_before: float
    context: dict[str, Any]
    #: For dry runs: the request that would be sent (method, url, body) for the audit row.
    planned: tuple[str, str, str] = ("", "", "")
    remote: str = ""
    #: Absolute expiry of the approval request when the route requires approval, else None.
    approval_expires: float | None = None


@dataclass
class Job:
    id: int
    dedupe_key: str
    fingerprint: str
    starts_at: str
    alertname: str
    model_name: str
    model_version: str
    action: str
    target: str
    state: str
    attempts: int
    not_before: float
    context: dict[str, Any]
    memo: dict[str, Any] = field(default_factory=dict)
    expires_at: float = 0.0

    def audit(self, decision: str, **kw: Any) -> AuditEntry:
        return AuditEntry(decision=decision, alertname=self.alertname, model_name=self.model_name,
                          model_version=self.model_version, action=self.action, target=self.target,
                          fingerprint=self.fingerprint, starts_at=self.starts_at,
                          dedupe_key=self.dedupe_key, attempt=self.attempts,
                          baseline_id=audit.baseline_of(self.context), **kw)


def database_error(path: Path, exc: BaseException) -> ConfigError:
    """A damaged or foreign database file as an error naming it and the way out."""
    return ConfigError(f"the actions database {path} is damaged or not a Driftline database "
                       f"({exc})", key="database",
                       fix=f"restore {path} from a backup, or move it aside to start a new one "
                           "(`driftline actions export --db` first saves what can still be read)")


class Store:
    """One SQLite connection behind a lock; fine for the receiver's few writes per second."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0,
                                     check_same_thread=False)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise database_error(self.path, exc) from None

    def _open(self) -> None:
        # A damaged page must stop the receiver at start-up, not surface as a 503 per webhook
        # (which Alertmanager retries forever) or lose actions later.
        check = self._conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in check[:3]))
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA + audit.SCHEMA)
        with self._tx() as conn:
            if "expires_at" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}:
                conn.execute("ALTER TABLE jobs ADD COLUMN expires_at REAL NOT NULL DEFAULT 0")
            #: Set when an audit log written before hashing got its chain started on open.
            self.migrated = audit.migrate(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions ------------------------------------------------------------------------
    def _tx(self) -> _Tx:
        return _Tx(self._conn, self._lock)

    def transaction(self) -> _Tx:
        """``with store.transaction() as conn:`` — one ``BEGIN IMMEDIATE`` … ``COMMIT``."""
        return self._tx()

    def record(self, entries: Iterable[AuditEntry]) -> None:
        """Append audit rows in one durable transaction."""
        with self._tx() as conn:
            for e in entries:
                audit.insert(conn, e)

    def admit(self, candidates: Sequence[Candidate], notes: Sequence[AuditEntry] = (),
              now: float | None = None, cancel: Sequence[str] = ()) -> list[str]:
        """Dedupe, cooldown and enqueue ``candidates``, append ``notes`` and cancel the
        never-attempted jobs of the ``cancel`` dedupe keys (their alert resolved), all in one
        fsync'd transaction. Returns the decision for each candidate, in order."""
        now = time.time() if now is None else now
        decisions: list[str] = []
        with self._tx() as conn:
            for e in notes:
                audit.insert(conn, e)
            for key in cancel:
                row = conn.execute("SELECT * FROM jobs WHERE dedupe_key = ? AND state IN "
                                   "('pending', 'awaiting_approval') AND attempts = 0",
                                   (key,)).fetchone()
                if row is not None:
                    conn.execute("UPDATE jobs SET state = 'cancelled', updated_at = ? WHERE id = ?",
                                 (now, row[0]))
                    audit.insert(conn, _job(row).audit(
                        "cancelled", detail="the alert resolved before the action ran", ts=now))
            for c in candidates:
                decision, detail = self._admit_one(conn, c, now)
                method, url, body = c.planned if decision == "dry_run" else ("", "", "")
                audit.insert(conn, AuditEntry(
                    decision=decision, alertname=c.alertname, model_name=c.model_name,
                    model_version=c.model_version, action=c.action, target=c.target,
                    fingerprint=c.fingerprint, starts_at=c.starts_at, dedupe_key=c.dedupe_key,
                    method=method, url=url, request_body=body, detail=detail, remote=c.remote,
                    baseline_id=audit.baseline_of(c.context), ts=now))
                decisions.append(decision)
        return decisions

    def _admit_one(self, conn: sqlite3.Connection, c: Candidate, now: float) -> tuple[str, str]:
        row = conn.execute("SELECT state, created_at FROM jobs WHERE dedupe_key = ?",
                           (c.dedupe_key,)).fetchone()
        if row is not None:
            return "deduplicated", f"already {row[0]} (first received {_iso(row[1])})"
        if c.cooldown > 0:
            marks = ",".join("?" * len(_COOLDOWN_STATES))
            last = conn.execute(
                f"SELECT max(created_at) FROM jobs WHERE model_name = ? AND action = ? "
                f"AND state IN ({marks}) AND created_at > ?",
                (c.model_name, c.action, *_COOLDOWN_STATES, now - c.cooldown)).fetchone()[0]
            if last is not None:
                return "cooling_down", (f"{c.action} for {c.model_name} ran at {_iso(last)}; "
                                        f"cooldown {c.cooldown:g}s")
        waits = c.approval_expires is not None and not c.dry_run
        state = "dry_run" if c.dry_run else "awaiting_approval" if waits else "pending"
        cur = conn.execute(
            "INSERT INTO jobs (dedupe_key, fingerprint, starts_at, alertname, model_name, "
            "model_version, action, target, state, not_before, created_at, updated_at, context, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.dedupe_key, c.fingerprint, c.starts_at, c.alertname, c.model_name, c.model_version,
             c.action, c.target, state, c.not_before, now, now, json.dumps(c.context),
             c.approval_expires or 0.0))
        if c.dry_run:
            return "dry_run", "dry run: nothing sent"
        if waits:
            return "awaiting_approval", (f"action id {cur.lastrowid}: needs an approver's yes "
                                         f"before {_iso(c.approval_expires or 0.0)}")
        return "queued", f"runs after {_iso(c.not_before)}" if c.not_before > now else ""

    # -- worker side -------------------------------------------------------------------------
    def recover(self) -> int:
        """Put jobs a crash left ``running`` back to ``pending``; returns how many."""
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
            for r in rows:
                job = _job(r)
                conn.execute("UPDATE jobs SET state = 'pending', updated_at = ? WHERE id = ?",
                             (time.time(), job.id))
                audit.insert(conn, job.audit("requeued", detail="interrupted by a restart"))
        return len(rows)

    def claim_due(self, now: float | None = None) -> Job | None:
        """Take the oldest due pending job and mark it running (attempts + 1)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            r = conn.execute("SELECT * FROM jobs WHERE state = 'pending' AND not_before <= ? "
                             "ORDER BY not_before, id LIMIT 1", (now,)).fetchone()
            if r is None:
                return None
            conn.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, "
                         "updated_at = ? WHERE id = ?", (now, r[0]))
        job = _job(r)
        job.state, job.attempts = "running", job.attempts + 1
        return job

    def next_due(self) -> float | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT min(not_before) FROM jobs WHERE state = 'pending'").fetchone()
        return None if row[0] is None else float(row[0])

    def save_memo(self, job: Job) -> None:
        """Persist what an action learnt before its mutating call (idempotent re-runs)."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET memo = ?, updated_at = ? WHERE id = ?",
                         (json.dumps(job.memo), time.time(), job.id))

    def finish(self, job: Job, state: str, entry: AuditEntry) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                         (state, time.time(), job.id))
            audit.insert(conn, entry)

    def reschedule(self, job: Job, not_before: float, entry: AuditEntry) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET state = 'pending', not_before = ?, updated_at = ? "
                         "WHERE id = ?", (not_before, time.time(), job.id))
            audit.insert(conn, entry)

    def depth(self) -> int:
        with self._lock:
            return int(self._conn.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')").fetchone()[0])

    def jobs(self) -> list[Job]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        return [_job(r) for r in rows]


class _Tx:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store lock; rolls back on error."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()


_JOB_COLUMNS = ("id", "dedupe_key", "fingerprint", "starts_at", "alertname", "model_name",
                "model_version", "action", "target", "state", "attempts", "not_before",
                "created_at", "updated_at", "context", "memo", "expires_at")


def _job(row: Sequence[Any]) -> Job:
    d = dict(zip(_JOB_COLUMNS, row, strict=True))
    return Job(id=d["id"], dedupe_key=d["dedupe_key"], fingerprint=d["fingerprint"],
               starts_at=d["starts_at"], alertname=d["alertname"], model_name=d["model_name"],
               model_version=d["model_version"], action=d["action"], target=d["target"],
               state=d["state"], attempts=d["attempts"], not_before=d["not_before"],
               context=json.loads(d["context"]), memo=json.loads(d["memo"] or "{}"),
               expires_at=float(d["expires_at"] or 0.0))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
