"""Load and validate ``actions.yaml``, the webhook receiver's configuration.

Everything that can be wrong is found here, before the receiver listens: unknown keys, missing
secrets, bad templates, routes to undefined targets. Each error names the file, the key and the
fix (:class:`driftline.errors.ConfigError`). Secrets come from files or environment variables,
never from the config text itself and never from an alert. Relative paths are resolved against
the directory of the config file.

>>> cfg = load_config_dict({"auth": {"allow_unauthenticated": True},
...     "targets": {"t": {"type": "http", "url": "http://127.0.0.1:1/x"}},
...     "routes": [{"model_name": "fraud-*", "action": "retrain", "target": "t"}]})
>>> cfg.route_for("fraud-eu", "retrain").target
't'
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftline.alertmanager.access import ROLES, AccessConfig, Principal
from driftline.alertmanager.template import Template, compile_tree
from driftline.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:9096"
ACTIONS: frozenset[str] = frozenset({"retrain", "rollback"})

#: Preset type -> (required params, optional params). Implemented in :mod:`.actions`.
PRESET_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "http": (frozenset({"url"}), frozenset({"method", "body", "success_statuses", "content_type"})),
    "argo_workflows": (frozenset({"server", "namespace", "template"}),
                       frozenset({"kind", "parameters", "labels"})),
    "kubeflow_pipelines": (frozenset({"server", "pipeline_id"}),
                           frozenset({"pipeline_version_id", "experiment_id", "display_name",
                                      "parameters"})),
    "airflow2": (frozenset({"server", "dag_id"}), frozenset({"conf", "note"})),
    "airflow3": (frozenset({"server", "dag_id"}), frozenset({"conf", "note"})),
    "github_workflow": (frozenset({"owner", "repo", "workflow"}),
                        frozenset({"ref", "inputs", "api_url"})),
    "kserve_canary_rollback": (frozenset({"server", "namespace"}),
                               frozenset({"name", "canary_traffic_percent"})),
    "k8s_rollout_undo": (frozenset({"server", "namespace"}), frozenset({"deployment"})),
    "mlflow_alias_rollback": (frozenset({"server"}),
                              frozenset({"model", "alias", "previous_alias"})),
    # Jenkins: buildWithParameters with a CSRF crumb; auth.basic = user + API token (password_file).
    "jenkins": (frozenset({"server", "job"}), frozenset({"parameters"})),
}
_TARGET_COMMON = frozenset({"type", "auth", "tls", "timeout", "headers", "dry_run"})
_TOP_KEYS = frozenset({"listen", "database", "dry_run", "cooldown", "delay", "retry", "timeout",
                       "auth", "tls", "targets", "routes", "audit_body_limit", "cancel_on_resolve",
                       "access", "approval"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Secret:
    """A credential read from a file (re-read when the file changes, for rotated Kubernetes
    secrets) or from an environment variable. ``repr`` never shows the value."""

    def __init__(self, *, file: Path | None = None, env: str | None = None) -> None:
        self.file = file
        self.env = env
        self._lock = threading.Lock()
        self._cached: tuple[float, str] | None = None

    def __repr__(self) -> str:
        return f"Secret(file={self.file!s}, env={self.env})"

    def value(self) -> str:
        if self.env is not None:
            return os.environ.get(self.env, "")
        assert self.file is not None
        with self._lock:
            try:
                mtime = self.file.stat().st_mtime
            except OSError:
                return self._cached[1] if self._cached else ""
            if self._cached is None or self._cached[0] != mtime:
                self._cached = (mtime, self.file.read_text(encoding="utf-8").strip())
            return self._cached[1]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for failed action calls: ``initial × multiplier^(n-1)``, capped."""

    max_attempts: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1)))


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: Secret


@dataclass(frozen=True)
class ReceiverAuth:
    """Who may call the receiver: a bearer token, basic auth, or both (either one passes)."""

    bearer: Secret | None = None
    basic: BasicAuth | None = None
    allow_unauthenticated: bool = False


@dataclass(frozen=True)
class ServerTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class TargetAuth:
    bearer: Secret | None = None
    basic: BasicAuth | None = None
    #: Airflow 3: exchange username/password for a JWT at ``{server}/auth/token``.
    airflow_jwt: BasicAuth | None = None


@dataclass(frozen=True)
class TargetTls:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class TargetConfig:
    """One action target: a preset type, its compiled parameters, credentials and timeout."""

    name: str
    type: str
    params: Mapping[str, Any]
    auth: TargetAuth = field(default_factory=TargetAuth)
    tls: TargetTls = field(default_factory=TargetTls)
    timeout: float = 10.0
    headers: Mapping[str, Template] = field(default_factory=dict)
    dry_run: bool | None = None


@dataclass(frozen=True)
class Route:
    """``model_name`` glob and ``action`` label value → target name (first match wins)."""

    model_name: str
    action: str
    target: str
    cooldown: float | None = None
    dry_run: bool | None = None
    #: The action waits, pending, until an approver says yes (``driftline actions approve``).
    require_approval: bool = False


@dataclass(frozen=True)
class ApprovalConfig:
    """How approval requests expire and where they are announced.

    ``alertmanager_url``: the receiver posts a ``DriftlineActionAwaitingApproval`` alert there
    (with the triggering alert's severity and model labels), so the request reaches the same
    channels as every other alert, and resolves it once decided. ``public_url`` is the receiver's
    address as approvers reach it, used in the instructions.
    """

    expires: float = 86400.0
    alertmanager_url: str | None = None
    public_url: str | None = None


@dataclass(frozen=True)
class ActionsConfig:
    path: str
    host: str = "127.0.0.1"
    port: int = 9096
    database: Path = Path("driftline-actions.db")
    dry_run: bool = False
    cooldown: float = 3600.0
    delay: float = 0.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 10.0
    auth: ReceiverAuth = field(default_factory=ReceiverAuth)
    tls: ServerTls | None = None
    targets: Mapping[str, TargetConfig] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    audit_body_limit: int = 2048
    #: A resolved alert cancels its job if no attempt was made yet (useful with ``delay``).
    cancel_on_resolve: bool = True
    access: AccessConfig = field(default_factory=AccessConfig)
    approval: ApprovalConfig = field(default_factory=ApprovalConfig)

    def route_for(self, model_name: str, action: str) -> Route | None:
        for route in self.routes:
            if route.action == action and fnmatch.fnmatchcase(model_name, route.model_name):
                return route
        return None


def parse_duration(value: Any, *, path: str, key: str) -> float:
    """``30``, ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` → seconds."""
    if isinstance(value, bool):
        raise ConfigError("expected a duration", path=path, key=key, fix='write e.g. 30s, 5m or 1h')
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"{value!r} is not a duration", path=path, key=key,
                          fix="write e.g. 30s, 5m or 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


class _Loader:
    def __init__(self, path: str, base: Path) -> None:
        self.path = path
        self.base = base

    def err(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, key=key, fix=fix)

    def mapping(self, value: Any, key: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.err(key, f"expected a mapping, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(set(map(str, value)) - allowed)
            if unknown:
                raise self.err(f"{key}.{unknown[0]}" if key else unknown[0], "unknown key",
                               fix="allowed keys: " + ", ".join(sorted(allowed)))
        return {str(k): v for k, v in value.items()}

    def file(self, value: Any, key: str, must_exist: bool = True) -> Path:
        if not isinstance(value, str) or not value:
            raise self.err(key, "expected a file path")
        p = Path(value)
        if not p.is_absolute():
            p = self.base / p
        if must_exist and not p.is_file():
            raise self.err(key, f"file {p} does not exist", fix="create it or correct the path")
        return p

    def secret(self, raw: Mapping[str, Any], key: str, stem: str) -> Secret | None:
        f, e = raw.get(f"{stem}_file"), raw.get(f"{stem}_env")
        if f is not None and e is not None:
            raise self.err(f"{key}.{stem}_file", f"set only one of {stem}_file and {stem}_env")
        if f is not None:
            s = Secret(file=self.file(f, f"{key}.{stem}_file"))
            if not s.value():
                raise self.err(f"{key}.{stem}_file", "the secret file is empty",
                               fix="write the credential into the file")
            return s
        if e is not None:
            if not isinstance(e, str) or not os.environ.get(e):
                raise self.err(f"{key}.{stem}_env", f"environment variable {e!r} is not set",
                               fix=f"export {e}=... or use {stem}_file")
            return Secret(env=e)
        if stem in raw:
            raise self.err(f"{key}.{stem}", "inline secrets are not accepted",
                           fix=f"use {stem}_file or {stem}_env")
        return None

    def basic(self, value: Any, key: str) -> BasicAuth | None:
        if value is None:
            return None
        raw = self.mapping(value, key, frozenset({"username", "password", "password_file",
                                                  "password_env"}))
        user = raw.get("username")
        if not isinstance(user, str) or not user:
            raise self.err(f"{key}.username", "a username is required")
        pw = self.secret(raw, key, "password")
        if pw is None:
            raise self.err(f"{key}.password_file", "a password is required",
                           fix="set password_file or password_env")
        return BasicAuth(user, pw)

    def number(self, value: Any, key: str, *, integer: bool = False, minimum: float = 0) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < minimum:
            kind = "an integer" if integer else "a number"
            raise self.err(key, f"expected {kind} >= {minimum}, got {value!r}")
        return float(value)

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.err(key, f"expected true or false, got {value!r}")
        return value


def load_config(path: str | os.PathLike[str]) -> ActionsConfig:
    """Read ``actions.yaml``; raises :class:`ConfigError` naming the key and the fix."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(p),
                          fix="pass an existing file to --config") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(p)) from exc
    return load_config_dict(raw, path=str(p), base=p.resolve().parent)


def load_config_dict(raw: Any, *, path: str = "<config>", base: Path | None = None) -> ActionsConfig:
    """Validate an already-parsed config mapping (tests and embedding use this)."""
    ld = _Loader(path, base or Path.cwd())
    top = ld.mapping(raw, "", _TOP_KEYS)
    host, port = _listen(ld, top.get("listen", DEFAULT_LISTEN))
    db = top.get("database", "driftline-actions.db")
    database = ld.file(db, "database", must_exist=False)

    retry_raw = ld.mapping(top.get("retry"), "retry",
                           frozenset({"max_attempts", "initial_backoff", "max_backoff", "multiplier"}))
    retry = RetryPolicy(
        max_attempts=int(ld.number(retry_raw.get("max_attempts", 5), "retry.max_attempts",
                                   integer=True, minimum=1)),
        initial_backoff=parse_duration(retry_raw.get("initial_backoff", "1s"), path=path,
                                       key="retry.initial_backoff"),
        max_backoff=parse_duration(retry_raw.get("max_backoff", "60s"), path=path,
                                   key="retry.max_backoff"),
        multiplier=ld.number(retry_raw.get("multiplier", 2.0), "retry.multiplier", minimum=1),
    )
    timeout = parse_duration(top.get("timeout", "10s"), path=path, key="timeout")
    if timeout <= 0:
        raise ld.err("timeout", "must be positive", fix="write e.g. 10s")

    auth_raw = ld.mapping(top.get("auth"), "auth", frozenset({
        "bearer_token", "bearer_token_file", "bearer_token_env", "basic", "allow_unauthenticated"}))
    auth = ReceiverAuth(
        bearer=ld.secret(auth_raw, "auth", "bearer_token"),
        basic=ld.basic(auth_raw.get("basic"), "auth.basic"),
        allow_unauthenticated=ld.flag(auth_raw.get("allow_unauthenticated", False),
                                      "auth.allow_unauthenticated"),
    )
    tls = _server_tls(ld, top.get("tls"))
    if auth.bearer is None and auth.basic is None and not auth.allow_unauthenticated and tls is None:
        raise ld.err("auth", "no way to authenticate Alertmanager is configured",
                     fix="set auth.bearer_token_file (matching Alertmanager's http_config."
                         "authorization.credentials_file), auth.basic, tls.client_ca_file, or "
                         "auth.allow_unauthenticated: true for a trusted network")
    if auth.bearer is None and auth.basic is None and not auth.allow_unauthenticated and tls \
            and tls.client_ca_file is None:
        raise ld.err("auth", "TLS without a client CA does not authenticate callers",
                     fix="set tls.client_ca_file or auth.bearer_token_file")

    targets = {name: _target(ld, name, value, timeout)
               for name, value in ld.mapping(top.get("targets"), "targets").items()}
    routes_raw = top.get("routes", [])
    if not isinstance(routes_raw, list):
        raise ld.err("routes", "expected a list of {model_name, action, target}")
    routes = tuple(_route(ld, i, r, targets) for i, r in enumerate(routes_raw))
    access = _access(ld, top.get("access"), auth)
    approval = _approval(ld, top.get("approval"))
    if any(r.require_approval for r in routes) and not access.has("approver"):
        i = next(i for i, r in enumerate(routes) if r.require_approval)
        raise ld.err(f"routes[{i}].require_approval", "nobody can approve: no approver is configured",
                     fix="add an access entry with role approver (or admin) and a token_file")

    return ActionsConfig(
        path=path, host=host, port=port, database=database,
        dry_run=ld.flag(top.get("dry_run", False), "dry_run"),
        cooldown=parse_duration(top.get("cooldown", "1h"), path=path, key="cooldown"),
        delay=parse_duration(top.get("delay", 0), path=path, key="delay"),
        retry=retry, timeout=timeout, auth=auth, tls=tls, targets=targets, routes=routes,
        audit_body_limit=int(ld.number(top.get("audit_body_limit", 2048), "audit_body_limit",
                                       integer=True)),
        cancel_on_resolve=ld.flag(top.get("cancel_on_resolve", True), "cancel_on_resolve"),
        access=access, approval=approval,
    )


def _access(ld: _Loader, value: Any, webhook: ReceiverAuth) -> AccessConfig:
    if value is None:
        return AccessConfig()
    if not isinstance(value, list):
        raise ld.err("access", "expected a list of {name, role, token_file | token_env | tls_subject}")
    am = {s.value() for s in (webhook.bearer, webhook.basic.password if webhook.basic else None) if s}
    out: list[Principal] = []
    names: set[str] = set()
    for i, raw_p in enumerate(value):
        key = f"access[{i}]"
        raw = ld.mapping(raw_p, key, frozenset({"name", "role", "token", "token_file", "token_env",
                                                "tls_subject"}))
        name, role = raw.get("name"), raw.get("role")
        if not isinstance(name, str) or not name:
            raise ld.err(f"{key}.name", "a name is required (it goes into the audit log)")
        if name in names:
            raise ld.err(f"{key}.name", f"{name!r} is listed twice")
        names.add(name)
        if role not in ROLES:
            raise ld.err(f"{key}.role", f"unknown role {role!r}", fix="use " + ", ".join(ROLES))
        token = ld.secret(raw, key, "token")
        subject = raw.get("tls_subject")
        if token is None and not subject:
            raise ld.err(f"{key}.token_file", "no credential", fix="set token_file, token_env or tls_subject")
        if subject is not None and not isinstance(subject, str):
            raise ld.err(f"{key}.tls_subject", "expected a subject such as 'CN=bob,O=ml' or a CN")
        if token is not None and token.value() in am:
            raise ld.err(f"{key}.token_file", "this is Alertmanager's webhook credential; the sender "
                         "of an alert can never approve its action",
                         fix="give each person their own token")
        out.append(Principal(name, str(role), token, subject))
    return AccessConfig(tuple(out))


def _approval(ld: _Loader, value: Any) -> ApprovalConfig:
    raw = ld.mapping(value, "approval", frozenset({"expires", "alertmanager_url", "public_url"}))
    expires = parse_duration(raw.get("expires", "24h"), path=ld.path, key="approval.expires")
    if expires <= 0:
        raise ld.err("approval.expires", "must be positive", fix="write e.g. 4h")
    urls: dict[str, str | None] = {}
    for k in ("alertmanager_url", "public_url"):
        v = raw.get(k)
        if v is not None and (not isinstance(v, str) or not v.startswith(("http://", "https://"))):
            raise ld.err(f"approval.{k}", f"{v!r} is not an http(s) URL")
        urls[k] = v.rstrip("/") if isinstance(v, str) else None
    return ApprovalConfig(expires, urls["alertmanager_url"], urls["public_url"])


def parse_listen(value: str, where: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); used by the CLI's ``--listen`` override."""
    return _listen(_Loader(where, Path.cwd()), value)


def _listen(ld: _Loader, value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ld.err("listen", f"expected HOST:PORT, got {value!r}", fix="write e.g. 127.0.0.1:9096")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise ld.err("listen", f"bad port {port!r}", fix="write e.g. 0.0.0.0:9096 (0 = any free port)")
    return host.strip("[]") or "0.0.0.0", int(port)


def _server_tls(ld: _Loader, value: Any) -> ServerTls | None:
    if value is None:
        return None
    raw = ld.mapping(value, "tls", frozenset({"cert_file", "key_file", "client_ca_file"}))
    ca = raw.get("client_ca_file")
    return ServerTls(
        cert_file=ld.file(raw.get("cert_file"), "tls.cert_file"),
        key_file=ld.file(raw.get("key_file"), "tls.key_file"),
        client_ca_file=ld.file(ca, "tls.client_ca_file") if ca is not None else None,
    )


def _target(ld: _Loader, name: str, value: Any, default_timeout: float) -> TargetConfig:
    key = f"targets.{name}"
    raw = ld.mapping(value, key)
    kind = raw.get("type")
    if kind not in PRESET_PARAMS:
        raise ld.err(f"{key}.type", f"unknown target type {kind!r}",
                     fix="use one of " + ", ".join(sorted(PRESET_PARAMS)))
    required, optional = PRESET_PARAMS[kind]
    ld.mapping(raw, key, required | optional | _TARGET_COMMON)
    missing = sorted(required - set(raw))
    if missing:
        raise ld.err(f"{key}.{missing[0]}", f"required by type {kind}",
                     fix="add it; see alertmanager/actions.example.yaml")
    params = {k: compile_tree(v, f"{key}.{k}", ld.path) for k, v in raw.items()
              if k in required | optional}
    for url_key in ("url", "server", "api_url"):
        if url_key not in raw:
            continue
        src = raw[url_key]
        if not isinstance(src, str) or not src.startswith(("http://", "https://")):
            raise ld.err(f"{key}.{url_key}", f"{src!r} is not an http(s) URL",
                         fix="write the full URL, e.g. https://argo.example.org")
        # Values substituted into URLs are percent-encoded: a label cannot add path segments.
        params[url_key] = Template(src.rstrip("/") if url_key != "url" else src,
                                   where=f"{key}.{url_key}", escape_url=True, path=ld.path)
    inputs = raw.get("inputs")
    if kind == "github_workflow" and isinstance(inputs, Mapping) and len(inputs) > 10:
        raise ld.err(f"{key}.inputs", "GitHub accepts at most 10 workflow_dispatch inputs",
                     fix="pass fewer inputs, e.g. one JSON-encoded input")
    statuses = raw.get("success_statuses")
    if statuses is not None and (not isinstance(statuses, list)
                                 or not all(isinstance(s, int) and 100 <= s < 600 for s in statuses)):
        raise ld.err(f"{key}.success_statuses", "expected a list of HTTP status codes")
    headers_raw = ld.mapping(raw.get("headers"), f"{key}.headers")
    headers = {h: Template(str(v), where=f"{key}.headers.{h}", path=ld.path)
               for h, v in headers_raw.items()}
    if any(h.lower() == "authorization" for h in headers):
        raise ld.err(f"{key}.headers.Authorization", "credentials do not belong in headers",
                     fix=f"use {key}.auth.bearer_token_file or auth.basic")
    auth_raw = ld.mapping(raw.get("auth"), f"{key}.auth", frozenset({
        "bearer_token", "bearer_token_file", "bearer_token_env", "basic", "airflow_jwt"}))
    auth = TargetAuth(
        bearer=ld.secret(auth_raw, f"{key}.auth", "bearer_token"),
        basic=ld.basic(auth_raw.get("basic"), f"{key}.auth.basic"),
        airflow_jwt=ld.basic(auth_raw.get("airflow_jwt"), f"{key}.auth.airflow_jwt"),
    )
    if auth.airflow_jwt is not None and kind != "airflow3":
        raise ld.err(f"{key}.auth.airflow_jwt", "only type airflow3 exchanges a JWT",
                     fix="use bearer_token_file or basic")
    tls_raw = ld.mapping(raw.get("tls"), f"{key}.tls", frozenset({
        "ca_file", "cert_file", "key_file", "insecure_skip_verify"}))
    tls = TargetTls(
        ca_file=ld.file(tls_raw["ca_file"], f"{key}.tls.ca_file") if "ca_file" in tls_raw else None,
        cert_file=ld.file(tls_raw["cert_file"], f"{key}.tls.cert_file")
        if "cert_file" in tls_raw else None,
        key_file=ld.file(tls_raw["key_file"], f"{key}.tls.key_file") if "key_file" in tls_raw else None,
        insecure_skip_verify=ld.flag(tls_raw.get("insecure_skip_verify", False),
                                     f"{key}.tls.insecure_skip_verify"),
    )
    timeout = parse_duration(raw.get("timeout", default_timeout), path=ld.path, key=f"{key}.timeout")
    if timeout <= 0:
        raise ld.err(f"{key}.timeout", "must be positive", fix="write e.g. 10s")
    dry = raw.get("dry_run")
    return TargetConfig(name=name, type=kind, params=params, auth=auth, tls=tls, timeout=timeout,
                        headers=headers,
                        dry_run=ld.flag(dry, f"{key}.dry_run") if dry is not None else None)


def _route(ld: _Loader, i: int, value: Any, targets: Mapping[str, TargetConfig]) -> Route:
    key = f"routes[{i}]"
    raw = ld.mapping(value, key, frozenset({"model_name", "action", "target", "cooldown", "dry_run",
                                            "require_approval"}))
    action = raw.get("action")
    if action not in ACTIONS:
        raise ld.err(f"{key}.action", f"unknown action {action!r}",
                     fix="use retrain or rollback (alerts with action=none are never acted on)")
    target = raw.get("target")
    if not isinstance(target, str) or target not in targets:
        raise ld.err(f"{key}.target", f"no target named {target!r}",
                     fix="define it under targets: or use one of " + ", ".join(sorted(targets)))
    model = raw.get("model_name", "*")
    if not isinstance(model, str) or not model:
        raise ld.err(f"{key}.model_name", "expected a glob such as 'fraud-*'")
    cooldown = raw.get("cooldown")
    dry = raw.get("dry_run")
    return Route(
        model_name=model, action=action, target=target,
        cooldown=parse_duration(cooldown, path=ld.path, key=f"{key}.cooldown")
        if cooldown is not None else None,
        dry_run=ld.flag(dry, f"{key}.dry_run") if dry is not None else None,
        require_approval=ld.flag(raw.get("require_approval", False), f"{key}.require_approval"),
    )
