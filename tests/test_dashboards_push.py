"""`driftline dashboards push` against a loopback stub of Grafana's documented HTTP API
(GET /api/health, GET/POST /api/folders, POST /api/dashboards/db, GET /api/dashboards/uid/<uid>).

There is no Grafana server to install here, so the stub implements those endpoints the way the
Grafana docs describe them, including auth, ``overwrite`` and version counting."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import LoopbackHTTPServer, QuietHandler

from driftline.cli import main as driftline_main
from driftline.dashboards.generate import dashboards
from driftline.dashboards.provision import push

TOKEN = "glsa_test_token"
BASIC = "Basic " + base64.b64encode(b"admin:s3cret").decode()


class GrafanaStub:
    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        stub = self

        class Handler(QuietHandler):
            def _send(self, status: int, doc: Any) -> None:
                self.reply_json(status, doc)

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if auth in (f"Bearer {TOKEN}", BASIC):
                    return True
                self._send(401, {"message": "Unauthorized"})
                return False

            def _body(self) -> Any:
                raw = self.body()
                return json.loads(raw) if raw else None

            def do_GET(self) -> None:
                self.path = self.path.split("?", 1)[0]
                stub.calls.append(("GET", self.path))
                if self.path == "/api/health":
                    return self._send(200, {"database": "ok", "version": "11.6.0"})
                if not self._authorised():
                    return None
                if self.path == "/api/folders":
                    return self._send(200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]}
                                            for f in stub.folders.values()])
                if self.path.startswith("/api/dashboards/uid/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid not in stub.dashboards:
                        return self._send(404, {"message": "Dashboard not found"})
                    d = stub.dashboards[uid]
                    meta = {"folderUid": d["folderUid"], "version": d["version"]}
                    return self._send(200, {"dashboard": d["dashboard"], "meta": meta})
                return self._send(404, {"message": "Not found"})

            def do_POST(self) -> None:
                stub.calls.append(("POST", self.path))
                if not self._authorised():
                    return None
                doc = self._body()
                if self.path == "/api/folders":
                    uid = doc.get("uid") or f"f{len(stub.folders)}"
                    if uid in stub.folders:
                        return self._send(409, {"message": "a folder with the same uid already exists"})
                    stub.folders[uid] = {"id": len(stub.folders) + 1, "uid": uid, "title": doc["title"]}
                    return self._send(200, {**stub.folders[uid], "url": f"/dashboards/f/{uid}", "version": 1})
                if self.path == "/api/dashboards/db":
                    dash = doc["dashboard"]
                    uid = dash["uid"]
                    if doc.get("folderUid") not in stub.folders:
                        return self._send(400, {"message": "folder not found"})
                    old = stub.dashboards.get(uid)
                    if old is not None and not doc.get("overwrite"):
                        return self._send(412, {"status": "name-exists", "message": "exists"})
                    version = 1 if old is None else old["version"] + 1
                    stub.dashboards[uid] = {"dashboard": {**dash, "version": version},
                                            "folderUid": doc["folderUid"], "version": version}
                    return self._send(200, {"id": 1, "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                                            "version": version, "slug": "x"})
                return self._send(404, {"message": "Not found"})

        self.server = LoopbackHTTPServer(Handler)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def grafana() -> Iterator[GrafanaStub]:
    stub = GrafanaStub()
    yield stub
    stub.stop()


def test_push_creates_folder_once_and_is_idempotent(grafana: GrafanaStub,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dashboards", "push", "--url", grafana.url, "--token", TOKEN]
    assert driftline_main(argv) == 0
    assert driftline_main(argv) == 0
    assert [c for c in grafana.calls if c == ("POST", "/api/folders")] == [("POST", "/api/folders")]
    assert list(grafana.folders) == ["driftline"]
    assert grafana.folders["driftline"]["title"] == "Driftline"
    expected = dashboards()
    assert set(grafana.dashboards) == set(expected)
    for uid, stored in grafana.dashboards.items():
        assert stored["folderUid"] == "driftline" and stored["version"] == 2
        sent = {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")}
        assert sent == {k: v for k, v in expected[uid].items() if k != "version"}
    out = capsys.readouterr().out
    assert "driftline-model\tversion 2" in out


def test_push_reuses_an_existing_folder_by_title_and_basic_auth_works(grafana: GrafanaStub) -> None:
    grafana.folders["abc123"] = {"id": 7, "uid": "abc123", "title": "ML monitoring"}
    results = push(dashboards(), grafana.url, user="admin", password="s3cret", folder="ML monitoring")
    assert [r.version for r in results] == [1, 1, 1]
    assert ("POST", "/api/folders") not in grafana.calls
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"abc123"}
    assert ("GET", "/api/health") in grafana.calls
    got = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{grafana.url}/api/dashboards/uid/driftline-fleet", headers={"Authorization": BASIC})).read())
    assert got["dashboard"]["title"] == dashboards()["driftline-fleet"]["title"]


def test_push_reports_auth_failure(grafana: GrafanaStub, capsys: pytest.CaptureFixture[str]) -> None:
    assert driftline_main(["dashboards", "push", "--url", grafana.url, "--token", "wrong"]) == 2
    assert "Grafana at" in capsys.readouterr().err
    assert grafana.dashboards == {}


def test_push_without_url_names_the_fix(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    assert driftline_main(["dashboards", "push", "--token", TOKEN]) == 2
    assert "GRAFANA_URL" in capsys.readouterr().err
