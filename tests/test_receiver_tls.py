"""HTTPS with client certificates (mTLS): a caller without a certificate signed by the client CA
never reaches the webhook handler. Certificates are made with the openssl CLI."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from receiver_support import alert, make_config, payload, running, target, wait_until

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
