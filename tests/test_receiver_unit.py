"""The webhook receiver in-process: auth, payload validation, dedupe, cooldown, dry-run, resolved,
retries with backoff, audit content, metrics and restart durability."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from receiver_support import (
    TOKEN,
    alert,
    decisions,
    make_config,
    payload,
    post,
    running,
    target,
    wait_until,
)

from driftline.alertmanager import audit
from driftline.alertmanager.store import dedupe_key

ROUTES = [{"model_name": "fraud*", "action": "retrain", "target": "t"}]


def http_target(url: str, **kw: object) -> dict[str, object]:
    return {"t": {"type": "http", "url": url + "/hook/{{ labels.model_name }}",
                  "body": {"model": "{{ model_name }}", "key": "{{ dedupe_key }}"}, **kw}}


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_acts_once_and_acknowledges_before_acting(tmp_path: Path) -> None:
    with target() as t:
        cfg = make_config(tmp_path, http_target(t.url), ROUTES, delay="300ms")
        with running(cfg) as r:
            status, body = post(r.url, payload(alert()))
            assert status == 200 and json.loads(body)["decisions"] == {"queued": 1}
            assert t.seen == []  # acknowledged before the (delayed) action ran
            seen = t.wait_for(1)[0]
            assert seen.method == "POST" and seen.path == "/hook/fraud"
            assert seen.json() == {"model": "fraud", "key": dedupe_key("5241ef666c4f3c81",
                                                                      "2026-11-22T19:07:58.498932039Z")}
            for _ in range(3):  # Alertmanager re-sends the same group
                assert post(r.url, payload(alert()))[0] == 200
            wait_until(lambda: "acted" in decisions(r), what="acted")
            time.sleep(0.3)
            assert len(t.seen) == 1
            assert decisions(r).count("deduplicated") == 3


def test_bearer_auth(tmp_path: Path) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        assert post(r.url, payload(alert()), auth=None)[0] == 401
        assert post(r.url, payload(alert()), auth="Bearer wrong")[0] == 401
        assert post(r.url, payload(alert()), auth=f"Basic {TOKEN}")[0] == 401
        assert post(r.url, payload(alert()), auth=f"Bearer {TOKEN}")[0] == 200
        refused = [e for e in audit.read(r.config.database) if e.decision == "refused"]
        assert len(refused) == 3 and all("unauthorized" in e.detail for e in refused)
        assert refused[0].remote == "127.0.0.1"
        m = metrics(r.url)
        assert m[("driftline_receiver_refused_requests_total", (("reason", "unauthorized"),))] == 3


def test_basic_auth(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    auth = {"basic": {"username": "am", "password_file": str(tmp_path / "pw")}}
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES, auth=auth)) as r:
        def basic(user: str, pw: str) -> str:
            return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

        assert post(r.url, payload(alert()), auth=basic("am", "wrong"))[0] == 401
        assert post(r.url, payload(alert()), auth=basic("other", "hunter2"))[0] == 401
        assert post(r.url, payload(alert()), auth="Basic !!notbase64")[0] == 401
        assert post(r.url, payload(alert()), auth=basic("am", "hunter2"))[0] == 200
        # A rotated secret file is picked up without a restart.
        time.sleep(0.01)
        (tmp_path / "pw").write_text("rotated\n")
        import os
        os.utime(tmp_path / "pw", (time.time() + 5, time.time() + 5))
        assert post(r.url, payload(alert()), auth=basic("am", "hunter2"))[0] == 401
        assert post(r.url, payload(alert()), auth=basic("am", "rotated"))[0] == 200


@pytest.mark.parametrize(("raw", "message"), [
    (b"not json", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"version": "3", "alerts": []}', "version"),
    (b'{"version": "4"}', "alerts"),
    (b'{"version": "4", "alerts": [{"status": "firing", "labels": {}, "startsAt": "x"}]}',
     "fingerprint"),
    (b'{"version": "4", "alerts": [{"status": "odd", "fingerprint": "a", "startsAt": "x"}]}',
     "status"),
    (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}, "fingerprint": "a",'
     b' "startsAt": "x"}]}', "labels"),
])
def test_malformed_payload_is_400_and_recorded(tmp_path: Path, raw: bytes, message: str) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        status, body = post(r.url, None, raw=raw)
        assert status == 400 and message in body
        rows = audit.read(r.config.database)
        assert [e.decision for e in rows] == ["refused"] and message in rows[0].detail


def test_resolved_and_no_action_are_recorded_not_acted(tmp_path: Path) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        body = payload(alert(status="resolved"), alert(action="", fingerprint="02"),
                       alert(action="none", fingerprint="03"), alert(model="churn", fingerprint="04"),
                       alert(action="rollback", fingerprint="05"))
        status, text = post(r.url, body)
        assert status == 200
        assert json.loads(text)["decisions"] == {"resolved": 1, "no_action": 4}
        time.sleep(0.3)
        assert t.seen == []
        details = [e.detail for e in audit.read(r.config.database)]
        assert any("no action label" in d for d in details)
        assert any("action=none" in d for d in details)
        assert any("no route for model_name='churn'" in d for d in details)
        assert r.store.jobs() == []


def test_cooldown_per_model_and_action(tmp_path: Path) -> None:
    routes = [{"model_name": "*", "action": "retrain", "target": "t"}]
    with target() as t, running(make_config(tmp_path, http_target(t.url), routes, cooldown="1h")) as r:
        assert json.loads(post(r.url, payload(alert(fingerprint="a1")))[1])["decisions"] == {"queued": 1}
        # A different alert for the same model and action: cooling down, not acted on.
        second = payload(alert(fingerprint="a2", alertname="DriftlineAccuracyLow"))
        assert json.loads(post(r.url, second)[1])["decisions"] == {"cooling_down": 1}
        # Another model is not affected.
        assert json.loads(post(r.url, payload(alert(model="churn", fingerprint="a3")))[1])[
            "decisions"] == {"queued": 1}
        t.wait_for(2)
        time.sleep(0.3)
        assert sorted(s.path for s in t.seen) == ["/hook/churn", "/hook/fraud"]


def test_cooldown_expires_with_the_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    routes = [{"model_name": "*", "action": "retrain", "target": "t", "cooldown": "10m"}]
    with target() as t, running(make_config(tmp_path, http_target(t.url), routes),
                                clock=lambda: now[0]) as r:
        assert r.handle(json.dumps(payload(alert(fingerprint="b1"))).encode())[0] == 200
        now[0] += 599
        assert "cooling_down" in r.handle(json.dumps(payload(alert(fingerprint="b2"))).encode())[1]
        now[0] += 2
        assert "queued" in r.handle(json.dumps(payload(alert(fingerprint="b3"))).encode())[1]


def test_dry_run_records_request_and_sends_nothing(tmp_path: Path) -> None:
    with target() as t:
        cfg = make_config(tmp_path, http_target(t.url), ROUTES)
        with running(cfg, dry_run=True) as r:
            assert json.loads(post(r.url, payload(alert()))[1])["decisions"] == {"dry_run": 1}
            assert json.loads(post(r.url, payload(alert()))[1])["decisions"] == {"deduplicated": 1}
            time.sleep(0.3)
            assert t.seen == []
            row = next(e for e in audit.read(r.config.database) if e.decision == "dry_run")
            assert row.method == "POST" and row.url == f"{t.url}/hook/fraud"
            assert json.loads(row.request_body)["model"] == "fraud"


def test_route_level_dry_run(tmp_path: Path) -> None:
    routes = [{"model_name": "*", "action": "retrain", "target": "t", "dry_run": True}]
    with target() as t, running(make_config(tmp_path, http_target(t.url), routes)) as r:
        assert json.loads(post(r.url, payload(alert()))[1])["decisions"] == {"dry_run": 1}


def test_retries_5xx_with_backoff_then_succeeds(tmp_path: Path) -> None:
    with target(script=[(503, {"e": 1}), (502, {"e": 2})], default=(201, {"id": "run-1"})) as t:
        cfg = make_config(tmp_path, http_target(t.url), ROUTES,
                          retry={"max_attempts": 4, "initial_backoff": "100ms", "multiplier": 2})
        with running(cfg) as r:
            post(r.url, payload(alert()))
            wait_until(lambda: "acted" in decisions(r), what="acted")
            seen = t.seen
            assert len(seen) == 3
            rows = [e for e in audit.read(r.config.database) if e.decision in ("retrying", "acted")]
            assert [(e.decision, e.status_code, e.attempt) for e in rows] == [
                ("retrying", 503, 1), ("retrying", 502, 2), ("acted", 201, 3)]
            assert "retry in 0.1s" in rows[0].detail and "retry in 0.2s" in rows[1].detail
            assert rows[2].response_body == '{"id": "run-1"}'


def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    with target(default=(500, {"error": "down"})) as t:
        cfg = make_config(tmp_path, http_target(t.url), ROUTES,
                          retry={"max_attempts": 3, "initial_backoff": "20ms"})
        with running(cfg) as r:
            post(r.url, payload(alert()))
            wait_until(lambda: "failed" in decisions(r), what="failed")
            assert len(t.seen) == 3
            assert r.store.jobs()[0].state == "failed"
            m = metrics(r.url)
            assert m[("driftline_actions_total", (("action", "retrain"), ("outcome", "failed")))] == 1
            assert m[("driftline_actions_total", (("action", "retrain"), ("outcome", "retrying")))] == 2


def test_4xx_is_not_retried(tmp_path: Path) -> None:
    with target(default=(422, {"message": "bad input"})) as t, \
            running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        post(r.url, payload(alert()))
        wait_until(lambda: "failed" in decisions(r), what="failed")
        assert len(t.seen) == 1


def test_transport_error_is_retried(tmp_path: Path) -> None:
    from driftline_demo.stack import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    cfg = make_config(tmp_path, http_target(dead), ROUTES, retry={"max_attempts": 2,
                                                                  "initial_backoff": "20ms"})
    with running(cfg) as r:
        post(r.url, payload(alert()))
        wait_until(lambda: "failed" in decisions(r), what="failed")
        rows = audit.read(r.config.database)
        retry = next(e for e in rows if e.decision == "retrying")
        assert retry.status_code is None and "Connection refused" in retry.response_body


def test_audit_rows_hold_no_secrets_and_are_append_only(tmp_path: Path) -> None:
    (tmp_path / "target-token").write_text("target-secret-xyz\n")
    with target() as t:
        targets = http_target(t.url, auth={"bearer_token_file": str(tmp_path / "target-token")})
        with running(make_config(tmp_path, targets, ROUTES)) as r:
            post(r.url, payload(alert()))
            wait_until(lambda: "acted" in decisions(r), what="acted")
            assert t.seen[0].headers["Authorization"] == "Bearer target-secret-xyz"
        dump = "\n".join(json.dumps(e.__dict__) for e in audit.read(tmp_path / "actions.db", limit=100))
        assert "target-secret-xyz" not in dump and TOKEN not in dump
        acted = next(e for e in audit.read(tmp_path / "actions.db") if e.decision == "acted")
        assert (acted.model_name, acted.model_version, acted.action, acted.method) == (
            "fraud", "v3", "retrain", "POST")
        assert acted.status_code == 200 and acted.url == f"{t.url}/hook/fraud"
        conn = sqlite3.connect(tmp_path / "actions.db")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET decision = 'acted'")
        conn.close()


def test_redact_url() -> None:
    assert audit.redact_url("https://u:p@host:8443/x?y=1") == "https://host:8443/x?y=1"
    assert audit.redact_url("http://host/x") == "http://host/x"


def test_dedupe_survives_restart(tmp_path: Path) -> None:
    with target() as t:
        cfg = make_config(tmp_path, http_target(t.url), ROUTES)
        with running(cfg) as r:
            post(r.url, payload(alert()))
            wait_until(lambda: "acted" in decisions(r), what="acted")
        with running(cfg) as r2:
            assert json.loads(post(r2.url, payload(alert()))[1])["decisions"] == {"deduplicated": 1}
            # Same fingerprint, new startsAt = a new firing of the alert: acted on again.
            again = payload(alert(starts_at="2026-11-23T08:00:00Z"))
            assert json.loads(post(r2.url, again)[1])["decisions"] == {"queued": 1}
            t.wait_for(2)


def test_metrics_and_healthz(tmp_path: Path) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        with urllib.request.urlopen(f"{r.url}/healthz", timeout=5) as resp:
            assert resp.status == 200
        post(r.url, payload(alert(), alert(status="resolved", fingerprint="r1")))
        wait_until(lambda: "acted" in decisions(r), what="acted")
        m = metrics(r.url)
        assert m[("driftline_receiver_alerts_total", (("status", "firing"),))] == 1
        assert m[("driftline_receiver_alerts_total", (("status", "resolved"),))] == 1
        assert m[("driftline_actions_total", (("action", "retrain"), ("outcome", "queued")))] == 1
        assert m[("driftline_actions_total", (("action", "retrain"), ("outcome", "acted")))] == 1
        assert m[("driftline_actions_total", (("action", "retrain"), ("outcome", "resolved")))] == 1
        assert m[("driftline_receiver_queue_depth", ())] == 0


def test_wrong_path_is_404(tmp_path: Path) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES)) as r:
        req = urllib.request.Request(f"{r.url}/other", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)
        assert exc.value.code == 404


@pytest.mark.parametrize("cancel", [True, False])
def test_resolution_before_the_delayed_action_cancels_it(tmp_path: Path, cancel: bool) -> None:
    with target() as t, running(make_config(tmp_path, http_target(t.url), ROUTES, delay="1h",
                                            cancel_on_resolve=cancel)) as r:
        assert json.loads(post(r.url, payload(alert()))[1])["decisions"] == {"queued": 1}
        assert json.loads(post(r.url, payload(alert(status="resolved")))[1])["decisions"] == {
            "resolved": 1}
        assert [j.state for j in r.store.jobs()] == (["cancelled"] if cancel else ["pending"])
        assert ("cancelled" in decisions(r)) is cancel
        assert t.seen == []
