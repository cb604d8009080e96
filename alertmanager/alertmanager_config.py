"""The generated Alertmanager configuration: Driftline alerts with ``action=retrain|rollback`` go
to the Driftline webhook receiver (and on, ``continue: true``), then every Driftline alert goes to
the channels of its severity — a team's own channels when a ``notify.owners`` glob matches its
``model_name`` (first owner wins). Criticals mute warnings of the same model.

Alertmanager 0.25 semantics (its docs/configuration.md at v0.25.0): ``matchers:`` (not
``match``), secrets only as ``*_file`` references, one group per (alertname, namespace,
model_name) so one model's actions never wait for another's. Each severity has its own
``group_wait``/``group_interval``/``repeat_interval`` (pages repeat sooner than tickets). One
receiver per (team, severity) holds all of that severity's channels, so an alert reaches exactly
the channels listed for its severity.
"""

from __future__ import annotations

from typing import Any

from driftline.alertmanager.notify_config import SEVERITIES, Channel, NotifyConfig, Owner, glob_to_regex
from driftline.alertmanager.rules_config import RulesConfig

__all__ = ["ACTIONS_RECEIVER", "NULL_RECEIVER", "TEMPLATE_FILE", "alertmanager_config",
           "receiver_name", "template_text"]

ACTIONS_RECEIVER = "driftline-actions"
#: Alerts matching no severity route (or a severity without channels) end here: no notification.
NULL_RECEIVER = "driftline-none"
TEMPLATE_FILE = "driftline.tmpl"
_DRIFTLINE = 'alertname=~"Driftline.*"'


def receiver_name(severity: str, owner: Owner | None = None) -> str:
    return f"team-{owner.team}-{severity}" if owner else f"driftline-{severity}"


def _channel_config(ch: Channel, severity: str) -> tuple[str, dict[str, Any]]:
    """(Alertmanager ``*_configs`` key, one entry) for a channel; texts come from the template."""
    p = ch.params
    if ch.type == "pagerduty":
        out: dict[str, Any] = {
            "routing_key_file": p["routing_key_file"], "send_resolved": ch.send_resolved,
            "severity": severity,
            "description": '{{ template "driftline.title" . }}',
            "client": "Driftline", "client_url": "{{ .CommonAnnotations.dashboard_url }}",
            "details": {"alerts": '{{ template "driftline.text" . }}',
                        "model_name": "{{ .CommonLabels.model_name }}",
                        "model_version": "{{ .CommonLabels.model_version }}",
                        "runbook_url": "{{ .CommonAnnotations.runbook_url }}"},
            "links": [{"href": "{{ .CommonAnnotations.runbook_url }}", "text": "Runbook"},
                      {"href": "{{ .CommonAnnotations.dashboard_url }}", "text": "Dashboard"}],
        }
        if "url" in p:
            out["url"] = p["url"]
        return "pagerduty_configs", out
    if ch.type == "slack":
        out = {"api_url_file": p["api_url_file"], "send_resolved": ch.send_resolved,
               "title": '{{ template "driftline.title" . }}',
               "title_link": "{{ .CommonAnnotations.dashboard_url }}",
               "text": '{{ template "driftline.text" . }}',
               "color": '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'}
        if "channel" in p:
            out["channel"] = p["channel"]
        return "slack_configs", out
    if ch.type == "email":
        out = {"to": p["to"], "from": p["from"], "smarthost": p["smarthost"],
               "send_resolved": ch.send_resolved, "require_tls": bool(p.get("require_tls", True)),
               "headers": {"Subject": '{{ template "driftline.title" . }}'},
               "html": '{{ template "driftline.email.html" . }}',
               "text": '{{ template "driftline.text" . }}'}
        for k in ("auth_username", "auth_password_file", "hello"):
            if k in p:
                out[k] = p[k]
        tls = {k: p[k] for k in ("ca_file", "insecure_skip_verify") if k in p}
        if tls:
            out["tls_config"] = tls
        return "email_configs", out
    # webhook and the Teams bridge: Alertmanager's own JSON payload, optional bearer token.
    out = {"url": p["url"], "send_resolved": ch.send_resolved}
    if "max_alerts" in p:
        out["max_alerts"] = int(p["max_alerts"])
    if "bearer_token_file" in p:
        out["http_config"] = {"authorization": {"type": "Bearer",
                                                "credentials_file": p["bearer_token_file"]}}
    return "webhook_configs", out


def _receiver(name: str, channels: tuple[Channel, ...], severity: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"name": name}
    for ch in channels:
        key, entry = _channel_config(ch, severity)
        rec.setdefault(key, []).append(entry)
    return rec


def _severity_routes(n: NotifyConfig, owner: Owner | None) -> list[dict[str, Any]]:
    routes = []
    for sev in SEVERITIES:
        t = n.timing[sev]
        # An owner that does not take over a severity keeps the default receiver for it.
        own = owner if owner is not None and sev in owner.channels else None
        routes.append({"receiver": receiver_name(sev, own) if n.channels_for(sev, own)
                       else NULL_RECEIVER,
                       "matchers": [f'severity="{sev}"'], "group_wait": t.group_wait,
                       "group_interval": t.group_interval, "repeat_interval": t.repeat_interval})
    return routes


def alertmanager_config(cfg: RulesConfig) -> dict[str, Any]:
    """The alertmanager.yml document for ``cfg`` (action receiver, notification channels)."""
    n = cfg.notify
    group_by = ["alertname", *cfg.group_labels, "model_name"]
    action_route = {"receiver": ACTIONS_RECEIVER, "group_wait": "30s", "group_interval": "5m",
                    "repeat_interval": "24h", "continue": True}
    routes: list[dict[str, Any]] = [
        {**action_route, "matchers": [_DRIFTLINE, 'action="rollback"']},
        {**action_route, "matchers": [_DRIFTLINE, 'action="retrain"']},
    ]
    receivers: list[dict[str, Any]] = [{"name": NULL_RECEIVER}]
    for owner in n.owners:
        routes.append({"receiver": NULL_RECEIVER,
                       "matchers": [_DRIFTLINE, f'model_name=~"{glob_to_regex(owner.model_name)}"'],
                       "routes": _severity_routes(n, owner)})
    routes.append({"receiver": NULL_RECEIVER, "matchers": [_DRIFTLINE],
                   "routes": _severity_routes(n, None)})
    for owner in (None, *n.owners):
        for sev in SEVERITIES:
            chans = n.channels_for(sev, owner)
            if chans and (owner is None or sev in owner.channels):
                receivers.append(_receiver(receiver_name(sev, owner), chans, sev))
    receivers.append({"name": ACTIONS_RECEIVER, "webhook_configs": [{
        "url": cfg.actions_url,
        "send_resolved": True,
        "max_alerts": 0,
        "http_config": {"authorization": {"type": "Bearer",
                                          "credentials_file": cfg.actions_token_file}},
    }]})
    return {
        "templates": [f"{n.templates_dir}/{TEMPLATE_FILE}"],
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": group_by,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "inhibit_rules": [{
            "source_matchers": [_DRIFTLINE, 'severity="critical"'],
            "target_matchers": [_DRIFTLINE, 'severity="warning"'],
            "equal": [*cfg.group_labels, "model_name"],
        }],
        "receivers": receivers,
    }


def template_text() -> str:
    """``driftline.tmpl``: the texts every channel uses. Each alert names its model, version,
    endpoint, feature, namespace and baseline; the description carries the value against its threshold;
    runbook and dashboard links follow. Resolved alerts are marked as such."""
    title = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
             "{{ end }}] {{ .CommonLabels.severity }}: {{ .GroupLabels.alertname }} "
             "for model {{ .GroupLabels.model_name }}")
    model = ("Model: {{ .Labels.model_name }} version {{ .Labels.model_version }}, endpoint "
             "{{ .Labels.endpoint }}{{ with .Labels.feature }}, feature {{ . }}{{ end }}"
             "{{ with .Labels.namespace }}, namespace {{ . }}{{ end }}"
             "{{ with .Labels.baseline_id }}, baseline {{ . }}{{ end }}")
    return "\n".join([
        "{{/* Generated by `driftline rules generate`; do not edit. Used by alertmanager.yaml. */}}",
        f'{{{{ define "driftline.title" }}}}{title}{{{{ end }}}}',
        "",
        '{{ define "driftline.alert" }}{{ if eq .Status "resolved" }}RESOLVED: {{ end }}'
        "{{ .Annotations.summary }}",
        model,
        "{{ .Annotations.description }}",
        "Runbook: {{ .Annotations.runbook_url }}",
        "Dashboard: {{ .Annotations.dashboard_url }}",
        "{{ end }}",
        "",
        '{{ define "driftline.text" }}{{ range .Alerts }}{{ template "driftline.alert" . }}',
        "{{ end }}{{ end }}",
        "",
        '{{ define "driftline.email.html" }}<html><body><h3>{{ template "driftline.title" . }}</h3>',
        '{{ range .Alerts }}<pre>{{ template "driftline.alert" . }}</pre>',
        "{{ end }}</body></html>{{ end }}",
        "",
    ])
