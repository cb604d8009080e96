"""The generated Alertmanager example, run in a real Alertmanager 0.25: ``action=rollback`` and
``action=retrain`` alerts reach the webhook at ``/alertmanager`` with the bearer token from
``credentials_file``, grouped per model; ``action=none`` alerts do not; a model's warnings are
inhibited while one of its critical alerts fires."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import LoopbackHTTPServer, QuietHandler

from driftline.alertmanager.alertmanager_config import alertmanager_config
from driftline.alertmanager.rules_config import RulesConfig
from driftline_demo.stack import StackError, find_binary, start_alertmanager

pytestmark = pytest.mark.integration
TOKEN = "am-to-driftline-token"


class Hook:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.body())
                hook.calls.append((self.path, self.headers.get("Authorization", ""), body))
                self.reply(200)

        self.server = LoopbackHTTPServer(Handler)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.stop()


def _fast(doc: dict[str, Any]) -> dict[str, Any]:
    """Same routing, inhibition and auth; only the waits shortened for a test."""
    def walk(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            walk(child)
    walk(doc["route"])
    return doc


def _alert(name: str, severity: str, action: str, model: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, "action": action, "namespace": "ml",
                       "model_name": model, "model_version": "3", "endpoint": "default"},
            "annotations": {"summary": name}, "generatorURL": "http://prometheus/graph"}


def test_example_config_routes_actions_to_the_receiver(hook: Hook, tmp_path: Path) -> None:
    try:
        find_binary("prometheus-alertmanager")
    except StackError as exc:
        pytest.skip(str(exc))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    cfg = RulesConfig(actions_url=f"{hook.url}/alertmanager", actions_token_file=str(token))
    with start_alertmanager(_fast(alertmanager_config(cfg))) as am:
        am.post_alerts([
            _alert("DriftlineCanaryWorseThanDefault", "critical", "rollback", "fraud"),
            _alert("DriftlineManyFeaturesDrifting", "critical", "retrain", "churn"),
            _alert("DriftlineFeatureDrift", "warning", "none", "churn"),
            _alert("DriftlineFeatureDrift", "warning", "none", "iris"),
        ])
        deadline = time.monotonic() + 30
        while len(hook.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # anything else that would (wrongly) arrive
        held = {(a["labels"]["alertname"], a["labels"]["model_name"]): a["status"]["state"]
                for a in am.alerts()}
    assert len(hook.calls) == 2, hook.calls
    by_action = {}
    for path, auth, body in hook.calls:
        assert path == "/alertmanager"
        assert auth == f"Bearer {TOKEN}"
        ((alert),) = body["alerts"]
        by_action[alert["labels"]["action"]] = body
    assert set(by_action) == {"rollback", "retrain"}
    assert by_action["rollback"]["groupLabels"] == {
        "alertname": "DriftlineCanaryWorseThanDefault", "namespace": "ml", "model_name": "fraud"}
    # The warning of the model with a critical alert is inhibited; the other model's is not.
    assert held[("DriftlineFeatureDrift", "churn")] == "suppressed"
    assert held[("DriftlineFeatureDrift", "iris")] == "active"
