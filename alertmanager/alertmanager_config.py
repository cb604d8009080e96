"""The example Alertmanager configuration: Driftline alerts with ``action=retrain|rollback`` go to
the Driftline webhook receiver, everything else to a team receiver you fill in; criticals mute
warnings of the same model.

Alertmanager 0.25 semantics (ECOSYSTEM.md §2.3): ``matchers:`` (not ``match``), bearer token from
``credentials_file``, one group per (alertname, namespace, model_name) so one model's actions
never wait for another's.
"""

from __future__ import annotations

from typing import Any

from driftline.alertmanager.rules_config import RulesConfig

__all__ = ["ACTIONS_RECEIVER", "TEAM_RECEIVER", "alertmanager_config"]

ACTIONS_RECEIVER = "driftline-actions"
TEAM_RECEIVER = "ml-team"


def alertmanager_config(cfg: RulesConfig) -> dict[str, Any]:
    """The alertmanager.yml document for ``cfg`` (receiver URL and token file)."""
    group_by = ["alertname", *cfg.group_labels, "model_name"]
    action_route = {"receiver": ACTIONS_RECEIVER, "group_wait": "30s", "group_interval": "5m",
                    "repeat_interval": "24h", "continue": True}
    return {
        "route": {
            "receiver": TEAM_RECEIVER,
            "group_by": group_by,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {**action_route, "matchers": ['alertname=~"Driftline.*"', 'action="rollback"']},
                {**action_route, "matchers": ['alertname=~"Driftline.*"', 'action="retrain"']},
                {"receiver": TEAM_RECEIVER, "matchers": ['alertname=~"Driftline.*"']},
            ],
        },
        "inhibit_rules": [{
            "source_matchers": ['alertname=~"Driftline.*"', 'severity="critical"'],
            "target_matchers": ['alertname=~"Driftline.*"', 'severity="warning"'],
            "equal": [*cfg.group_labels, "model_name"],
        }],
        "receivers": [
            # Fill in your team's channel (Slack, PagerDuty, email...); empty = no notification.
            {"name": TEAM_RECEIVER},
            {"name": ACTIONS_RECEIVER, "webhook_configs": [{
                "url": cfg.actions_url,
                "send_resolved": True,
                "max_alerts": 0,
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": cfg.actions_token_file}},
            }]},
        ],
    }
