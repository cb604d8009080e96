"""The Jenkins retraining preset against a loopback stub of Jenkins' documented remote-access API:
``GET /crumbIssuer/api/json`` needs the user's API token and returns a crumb bound to a session
cookie; ``POST /job/<folder>/job/<name>/buildWithParameters`` needs the token, the crumb in its
header field and that cookie, and answers 201 with the queue item in ``Location``; without a valid
crumb Jenkins answers 403."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _servers import LoopbackHTTPServer, QuietHandler
from test_actions_presets import ctx, make_target, run

from driftline.alertmanager.actions import plan

TOKEN = "11aa22bb33cc44dd55ee66ff77889900aa"
AUTH = "Basic " + base64.b64encode(f"driftline:{TOKEN}".encode()).decode()


class Jenkins:
    def __init__(self, crumbs: bool = True) -> None:
        self.crumbs = crumbs
        self.builds: list[tuple[str, dict[str, list[str]]]] = []
        self.refused: list[str] = []
        jenkins = self

        class Handler(QuietHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.reply(status, body, headers=headers)

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != AUTH:
                    self._send(401)
                elif self.path == "/crumbIssuer/api/json" and jenkins.crumbs:
                    body = (b'{"_class":"hudson.security.csrf.DefaultCrumbIssuer",'
                            b'"crumb":"c0ffee","crumbRequestField":"Jenkins-Crumb"}')
                    self._send(200, body, {"Content-Type": "application/json",
                                           "Set-Cookie": "JSESSIONID.abc=node01; Path=/; HttpOnly"})
                else:
                    self._send(404)

            def do_POST(self) -> None:
                body = self.body()
                if self.headers.get("Authorization") != AUTH:
                    jenkins.refused.append("auth")
                    self._send(401)
                    return
                if jenkins.crumbs and (self.headers.get("Jenkins-Crumb") != "c0ffee"
                                       or self.headers.get("Cookie") != "JSESSIONID.abc=node01"):
                    jenkins.refused.append("crumb")
                    self._send(403, b"No valid crumb was included in the request")
                    return
                if not self.path.endswith("/buildWithParameters"):
                    self._send(404)
                    return
                assert self.headers.get("Content-Type") == "application/x-www-form-urlencoded"
                jenkins.builds.append((self.path, urllib.parse.parse_qs(body.decode())))
                self._send(201, headers={"Location": "http://jenkins/queue/item/17/"})

        self.server = LoopbackHTTPServer(Handler)
        self.url = self.server.url


@contextmanager
def jenkins(**kw: Any) -> Iterator[Jenkins]:
    j = Jenkins(**kw)
    try:
        yield j
    finally:
        j.server.stop()


def _target(tmp: Path, url: str, token: str = TOKEN, **extra: Any) -> Any:
    (tmp / "jenkins-token").write_text(token + "\n")
    return make_target(tmp, {"type": "jenkins", "server": url, "job": "ml/retrain",
                             "auth": {"basic": {"username": "driftline",
                                                "password_file": str(tmp / "jenkins-token")}},
                             **extra})


def test_build_with_parameters_sends_the_crumb_and_its_session(tmp_path: Path) -> None:
    with jenkins() as j:
        out = run(_target(tmp_path, j.url))
    assert out.ok, out.detail
    ((path, params),) = j.builds
    assert path == "/job/ml/job/retrain/buildWithParameters"
    c = ctx()
    assert params == {"model_name": ["fraud"], "model_version": ["v3"], "dedupe_key": [c["dedupe_key"]]}
    assert "queued http://jenkins/queue/item/17/" in out.detail
    assert [x.request.method for x in out.exchanges] == ["GET", "POST"]


def test_templated_parameters_and_a_jenkins_without_crumbs(tmp_path: Path) -> None:
    with jenkins(crumbs=False) as j:
        t = _target(tmp_path, j.url, parameters={"MODEL": "{{ model_name | upper }}",
                                                 "REASON": "{{ labels.alertname }}"})
        out = run(t)
    assert out.ok, out.detail
    assert j.builds[0][1] == {"MODEL": ["FRAUD"], "REASON": ["DriftlineFeatureDriftHigh"]}


def test_a_wrong_token_fails_without_retry_and_builds_nothing(tmp_path: Path) -> None:
    with jenkins() as j:
        out = run(_target(tmp_path, j.url, token="wrong"))
    assert not out.ok and not out.retryable
    assert "crumbIssuer: HTTP 401" in out.detail
    assert j.builds == []


def test_dry_run_plan_shows_the_build_request(tmp_path: Path) -> None:
    req = plan(_target(tmp_path, "http://jenkins.example.org"), ctx(model="a/b"))
    assert req.method == "POST"
    assert req.url == "http://jenkins.example.org/job/ml/job/retrain/buildWithParameters"
    assert urllib.parse.parse_qs(req.body.decode())["model_name"] == ["a/b"]  # type: ignore[union-attr]
