"""The receiver cannot be held or confused: deep JSON is a 400 (audited), not a 503 that
Alertmanager retries forever; a client trickling its request is cut off at the read deadline;
the number of connections is capped; a damaged database stops start-up with a clear error, and
``driftline actions log`` on it prints one instead of a traceback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from receiver_support import alert, decisions, make_config, payload, post, running, target

from driftline.alertmanager import audit
from driftline.alertmanager.receiver import Receiver, _Server
from driftline.errors import ConfigError

ROUTES = [{"model_name": "fraud*", "action": "retrain", "target": "t"}]


def _cfg(tmp: Path, url: str = "http://127.0.0.1:9") -> object:
    return make_config(tmp, {"t": {"type": "http", "url": url}}, ROUTES)


def _metric(r: Receiver, reason: str) -> float:
    return float(r.metrics.refused.labels(reason)._value.get())


def test_deeply_nested_json_is_a_400_and_audited(tmp_path: Path) -> None:
    with running(_cfg(tmp_path)) as r:  # type: ignore[arg-type]
        status, text = post(r.url, None, raw=b"[" * 100_000 + b"]" * 100_000)
        assert status == 400 and "nests too deeply" in text
        assert "refused" in decisions(r)
        row = next(e for e in audit.read(r.config.database) if e.decision == "refused")
        assert row.detail.startswith("malformed")


def _connect(r: Receiver) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
              b"Authorization: Bearer x\r\n\r\n" + b"{" * 10)
    return s


def test_a_trickling_client_is_cut_off_at_the_read_deadline(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Server, "read_deadline", 0.5)
    with running(_cfg(tmp_path)) as r:  # type: ignore[arg-type]
        with _connect(r) as s:
            for _ in range(3):  # one byte now and then keeps every single read under its timeout
                time.sleep(0.1)
                try:
                    s.sendall(b" ")
                except OSError:
                    break
            assert s.recv(100) == b""  # the server closed the connection; no answer
        assert _metric(r, "timeout") == 1
        assert post(r.url, payload(alert()))[0] == 200  # the server still serves


def test_connections_beyond_the_limit_get_503_at_once(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Server, "max_connections", 2)
    with running(_cfg(tmp_path)) as r:  # type: ignore[arg-type]
        held = [_connect(r), _connect(r)]
        try:
            time.sleep(0.2)  # let the two handler threads start
            with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 503")
            assert _metric(r, "busy") == 1
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 10
        while True:  # slots come back as the held threads see their clients go
            try:
                if post(r.url, payload(alert()))[0] == 200:
                    break
            except OSError:  # 503 and close while the body was still being sent
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _damage(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[page:2 * page] = bytes((i * 37 + 11) % 256 for i in range(page))
    db.write_bytes(bytes(data))


def test_damaged_database_is_detected_at_start_up(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with target() as t:
        cfg = make_config(tmp_path, {"t": {"type": "http", "url": t.url}}, ROUTES)
        with running(cfg) as r:
            for i in range(40):
                post(r.url, payload(alert(fingerprint=f"{i:016x}")))
    db = tmp_path / "actions.db"
    _damage(db)
    with pytest.raises(ConfigError) as e:
        Receiver(cfg)  # type: ignore[arg-type]
    assert e.value.key == "database" and str(db) in str(e.value) and "backup" in str(e.value)
    (tmp_path / "other.db").write_bytes(b"this is not a database at all" * 200)
    cfg2 = make_config(tmp_path, {"t": {"type": "http", "url": "http://127.0.0.1:9"}}, ROUTES,
                       database=str(tmp_path / "other.db"))
    with pytest.raises(ConfigError):
        Receiver(cfg2)


@pytest.mark.parametrize("command", ["log", "verify", "export"])
def test_actions_cli_on_a_damaged_database_prints_a_clean_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    from driftline.cli import main

    db = tmp_path / "bad.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8000)
    assert main(["actions", command, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftline: error:") and "Traceback" not in err and str(db) in err
