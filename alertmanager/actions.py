"""Action presets: the HTTP calls that retrain or roll back a model.

Each preset turns a target's configuration and one alert's template context into requests whose
wire format follows the upstream API (see docs/actions.md for citations):

=========================  ======  ==========================================================
type                       method  request
=========================  ======  ==========================================================
http                       any     ``url`` with templated headers and body
argo_workflows             POST    ``/api/v1/workflows/{ns}/submit`` (409 = already submitted)
kubeflow_pipelines         POST    ``/apis/v2beta1/runs``
airflow2                   POST    ``/api/v1/dags/{dag_id}/dagRuns`` (409 = already triggered)
airflow3                   POST    ``/api/v2/dags/{dag_id}/dagRuns`` (409 = already triggered)
github_workflow            POST    ``/repos/{o}/{r}/actions/workflows/{wf}/dispatches``
kserve_canary_rollback     PATCH   InferenceService merge-patch ``canaryTrafficPercent: 0``
k8s_rollout_undo           PATCH   Deployment JSON patch back to the previous ReplicaSet
mlflow_alias_rollback      POST    ``/api/2.0/mlflow/registered-models/alias`` (champion ←
                                   version of ``previous``)
=========================  ======  ==========================================================

Credentials are added by :class:`HttpClient` from the target's secrets; they are never part of
the template context, so neither an alert nor a template can leak them, and the audit copy of a
request is taken without them. Every call has a timeout.

Templated values never change the structure of a request: URL path segments are
percent-encoded, JSON bodies are built as objects, headers refuse line breaks, and Argo's
``k=v,k=v`` label string and ``k=v`` parameters refuse what could add a label or a parameter.
Where the target offers one, the request carries an idempotency key derived from the alert
(:data:`IDEMPOTENCY`), so a call repeated after a crash is a no-op at the target.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline import __version__
from driftline.alertmanager.actions_config import TargetConfig
from driftline.alertmanager.template import Template, render_tree
from driftline.redact import redact_text

USER_AGENT = f"driftline-actions/{__version__}"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
#: Deployment annotations kubectl keeps from the Deployment rather than copying from the
#: ReplicaSet when it undoes a rollout (kubectl polymorphichelpers/rollback.go).
ANNOTATIONS_TO_SKIP = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})
POD_TEMPLATE_HASH = "pod-template-hash"


@dataclass(frozen=True)
class Request:
    """A request as planned: what the audit log shows (no credentials in it)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def json_body(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Exchange:
    request: Request
    status: int | None
    response_body: bytes = b""
    error: str = ""


@dataclass
class Outcome:
    """Result of running one action once: ``ok``; else ``retryable`` says whether to try again."""

    ok: bool
    retryable: bool = False
    detail: str = ""
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def last(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None


class TransportError(Exception):
    """Connection refused, timeout, TLS failure: always retryable."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect on a POST/PATCH would silently change the request; surface it as a failure.
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


class HttpClient:
    """Sends requests for one target with its credentials, TLS settings and timeout."""

    def __init__(self, target: TargetConfig) -> None:
        self.target = target
        handlers: list[Any] = [_NoRedirect()]
        ctx = self._ssl_context()
        if ctx is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self._opener = urllib.request.build_opener(*handlers)
        self._airflow_token: str | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        tls = self.target.tls
        if not (tls.ca_file or tls.cert_file or tls.insecure_skip_verify):
            return None
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _auth_header(self, server: str) -> str | None:
        auth = self.target.auth
        if auth.bearer is not None:
            return f"Bearer {auth.bearer.value()}"
        if auth.basic is not None:
            raw = f"{auth.basic.username}:{auth.basic.password.value()}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        if auth.airflow_jwt is not None:
            if self._airflow_token is None:
                self._airflow_token = self._fetch_airflow_token(server)
            return f"Bearer {self._airflow_token}"
        return None

    def _fetch_airflow_token(self, server: str) -> str:
        creds = self.target.auth.airflow_jwt
        assert creds is not None
        body = json.dumps({"username": creds.username, "password": creds.password.value()}).encode()
        resp = self._send(Request("POST", f"{server}/auth/token",
                                  {"Content-Type": "application/json"}, body), auth=None)
        if resp.status not in (200, 201):
            raise TransportError(f"Airflow token endpoint answered {resp.status}")
        token = resp.json().get("access_token") if resp.body else None
        if not isinstance(token, str):
            raise TransportError("Airflow token endpoint returned no access_token")
        return token

    def send(self, request: Request, *, server: str = "") -> Response:
        """Send with credentials. Raises :class:`TransportError` when no HTTP answer came."""
        return self._send(request, auth=self._auth_header(server))

    def _send(self, request: Request, auth: str | None) -> Response:
        headers = {"User-Agent": USER_AGENT, **request.headers}
        if auth:
            headers["Authorization"] = auth
        req = urllib.request.Request(request.url, data=request.body, headers=headers,
                                     method=request.method)
        try:
            with self._opener.open(req, timeout=self.target.timeout) as resp:
                return Response(resp.status, resp.read(), dict(resp.headers.items()))
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except OSError:
                body = b""
            return Response(exc.code, body, dict(exc.headers.items()) if exc.headers else {})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportError(f"{type(exc).__name__}: {reason}") from exc


# ---------------------------------------------------------------------------------------------
# Building requests (pure: config + context -> Request)


def _render(params: Mapping[str, Any], key: str, ctx: Mapping[str, Any], default: Any = None) -> Any:
    value = params.get(key)
    if value is None:
        return default
    return render_tree(value, ctx)


def _text(params: Mapping[str, Any], key: str, ctx: Mapping[str, Any], default: str = "") -> str:
    value = _render(params, key, ctx)
    return default if value is None else str(value)


def _seg(value: str) -> str:
    """Percent-encode one path segment."""
    return urllib.parse.quote(value, safe="")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def _headers(target: TargetConfig, ctx: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    out = dict(base)
    for name, tpl in target.headers.items():
        value = tpl.render(ctx)
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} would contain a line break")
        out[name] = value
    return out


def default_inputs(ctx: Mapping[str, Any]) -> dict[str, str]:
    """What a retraining job gets when the target names no parameters."""
    return {"model_name": str(ctx.get("model_name", "")),
            "model_version": str(ctx.get("model_version", ""))}


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def build_http(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    p = t.params
    method = _text(p, "method", ctx, "POST").upper()
    body_tpl = p.get("body")
    content_type = _text(p, "content_type", ctx, "application/json")
    body: bytes | None = None
    if isinstance(body_tpl, Template):
        body = body_tpl.render(ctx).encode()
    elif body_tpl is not None:
        body = _json(render_tree(body_tpl, ctx))
    base = {"Content-Type": content_type} if body is not None else {}
    return Request(method, _text(p, "url", ctx), _headers(t, ctx, base), body)


# Kubernetes label syntax: values of at most 63 characters, keys with an optional DNS prefix.
_K8S_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_K8S_LABEL_KEY = re.compile(r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?"
                            r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _k8s_labels(labels: Mapping[str, str]) -> str:
    """Labels as Argo's ``k=v,k=v`` string. A templated value holding ``,`` or ``=`` could add
    labels (a forged dedupe key among them), so anything but valid Kubernetes label syntax is
    refused, and the ``driftline/`` labels cannot be overridden."""
    for k, v in labels.items():
        if not _K8S_LABEL_KEY.fullmatch(k):
            raise ValueError(f"label key {k[:60]!r} is not a Kubernetes label key")
        if not _K8S_LABEL_VALUE.fullmatch(v):
            raise ValueError(f"label {k}={v[:60]!r}: not a Kubernetes label value (at most 63 "
                             "letters, digits, '-', '_', '.'; no ',' or '=')")
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _argo_parameters(params: Mapping[str, str]) -> list[str]:
    """``name=value`` items; Argo splits each at its first ``=``, so a name may not hold one."""
    for k in params:
        if not k or "=" in k or "\n" in k:
            raise ValueError(f"parameter name {k[:60]!r} is empty or holds '=' or a line break")
    return [f"{k}={v}" for k, v in params.items()]


def workflow_name(ctx: Mapping[str, Any]) -> str:
    """The idempotency key of workflow and pipeline presets: one name per alert instance, so a
    replay after a crash is refused by the target (Argo answers 409) instead of run twice."""
    return f"driftline-{ctx.get('dedupe_key', '')}"


def build_argo(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    p = t.params
    server, ns = _text(p, "server", ctx), _text(p, "namespace", ctx)
    params = _str_map(_render(p, "parameters", ctx)) or default_inputs(ctx)
    own = {"driftline/trigger": "alert", "driftline/dedupe-key": str(ctx.get("dedupe_key", ""))}
    extra = _str_map(_render(p, "labels", ctx))
    taken = sorted(set(extra) & set(own))
    if taken:
        raise ValueError(f"label {taken[0]} is set by Driftline and cannot be templated")
    body = {
        "resourceKind": _text(p, "kind", ctx, "WorkflowTemplate"),
        "resourceName": _text(p, "template", ctx),
        "submitOptions": {
            "name": workflow_name(ctx),
            "parameters": _argo_parameters(params),
            "labels": _k8s_labels({**own, **extra}),
        },
    }
    return Request("POST", f"{server}/api/v1/workflows/{_seg(ns)}/submit",
                   _headers(t, ctx, {"Content-Type": "application/json"}), _json(body))


def build_kubeflow(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    p = t.params
    ref = {"pipeline_id": _text(p, "pipeline_id", ctx)}
    if p.get("pipeline_version_id") is not None:
        ref["pipeline_version_id"] = _text(p, "pipeline_version_id", ctx)
    default_name = "-".join(("driftline", str(ctx.get("action", "")), str(ctx.get("model_name", "")),
                             str(ctx.get("dedupe_key", ""))))
    body: dict[str, Any] = {"display_name": _text(p, "display_name", ctx, default_name)}
    if p.get("experiment_id") is not None:
        body["experiment_id"] = _text(p, "experiment_id", ctx)
    body["pipeline_version_reference"] = ref
    params = _render(p, "parameters", ctx)
    body["runtime_config"] = {"parameters": params if isinstance(params, Mapping)
                              else default_inputs(ctx)}
    return Request("POST", f"{_text(p, 'server', ctx)}/apis/v2beta1/runs",
                   _headers(t, ctx, {"Content-Type": "application/json"}), _json(body))


def dag_run_id(ctx: Mapping[str, Any]) -> str:
    """Derived from the dedupe key: a second trigger of the same alert gets 409 from Airflow."""
    return workflow_name(ctx)


def _airflow_conf(p: Mapping[str, Any], ctx: Mapping[str, Any]) -> Any:
    conf = _render(p, "conf", ctx)
    if conf is not None:
        return conf
    alert = ctx.get("alert", {})
    return {**default_inputs(ctx), "action": ctx.get("action", ""),
            "alertname": ctx.get("labels", {}).get("alertname", ""),
            "fingerprint": alert.get("fingerprint", ""), "dedupe_key": ctx.get("dedupe_key", "")}


def _airflow_dag_run(t: TargetConfig, ctx: Mapping[str, Any], api: str,
                     extra: Mapping[str, Any]) -> Request:
    """``POST {server}/api/{api}/dags/{dag_id}/dagRuns``; the run id comes from the dedupe key, so
    a repeated call gets 409 from Airflow instead of a second run."""
    p = t.params
    body: dict[str, Any] = {"dag_run_id": dag_run_id(ctx), **extra, "conf": _airflow_conf(p, ctx)}
    if p.get("note") is not None:
        body["note"] = _text(p, "note", ctx)
    url = f"{_text(p, 'server', ctx)}/api/{api}/dags/{_seg(_text(p, 'dag_id', ctx))}/dagRuns"
    return Request("POST", url, _headers(t, ctx, {"Content-Type": "application/json"}), _json(body))


def build_airflow2(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    return _airflow_dag_run(t, ctx, "v1", {})


def build_airflow3(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    # logical_date is required but nullable in Airflow 3's TriggerDAGRunPostBody.
    return _airflow_dag_run(t, ctx, "v2", {"logical_date": None})


def build_github(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    p = t.params
    api = _text(p, "api_url", ctx, "https://api.github.com")
    inputs = _str_map(_render(p, "inputs", ctx)) if p.get("inputs") is not None else {
        "model_name": str(ctx.get("model_name", ""))}
    url = (f"{api}/repos/{_seg(_text(p, 'owner', ctx))}/{_seg(_text(p, 'repo', ctx))}"
           f"/actions/workflows/{_seg(_text(p, 'workflow', ctx))}/dispatches")
    base = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json"}
    return Request("POST", url, _headers(t, ctx, base),
                   _json({"ref": _text(p, "ref", ctx, "main"), "inputs": inputs}))


def build_kserve(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    p = t.params
    name = _text(p, "name", ctx) or str(ctx.get("model_name", ""))
    pct_raw = p.get("canary_traffic_percent", 0)
    pct = int(pct_raw) if isinstance(pct_raw, int | float) else int(_text(p, "canary_traffic_percent", ctx))
    url = (f"{_text(p, 'server', ctx)}/apis/serving.kserve.io/v1beta1/namespaces/"
           f"{_seg(_text(p, 'namespace', ctx))}/inferenceservices/{_seg(name)}")
    body = {"spec": {"predictor": {"canaryTrafficPercent": pct}}}
    return Request("PATCH", url, _headers(t, ctx, {"Content-Type": MERGE_PATCH}), _json(body))


SINGLE_REQUEST_BUILDERS: dict[str, Callable[[TargetConfig, Mapping[str, Any]], Request]] = {
    "http": build_http,
    "argo_workflows": build_argo,
    "kubeflow_pipelines": build_kubeflow,
    "airflow2": build_airflow2,
    "airflow3": build_airflow3,
    "github_workflow": build_github,
    "kserve_canary_rollback": build_kserve,
}

#: Statuses that mean "this was already done" for a preset (still success).
ALREADY_DONE: dict[str, frozenset[int]] = {
    "airflow2": frozenset({409}),
    "airflow3": frozenset({409}),
    "argo_workflows": frozenset({409}),  # a workflow of that name exists: submitted before
}

#: How a replay of the same alert (after a crash mid-call) stays a no-op at each target.
#: docs/actions.md shows this table; a test keeps the two equal.
IDEMPOTENCY: dict[str, str] = {
    "http": "none built in: template `{{ dedupe_key }}` into the URL, a header or the body if "
            "your endpoint dedupes",
    "argo_workflows": "workflow name `driftline-<dedupe_key>` (`submitOptions.name`): a replay "
                      "gets 409, counted as acted",
    "kubeflow_pipelines": "none: KFP assigns run ids; the display name carries the dedupe key, "
                          "so a duplicate run is visible",
    "airflow2": "`dag_run_id = driftline-<dedupe_key>`: a replay gets 409, counted as acted",
    "airflow3": "`dag_run_id = driftline-<dedupe_key>`: a replay gets 409, counted as acted",
    "github_workflow": "none: a dispatch always starts a run; pass `{{ dedupe_key }}` as an input "
                       "and let the workflow skip a key it has seen",
    "kserve_canary_rollback": "idempotent by nature: the patch sets canaryTrafficPercent to 0",
    "k8s_rollout_undo": "the chosen ReplicaSet is stored before the patch; a replay finds the "
                        "Deployment on that template and stops",
    "mlflow_alias_rollback": "idempotent: nothing is sent when the alias already points at the "
                             "previous version",
    "jenkins": "none: Jenkins queues every build; the `dedupe_key` parameter (sent by default) "
               "lets the job skip a key it has seen",
}


def plan(t: TargetConfig, ctx: Mapping[str, Any]) -> Request:
    """The (mutating) request an action would send — shown for dry runs."""
    builder = SINGLE_REQUEST_BUILDERS.get(t.type)
    if builder is not None:
        return builder(t, ctx)
    p = t.params
    server = _text(p, "server", ctx)
    if t.type == "k8s_rollout_undo":
        name = _text(p, "deployment", ctx) or str(ctx.get("model_name", ""))
        return Request("PATCH", f"{server}/apis/apps/v1/namespaces/{_seg(_text(p, 'namespace', ctx))}"
                       f"/deployments/{_seg(name)}", {"Content-Type": JSON_PATCH},
                       b"<template of the previous ReplicaSet, resolved at run time>")
    if t.type == "mlflow_alias_rollback":
        return Request("POST", f"{server}/api/2.0/mlflow/registered-models/alias",
                       {"Content-Type": "application/json"},
                       _json({"name": _mlflow_model(p, ctx),
                              "alias": _text(p, "alias", ctx, "champion"),
                              "version": "<version of alias "
                                         f"{_text(p, 'previous_alias', ctx, 'previous')}>"}))
    if t.type == "jenkins":
        return _jenkins_build(t, ctx, {})
    raise ValueError(f"unknown target type {t.type}")


def _jenkins_build(t: TargetConfig, ctx: Mapping[str, Any], extra: Mapping[str, str]) -> Request:
    """``POST {server}/job/<folder>/job/<name>/buildWithParameters``, form-encoded parameters
    (``job: team/retrain`` addresses a job inside a folder)."""
    p = t.params
    job = "/".join(f"job/{_seg(part)}" for part in _text(p, "job", ctx).strip("/").split("/") if part)
    params = (_str_map(_render(p, "parameters", ctx)) if p.get("parameters") is not None
              else {**default_inputs(ctx), "dedupe_key": str(ctx.get("dedupe_key", ""))})
    headers = _headers(t, ctx, {"Content-Type": "application/x-www-form-urlencoded", **extra})
    return Request("POST", f"{_text(p, 'server', ctx)}/{job}/buildWithParameters", headers,
                   urllib.parse.urlencode(params).encode())


def _header(resp: Response, name: str) -> str:
    return next((v for k, v in resp.headers.items() if k.lower() == name.lower()), "")


def _run_jenkins(t: TargetConfig, ctx: Mapping[str, Any], run: _Run) -> Outcome:
    """Jenkins' CSRF protection: fetch a crumb (``GET /crumbIssuer/api/json``, with the same
    credentials, keeping the session cookie it is bound to) and send it in its header field; a
    Jenkins without a crumb issuer answers 404 and gets the build request without one. Jenkins
    answers 201 with the queue item in ``Location``."""
    resp = run.call(Request("GET", f"{run.server}/crumbIssuer/api/json", {"Accept": "application/json"}))
    if resp is None:
        return run.outcome
    extra: dict[str, str] = {}
    if resp.status == 200:
        data = resp.json() or {}
        field_name, crumb = data.get("crumbRequestField"), data.get("crumb")
        if not isinstance(field_name, str) or not isinstance(crumb, str):
            run.outcome.detail = "Jenkins crumb issuer answered without crumb/crumbRequestField"
            return run.outcome
        extra[field_name] = crumb
        cookie = _header(resp, "Set-Cookie").split(";", 1)[0]
        if cookie:
            extra["Cookie"] = cookie
    elif resp.status != 404:
        return run.fail(resp, "GET crumbIssuer")
    request = _jenkins_build(t, ctx, extra)
    resp = run.call(request)
    if resp is None:
        return run.outcome
    if resp.status in (200, 201):
        queued = _header(resp, "Location")
        return run.done(f"POST {request.url} → {resp.status}" + (f", queued {queued}" if queued else ""))
    return run.fail(resp, f"POST {request.url}")


# ---------------------------------------------------------------------------------------------
# Running actions


class _Run:
    """Collects exchanges and classifies statuses for one action attempt."""

    def __init__(self, client: HttpClient, server: str) -> None:
        self.client = client
        self.server = server
        self.outcome = Outcome(ok=False)

    def call(self, request: Request) -> Response | None:
        try:
            resp = self.client.send(request, server=self.server)
        except TransportError as exc:
            self.outcome.exchanges.append(Exchange(request, None, error=redact_text(str(exc))))
            self.outcome.retryable = True
            self.outcome.detail = f"{request.method} {request.url}: {exc}"
            return None
        self.outcome.exchanges.append(Exchange(request, resp.status, resp.body))
        return resp

    def fail(self, resp: Response, what: str) -> Outcome:
        self.outcome.ok = False
        self.outcome.retryable = resp.status >= 500 or resp.status in (408, 429)
        self.outcome.detail = f"{what}: HTTP {resp.status}"
        return self.outcome

    def done(self, detail: str) -> Outcome:
        self.outcome.ok = True
        self.outcome.retryable = False
        self.outcome.detail = detail
        return self.outcome


def run_action(t: TargetConfig, ctx: Mapping[str, Any], client: HttpClient,
               memo: dict[str, Any] | None = None,
               save_memo: Callable[[], None] | None = None) -> Outcome:
    """Run one attempt. ``memo`` survives retries and restarts (persisted by ``save_memo``) so
    multi-step rollbacks re-run idempotently."""
    memo = {} if memo is None else memo
    save = save_memo or (lambda: None)
    server = _text(t.params, "server", ctx)
    run = _Run(client, server)
    outcome = _run_action(t, ctx, run, memo, save)
    # The detail is logged and audited: a server URL with user:password@ must not show.
    outcome.detail = redact_text(outcome.detail)
    return outcome


def _run_action(t: TargetConfig, ctx: Mapping[str, Any], run: _Run, memo: dict[str, Any],
                save: Callable[[], None]) -> Outcome:
    try:
        if t.type in SINGLE_REQUEST_BUILDERS:
            return _run_single(t, ctx, run)
        if t.type == "k8s_rollout_undo":
            return _run_rollout_undo(t, ctx, run, memo, save)
        if t.type == "mlflow_alias_rollback":
            return _run_mlflow(t, ctx, run, memo, save)
        if t.type == "jenkins":
            return _run_jenkins(t, ctx, run)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        run.outcome.detail = f"cannot build the request or read the answer: {exc}"
        return run.outcome
    run.outcome.detail = f"unknown target type {t.type}"
    return run.outcome


def _run_single(t: TargetConfig, ctx: Mapping[str, Any], run: _Run) -> Outcome:
    request = SINGLE_REQUEST_BUILDERS[t.type](t, ctx)
    resp = run.call(request)
    if resp is None:
        return run.outcome
    extra = t.params.get("success_statuses") or []
    if 200 <= resp.status < 300 or resp.status in extra:
        return run.done(f"{request.method} {request.url} → {resp.status}")
    if resp.status in ALREADY_DONE.get(t.type, frozenset()):
        return run.done(f"already triggered ({resp.status}): {workflow_name(ctx)}")
    return run.fail(resp, f"{request.method} {request.url}")


def _strip_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(template))
    labels = out.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return out


def _revision(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("annotations", {}).get(REVISION_ANNOTATION, "0"))
    except (TypeError, ValueError):
        return 0


def _run_rollout_undo(t: TargetConfig, ctx: Mapping[str, Any], run: _Run, memo: dict[str, Any],
                      save: Callable[[], None]) -> Outcome:
    p = t.params
    ns = _text(p, "namespace", ctx)
    name = _text(p, "deployment", ctx) or str(ctx.get("model_name", ""))
    base = f"{run.server}/apis/apps/v1/namespaces/{_seg(ns)}"
    dep_url = f"{base}/deployments/{_seg(name)}"
    resp = run.call(Request("GET", dep_url, {"Accept": "application/json"}))
    if resp is None:
        return run.outcome
    if resp.status != 200:
        return run.fail(resp, f"GET deployment {ns}/{name}")
    dep = resp.json()
    selector = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    rs_url = f"{base}/replicasets?labelSelector={urllib.parse.quote(label_selector, safe='')}"
    resp = run.call(Request("GET", rs_url, {"Accept": "application/json"}))
    if resp is None:
        return run.outcome
    if resp.status != 200:
        return run.fail(resp, "GET replicasets")
    uid = dep.get("metadata", {}).get("uid")
    owned = [rs for rs in resp.json().get("items", [])
             if any(o.get("uid") == uid for o in rs.get("metadata", {}).get("ownerReferences", []))]
    chosen: dict[str, Any] | None = None
    if "rollback_to" in memo:
        # A previous attempt already chose (and maybe applied) the revision: do not flip again.
        chosen = next((rs for rs in owned if rs["metadata"].get("name") == memo["rollback_to"]), None)
    if chosen is None:
        ranked = sorted(owned, key=_revision, reverse=True)
        if len(ranked) < 2:
            run.outcome.detail = f"deployment {ns}/{name} has no previous revision to roll back to"
            return run.outcome
        chosen = ranked[1]
        memo["rollback_to"] = chosen["metadata"]["name"]
        memo["from_revision"] = _revision(ranked[0])
        save()
    template = _strip_hash(chosen.get("spec", {}).get("template", {}))
    if _strip_hash(dep.get("spec", {}).get("template", {})) == template:
        return run.done(f"deployment {ns}/{name} already runs the template of revision "
                        f"{_revision(chosen)} ({memo['rollback_to']})")
    dep_ann = dep.get("metadata", {}).get("annotations", {}) or {}
    annotations = {k: v for k, v in dep_ann.items() if k in ANNOTATIONS_TO_SKIP}
    for k, v in (chosen.get("metadata", {}).get("annotations", {}) or {}).items():
        if k not in ANNOTATIONS_TO_SKIP:
            annotations[k] = v
    patch = [{"op": "replace", "path": "/spec/template", "value": template},
             {"op": "replace", "path": "/metadata/annotations", "value": annotations}]
    request = Request("PATCH", dep_url, _headers(t, ctx, {"Content-Type": JSON_PATCH}), _json(patch))
    resp = run.call(request)
    if resp is None:
        return run.outcome
    if 200 <= resp.status < 300:
        return run.done(f"rolled back deployment {ns}/{name} from revision "
                        f"{memo.get('from_revision')} to revision {_revision(chosen)}")
    return run.fail(resp, f"PATCH deployment {ns}/{name}")


def _mlflow_no_alias(resp: Response) -> bool:
    """True for MLflow's answer to an alias that does not exist (tested on a real server)."""
    if resp.status != 400:
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error_code") == "INVALID_PARAMETER_VALUE"


def _mlflow_model(p: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    return _text(p, "model", ctx) or str(ctx.get("model_name", ""))


def _run_mlflow(t: TargetConfig, ctx: Mapping[str, Any], run: _Run, memo: dict[str, Any],
                save: Callable[[], None]) -> Outcome:
    p = t.params
    model = _mlflow_model(p, ctx)
    alias = _text(p, "alias", ctx, "champion")
    previous = _text(p, "previous_alias", ctx, "previous")
    url = f"{run.server}/api/2.0/mlflow/registered-models/alias"

    def get_alias(name: str) -> tuple[Response | None, str | None]:
        q = urllib.parse.urlencode({"name": model, "alias": name})
        resp = run.call(Request("GET", f"{url}?{q}", {"Accept": "application/json"}))
        if resp is None or resp.status != 200:
            return resp, None
        version = (resp.json() or {}).get("model_version", {}).get("version")
        return resp, None if version is None else str(version)

    if "version" not in memo:
        resp, version = get_alias(previous)
        if resp is None:
            return run.outcome
        if version is None:
            # MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE (3.x), not 404.
            if resp.status == 404 or 200 <= resp.status < 300 or _mlflow_no_alias(resp):
                run.outcome.detail = f"model {model} has no alias {previous!r} to roll back to"
                return run.outcome
            return run.fail(resp, f"GET alias {previous}")
        memo["version"] = version
        save()
    version = str(memo["version"])
    resp, current = get_alias(alias)
    if resp is None:
        return run.outcome
    if current == version:
        return run.done(f"{model}@{alias} already points to version {version}")
    memo.setdefault("from_version", current)
    body = _json({"name": model, "alias": alias, "version": version})
    resp = run.call(Request("POST", url, _headers(t, ctx, {"Content-Type": "application/json"}), body))
    if resp is None:
        return run.outcome
    if 200 <= resp.status < 300:
        return run.done(f"{model}@{alias}: version {memo.get('from_version')} → {version} "
                        f"(from alias {previous!r})")
    return run.fail(resp, f"POST alias {alias}")
