"""HTTPS with client certificates (mTLS): a caller without a certificate signed by the client CA
never reaches the webhook handler, and a certificate subject can be an approver's credential.
Certificates are made with the openssl CLI (tls_support)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from receiver_support import alert, make_config, payload, running, target, wait_until
from tls_support import issue

from driftline.alertmanager import audit


def test_mtls_accepts_client_certificates_only(tmp_path: Path, pki: Path) -> None:
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key"),
           "client_ca_file": str(pki / "ca.crt")}
    with target() as t:
        cfg = make_config(tmp_path, {"t": {"type": "http", "url": t.url}},
                          [{"action": "retrain", "target": "t"}], tls=tls, auth={})
        with running(cfg) as r:
            assert r.url.startswith("https://127.0.0.1:")
            data = json.dumps(payload(alert())).encode()

            def call(ctx: ssl.SSLContext) -> int:
                req = urllib.request.Request(f"{r.url}/alertmanager", data=data, method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
                    return int(resp.status)

            anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                call(anonymous)
            client = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            client.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
            assert call(client) == 200
            t.wait_for(1)
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(cfg.database)),
                       what="acted")
            assert r.metrics.registry.get_sample_value(
                "driftline_receiver_refused_requests_total", {"reason": "tls"}) == 1


def test_an_approver_bound_to_a_certificate_subject_approves_over_mtls(tmp_path: Path, pki: Path) -> None:
    """``access: [{tls_subject: ...}]``: the client certificate is the credential. Another
    certificate from the same CA gets through TLS but is nobody here: refused, audited, and the
    action waits; the bound subject approves, and the action runs once."""
    # written O first as certificates usually are; the subject string reads it CN first (RFC 4514)
    issue(pki, "mallory", "/O=ml-platform/CN=mallory")
    issue(pki, "bob", "/O=ml-platform/CN=bob")
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key"),
           "client_ca_file": str(pki / "ca.crt")}

    def ctx(name: str) -> ssl.SSLContext:
        c = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        c.load_cert_chain(str(pki / f"{name}.crt"), str(pki / f"{name}.key"))
        return c

    def call(url: str, path: str, who: str, body: dict[str, object] | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx(who)) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    with target() as t:
        cfg = make_config(tmp_path, {"t": {"type": "http", "url": t.url}},
                          [{"action": "rollback", "target": "t", "require_approval": True}], tls=tls,
                          auth={}, access=[{"name": "bob", "role": "approver",
                                            "tls_subject": "CN=bob,O=ml-platform"}])
        with running(cfg) as r:
            status, doc = call(r.url, "/alertmanager", "client", payload(alert(action="rollback")))
            assert (status, doc["decisions"]) == (200, {"awaiting_approval": 1})
            assert call(r.url, "/api/v1/actions/pending", "mallory")[0] == 401
            assert call(r.url, "/api/v1/actions/1/approve", "mallory", {"reason": "x"})[0] == 401
            status, doc = call(r.url, "/api/v1/actions/pending", "bob")
            assert status == 200 and [j["id"] for j in doc["pending"]] == [1]
            assert t.seen == []
            status, doc = call(r.url, "/api/v1/actions/1/approve", "bob", {"reason": "canary is worse"})
            assert status == 200, doc
            t.wait_for(1)
            wait_until(lambda: any(e.decision == "acted" for e in audit.read(cfg.database)), what="acted")
    rows = audit.read(cfg.database)
    assert len(t.seen) == 1
    approved = next(e for e in rows if e.decision == "approved")
    assert (approved.actor, approved.detail) == ("bob (approver) via api", "canary is worse")
    assert sum(e.decision == "refused" for e in rows) >= 2  # mallory's two calls, audited
