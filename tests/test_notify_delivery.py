"""Notifications through a real Alertmanager 0.25 to real loopback endpoints: each severity
reaches exactly its channels (PagerDuty Events v2, Slack, e-mail over SMTP, a webhook and the
Teams bridge), a team's model-name glob takes over its severities, the action receiver still
gets ``action=`` alerts, texts name the model and link the runbook, and resolutions follow."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_sinks import HttpSink, SmtpSink, text_of
from receiver_support import wait_until

from driftline.alertmanager.alertmanager_config import TEMPLATE_FILE, alertmanager_config, template_text
from driftline.alertmanager.rules_config import RulesConfig, config_from_mapping
from driftline_demo.stack import StackError, find_binary, start_alertmanager

pytestmark = pytest.mark.integration
PD_KEY = "pd-routing-key-0123456789abcdef"
HOOK_TOKEN = "hook-token"
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


def channels_config(tmp: Path, http: str, smtp_port: int) -> RulesConfig:
    """A config with every channel type, pointed at the loopback sinks."""
    (tmp / "pd-key").write_text(PD_KEY)
    (tmp / "slack-url").write_text(f"{http}/slack\n")
    (tmp / "hook-token").write_text(HOOK_TOKEN)
    (tmp / "actions-token").write_text("actions-token")
    tpl = tmp / "templates"
    tpl.mkdir()
    (tpl / TEMPLATE_FILE).write_text(template_text())
    return config_from_mapping({
        "actions_url": f"{http}/actions", "actions_token_file": str(tmp / "actions-token"),
        "notify": {
            "templates_dir": str(tpl),
            "channels": {
                "pager": {"type": "pagerduty", "routing_key_file": str(tmp / "pd-key"),
                          "url": f"{http}/pagerduty"},
                "slack": {"type": "slack", "api_url_file": str(tmp / "slack-url"),
                          "channel": "#ml-alerts"},
                "mail": {"type": "email", "to": ["ml@example.org", "data@example.org"],
                         "from": "am@example.org", "smarthost": f"127.0.0.1:{smtp_port}",
                         "require_tls": False},
                "hook": {"type": "webhook", "url": f"{http}/hook",
                         "bearer_token_file": str(tmp / "hook-token")},
                "teams": {"type": "msteams", "url": f"{http}/teams"},
                "fraud-hook": {"type": "webhook", "url": f"{http}/fraud"},
            },
            "severities": {"critical": ["pager", "slack"], "warning": ["slack", "teams"],
                           "info": ["mail", "hook"]},
            "owners": [{"team": "fraud", "model_name": "fraud-*", "critical": ["fraud-hook"]}],
            "timing": {s: FAST for s in ("critical", "warning", "info")},
        }})


def _fast_actions(doc: dict[str, Any]) -> dict[str, Any]:
    for r in doc["route"]["routes"]:
        if r["receiver"] == "driftline-actions":
            r.update(group_wait="1s", group_interval="1s")
    return doc


def _alert(name: str, severity: str, model: str, *, action: str = "none", feature: str = "",
           ends: str | None = None, baseline_id: str = "") -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "action": action, "namespace": "ml",
              "model_name": model, "model_version": "7", "endpoint": "default"}
    if feature:
        labels["feature"] = feature
    if baseline_id:
        labels["baseline_id"] = baseline_id
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": f"{name} summary",
                        "description": f"{name} of {model}: value 0.350 (threshold 0.2)",
                        "runbook_url": f"https://runbooks.example.org/#{name.lower()}",
                        "dashboard_url": f"http://grafana.example.org/d/driftline-model?m={model}"},
        "generatorURL": "http://prometheus.example.org/graph"}
    if ends:
        out["endsAt"] = ends
    return out


@pytest.fixture
def sinks() -> Iterator[tuple[HttpSink, SmtpSink]]:
    try:
        find_binary("prometheus-alertmanager")
    except StackError as exc:
        pytest.skip(str(exc))
    http, smtp = HttpSink(), SmtpSink()
    yield http, smtp
    http.stop()
    smtp.stop()


def test_each_severity_reaches_exactly_its_channels(sinks: tuple[HttpSink, SmtpSink],
                                                    tmp_path: Path) -> None:
    http, smtp = sinks
    cfg = channels_config(tmp_path, http.url, smtp.port)
    crit = _alert("DriftlineEstimatedAccuracyDrop", "critical", "churn", action="rollback")
    alerts = [
        crit,
        _alert("DriftlineFeatureDrift", "warning", "iris", feature="petal_len", baseline_id="b-iris-7"),
        _alert("DriftlineNoTraffic", "info", "iris"),
        _alert("DriftlineManyFeaturesDrifting", "critical", "fraud-eu"),
        _alert("DriftlineFeatureDrift", "warning", "fraud-us", feature="amount"),
    ]
    with start_alertmanager(_fast_actions(alertmanager_config(cfg))) as am:
        am.post_alerts(alerts)
        wait_until(lambda: bool(len(http.at("/slack")) >= 3 and len(smtp.messages) >= 1
                                and http.at("/pagerduty") and http.at("/hook") and http.at("/teams")
                                and http.at("/fraud") and http.at("/actions")),
                   timeout=30, what="every channel")
        time.sleep(2.0)  # anything else that would (wrongly) arrive
        firing = {path: list(http.at(path)) for path in
                  ("/pagerduty", "/slack", "/hook", "/teams", "/fraud", "/actions")}
        mails = list(smtp.messages)
        # The churn alert resolves: PagerDuty resolves its incident, Slack says so.
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        am.post_alerts([{**crit, "endsAt": now}])
        wait_until(lambda: len(http.at("/pagerduty")) == 2 and len(http.at("/slack")) == 4,
                   timeout=30, what="the resolved notifications")

    # PagerDuty: only the critical alert of a model without an owner; Events API v2 shape.
    (pd,) = firing["/pagerduty"]
    assert pd.body["routing_key"] == PD_KEY
    assert pd.body["event_action"] == "trigger"
    assert pd.body["payload"]["severity"] == "critical"
    assert pd.body["payload"]["summary"] == \
        "[FIRING:1] critical: DriftlineEstimatedAccuracyDrop for model churn"
    details = pd.body["payload"]["custom_details"]
    assert details["model_name"] == "churn" and details["model_version"] == "7"
    assert "value 0.350 (threshold 0.2)" in details["alerts"]
    assert {"href": "https://runbooks.example.org/#driftlineestimatedaccuracydrop",
            "text": "Runbook"} in pd.body["links"]
    resolved = http.at("/pagerduty")[1].body
    assert resolved["event_action"] == "resolve" and resolved["dedup_key"] == pd.body["dedup_key"]

    # Slack: critical and warning, never info, never the owned model's critical.
    slack = {(d.body["attachments"][0]["title"]) for d in firing["/slack"]}
    assert slack == {"[FIRING:1] critical: DriftlineEstimatedAccuracyDrop for model churn",
                     "[FIRING:1] warning: DriftlineFeatureDrift for model iris",
                     "[FIRING:1] warning: DriftlineFeatureDrift for model fraud-us"}
    iris = next(d.body for d in firing["/slack"] if "iris" in d.body["attachments"][0]["title"])
    assert iris["channel"] == "#ml-alerts"
    text = iris["attachments"][0]["text"]
    assert ("Model: iris version 7, endpoint default, feature petal_len, namespace ml, "
            "baseline b-iris-7") in text
    assert "Runbook: https://runbooks.example.org/#driftlinefeaturedrift" in text
    assert "Dashboard: http://grafana.example.org/d/driftline-model?m=iris" in text
    last = http.at("/slack")[3].body["attachments"][0]
    assert last["title"].startswith("[RESOLVED] critical: DriftlineEstimatedAccuracyDrop")
    assert last["color"] == "good" and "RESOLVED: " in last["text"]

    # Warning also goes to the Teams bridge; info to e-mail and the authenticated webhook.
    assert sorted(d.body["commonLabels"]["model_name"] for d in firing["/teams"]) == ["fraud-us", "iris"]
    (hook,) = firing["/hook"]
    assert hook.headers["Authorization"] == f"Bearer {HOOK_TOKEN}"
    assert hook.body["commonLabels"]["severity"] == "info"
    ((rcpt, mail),) = mails
    assert sorted(rcpt) == ["data@example.org", "ml@example.org"]
    assert mail["Subject"] == "[FIRING:1] info: DriftlineNoTraffic for model iris"
    assert "Runbook: https://runbooks.example.org/#driftlinenotraffic" in text_of(mail)

    # The fraud team's glob takes over its critical alerts; its warning stayed on the defaults.
    (fraud,) = firing["/fraud"]
    assert fraud.body["commonLabels"]["model_name"] == "fraud-eu"
    assert fraud.body["receiver"] == "team-fraud-critical"
    # The action route still sees the rollback alert (continue: true before the channels).
    (act,) = firing["/actions"]
    assert act.body["commonLabels"]["action"] == "rollback"
