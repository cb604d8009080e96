"""Approval before an action: decide, expire and announce the jobs of ``require_approval`` routes.

A job admitted as ``awaiting_approval`` never runs by itself. :func:`decide` moves it to
``pending`` (the worker then acts, exactly once, as for any job) or ``rejected``, in one fsync'd
transaction together with the audit row that says who, when and why. The job row is the single
source of truth, so a crash right after the approval leaves a durable ``pending`` job that runs
once after the restart, and a second approval of the same id is refused ("already approved").

Every refusal — unknown id, expired, already decided, a role that may not approve — is an
``approval_refused`` audit row and changes nothing. Wrong or missing credentials are refused
(and audited) by the HTTP layer before they get here.

:class:`Announcer` tells people: it posts a ``DriftlineActionAwaitingApproval`` alert to
Alertmanager (``POST /api/v2/alerts``) carrying the model labels, the triggering alert's
severity, the action id and the exact approve/reject commands, so the request goes to the same
channels as the alert (``notify`` in rules.yaml). Its ``action`` label is ``none``: it can never
loop back into the action receiver. Once decided or expired, the alert is resolved.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.alertmanager.access import Principal
from driftline.alertmanager.audit import AuditEntry, insert
from driftline.alertmanager.store import Job, Store, _iso, _job

log = logging.getLogger("driftline.actions")

__all__ = ["APPROVAL_ALERT", "Announcer", "Decision", "decide", "expire_due", "pending"]

APPROVAL_ALERT = "DriftlineActionAwaitingApproval"


@dataclass(frozen=True)
class Decision:
    """Outcome of an approve/reject request: ``ok``, an HTTP status and a message for people."""

    ok: bool
    status: int
    message: str
    job_id: int | None = None


def pending(store: Store, now: float | None = None) -> list[Job]:
    """Jobs waiting for a decision and not yet expired, oldest first."""
    now = time.time() if now is None else now
    return [j for j in store.jobs() if j.state == "awaiting_approval" and j.expires_at > now]


def decide(store: Store, job_id: int, approve: bool, who: Principal, reason: str,
           remote: str = "", now: float | None = None) -> Decision:
    """Approve or reject action ``job_id`` as ``who``; refusals are audited and change nothing."""
    now = time.time() if now is None else now
    verb = "approve" if approve else "reject"
    reason = reason.strip()
    with store.transaction() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        job = _job(row) if row is not None else None

        def refuse(status: int, why: str) -> Decision:
            entry = (job.audit("approval_refused", detail=f"{verb} refused: {why}", ts=now)
                     if job is not None else
                     AuditEntry(decision="approval_refused", detail=f"{verb} {job_id} refused: {why}",
                                ts=now))
            insert(conn, _with(entry, actor=who.describe(), remote=remote))
            return Decision(False, status, f"refused: {why}", job_id)

        if not who.may("approver"):
            return refuse(403, f"{who.name} has role {who.role}; approving needs approver or admin")
        if job is None:
            return refuse(404, f"no action with id {job_id}")
        if not reason:
            return refuse(400, "a reason is required (--reason); it goes into the audit log")
        if job.state == "awaiting_approval" and job.expires_at <= now:
            conn.execute("UPDATE jobs SET state = 'expired', updated_at = ? WHERE id = ?",
                         (now, job.id))
            insert(conn, job.audit("expired", detail=f"no decision before {_iso(job.expires_at)}",
                                   ts=now))
            return refuse(410, f"the request expired at {_iso(job.expires_at)}")
        if job.state != "awaiting_approval":
            return refuse(409, f"action {job_id} is {_state_text(conn, job)}, not awaiting approval")
        if approve:
            conn.execute("UPDATE jobs SET state = 'pending', not_before = max(not_before, ?), "
                         "updated_at = ? WHERE id = ?", (now, now, job.id))
        else:
            conn.execute("UPDATE jobs SET state = 'rejected', updated_at = ? WHERE id = ?",
                         (now, job.id))
        decision = "approved" if approve else "rejected"
        insert(conn, _with(job.audit(decision, detail=reason, ts=now), actor=who.describe(),
                           remote=remote))
    log.info("action %d (%s %s) %s by %s: %s", job_id, job.action, job.model_name, decision,
             who.describe(), reason)
    return Decision(True, 200, f"action {job_id} ({job.action} {job.model_name}) {decision}", job_id)


def _state_text(conn: Any, job: Job) -> str:
    """``already approved by alice (approver) via api at …`` when a decision row exists."""
    row = conn.execute("SELECT decision, actor, ts FROM audit WHERE dedupe_key = ? AND decision IN "
                       "('approved', 'rejected') ORDER BY id DESC LIMIT 1", (job.dedupe_key,)).fetchone()
    if row is not None:
        return f"already {row[0]} by {row[1]} at {_iso(row[2])} (now {job.state})"
    return f"in state {job.state}"


def _with(entry: AuditEntry, **changes: Any) -> AuditEntry:
    import dataclasses

    return dataclasses.replace(entry, **changes)


def expire_due(store: Store, now: float | None = None) -> list[Job]:
    """Mark requests past their expiry ``expired`` (audited); returns them."""
    now = time.time() if now is None else now
    out: list[Job] = []
    with store.transaction() as conn:
        rows = conn.execute("SELECT * FROM jobs WHERE state = 'awaiting_approval' AND expires_at <= ?",
                            (now,)).fetchall()
        for r in rows:
            job = _job(r)
            conn.execute("UPDATE jobs SET state = 'expired', updated_at = ? WHERE id = ?", (now, job.id))
            insert(conn, job.audit("expired", detail=f"no decision before {_iso(job.expires_at)}",
                                   ts=now))
            out.append(job)
    return out


def instructions(job: Job, public_url: str | None) -> str:
    """What an approver runs, as shown in the request."""
    cli = (f"driftline actions approve {job.id} --reason '...'   |   "
           f"driftline actions reject {job.id} --reason '...'")
    if public_url:
        cli += (f"   |   POST {public_url}/api/v1/actions/{job.id}/approve (or /reject) with "
                '{"reason": "..."} and your bearer token')
    return cli


class Announcer:
    """Posts and resolves the approval-request alert in Alertmanager (best effort: a failure is
    logged and audited, and retried on the next tick; the job itself is unaffected)."""

    def __init__(self, store: Store, alertmanager_url: str | None, public_url: str | None,
                 clock: Callable[[], float] = time.time, timeout: float = 5.0) -> None:
        self.store = store
        self.url = alertmanager_url
        self.public_url = public_url
        self.clock = clock
        self.timeout = timeout

    def tick(self) -> None:
        """Announce new requests, resolve decided ones, expire overdue ones."""
        now = self.clock()
        expire_due(self.store, now)
        if self.url is None:
            return
        for job in self.store.jobs():
            sent = job.memo.get("approval_alert")
            if job.state == "awaiting_approval" and sent is None:
                self._post(job, now, firing=True)
            elif job.state != "awaiting_approval" and sent == "firing":
                self._post(job, now, firing=False)

    def alert(self, job: Job, now: float, firing: bool) -> dict[str, Any]:
        labels = dict(job.context.get("labels", {}))
        keep = {k: labels[k] for k in ("namespace", "model_name", "model_version", "endpoint",
                                       "severity") if labels.get(k)}
        keep.setdefault("severity", "warning")
        text = instructions(job, self.public_url)
        return {
            "labels": {**keep, "alertname": APPROVAL_ALERT, "action": "none",
                       "requested_action": job.action, "approval_id": str(job.id)},
            "annotations": {
                "summary": f"{job.action} of model {job.model_name} waits for an approver.",
                "description": (f"{labels.get('alertname', 'An alert')} asks to {job.action} model "
                                f"{job.model_name} {job.model_version} via {job.target}. Action id "
                                f"{job.id}, expires {_iso(job.expires_at)}. To decide: {text}"),
                "runbook_url": str(job.context.get("annotations", {}).get("runbook_url", "")),
                "dashboard_url": str(job.context.get("annotations", {}).get("dashboard_url", "")),
            },
            "startsAt": _rfc3339(job.memo.get("approval_alert_start", now)),
            "endsAt": _rfc3339(job.expires_at if firing else now),
        }

    def _post(self, job: Job, now: float, firing: bool) -> None:
        if firing:
            job.memo["approval_alert_start"] = now
        body = json.dumps([self.alert(job, now, firing)]).encode()
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status = resp.status
        except (urllib.error.URLError, OSError) as exc:
            log.warning("cannot announce approval request %d to %s: %s", job.id, self.url, exc)
            return
        job.memo["approval_alert"] = "firing" if firing else "resolved"
        self.store.save_memo(job)
        if firing:
            self.store.record([job.audit(
                "approval_notified", method="POST", url=f"{self.url}/api/v2/alerts",
                status_code=status, detail=f"{APPROVAL_ALERT} sent to Alertmanager; "
                + instructions(job, self.public_url))])


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
