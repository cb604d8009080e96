"""The ``notify`` section of the rules config: who hears about which alert, by severity.

Named channels (PagerDuty, Slack, e-mail, a generic webhook, a Microsoft Teams bridge) are listed
per severity, and teams can own models by name glob::

    notify:
      channels:
        oncall:   {type: pagerduty, routing_key_file: /etc/alertmanager/secrets/pd-key}
        ml-slack: {type: slack, api_url_file: /etc/alertmanager/secrets/slack-url, channel: "#ml"}
        ml-mail:  {type: email, to: ml@example.org, from: am@example.org, smarthost: smtp:587,
                   auth_username: am, auth_password_file: /etc/alertmanager/secrets/smtp}
      severities: {critical: [oncall, ml-slack], warning: [ml-slack], info: [ml-mail]}
      owners:
        - {team: fraud, model_name: "fraud-*", critical: [fraud-pager]}
      timing: {critical: {repeat_interval: 30m}}

Secrets are only ever ``*_file`` references (Alertmanager reads them), so the generated
``alertmanager.yaml`` can be committed; an inline ``routing_key``/``api_url``/``auth_password`` is
an error that names the ``*_file`` key to use. An owner lists only the severities it takes over;
the others keep the default channels. Model globs become anchored regex matchers
(:func:`glob_to_regex`), restricted to characters that mean the same in Go's RE2 and Python.

>>> glob_to_regex("fraud-*.v?")
'fraud-.*[.]v.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.errors import ConfigError

__all__ = ["CHANNEL_TYPES", "Channel", "NotifyConfig", "Owner", "Timing", "example_notify",
           "glob_to_regex", "notify_from_mapping"]

SEVERITIES = ("critical", "warning", "info")

#: Channel type → (required keys, optional keys). Secrets appear only as ``*_file`` keys.
CHANNEL_TYPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "pagerduty": (frozenset({"routing_key_file"}), frozenset({"url", "send_resolved"})),
    "slack": (frozenset({"api_url_file"}), frozenset({"channel", "send_resolved"})),
    "email": (frozenset({"to", "from", "smarthost"}),
              frozenset({"require_tls", "auth_username", "auth_password_file", "ca_file",
                         "insecure_skip_verify", "hello", "send_resolved"})),
    "webhook": (frozenset({"url"}), frozenset({"bearer_token_file", "max_alerts", "send_resolved"})),
    # Alertmanager 0.25 has no msteams_configs (0.26+): Teams is reached through a bridge such as
    # prometheus-msteams that takes the webhook payload and holds the Teams URL itself.
    "msteams": (frozenset({"url"}), frozenset({"bearer_token_file", "send_resolved"})),
}
#: Inline secret keys and the ``*_file`` key to use instead.
_INLINE_SECRETS = {"routing_key": "routing_key_file", "service_key": "routing_key_file",
                   "api_url": "api_url_file", "auth_password": "auth_password_file",
                   "bearer_token": "bearer_token_file", "credentials": "bearer_token_file",
                   "password": "auth_password_file"}
_DURATION = re.compile(r"^(?:\d+[dhms])+$")
_CLASS = re.compile(r"\[(!?)([A-Za-z0-9._\-]+)\]")


@dataclass(frozen=True)
class Channel:
    """One named destination; ``params`` are the validated keys of its type."""

    name: str
    type: str
    params: Mapping[str, Any]

    @property
    def send_resolved(self) -> bool:
        return bool(self.params.get("send_resolved", True))


@dataclass(frozen=True)
class Timing:
    """Alertmanager grouping times of one severity's route."""

    group_wait: str
    group_interval: str
    repeat_interval: str


#: Pages repeat hourly until acknowledged; tickets twice a working day; information daily.
DEFAULT_TIMING: dict[str, Timing] = {
    "critical": Timing("30s", "5m", "1h"),
    "warning": Timing("1m", "10m", "4h"),
    "info": Timing("5m", "30m", "24h"),
}


@dataclass(frozen=True)
class Owner:
    """A team owning the models whose name matches ``model_name`` (a glob); ``channels`` maps
    the severities it takes over to channel names."""

    team: str
    model_name: str
    channels: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class NotifyConfig:
    channels: Mapping[str, Channel] = field(default_factory=dict)
    severities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    owners: tuple[Owner, ...] = ()
    timing: Mapping[str, Timing] = field(default_factory=lambda: dict(DEFAULT_TIMING))
    #: Where Alertmanager finds ``driftline.tmpl`` (the generated ``templates:`` entry).
    templates_dir: str = "/etc/alertmanager/templates"

    def channels_for(self, severity: str, owner: Owner | None = None) -> tuple[Channel, ...]:
        """The channels an alert of ``severity`` goes to (the owner's when it sets them)."""
        names = self.severities.get(severity, ())
        if owner is not None and severity in owner.channels:
            names = owner.channels[severity]
        return tuple(self.channels[n] for n in names)


def glob_to_regex(glob: str) -> str:
    """An RE2/Python regex matching exactly the names ``fnmatch.fnmatchcase(name, glob)`` does.

    Alertmanager anchors ``=~`` matchers, so no ``^``/``$``. Literal dots become ``[.]`` so the
    matcher needs no backslash escapes inside its quoted value. Supported: letters, digits,
    ``. _ - / :``, ``*``, ``?`` and classes ``[abc]``/``[!abc]`` of letters, digits, ``.``,
    ``_`` and ranges ``a-z``.
    """
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "[":
            m = _CLASS.match(glob, i)
            if m is None:
                raise ConfigError(f"model_name glob {glob!r}: bad [class] at position {i}",
                                  fix="write [abc] or [!abc] with letters, digits, . or _ inside")
            body = m.group(2)
            if any(a > b for a, b in re.findall(r"(.)-(.)", body)):
                raise ConfigError(f"model_name glob {glob!r}: reversed range in [{body}]",
                                  fix="write ranges low-high, e.g. [0-9]")
            out.append("[" + ("^" if m.group(1) else "") + body + "]")
            i = m.end()
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == ".":
            out.append("[.]")
        elif re.match(r"[A-Za-z0-9_\-/:]", c):
            out.append(c)
        else:
            raise ConfigError(f"model_name glob {glob!r} has the unsupported character {c!r}",
                              fix="use letters, digits, . _ - / : and the wildcards * ? [abc] [!abc]")
        i += 1
    if not out:
        raise ConfigError("empty model_name glob", fix="write e.g. 'fraud-*'")
    return "".join(out)


def _names(raw: Any, key: str, channels: Mapping[str, Channel], path: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise ConfigError("expected a list of channel names", path=path, key=key,
                          fix="write e.g. [oncall, ml-slack]")
    for n in raw:
        if n not in channels:
            raise ConfigError(f"no channel named {n!r}", path=path, key=key,
                              fix="define it under notify.channels or use one of "
                                  + (", ".join(sorted(channels)) or "(none defined)"))
    return tuple(str(n) for n in raw)


def _channel(name: str, raw: Any, path: str | None) -> Channel:
    key = f"notify.channels.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping with a type", path=path, key=key)
    kind = raw.get("type")
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"unknown channel type {kind!r}", path=path, key=f"{key}.type",
                          fix="use one of " + ", ".join(CHANNEL_TYPES))
    required, optional = CHANNEL_TYPES[kind]
    for k in raw:
        if k in _INLINE_SECRETS:
            raise ConfigError("secrets are never written into the generated config", path=path,
                              key=f"{key}.{k}", fix=f"put it in a file and set {_INLINE_SECRETS[k]}")
        if k != "type" and k not in required | optional:
            raise ConfigError("unknown key", path=path, key=f"{key}.{k}",
                              fix="allowed for type " + kind + ": " + ", ".join(sorted(required | optional)))
    missing = sorted(required - set(raw))
    if missing:
        raise ConfigError(f"type {kind} needs {', '.join(missing)}", path=path, key=f"{key}.{missing[0]}")
    params = {str(k): v for k, v in raw.items() if k != "type"}
    for k, v in params.items():
        if k.endswith("_file") and (not isinstance(v, str) or not v.startswith("/")):
            raise ConfigError("expected an absolute path (as Alertmanager sees it)", path=path,
                              key=f"{key}.{k}", fix="e.g. /etc/alertmanager/secrets/<name>")
    if kind in ("webhook", "msteams", "pagerduty") and "url" in params \
            and not re.match(r"^https?://", str(params["url"])):
        raise ConfigError("expected an http(s) URL", path=path, key=f"{key}.url")
    if kind == "email":
        to = params["to"]
        params["to"] = ", ".join(to) if isinstance(to, list) else str(to)
        if not re.match(r"^[^:\s]+:\d+$", str(params["smarthost"])):
            raise ConfigError("expected host:port", path=path, key=f"{key}.smarthost",
                              fix="e.g. smtp.example.org:587")
    return Channel(name, str(kind), params)


def _timing(raw: Any, path: str | None) -> dict[str, Timing]:
    out = dict(DEFAULT_TIMING)
    if raw is None:
        return out
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping of severity to times", path=path, key="notify.timing")
    for sev, t in raw.items():
        key = f"notify.timing.{sev}"
        if sev not in SEVERITIES:
            raise ConfigError(f"unknown severity {sev!r}", path=path, key=key,
                              fix="use " + ", ".join(SEVERITIES))
        if not isinstance(t, Mapping):
            raise ConfigError("expected group_wait, group_interval, repeat_interval", path=path, key=key)
        base = out[sev]
        values = {"group_wait": base.group_wait, "group_interval": base.group_interval,
                  "repeat_interval": base.repeat_interval}
        for k, v in t.items():
            if k not in values:
                raise ConfigError("unknown key", path=path, key=f"{key}.{k}",
                                  fix="use group_wait, group_interval, repeat_interval")
            if not _DURATION.match(str(v)):
                raise ConfigError(f"{v!r} is not a duration", path=path, key=f"{key}.{k}",
                                  fix="write e.g. 30s, 5m or 4h")
            values[k] = str(v)
        out[sev] = Timing(**values)
    return out


def notify_from_mapping(raw: Any, path: str | None = None) -> NotifyConfig:
    """Validate a parsed ``notify:`` mapping; every error names the key and the fix."""
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping", path=path, key="notify")
    allowed = {"channels", "severities", "owners", "timing", "templates_dir"}
    for k in raw:
        if k not in allowed:
            raise ConfigError("unknown key", path=path, key=f"notify.{k}",
                              fix="use " + ", ".join(sorted(allowed)))
    chan_raw = raw.get("channels") or {}
    if not isinstance(chan_raw, Mapping):
        raise ConfigError("expected a mapping of channel name to settings", path=path,
                          key="notify.channels")
    channels = {str(n): _channel(str(n), c, path) for n, c in chan_raw.items()}
    sev_raw = raw.get("severities") or {}
    if not isinstance(sev_raw, Mapping):
        raise ConfigError("expected a mapping of severity to channel names", path=path,
                          key="notify.severities")
    severities: dict[str, tuple[str, ...]] = {}
    for sev, names in sev_raw.items():
        if sev not in SEVERITIES:
            raise ConfigError(f"unknown severity {sev!r}", path=path, key=f"notify.severities.{sev}",
                              fix="use " + ", ".join(SEVERITIES))
        severities[sev] = _names(names, f"notify.severities.{sev}", channels, path)
    owners: list[Owner] = []
    owners_raw = raw.get("owners") or []
    if not isinstance(owners_raw, list):
        raise ConfigError("expected a list of {team, model_name, critical|warning|info}", path=path,
                          key="notify.owners")
    teams: set[str] = set()
    for i, o in enumerate(owners_raw):
        key = f"notify.owners[{i}]"
        if not isinstance(o, Mapping):
            raise ConfigError("expected a mapping", path=path, key=key)
        unknown = set(o) - {"team", "model_name", *SEVERITIES}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", path=path, key=key,
                              fix="use team, model_name, critical, warning, info")
        team, glob = o.get("team"), o.get("model_name")
        if not isinstance(team, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", team):
            raise ConfigError("expected a lower-case team name (letters, digits, -)", path=path,
                              key=f"{key}.team")
        if team in teams:
            raise ConfigError(f"team {team!r} listed twice", path=path, key=f"{key}.team",
                              fix="give one team one entry (a glob can match several models)")
        teams.add(team)
        if not isinstance(glob, str) or not glob:
            raise ConfigError("expected a model-name glob such as 'fraud-*'", path=path,
                              key=f"{key}.model_name")
        try:
            glob_to_regex(glob)
        except ConfigError as exc:
            raise ConfigError(str(exc), path=path, key=f"{key}.model_name") from exc
        owners.append(Owner(team, glob, {sev: _names(o[sev], f"{key}.{sev}", channels, path)
                                         for sev in SEVERITIES if sev in o}))
    templates_dir = str(raw.get("templates_dir", "/etc/alertmanager/templates"))
    if not templates_dir.startswith("/"):
        raise ConfigError("expected an absolute directory (as Alertmanager sees it)", path=path,
                          key="notify.templates_dir")
    return NotifyConfig(channels, severities, tuple(owners), _timing(raw.get("timing"), path),
                        templates_dir.rstrip("/") or "/")


def example_notify() -> NotifyConfig:
    """The shipped example: pages for critical, Slack for critical and warning, e-mail for info.
    Secrets are files under ``/etc/alertmanager/secrets`` (mount them from a Kubernetes Secret)."""
    secrets = "/etc/alertmanager/secrets"
    return notify_from_mapping({
        "channels": {
            "oncall-pagerduty": {"type": "pagerduty",
                                 "routing_key_file": f"{secrets}/pagerduty-routing-key"},
            "ml-slack": {"type": "slack", "api_url_file": f"{secrets}/slack-webhook-url",
                         "channel": "#ml-alerts"},
            "ml-email": {"type": "email", "to": "ml-team@example.org",
                         "from": "alertmanager@example.org", "smarthost": "smtp.example.org:587",
                         "auth_username": "alertmanager",
                         "auth_password_file": f"{secrets}/smtp-password"},
        },
        "severities": {"critical": ["oncall-pagerduty", "ml-slack"], "warning": ["ml-slack"],
                       "info": ["ml-email"]},
    })
