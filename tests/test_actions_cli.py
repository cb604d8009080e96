"""`driftline actions log` shows the audit log as a table or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from receiver_support import alert, make_config, payload

from driftline.alertmanager.receiver import Receiver
from driftline.cli import main


def _fill(tmp_path: Path) -> Path:
    cfg = make_config(tmp_path, {"t": {"type": "http", "url": "http://127.0.0.1:1/x"}},
                      [{"action": "retrain", "target": "t"}])
    r = Receiver(cfg, dry_run=True)
    try:
        body = payload(alert(), alert(status="resolved", fingerprint="r"), alert(action="none",
                                                                                  fingerprint="n"))
        assert r.handle(json.dumps(body).encode(), "10.0.0.7")[0] == 200
        assert r.handle(b"{broken", "10.0.0.8")[0] == 400
    finally:
        r.store.close()
    return cfg.database


def test_log_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _fill(tmp_path)
    assert main(["actions", "log", "--db", str(db), "--format", "json", "--limit", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["decision"] for r in rows] == ["no_action", "dry_run", "refused"]
    dry = rows[1]
    assert (dry["model_name"], dry["model_version"], dry["action"], dry["method"], dry["url"]) == (
        "fraud", "v3", "retrain", "POST", "http://127.0.0.1:1/x")
    assert dry["remote"] == "10.0.0.7" and rows[2]["remote"] == "10.0.0.8"
    assert "not JSON" in rows[2]["detail"]


def test_log_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    db = _fill(tmp_path)
    assert main(["actions", "log", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for decision in ("resolved", "no_action", "dry_run", "refused"):
        assert decision in out


def test_log_without_database_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "log", "--db", str(tmp_path / "none.db")]) == 2
    assert "no audit database" in capsys.readouterr().err
