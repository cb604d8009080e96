"""The audit log's hash chain: ``verify`` proves an untouched log unbroken and names the first
entry that was altered, removed or reordered by someone editing the SQLite file; an old log
without hashes gets its chain started (and said so); the export carries every row and hash."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from receiver_support import alert, make_config, payload

from driftline.alertmanager import audit
from driftline.alertmanager.audit import GENESIS, AuditEntry
from driftline.alertmanager.receiver import Receiver
from driftline.alertmanager.store import Store
from driftline.cli import main


def _log(db: Path, n: int) -> None:
    store = Store(db)
    try:
        store.record([AuditEntry(decision="no_action", model_name=f"m{i}", model_version="3",
                                 baseline_id=f"b{i}", detail=f"row {i}", ts=1000.0 + i)
                      for i in range(n)])
    finally:
        store.close()


def _tamper(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for q in sql:
        conn.execute(q)
    conn.commit()
    conn.close()


def test_chain_is_sha256_of_previous_hash_and_row(tmp_path: Path) -> None:
    _log(tmp_path / "a.db", 3)
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]
    conn.close()
    prev = GENESIS
    for r in rows:
        # Hand-computed reference: the row without its two hash columns, canonical JSON.
        body = {k: v for k, v in r.items() if k not in ("prev_hash", "hash") and v not in ("", None)}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert r["prev_hash"] == prev
        assert r["hash"] == hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()
        prev = r["hash"]
    assert [r["baseline_id"] for r in rows] == ["b0", "b1", "b2"]
    v = audit.verify(tmp_path / "a.db")
    assert v.ok and v.entries == 3 and v.head == prev


@pytest.mark.parametrize(("sql", "bad_id", "words"), [
    (["UPDATE audit SET detail = 'nothing to see' WHERE id = 3"], 3, "altered"),
    (["UPDATE audit SET ts = ts + 1 WHERE id = 2"], 2, "altered"),
    (["DELETE FROM audit WHERE id = 2"], 3, "missing"),
    # Removed and renumbered to hide the gap: the next row no longer follows.
    (["DELETE FROM audit WHERE id = 2", "UPDATE audit SET id = id - 1 WHERE id > 2"], 2,
     "does not follow entry 1"),
    # Two rows swapped (contents and hashes moved together).
    (["UPDATE audit SET id = 100 WHERE id = 2", "UPDATE audit SET id = 2 WHERE id = 3",
      "UPDATE audit SET id = 3 WHERE id = 100"], 2, "does not follow entry 1"),
    (["UPDATE audit SET hash = '' WHERE id = 4"], 4, "no hash"),
])
def test_verify_names_the_first_tampered_entry(tmp_path: Path, sql: list[str], bad_id: int,
                                               words: str) -> None:
    db = tmp_path / "a.db"
    _log(db, 5)
    _tamper(db, *sql)
    v = audit.verify(db)
    assert not v.ok
    assert v.bad_id == bad_id, v.message()
    assert words in v.problem


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.sampled_from(["decision", "model_name", "model_version",
                                           "baseline_id", "detail", "remote", "ts"]),
       st.text(min_size=1, max_size=5))
def test_any_single_change_is_found_at_its_entry(row: int, column: str, junk: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "a.db"
        _log(db, 6)
        value = 5.5 if column == "ts" else f"x{junk}"
        conn = sqlite3.connect(db)
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute(f"UPDATE audit SET {column} = ? WHERE id = ?", (value, row))
        conn.commit()
        conn.close()
        v = audit.verify(db)
    assert not v.ok and v.bad_id == row


def test_truncation_is_found_with_a_recorded_head(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _log(db, 4)
    head = audit.verify(db).head
    _log(db, 2)
    assert audit.verify(db, head=head).ok
    _tamper(db, "DELETE FROM audit WHERE id >= 4")
    assert audit.verify(db).ok  # a shorter chain is still a chain ...
    v = audit.verify(db, head=head)  # ... but the recorded head is gone
    assert not v.ok and "removed" in v.problem


def _old_database(db: Path) -> None:
    """An audit table as the first releases wrote it: no baseline_id, no hashes."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
            decision TEXT NOT NULL, alertname TEXT NOT NULL DEFAULT '',
            model_name TEXT NOT NULL DEFAULT '', model_version TEXT NOT NULL DEFAULT '',
            action TEXT NOT NULL DEFAULT '', target TEXT NOT NULL DEFAULT '',
            fingerprint TEXT NOT NULL DEFAULT '', starts_at TEXT NOT NULL DEFAULT '',
            dedupe_key TEXT NOT NULL DEFAULT '', attempt INTEGER NOT NULL DEFAULT 0,
            method TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '', status_code INTEGER,
            request_body TEXT NOT NULL DEFAULT '', response_body TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '', remote TEXT NOT NULL DEFAULT '');
        INSERT INTO audit (ts, decision, model_name) VALUES (1.0, 'queued', 'a'), (2.0, 'acted', 'a');
    """)
    conn.commit()
    conn.close()


def test_an_old_log_gets_its_chain_started_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _old_database(db)
    store = Store(db)
    assert store.migrated is not None and "2 earlier entries" in store.migrated
    store.record([AuditEntry(decision="no_action", model_name="b")])
    store.close()
    rows = audit.read(db)
    assert [r.decision for r in rows] == ["queued", "acted", "chain_started", "no_action"]
    v = audit.verify(db)
    assert v.ok and v.unhashed == 2 and "predate hashing" in v.message()
    assert Store(db).migrated is None  # once only
    # The old rows are covered from now on.
    _tamper(db, "UPDATE audit SET model_name = 'z' WHERE id = 1")
    v = audit.verify(db)
    assert not v.ok and v.bad_id == 3


def test_cli_verify_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path, {"t": {"type": "http", "url": "http://127.0.0.1:1/x"}},
                      [{"action": "retrain", "target": "t"}])
    r = Receiver(cfg, dry_run=True)
    try:
        a = alert()
        a["labels"]["baseline_id"] = "base-7f3a"
        assert r.handle(json.dumps(payload(a)).encode(), "10.0.0.7")[0] == 200
    finally:
        r.store.close()
    db = str(cfg.database)
    assert main(["actions", "verify", "--db", db]) == 0
    assert "audit log OK: 1 entries" in capsys.readouterr().out
    out = tmp_path / "audit.jsonl"
    assert main(["actions", "export", "--db", db, "--output", str(out)]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["baseline_id"] == "base-7f3a" and row["model_version"] == "v3"
    assert row["prev_hash"] == GENESIS and len(row["hash"]) == 64
    _tamper(cfg.database, "UPDATE audit SET decision = 'acted'")
    capsys.readouterr()
    assert main(["actions", "verify", "--db", db]) == 1
    assert "BROKEN at entry 1" in capsys.readouterr().out
