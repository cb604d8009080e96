"""HTTPS with client certificates (mTLS): a caller without a certificate signed by the client CA
never reaches the webhook handler. Certificates are made with the openssl CLI."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from receiver_support import alert, make_config, payload, running, target, wait_until

from driftline.alertmanager import audit


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=driftline-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", "san.ext", cwd=d)
    return d


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
