"""Helpers for the webhook receiver tests: a recording loopback HTTP target, payload builders and
an in-process receiver factory. Not a test module (no ``test_`` prefix)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _servers import LoopbackHTTPServer, QuietHandler

from driftline.alertmanager.actions_config import ActionsConfig, load_config_dict
from driftline.alertmanager.receiver import Receiver

TOKEN = "s3cr3t-token"


class _Headers(dict[str, str]):
    """Case-insensitive header lookup (urllib sends ``X-github-api-version``)."""

    def __init__(self, items: Any) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Seen], tuple[int, Any]]


@dataclass
class Target:
    """A loopback HTTP server that records every request and answers from a script.

    ``script``: responses used in order (status, JSON-able body), then ``default``.
    ``responder``: optional function of the request that overrides the script.
    ``gate``: when set, requests wait until the event is set (a blocking target).
    """

    script: list[tuple[int, Any]] = field(default_factory=list)
    default: tuple[int, Any] = (200, {"ok": True})
    responder: Responder | None = None
    gate: threading.Event | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        target = self
        self._lock = threading.Lock()

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                seen = Seen(self.command, self.path, _Headers(self.headers.items()), self.body())
                with target._lock:
                    target.seen.append(seen)
                    if target.responder is not None:
                        status, body = target.responder(seen)
                    else:
                        status, body = target.script.pop(0) if target.script else target.default
                if target.gate is not None:
                    target.gate.wait(30)
                data = b"" if body is None else json.dumps(body).encode()
                self.reply(status, data, content_type="application/json")

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = LoopbackHTTPServer(Handler)

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.stop()

    def wait_for(self, n: int, timeout: float = 15.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"target saw {len(self.seen)} request(s), expected {n}")
            time.sleep(0.02)
        return list(self.seen)


@contextmanager
def target(**kw: Any) -> Iterator[Target]:
    t = Target(**kw)
    try:
        yield t
    finally:
        t.close()


def alert(model: str = "fraud", action: str = "retrain", *, status: str = "firing",
          fingerprint: str = "5241ef666c4f3c81", starts_at: str = "2026-11-22T19:07:58.498932039Z",
          alertname: str = "DriftlineFeatureDriftHigh", **labels: str) -> dict[str, Any]:
    lab = {"alertname": alertname, "model_name": model, "model_version": "v3",
           "namespace": "ml", "severity": "warning", **labels}
    if action:
        lab["action"] = action
    return {"status": status, "labels": lab,
            "annotations": {"summary": "PSI high", "runbook_url": "https://example.org/rb"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom:9090/graph", "fingerprint": fingerprint}


def payload(*alerts: Mapping[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {"receiver": "driftline-actions", "status": "firing" if firing else "resolved",
            "alerts": list(alerts), "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093", "version": "4",
            "groupKey": '{}:{alertname="DriftlineFeatureDriftHigh"}', "truncatedAlerts": 0}


def base_config(tmp: Path, targets: Mapping[str, Any], routes: list[Mapping[str, Any]],
                **extra: Any) -> dict[str, Any]:
    (tmp / "token").write_text(TOKEN + "\n")
    cfg: dict[str, Any] = {
        "listen": "127.0.0.1:0", "database": str(tmp / "actions.db"),
        "auth": {"bearer_token_file": str(tmp / "token")},
        "cooldown": 0, "retry": {"max_attempts": 3, "initial_backoff": "50ms", "max_backoff": "200ms"},
        "timeout": "5s", "targets": dict(targets), "routes": routes,
    }
    cfg.update(extra)
    return cfg


def make_config(tmp: Path, targets: Mapping[str, Any], routes: list[Mapping[str, Any]],
                **extra: Any) -> ActionsConfig:
    return load_config_dict(base_config(tmp, targets, routes, **extra), path=str(tmp / "actions.yaml"),
                            base=tmp)


@contextmanager
def running(cfg: ActionsConfig, **kw: Any) -> Iterator[Receiver]:
    r = Receiver(cfg, **kw)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def post(url: str, body: Any, *, auth: str | None = f"Bearer {TOKEN}",
         raw: bytes | None = None) -> tuple[int, str]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    req = urllib.request.Request(f"{url}/alertmanager", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(pred: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def decisions(receiver: Receiver) -> list[str]:
    from driftline.alertmanager import audit

    return [e.decision for e in audit.read(receiver.config.database, limit=1000)]
