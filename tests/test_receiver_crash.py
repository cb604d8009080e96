"""Crash safety: ``driftline actions serve`` killed with SIGKILL after acknowledging an alert and
before acting; after a restart the action runs exactly once."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from receiver_support import Seen, alert, base_config, payload, post, target, wait_until

from driftline.alertmanager import audit
from driftline_demo.stack import ManagedProcess, free_port, start_process


def serve(tmp: Path, cfg: dict[str, Any], port: int) -> ManagedProcess:
    path = tmp / "actions.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return start_process("receiver", [sys.executable, "-m", "driftline", "actions", "serve",
                                      "--config", str(path), "--listen", f"127.0.0.1:{port}"],
                         ready_url=f"http://127.0.0.1:{port}/healthz", timeout=30)


def kill9(proc: ManagedProcess) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.popen.wait(10)
    proc.stop()


def test_sigkill_between_enqueue_and_action_runs_once_after_restart(tmp_path: Path) -> None:
    with target() as t:
        cfg = base_config(tmp_path, {"t": {"type": "http", "url": t.url + "/retrain",
                                           "body": {"model": "{{ model_name }}"}}},
                          [{"action": "retrain", "target": "t"}], delay="2s")
        port = free_port()
        proc = serve(tmp_path, cfg, port)
        try:
            status, body = post(f"http://127.0.0.1:{port}", payload(alert()))
            assert status == 200 and json.loads(body)["decisions"] == {"queued": 1}
        finally:
            kill9(proc)  # acknowledged and durably queued, not yet acted on
        assert t.seen == []
        proc = serve(tmp_path, cfg, port)
        try:
            t.wait_for(1, timeout=20)
            # Alertmanager's re-send after the restart is a duplicate.
            assert json.loads(post(f"http://127.0.0.1:{port}", payload(alert()))[1])[
                "decisions"] == {"deduplicated": 1}
            db = tmp_path / "actions.db"
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(db)), what="acted")
        finally:
            proc.stop()
        assert len(t.seen) == 1 and t.seen[0].json() == {"model": "fraud"}


def test_sigkill_during_a_blocked_call_is_safe_with_an_idempotent_target(tmp_path: Path) -> None:
    """Killed while the call is in flight, the job is requeued; Airflow's dag_run_id (derived from
    the dedupe key) turns the repeat into a 409, so exactly one DAG run exists."""
    runs: set[str] = set()
    gate = threading.Event()

    def airflow(seen: Seen) -> tuple[int, Any]:
        run_id = seen.json()["dag_run_id"]
        if run_id in runs:
            return 409, {"title": "DAGRun already exists"}
        runs.add(run_id)
        return 200, {"dag_run_id": run_id, "state": "queued"}

    with target(responder=airflow, gate=gate) as t:
        cfg = base_config(tmp_path, {"af": {"type": "airflow2", "server": t.url,
                                            "dag_id": "retrain"}},
                          [{"action": "retrain", "target": "af"}])
        port = free_port()
        proc = serve(tmp_path, cfg, port)
        try:
            assert post(f"http://127.0.0.1:{port}", payload(alert()))[0] == 200
            t.wait_for(1)  # the call landed and blocks
        finally:
            kill9(proc)
        gate.set()
        proc = serve(tmp_path, cfg, port)
        try:
            t.wait_for(2, timeout=20)
            db = tmp_path / "actions.db"
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(db)), what="acted")
            rows = audit.read(db, limit=100)
        finally:
            proc.stop()
        assert len(runs) == 1
        assert t.seen[0].json()["dag_run_id"] == t.seen[1].json()["dag_run_id"]
        assert [e.decision for e in rows] == ["queued", "requeued", "acted"]
        assert rows[-1].status_code == 409 and "already triggered" in rows[-1].detail
