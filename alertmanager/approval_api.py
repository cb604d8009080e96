"""The receiver's authenticated HTTP API for people (Alertmanager only ever uses ``/alertmanager``)::

    GET  /api/v1/actions/pending            viewer+   actions waiting for a decision
    GET  /api/v1/audit?limit=N              viewer+   newest audit rows (JSON)
    POST /api/v1/actions/<id>/approve       approver+ body {"reason": "..."}
    POST /api/v1/actions/<id>/reject        approver+ body {"reason": "..."}

Callers authenticate with their own bearer token (``access:`` in actions.yaml) or their mTLS
certificate subject. Alertmanager's webhook credential is refused here with 403 — the sender of
an alert cannot approve the action it caused. Every refusal is audited.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from driftline.alertmanager import approval, audit
from driftline.alertmanager.store import Job, _iso

if TYPE_CHECKING:
    from driftline.alertmanager.receiver import Receiver

PREFIX = "/api/v1/"
_DECIDE = re.compile(r"^/api/v1/actions/(\d{1,18})/(approve|reject)$")


def job_view(job: Job) -> dict[str, Any]:
    return {"id": job.id, "model_name": job.model_name, "model_version": job.model_version,
            "action": job.action, "target": job.target, "alertname": job.alertname,
            "state": job.state, "expires_at": _iso(job.expires_at),
            "baseline_id": audit.baseline_of(job.context),
            "summary": str(job.context.get("annotations", {}).get("summary", ""))}


def handle(receiver: Receiver, method: str, target: str, authorization: str | None,
           subject: str, body: bytes, remote: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one API request."""
    path, _, query = target.partition("?")
    who = receiver.config.access.identify(authorization, subject)
    if who is None:
        webhook_auth = receiver.config.auth
        if authorization and (webhook_auth.bearer or webhook_auth.basic) \
                and receiver.authorized(authorization):
            receiver.refuse("forbidden", f"{method} {path} with Alertmanager's webhook credential",
                            remote)
            return 403, {"error": "Alertmanager's webhook credential cannot use the approval API; "
                                  "use your own token (access: in actions.yaml)"}
        receiver.refuse("unauthorized", f"{method} {path}: missing or unknown credential", remote)
        return 401, {"error": "unauthorized: send Authorization: Bearer <your token>"}
    if method == "GET" and path == "/api/v1/actions/pending":
        return 200, {"pending": [job_view(j) for j in approval.pending(receiver.store, receiver.clock())]}
    if method == "GET" and path == "/api/v1/audit":
        m = re.search(r"(?:^|&)limit=(\d{1,6})", query)
        rows = audit.read(receiver.config.database, limit=int(m.group(1)) if m else 50)
        return 200, {"audit": [json.loads(audit.to_json([e])) for e in rows]}
    m = _DECIDE.match(path)
    if method == "POST" and m:
        try:
            data = json.loads(body or b"{}")
            reason = data.get("reason", "") if isinstance(data, dict) else ""
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return 400, {"error": 'body must be JSON: {"reason": "..."}'}
        if not isinstance(reason, str):
            return 400, {"error": "reason must be a string"}
        d = approval.decide(receiver.store, int(m.group(1)), m.group(2) == "approve", who, reason,
                            remote=remote, now=receiver.clock())
        if d.ok:
            receiver.wake()
        return d.status, {"ok": d.ok, "message": d.message, "id": d.job_id}
    return 404, {"error": f"no such endpoint {method} {path}"}
