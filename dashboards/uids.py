"""Stable dashboard uids and titles, shared by the dashboard generator and the alert rules
(whose ``dashboard_url`` annotations link to them)."""

from __future__ import annotations

FLEET_UID = "driftline-fleet"
MODEL_UID = "driftline-model"
SIDECAR_UID = "driftline-sidecar"

TITLES: dict[str, str] = {
    FLEET_UID: "Driftline / Fleet overview",
    MODEL_UID: "Driftline / Model detail",
    SIDECAR_UID: "Driftline / Sidecar health",
}


def slug(uid: str) -> str:
    """Grafana's URL slug of a dashboard title (lower case, words joined by dashes)."""
    words = "".join(c if c.isalnum() else " " for c in TITLES[uid].lower()).split()
    return "-".join(words)
