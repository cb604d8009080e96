"""The proxy must not alter what the client would have seen, nor leak the upstream's
credentials, and its upstream failures are told apart by kind."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- upstream errors exported by kind ----------------------------------------------------------

def test_upstream_errors_by_kind_are_exported(upstream: Upstream) -> None:
    """A model server that is down must not look like one that answers 500: the proxy's own answers are
    counted by kind on /metrics (every kind from start), next to tunnelled connections."""
    from prometheus_client.parser import text_string_to_metric_families
    from proxy_helpers import free_port
    from test_serve_support import make_profile

    from driftline.collectors.sidecar import Sidecar
    from driftline.config import ModelConfig
    from driftline.exporters.prometheus import new_registry, render

    sc = Sidecar([(ModelConfig("m", baseline=None), make_profile("m"))])  # type: ignore[arg-type]
    registry, _ = new_registry(sc)

    def samples() -> dict[tuple[str, str], float]:
        text = render(registry, None)[0].decode()
        return {(s.name, s.labels.get("kind", "")): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.name.startswith("driftline_proxy_") and "duration" not in s.name}

    assert samples() == {}  # no proxy, no proxy series
    with running_proxy(f"http://127.0.0.1:{free_port()}") as (dead, _), \
            running_proxy(upstream.url, timeout=0.3) as (slow, _):
        sc.proxy_stats = lambda: _sum(dead.server.stats(), slow.server.stats())
        before = samples()
        exchange(dead.port, request("POST", "/v1/models/m:predict", b"{}"))
        exchange(slow.port, request("POST", "/slow?delay=1", b"{}"))
        exchange(slow.port, request("POST", "/reset", b"{}"))
        exchange(slow.port, b"NOT HTTP AT ALL\r\n\r\n")  # relayed unparsed: tunnelled
        after = samples()
    assert before == {("driftline_proxy_upstream_errors_total", k): 0.0
                      for k in ("unavailable", "connect_timeout", "reset", "timeout")} | {
        ("driftline_proxy_tunnelled_connections_total", ""): 0.0,
        ("driftline_proxy_tee_errors_total", ""): 0.0}
    errors = {k: v for (name, k), v in after.items() if name.endswith("upstream_errors_total")}
    assert errors == {"unavailable": 1.0, "connect_timeout": 0.0, "reset": 1.0, "timeout": 1.0}
    assert after[("driftline_proxy_tunnelled_connections_total", "")] == 1.0


def _sum(a: Any, b: Any) -> Any:
    from driftline.collectors.proxy import ProxyStats

    errs = dict(a.upstream_errors)
    for k, v in b.upstream_errors.items():
        errs[k] = errs.get(k, 0) + v
    return ProxyStats(0, 0, 0, 0, errs, a.tunnelled + b.tunnelled, a.tee_errors + b.tee_errors)
