"""Nobody may feed the monitor lies: write endpoints behind a bearer token and/or mutual TLS,
on a listener of their own so the scraped metrics port is read-only, and proxy hint headers
believed only when the operator says so. A real ``Runtime`` on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from proxy_helpers import Upstream
from test_serve_http import request
from test_serve_support import make_profile

from driftline.collectors.runtime import Runtime
from driftline.config import config_from_dict
from driftline.errors import ConfigError

RECORD = orjson.dumps({"model_name": "car-loan",
                       "features": {"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4}})


@contextlib.contextmanager
def running(cfg_dict: dict[str, Any], base: Path) -> Iterator[Runtime]:
    cfg = config_from_dict(cfg_dict, base_dir=base, environ={}, path=str(base / "d.yaml"))
    runtime = Runtime(cfg)
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    async def main() -> None:
        try:
            await runtime.start()
        except BaseException as exc:
            errors.append(exc)
            started.set()
            return
        started.set()
        await stop.wait()
        await runtime.stop()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert started.wait(20)
    if errors:
        raise errors[0]
    try:
        yield runtime
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(20)
        loop.close()


def _base(tmp: Path, **extra: Any) -> dict[str, Any]:
    make_profile().save(tmp / "baseline.json")
    return {"models": [{"name": "car-loan", "baseline": "baseline.json"}],
            "metrics": {"listen": "127.0.0.1:0"}, "tick_interval": 0.05, **extra}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bearer_token_guards_writes_not_reads(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    cfg = _base(tmp_path, ingest={"bearer_token_file": "token"})
    with running(cfg, tmp_path) as rt:
        port = rt.metrics_port
        for path in ("/ingest", "/feedback", "/cloudevents", "/"):
            assert request(port, "POST", path, RECORD)[0] == 401
        assert request(port, "POST", "/ingest", RECORD, _bearer("wrong"))[0] == 401
        assert request(port, "POST", "/ingest", RECORD, {"Authorization": "s3cret-token"})[0] == 401
        assert request(port, "POST", "/ingest", RECORD, _bearer("s3cret-token"))[0] == 202
        assert request(port, "GET", "/metrics")[0] == 200
        assert request(port, "GET", "/healthz")[0] == 200
        # a rotated secret takes effect without a restart
        (tmp_path / "token").write_text("rotated")
        import os
        os.utime(tmp_path / "token", (1, 1))
        assert request(port, "POST", "/ingest", RECORD, _bearer("s3cret-token"))[0] == 401
        assert request(port, "POST", "/ingest", RECORD, _bearer("rotated"))[0] == 202
        # an emptied token file refuses everyone
        (tmp_path / "token").write_text("")
        os.utime(tmp_path / "token", (2, 2))
        assert request(port, "POST", "/ingest", RECORD, _bearer(""))[0] == 401
        dropped = rt.sidecar.dropped
    assert dropped[("", "unauthorized")] == 8


def test_write_endpoints_on_their_own_listener(tmp_path: Path) -> None:
    cfg = _base(tmp_path, ingest={"listen": "127.0.0.1:0"})
    with running(cfg, tmp_path) as rt:
        assert rt.ingest_port is not None and rt.ingest_port != rt.metrics_port
        for path in ("/ingest", "/feedback", "/cloudevents", "/"):
            status, _, _ = request(rt.metrics_port, "POST", path, RECORD)
            assert status in (404, 405), path
        assert request(rt.metrics_port, "GET", "/metrics")[0] == 200
        assert request(rt.ingest_port, "POST", "/ingest", RECORD)[0] == 202
        assert request(rt.ingest_port, "GET", "/metrics")[0] == 404
        assert request(rt.ingest_port, "GET", "/healthz")[0] == 200


def _tls_post(port: int, ctx: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%s" % (len(RECORD), RECORD))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:  # TLS 1.3: the server refuses the missing certificate after the handshake
        raise ConnectionError("closed without an answer")
    return int(data.split(b" ", 2)[1])


def test_mutual_tls_on_the_ingest_listener(tmp_path: Path, pki: Path) -> None:
    cfg = _base(tmp_path, ingest={
        "listen": "127.0.0.1:0", "tls_cert_file": str(pki / "server.crt"),
        "tls_key_file": str(pki / "server.key"), "tls_client_ca_file": str(pki / "ca.crt")})
    with running(cfg, tmp_path) as rt:
        assert rt.ingest_port is not None
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _tls_post(rt.ingest_port, anonymous)
        client = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        client.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
        assert _tls_post(rt.ingest_port, client) == 202
        assert request(rt.metrics_port, "GET", "/metrics")[0] == 200  # plain HTTP for scrapes


def test_proxy_hint_headers_are_ignored_unless_trusted(tmp_path: Path) -> None:
    import json
    import time

    from proxy_helpers import exchange
    from proxy_helpers import request as raw_request

    body = json.dumps({"instances": [[0.1, 0.2, 0.3, 0.4]]}).encode()
    hints = {"x-driftline-endpoint": "canary", "Content-Type": "application/json"}
    up = Upstream()
    try:
        for trusted, endpoint in (([], "default"), (["x-driftline-endpoint"], "canary")):
            cfg = _base(tmp_path, proxy={"listen": "127.0.0.1:0", "upstream": up.url,
                                         "trusted_headers": trusted})
            with running(cfg, tmp_path) as rt:
                assert rt.proxy_port is not None
                exchange(rt.proxy_port, raw_request("POST", "/v1/models/car-loan:predict", body,
                                                    headers=hints))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not any(
                        s.records_sampled for s in rt.sidecar.snapshots()):
                    time.sleep(0.02)
                seen = {s.endpoint: s.records_sampled for s in rt.sidecar.snapshots()}
            assert seen.get(endpoint) == 1, (trusted, seen)
    finally:
        up.close()


@pytest.mark.parametrize("ingest,key", [
    ({"tls_cert_file": "baseline.json", "tls_key_file": "baseline.json"}, "ingest.tls_cert_file"),
    ({"listen": "127.0.0.1:0", "tls_cert_file": "baseline.json"}, "ingest.tls_key_file"),
    ({"listen": "127.0.0.1:0", "tls_client_ca_file": "baseline.json"},
     "ingest.tls_client_ca_file"),
    ({"bearer_token_file": "missing"}, "ingest.bearer_token_file"),
    ({"listen": "127.0.0.1:9108"}, "ingest.listen"),
    ({"lisen": "x"}, "ingest.lisen"),
])
def test_ingest_config_errors_name_the_key(tmp_path: Path, ingest: dict[str, Any],
                                           key: str) -> None:
    cfg = _base(tmp_path, ingest=ingest)
    cfg["metrics"] = {"listen": "127.0.0.1:9108"}
    with pytest.raises(ConfigError) as e:
        config_from_dict(cfg, base_dir=tmp_path, environ={})
    assert e.value.key == key


def test_untrustable_header_is_a_config_error(tmp_path: Path) -> None:
    cfg = _base(tmp_path, proxy={"listen": "127.0.0.1:0", "upstream": "http://127.0.0.1:1",
                                 "trusted_headers": ["x-forwarded-for"]})
    with pytest.raises(ConfigError) as e:
        config_from_dict(cfg, base_dir=tmp_path, environ={})
    assert e.value.key == "proxy.trusted_headers"
