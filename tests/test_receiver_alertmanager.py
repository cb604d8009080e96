"""A real Alertmanager 0.25 delivers alerts (posted with amtool) to the receiver with bearer
credentials from a file; each action lands on a loopback target exactly once although
Alertmanager keeps re-sending the groups."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from receiver_support import TOKEN, make_config, post, running, target, wait_until

from driftline.alertmanager import audit
from driftline_demo.stack import StackError, find_binary, start_alertmanager

pytestmark = pytest.mark.integration


def _binaries() -> tuple[str, str]:
    try:
        return (find_binary("prometheus-alertmanager", env_var="DRIFTLINE_ALERTMANAGER"),
                find_binary("amtool"))
    except StackError as exc:
        pytest.skip(str(exc))


def am_config(receiver_url: str, token_file: Path) -> dict[str, Any]:
    hook = {"url": f"{receiver_url}/alertmanager", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer",
                                              "credentials_file": str(token_file)}}}
    return {
        "route": {
            "receiver": "null", "group_by": ["alertname", "namespace", "model_name"],
            # Short timings so that re-sends happen within the test: the group is flushed every
            # group_interval and, since repeat_interval has passed, notified again each time.
            "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1s",
            "routes": [{"matchers": ['action=~"retrain|rollback"'], "receiver": "driftline-actions"}],
        },
        "receivers": [{"name": "null"}, {"name": "driftline-actions", "webhook_configs": [hook]}],
    }


def amtool_add(amtool: str, am_url: str, name: str, **labels: str) -> None:
    argv = [amtool, f"--alertmanager.url={am_url}", "alert", "add", name,
            *[f"{k}={v}" for k, v in labels.items()],
            "--annotation=summary=drift detected", "--generator-url=http://prom:9090/graph"]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def test_real_alertmanager_retrain_and_rollback_act_exactly_once(tmp_path: Path) -> None:
    _, amtool = _binaries()
    with target(default=(200, {"metadata": {"name": "retrain-x"}})) as argo, \
            target(default=(200, {"kind": "InferenceService"})) as kube:
        targets = {
            "argo": {"type": "argo_workflows", "server": argo.url, "namespace": "ml",
                     "template": "retrain"},
            "kserve": {"type": "kserve_canary_rollback", "server": kube.url,
                       "namespace": "{{ labels.namespace }}", "name": "{{ model_name }}"},
        }
        routes = [{"model_name": "*", "action": "retrain", "target": "argo"},
                  {"model_name": "*", "action": "rollback", "target": "kserve"}]
        cfg = make_config(tmp_path, targets, routes, cooldown="1h")
        with running(cfg) as receiver:
            am = start_alertmanager(am_config(receiver.url, tmp_path / "token"))
            try:
                amtool_add(amtool, am.url, "DriftlineFeatureDriftHigh", model_name="fraud",
                           model_version="v3", namespace="ml", severity="warning", action="retrain")
                amtool_add(amtool, am.url, "DriftlineAccuracyDrop", model_name="fraud",
                           model_version="v3", namespace="ml", severity="critical", action="rollback")

                def resent_twice() -> bool:
                    rows = audit.read(cfg.database, limit=500)
                    return all(sum(e.decision == "deduplicated" and e.action == a for e in rows) >= 2
                               for a in ("retrain", "rollback"))

                # Both actions, then at least two re-sends of each group.
                wait_until(lambda: len(argo.seen) >= 1 and len(kube.seen) >= 1, timeout=30,
                           what="both actions")
                wait_until(resent_twice, timeout=30, what="two re-sends per group")
                time.sleep(0.5)
            finally:
                am.stop()

        assert len(argo.seen) == 1 and len(kube.seen) == 1
        submit = argo.seen[0]
        assert (submit.method, submit.path) == ("POST", "/api/v1/workflows/ml/submit")
        body = submit.json()
        assert body["resourceKind"] == "WorkflowTemplate" and body["resourceName"] == "retrain"
        assert body["submitOptions"]["parameters"] == ["model_name=fraud", "model_version=v3"]
        patch = kube.seen[0]
        assert (patch.method, patch.path) == (
            "PATCH", "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/fraud")
        assert patch.headers["Content-Type"] == "application/merge-patch+json"
        assert patch.json() == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}

        rows = audit.read(cfg.database, limit=500)
        acted = [e for e in rows if e.decision == "acted"]
        assert sorted(e.action for e in acted) == ["retrain", "rollback"]
        # Every delivery came from Alertmanager with the right credentials: nothing refused.
        assert not [e for e in rows if e.decision == "refused"]
        firing = [e for e in rows if e.decision in ("queued", "deduplicated")]
        assert all(e.fingerprint and e.starts_at for e in firing)


def test_unauthenticated_post_is_refused(tmp_path: Path) -> None:
    with target() as t:
        targets = {"t": {"type": "http", "url": t.url}}
        cfg = make_config(tmp_path, targets, [{"action": "retrain", "target": "t"}])
        with running(cfg) as receiver:
            body = {"version": "4", "alerts": []}
            assert post(receiver.url, body, auth=None)[0] == 401
            assert post(receiver.url, body, auth=f"Bearer {TOKEN}x")[0] == 401
            assert json.loads(post(receiver.url, body)[1])["status"] == "accepted"
