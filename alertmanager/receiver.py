"""The Alertmanager webhook receiver: authenticate, enqueue durably, acknowledge, act later.

Alertmanager 0.25 has no webhook timeout and re-sends a group every ``group_interval`` until it
gets a 2xx, so the receiver must answer fast and be idempotent. ``POST /alertmanager``:

1. checks credentials (bearer or basic, constant-time; optional mTLS) → 401 otherwise;
2. validates the webhook v4 payload → 400 with the reason otherwise;
3. decides per alert (resolved, no_action, deduplicated, cooling_down, dry_run, queued) and
   writes jobs and audit rows in one fsync'd SQLite transaction;
4. answers 200 — only after that commit.

A worker thread then runs due jobs with bounded, exponentially backed-off retries. The same
alert (``fingerprint`` + ``startsAt``) is acted on at most once, across restarts.

Embed it in-process::

    receiver = Receiver(load_config("actions.yaml"))
    receiver.start()            # binds; receiver.url is e.g. http://127.0.0.1:9096
    ...
    receiver.stop()
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from driftline import catalogue
from driftline.alertmanager import actions as presets
from driftline.alertmanager import approval, approval_api, audit
from driftline.alertmanager.actions_config import ActionsConfig
from driftline.alertmanager.audit import AuditEntry, truncate
from driftline.alertmanager.store import Candidate, Job, Store, dedupe_key
from driftline.redact import redact_text, redact_url

log = logging.getLogger("driftline.actions")

WEBHOOK_PATH = "/alertmanager"
MAX_BODY = 8 * 1024 * 1024
#: Seconds a request may take to arrive (headers and body together); a client that trickles
#: bytes is cut off after it instead of holding a handler thread.
READ_DEADLINE = 10.0
#: Connections served at once; more get 503 at once (Alertmanager retries) instead of a thread.
MAX_CONNECTIONS = 64


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook v4 payload; the message says what is wrong."""


def parse_payload(body: bytes) -> dict[str, Any]:
    """Decode and validate a webhook payload (only the fields the receiver relies on)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from exc
    except RecursionError:  # hostile nesting: a bad payload, not a storage failure (no 503)
        raise PayloadError("body nests too deeply to be an Alertmanager payload") from None
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object")
    version = data.get("version")
    if version is not None and str(version) != "4":
        raise PayloadError(f"unsupported webhook version {version!r}; expected \"4\"")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("payload has no 'alerts' list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{i}] is not an object")
        if alert.get("status") not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status must be 'firing' or 'resolved'")
        for key in ("labels", "annotations"):
            value = alert.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise PayloadError(f"alerts[{i}].{key} must map names to strings")
        for key in ("fingerprint", "startsAt"):
            if not isinstance(alert.get(key), str) or not alert[key]:
                raise PayloadError(f"alerts[{i}].{key} is missing")
    return data


def alert_context(payload: Mapping[str, Any], alert: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The variables templates can see. Credentials are never part of it."""
    labels = dict(alert.get("labels", {}))
    return {
        "labels": labels,
        "annotations": dict(alert.get("annotations", {})),
        "alert": {k: alert.get(k, "") for k in
                  ("status", "fingerprint", "startsAt", "endsAt", "generatorURL")},
        "dedupe_key": key,
        "model_name": labels.get("model_name", ""),
        "model_version": labels.get("model_version", ""),
        "action": labels.get("action", ""),
        "receiver": str(payload.get("receiver", "")),
        "group_key": str(payload.get("groupKey", "")),
        "external_url": str(payload.get("externalURL", "")),
    }


class Metrics:
    """The receiver's own metrics on a fresh registry (never the global default)."""

    def __init__(self, registry: CollectorRegistry, depth: Callable[[], int]) -> None:
        def name(spec: catalogue.MetricSpec) -> str:
            return spec.name.removesuffix("_total") if spec.type == "counter" else spec.name

        self.registry = registry
        self.actions = Counter(name(catalogue.ACTIONS), catalogue.ACTIONS.help,
                               catalogue.ACTIONS.labels, registry=registry)
        self.alerts = Counter(name(catalogue.RECEIVER_ALERTS), catalogue.RECEIVER_ALERTS.help,
                              catalogue.RECEIVER_ALERTS.labels, registry=registry)
        self.refused = Counter(name(catalogue.RECEIVER_REFUSED), catalogue.RECEIVER_REFUSED.help,
                               catalogue.RECEIVER_REFUSED.labels, registry=registry)
        self.depth = Gauge(name(catalogue.RECEIVER_QUEUE_DEPTH), catalogue.RECEIVER_QUEUE_DEPTH.help,
                           registry=registry)
        self.depth.set_function(lambda: float(depth()))


class Receiver:
    """Webhook server + worker sharing one :class:`Store`."""

    def __init__(self, config: ActionsConfig, *, dry_run: bool | None = None,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self.clock = clock
        self.store = Store(config.database)
        self.metrics = Metrics(registry or CollectorRegistry(), self.store.depth)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, presets.HttpClient] = {}
        self.announcer = approval.Announcer(self.store, config.approval.alertmanager_url,
                                            config.approval.public_url, clock)
        self._next_tick = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Recover interrupted jobs, bind the port, start the server and worker threads."""
        if self.store.migrated:
            log.warning("audit log %s: %s", self.config.database, self.store.migrated)
        recovered = self.store.recover()
        if recovered:
            log.warning("requeued %d action(s) interrupted by a restart", recovered)
        self._server = _Server((self.config.host, self.config.port), _Handler, self)
        server = self._server
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="driftline-actions-http", daemon=True),
            threading.Thread(target=self._work, name="driftline-actions-worker", daemon=True),
        ]
        for t in self._threads:
            t.start()
        log.info("listening on %s%s", self.url, WEBHOOK_PATH)

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=10)
        self.store.close()

    def wake(self) -> None:
        """Let the worker look at the queue now (an approval made a job runnable)."""
        self._wake.set()

    def wait(self) -> None:
        """Block until :meth:`stop` is called (CLI foreground mode)."""
        while not self._stop.wait(1.0):
            pass

    # -- auth --------------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        """Constant-time check of ``Authorization``. Without header credentials configured the
        caller is trusted (mTLS already verified it, or ``allow_unauthenticated``)."""
        auth = self.config.auth
        if auth.bearer is None and auth.basic is None:
            return True
        header = header or ""
        scheme, _, value = header.partition(" ")
        ok = False
        if auth.bearer is not None:
            expected = auth.bearer.value().encode()
            given = value.strip().encode() if scheme.lower() == "bearer" else b"\0"
            ok |= bool(expected) and hmac.compare_digest(given, expected)
        if auth.basic is not None:
            user, pw = b"\0", b"\0"
            if scheme.lower() == "basic":
                try:
                    u, _, p = base64.b64decode(value.strip(), validate=True).partition(b":")
                    user, pw = u, p
                except (binascii.Error, ValueError):
                    pass
            expected_pw = auth.basic.password.value().encode()
            user_ok = hmac.compare_digest(user, auth.basic.username.encode())
            pw_ok = hmac.compare_digest(pw, expected_pw)
            ok |= user_ok and pw_ok and bool(expected_pw)
        return ok

    def refuse(self, reason: str, detail: str, remote: str) -> None:
        self.metrics.refused.labels(reason).inc()
        log.warning("refused webhook from %s: %s (%s)", remote, reason, detail)
        try:
            self.store.record([AuditEntry(decision="refused", detail=f"{reason}: {detail}",
                                          remote=remote)])
        except Exception:  # the refusal itself must not turn into a 500
            log.exception("could not record a refusal in the audit log")

    # -- webhook -----------------------------------------------------------------------------
    def handle(self, body: bytes, remote: str = "") -> tuple[int, str]:
        """Process one webhook body; returns (HTTP status, message). Raises nothing for bad
        input: a malformed payload is a 400 and an audit row."""
        try:
            payload = parse_payload(body)
        except PayloadError as exc:
            self.refuse("malformed", str(exc), remote)
            return 400, f"malformed Alertmanager webhook payload: {exc}"
        now = self.clock()
        notes: list[AuditEntry] = []
        candidates: list[Candidate] = []
        cancel: list[str] = []
        if payload.get("truncatedAlerts"):
            log.warning("Alertmanager truncated %s alert(s) of group %s (max_alerts)",
                        payload["truncatedAlerts"], payload.get("groupKey"))
        for alert in payload["alerts"]:
            status = alert["status"]
            self.metrics.alerts.labels(status).inc()
            if status == "resolved" and self.config.cancel_on_resolve:
                cancel.append(dedupe_key(alert["fingerprint"], alert["startsAt"]))
            entry, candidate = self._decide(payload, alert, now, remote)
            if candidate is not None:
                candidates.append(candidate)
            elif entry is not None:
                notes.append(entry)
                self.metrics.actions.labels(entry.action, entry.decision).inc()
        decisions = self.store.admit(candidates, notes, now=now, cancel=cancel)
        for c, decision in zip(candidates, decisions, strict=True):
            self.metrics.actions.labels(c.action, decision).inc()
        if any(d == "queued" for d in decisions):
            self._wake.set()
        summary: dict[str, int] = {}
        for d in [n.decision for n in notes] + decisions:
            summary[d] = summary.get(d, 0) + 1
        return 200, json.dumps({"status": "accepted", "decisions": summary})

    def _decide(self, payload: Mapping[str, Any], alert: Mapping[str, Any], now: float,
                remote: str) -> tuple[AuditEntry | None, Candidate | None]:
        labels: Mapping[str, str] = alert.get("labels", {})
        key = dedupe_key(alert["fingerprint"], alert["startsAt"])
        model, version = labels.get("model_name", ""), labels.get("model_version", "")
        action = labels.get("action", "")

        def note(decision: str, detail: str) -> tuple[AuditEntry, None]:
            return AuditEntry(decision=decision, alertname=labels.get("alertname", ""),
                              model_name=model, model_version=version, action=action,
                              fingerprint=alert["fingerprint"], starts_at=alert["startsAt"],
                              dedupe_key=key, detail=detail, remote=remote, ts=now,
                              baseline_id=audit.baseline_of(alert)), None

        if alert["status"] == "resolved":
            return note("resolved", "resolved alerts are recorded, never acted on")
        if action in ("", "none"):
            return note("no_action", "alert has no action label" if not action else "action=none")
        if not model:
            return note("no_action", "alert has no model_name label")
        route = self.config.route_for(model, action)
        if route is None:
            return note("no_action", f"no route for model_name={model!r} action={action!r}")
        target = self.config.targets[route.target]
        dry = self.dry_run or bool(route.dry_run if route.dry_run is not None else target.dry_run)
        ctx = alert_context(payload, alert, key)
        ctx["target"] = target.name
        planned = ("", "", "")
        if dry:
            try:
                req = presets.plan(target, ctx)
                planned = (req.method, req.url,
                           truncate(req.body, self.config.audit_body_limit))
            except ValueError as exc:
                planned = ("", "", f"cannot build the request: {exc}")
        return None, Candidate(
            dedupe_key=key, fingerprint=alert["fingerprint"], starts_at=alert["startsAt"],
            alertname=labels.get("alertname", ""), model_name=model, model_version=version,
            action=action, target=target.name,
            cooldown=route.cooldown if route.cooldown is not None else self.config.cooldown,
            dry_run=dry, not_before=now + self.config.delay, context=ctx, planned=planned,
            remote=remote,
            approval_expires=now + self.config.approval.expires if route.require_approval else None)

    # -- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_due(self.clock())
            except Exception:
                log.exception("cannot read the action queue")
                self._stop.wait(1.0)
                continue
            if job is None:
                self._approval_tick()
                due = self.store.next_due()
                wait = 1.0 if due is None else max(0.0, min(1.0, due - self.clock()))
                self._wake.wait(wait)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as exc:  # never let one job kill the worker
                log.exception("action %s failed unexpectedly", job.dedupe_key)
                detail = redact_text(f"internal error: {exc}")
                self._after_failure(job, presets.Outcome(ok=False, retryable=True, detail=detail))

    def _approval_tick(self) -> None:
        """Expire, announce and resolve approval requests, at most once a second."""
        now = self.clock()
        if now < self._next_tick:
            return
        self._next_tick = now + 1.0
        try:
            self.announcer.tick()
        except Exception:
            log.exception("approval bookkeeping failed")

    def _client(self, name: str) -> presets.HttpClient:
        if name not in self._clients:
            self._clients[name] = presets.HttpClient(self.config.targets[name])
        return self._clients[name]

    def _run(self, job: Job) -> None:
        target = self.config.targets.get(job.target)
        if target is None:
            self.store.finish(job, "failed", job.audit(
                "failed", detail=f"target {job.target!r} is no longer configured"))
            self.metrics.actions.labels(job.action, "failed").inc()
            return
        outcome = presets.run_action(target, job.context, self._client(job.target), job.memo,
                                     lambda: self.store.save_memo(job))
        if outcome.ok:
            self.store.finish(job, "done", self._entry(job, "acted", outcome))
            self.metrics.actions.labels(job.action, "acted").inc()
            log.info("acted: %s %s via %s: %s", job.action, job.model_name, job.target,
                     outcome.detail)
        else:
            self._after_failure(job, outcome)

    def _after_failure(self, job: Job, outcome: presets.Outcome) -> None:
        policy = self.config.retry
        if outcome.retryable and job.attempts < policy.max_attempts:
            delay = policy.delay(job.attempts)
            entry = self._entry(job, "retrying", outcome, f" (retry in {delay:g}s)")
            self.store.reschedule(job, self.clock() + delay, entry)
            self.metrics.actions.labels(job.action, "retrying").inc()
            log.warning("%s %s attempt %d failed: %s; retry in %gs", job.action, job.model_name,
                        job.attempts, outcome.detail, delay)
        else:
            self.store.finish(job, "failed", self._entry(job, "failed", outcome))
            self.metrics.actions.labels(job.action, "failed").inc()
            log.error("%s %s failed after %d attempt(s): %s", job.action, job.model_name,
                      job.attempts, outcome.detail)

    def _entry(self, job: Job, decision: str, outcome: presets.Outcome, suffix: str = "") -> AuditEntry:
        limit = self.config.audit_body_limit
        last = outcome.last
        steps = "; ".join(f"{x.request.method} {redact_url(x.request.url)} → {x.status or x.error}"
                          for x in outcome.exchanges[:-1])
        detail = outcome.detail + suffix + (f" [earlier: {steps}]" if steps else "")
        if last is None:
            return job.audit(decision, detail=detail)
        return job.audit(decision, method=last.request.method, url=last.request.url,
                         status_code=last.status, request_body=truncate(last.request.body, limit),
                         response_body=truncate(last.response_body or last.error, limit),
                         detail=detail)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    read_deadline = READ_DEADLINE
    max_connections = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 receiver: Receiver) -> None:
        self.receiver = receiver
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        tls = receiver.config.tls
        self.ssl_context: ssl.SSLContext | None = None
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            if tls.client_ca_file is not None:
                ctx.load_verify_locations(cafile=str(tls.client_ca_file))
                ctx.verify_mode = ssl.CERT_REQUIRED
            self.ssl_context = ctx

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``max_connections`` of them."""
        if not self._slots.acquire(blocking=False):
            self.receiver.metrics.refused.labels("busy").inc()
            log.warning("refused a connection from %s: %d connections open", client_address[0],
                        self.max_connections)
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the per-connection thread, so a slow client cannot stall
        # accept() for everybody else.
        if self.ssl_context is not None:
            try:
                request.settimeout(10.0)
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.receiver.metrics.refused.labels("tls").inc()
                log.warning("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30
    server_version = "driftline-actions"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # A request must arrive within the server's read deadline: the per-read socket timeout alone
    # lets a client that sends one byte every few seconds hold this thread indefinitely.
    def handle_one_request(self) -> None:
        timer = threading.Timer(self.server.read_deadline, self._expired)
        timer.daemon = True
        self._deadline: threading.Timer | None = timer
        self.raw_requestline = b""
        timer.start()
        try:
            super().handle_one_request()
        finally:
            self._arrived()

    def _arrived(self) -> None:
        """The request is read: from here on its handling is not bounded by the deadline."""
        timer, self._deadline = getattr(self, "_deadline", None), None
        if timer is not None:
            timer.cancel()

    def _expired(self) -> None:
        if getattr(self, "_deadline", None) is None:
            return
        if self.raw_requestline:  # a request began and did not finish: count it
            self.server.receiver.metrics.refused.labels("timeout").inc()
            log.warning("closed a connection from %s: request not received within %gs",
                        self.client_address[0], self.server.read_deadline)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, status: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8",
               headers: Mapping[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _api(self, method: str, body: bytes = b"") -> None:
        subject = ""
        if isinstance(self.connection, ssl.SSLSocket):
            from driftline.alertmanager.access import subject_string

            subject = subject_string(self.connection.getpeercert())
        status, doc = approval_api.handle(self.server.receiver, method, self.path,
                                          self.headers.get("Authorization"), subject, body,
                                          self.client_address[0])
        self._reply(status, json.dumps(doc) + "\n", "application/json")

    def do_GET(self) -> None:
        self._arrived()
        path = self.path.split("?", 1)[0]
        if path.startswith(approval_api.PREFIX):
            self._api("GET")
        elif path == "/healthz":
            self._reply(200, "ok\n")
        elif path == "/metrics":
            self._reply(200, generate_latest(self.server.receiver.metrics.registry),
                        CONTENT_TYPE_LATEST)
        else:
            self._reply(404, "not found\n")

    def do_POST(self) -> None:
        receiver = self.server.receiver
        remote = self.client_address[0]
        if self.path.startswith(approval_api.PREFIX):
            try:
                n = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                n = -1
            if not 0 <= n <= 65536:
                self.close_connection = True
                self._reply(HTTPStatus.BAD_REQUEST, '{"error": "bad Content-Length"}\n',
                            "application/json")
                return
            data = self.rfile.read(n) if n else b""
            self._arrived()
            self._api("POST", data)
            return
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._reply(404, f"not found; Alertmanager webhooks go to {WEBHOOK_PATH}\n")
            return
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if not receiver.authorized(self.headers.get("Authorization")):
            self._drain(length)
            receiver.refuse("unauthorized", "missing or wrong credentials", remote)
            challenge = 'Bearer realm="driftline"' if receiver.config.auth.bearer else \
                'Basic realm="driftline"'
            self._reply(HTTPStatus.UNAUTHORIZED, "unauthorized\n",
                        headers={"WWW-Authenticate": challenge})
            return
        if length < 0:
            receiver.refuse("malformed", "no Content-Length", remote)
            self.close_connection = True
            self._reply(HTTPStatus.LENGTH_REQUIRED, "Content-Length required\n")
            return
        if length > MAX_BODY:
            receiver.refuse("too_large", f"{length} bytes", remote)
            self.close_connection = True
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes\n")
            return
        body = self.rfile.read(length)
        if len(body) < length:  # cut off by the deadline or the client went away
            self.close_connection = True
            return
        self._arrived()
        try:
            status, message = receiver.handle(body, remote)
        except Exception:
            log.exception("could not enqueue webhook")
            # 5xx makes Alertmanager retry with backoff, which is what we want if the disk hiccups.
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "could not store the alerts durably\n")
            return
        ctype = "application/json" if status == 200 else "text/plain; charset=utf-8"
        self._reply(status, message + "\n", ctype)

    def _drain(self, length: int) -> None:
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True
