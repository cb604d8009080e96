"""Approval before an action: a ``require_approval`` route records the action as awaiting,
nothing is sent until an approver says yes (over the HTTP API or the CLI), and every bad request
— unknown or expired id, a viewer, a second approval, a wrong token, Alertmanager's own token —
is refused, audited, and acts on nothing. Exactly once survives SIGKILL right after approval."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from receiver_support import TOKEN, alert, base_config, payload, post, running, target, wait_until
from test_receiver_crash import kill9, serve

from driftline.alertmanager import approval, audit
from driftline.alertmanager.actions_config import load_config_dict
from driftline.alertmanager.receiver import Receiver
from driftline.cli import main
from driftline.errors import ConfigError
from driftline_demo.stack import free_port

PEOPLE = {"viewer-token": ("grafana", "viewer"), "alice-token": ("alice", "approver"),
          "root-token": ("ops", "admin")}


def approval_config(tmp: Path, url: str, **extra: Any) -> dict[str, Any]:
    access = []
    for token, (name, role) in PEOPLE.items():
        (tmp / f"{name}.token").write_text(token + "\n")
        access.append({"name": name, "role": role, "token_file": str(tmp / f"{name}.token")})
    cfg = base_config(tmp, {"t": {"type": "http", "url": url + "/rollback",
                                  "body": {"model": "{{ model_name }}"}}},
                      [{"action": "rollback", "target": "t", "require_approval": True},
                       {"action": "retrain", "target": "t"}], access=access)
    cfg.update(extra)
    return cfg


def call(base: str, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_approved_action_runs_once_and_every_bad_request_is_refused(tmp_path: Path) -> None:
    with target() as t:
        cfg = load_config_dict(approval_config(tmp_path, t.url), base=tmp_path)
        with running(cfg) as r:
            status, body = post(r.url, payload(alert(action="rollback")))
            assert status == 200 and json.loads(body)["decisions"] == {"awaiting_approval": 1}
            status, doc = call(r.url, "GET", "/api/v1/actions/pending", "viewer-token")
            assert status == 200
            ((job),) = doc["pending"]
            assert (job["action"], job["model_name"], job["state"]) == ("rollback", "fraud",
                                                                        "awaiting_approval")
            jid = job["id"]
            approve = f"/api/v1/actions/{jid}/approve"
            refusals = [
                (call(r.url, "POST", approve, "viewer-token", {"reason": "looks bad"}), 403),
                (call(r.url, "POST", approve, "wrong-token", {"reason": "x"}), 401),
                (call(r.url, "POST", approve, None, {"reason": "x"}), 401),
                (call(r.url, "POST", approve, TOKEN, {"reason": "x"}), 403),  # Alertmanager's
                (call(r.url, "POST", "/api/v1/actions/999/approve", "alice-token", {"reason": "x"}), 404),
                (call(r.url, "POST", approve, "alice-token", {}), 400),
                (call(r.url, "GET", "/api/v1/actions/pending", "wrong-token"), 401),
            ]
            for (status, doc), expected in refusals:
                assert status == expected, doc
            assert t.seen == []  # nothing acted on
            status, doc = call(r.url, "POST", approve, "alice-token",
                               {"reason": "canary 3 points worse; rolling back"})
            assert status == 200 and doc["ok"], doc
            t.wait_for(1)
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(cfg.database)),
                       what="acted")
            again = call(r.url, "POST", approve, "root-token", {"reason": "again"})
            assert again[0] == 409 and "already approved by alice (approver) via api" in \
                again[1]["message"]
            assert call(r.url, "GET", "/api/v1/actions/pending", "viewer-token")[1]["pending"] == []
            rows = audit.read(cfg.database, limit=100)
        assert len(t.seen) == 1 and t.seen[0].json() == {"model": "fraud"}
    by = [(e.decision, e.actor) for e in rows if e.dedupe_key]
    assert ("approved", "alice (approver) via api") in by
    approved = next(e for e in rows if e.decision == "approved")
    assert approved.detail == "canary 3 points worse; rolling back"
    assert approved.model_version == "v3" and approved.action == "rollback"
    refused = [e for e in rows if e.decision == "approval_refused"]
    assert [e.actor.split(" ")[0] for e in refused] == ["grafana", "alice", "alice", "ops"]
    assert any("role viewer" in e.detail for e in refused)
    assert any("no action with id 999" in e.detail for e in refused)
    assert any("reason is required" in e.detail for e in refused)
    unauth = [e for e in rows if e.decision == "refused"]
    assert any("webhook credential" in e.detail for e in unauth)
    assert sum("unknown credential" in e.detail for e in unauth) == 3
    assert audit.verify(cfg.database).ok


def test_reject_and_expiry_act_on_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = [time.time()]
    with target() as t:
        cfg = load_config_dict(approval_config(tmp_path, t.url, approval={"expires": "1h"}),
                               base=tmp_path)
        r = Receiver(cfg, clock=lambda: now[0])
        try:
            a1, a2 = alert(action="rollback", fingerprint="f1"), alert(action="rollback",
                                                                       model="churn", fingerprint="f2")
            assert r.handle(json.dumps(payload(a1, a2)).encode())[0] == 200
            ids = [j.id for j in approval.pending(r.store, now[0])]
        finally:
            r.store.close()
        db = str(cfg.database)
        assert main(["actions", "pending", "--db", db]) == 0
        assert "rollback fraud v3 via t" in capsys.readouterr().out
        assert main(["actions", "reject", str(ids[0]), "--db", db, "--reason", "false alarm"]) == 0
        assert main(["actions", "approve", str(ids[0]), "--db", db, "--reason", "changed my mind"]) == 1
        assert "already rejected by local:" in capsys.readouterr().err
        r = Receiver(cfg, clock=lambda: now[0])
        try:
            now[0] += 3601
            r.announcer.tick()  # expires the second request
            assert approval.pending(r.store, now[0]) == []
            d = approval.decide(r.store, ids[1], True, cfg.access.principals[1], "late", now=now[0])
            assert (d.ok, d.status) == (False, 409) and "expired" in d.message
            assert {j.state for j in r.store.jobs()} == {"rejected", "expired"}
        finally:
            r.store.close()
        assert t.seen == []
    decisions = [e.decision for e in audit.read(cfg.database, limit=100)]
    assert decisions.count("awaiting_approval") == 2
    assert "rejected" in decisions and "expired" in decisions
    assert decisions.count("approval_refused") == 2


def test_an_expired_request_is_refused_at_approval_time(tmp_path: Path) -> None:
    now = [time.time()]
    cfg = load_config_dict(approval_config(tmp_path, "http://127.0.0.1:9",
                                           approval={"expires": "10m"}), base=tmp_path)
    r = Receiver(cfg, clock=lambda: now[0])
    try:
        r.handle(json.dumps(payload(alert(action="rollback"))).encode())
        (job,) = r.store.jobs()
        now[0] += 601
        d = approval.decide(r.store, job.id, True, cfg.access.principals[1], "ok", now=now[0])
        assert (d.ok, d.status) == (False, 410) and "expired at" in d.message
        assert r.store.jobs()[0].state == "expired"
    finally:
        r.store.close()


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"access": None}, "routes[0].require_approval", "no approver"),
    ({"access": [{"name": "v", "role": "viewer", "token_file": "v.token"}]},
     "routes[0].require_approval", "no approver"),
    ({"access": [{"name": "am", "role": "approver", "token_file": "token"}]},
     "access[0].token_file", "Alertmanager's webhook credential"),
    ({"access": [{"name": "x", "role": "boss", "token_file": "v.token"}]}, "access[0].role", "viewer"),
    ({"access": [{"name": "x", "role": "approver", "token": "inline"}]}, "access[0].token",
     "inline secrets"),
    ({"approval": {"expires": "soon"}}, "approval.expires", "duration"),
])
def test_bad_access_config_names_the_key(tmp_path: Path, change: dict[str, Any], key: str,
                                         words: str) -> None:
    (tmp_path / "v.token").write_text("viewer\n")
    cfg = approval_config(tmp_path, "http://127.0.0.1:9")
    cfg.update(change)
    if cfg.get("access") is None:
        cfg.pop("access")
    with pytest.raises(ConfigError) as exc:
        load_config_dict(cfg, path="actions.yaml", base=tmp_path)
    assert exc.value.key == key and words in str(exc.value)


def test_sigkill_between_approval_and_action_acts_once(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with target() as t:
        cfg = approval_config(tmp_path, t.url, delay="3s")
        port = free_port()
        proc = serve(tmp_path, cfg, port)
        db = str(tmp_path / "actions.db")
        try:
            assert json.loads(post(f"http://127.0.0.1:{port}", payload(alert(action="rollback")))[1])[
                "decisions"] == {"awaiting_approval": 1}
            assert main(["actions", "approve", "1", "--db", db, "--reason", "go"]) == 0
        finally:
            kill9(proc)  # approved and durable, not yet acted on (delay 3s)
        assert t.seen == []
        proc = serve(tmp_path, cfg, port)
        try:
            t.wait_for(1, timeout=20)
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(Path(db))), what="acted")
        finally:
            proc.stop()
        assert main(["actions", "approve", "1", "--db", db, "--reason", "again"]) == 1
        assert len(t.seen) == 1
    decisions = [e.decision for e in audit.read(Path(db), limit=100)]
    assert decisions[:3] == ["awaiting_approval", "approved", "acted"], decisions
    assert decisions[-1] == "approval_refused"


@pytest.mark.integration
def test_the_request_reaches_the_notify_channels_and_resolves_once_decided(tmp_path: Path) -> None:
    from notify_sinks import HttpSink, SmtpSink
    from test_notify_delivery import FAST, channels_config

    from driftline.alertmanager.alertmanager_config import alertmanager_config
    from driftline_demo.stack import StackError, find_binary, start_alertmanager

    try:
        find_binary("prometheus-alertmanager")
    except StackError as exc:
        pytest.skip(str(exc))
    http, smtp = HttpSink(), SmtpSink()
    try:
        (tmp_path / "am").mkdir()
        rules = channels_config(tmp_path / "am", http.url, smtp.port)
        assert rules.notify.timing["warning"].group_wait == FAST["group_wait"]
        with start_alertmanager(alertmanager_config(rules)) as am, target() as t:
            cfg = load_config_dict(approval_config(
                tmp_path, t.url, approval={"alertmanager_url": am.url,
                                           "public_url": "https://actions.example.org"}),
                base=tmp_path)
            with running(cfg) as r:
                assert post(r.url, payload(alert(action="rollback")))[0] == 200
                wait_until(lambda: bool(http.at("/slack")), timeout=30, what="the request in Slack")
                first = http.at("/slack")[0].body["attachments"][0]
                assert first["title"] == \
                    "[FIRING:1] warning: DriftlineActionAwaitingApproval for model fraud"
                assert "driftline actions approve 1 --reason" in first["text"]
                assert "POST https://actions.example.org/api/v1/actions/1/approve" in first["text"]
                held = am.alerts()
                assert held[0]["labels"]["approval_id"] == "1"
                assert held[0]["labels"]["action"] == "none"  # never back to the receiver
                assert call(r.url, "POST", "/api/v1/actions/1/approve", "alice-token",
                            {"reason": "ok"})[0] == 200
                wait_until(lambda: len(http.at("/slack")) >= 2, timeout=30, what="the resolution")
                t.wait_for(1)
            last = http.at("/slack")[-1].body["attachments"][0]
            assert last["title"].startswith("[RESOLVED]")
            assert not http.at("/actions")  # the request alert has action=none
            rows = audit.read(cfg.database, limit=100)
        assert any(e.decision == "approval_notified" and e.status_code == 200 for e in rows)
    finally:
        http.stop()
        smtp.stop()
