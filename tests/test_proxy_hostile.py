"""The proxy must not alter what the client would have seen, nor leak the upstream's
credentials, and its upstream failures are told apart by kind."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import Upstream, exchange, request, running_proxy


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


def test_pipelined_requests_behind_connection_close_see_the_end_not_a_502(
        upstream: Upstream) -> None:
    """The upstream answers the first request with ``Connection: close`` and ends the
    connection: a client talking to it directly sees one response, then EOF, and retries the
    rest. The proxy used to answer the second request with a 502 of its own."""
    raw = (request("POST", "/close", b"{}", close=False)
           + request("POST", "/echo", b'{"second": 1}', close=False)
           + request("POST", "/echo", b'{"third": 1}'))
    direct = exchange(upstream.port, raw)
    with running_proxy(upstream.url) as (proxy, _):
        proxied = exchange(proxy.port, raw)
        stats = proxy.server.stats()
    assert direct.count(b"HTTP/1.1 ") == 1 and b'{"closing":true}' in direct
    assert proxied == direct
    assert stats.upstream_errors == {} and stats.responses_total == 1


# --- user-info never printed -------------------------------------------------------------------

def test_upstream_password_is_not_echoed_to_clients_or_logs() -> None:
    from proxy_helpers import free_port

    from driftline.collectors.runtime import listening_line
    from driftline.config import config_from_dict

    dead = f"http://admin:s3cret@127.0.0.1:{free_port()}"
    with running_proxy(dead) as (proxy, _):
        out = exchange(proxy.port, request("POST", "/v1/models/m:predict", b"{}"))
    assert out.startswith(b"HTTP/1.1 502") and b"127.0.0.1" in out
    assert b"s3cret" not in out and b"admin" not in out
    cfg = config_from_dict({"models": [{"name": "m", "baseline": "b.json"}],
                            "proxy": {"listen": "127.0.0.1:0", "upstream": dead}},
                           check_files=False, environ={})
    line = listening_line(cfg, metrics_port=9108, proxy_port=8081, otlp=False)
    assert "upstream=http://127.0.0.1:" in line and "s3cret" not in line


def test_target_password_is_not_in_receiver_logs_or_audit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from receiver_support import alert, decisions, make_config, payload, post, running, wait_until

    from driftline.alertmanager import audit
    from driftline_demo.stack import free_port

    url = f"http://admin:s3cret@127.0.0.1:{free_port()}"
    targets = {"t": {"type": "http", "url": url + "/hook"}}
    routes = [{"model_name": "fraud*", "action": "retrain", "target": "t"}]
    cfg = make_config(tmp_path, targets, routes, retry={"max_attempts": 2,
                                                        "initial_backoff": "20ms"})
    with caplog.at_level(logging.DEBUG), running(cfg) as r:
        post(r.url, payload(alert()))
        wait_until(lambda: "failed" in decisions(r), what="failed")
        rows = audit.read(r.config.database, limit=100)
    dump = "\n".join(json.dumps(e.__dict__) for e in rows)
    assert "127.0.0.1" in dump and "s3cret" not in dump
    assert "s3cret" not in caplog.text and "127.0.0.1" in caplog.text


def test_redact_text_keeps_everything_but_user_info() -> None:
    from driftline.redact import redact_text, redact_url

    assert redact_text("a http://u:p@h:1/x?q=a@b b https://h/y u@example.org") == (
        "a http://h:1/x?q=a@b b https://h/y u@example.org")
    assert redact_url("http://u@h") == "http://h" and redact_url("http://h:80") == "http://h:80"
