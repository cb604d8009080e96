"""The proxy relays requests and responses byte-for-byte and copies sampled exchanges exactly.

Every comparison sends the same raw bytes once straight to the test upstream and once through
the proxy, and compares everything read back from the socket.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest
from proxy_helpers import Upstream, exchange, request, running_proxy

from driftline.collectors.proxy import ProxyThread
from driftline.collectors.sample import Sample
from driftline.collectors.tee import SampleQueue


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture(scope="module")
def proxied(upstream: Upstream) -> Iterator[tuple[ProxyThread, SampleQueue]]:
    with running_proxy(upstream.url) as pq:
        yield pq


@pytest.fixture
def proxy(proxied: tuple[ProxyThread, SampleQueue]) -> tuple[ProxyThread, SampleQueue]:
    proxied[1].drain(10_000, 0)  # samples of earlier tests
    return proxied


def collect(queue: SampleQueue, n: int, timeout: float = 5.0) -> list[Sample]:
    """Samples are offered just after the response was relayed: wait for ``n`` of them."""
    out: list[Sample] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += queue.drain(n - len(out), 0.05)
    return out


def same(upstream: Upstream, proxy: ProxyThread, raw: bytes) -> bytes:
    direct = exchange(upstream.port, raw)
    through = exchange(proxy.port, raw)
    assert through == direct
    assert direct.startswith(b"HTTP/1.1 ")
    return through


CASES = {
    "kserve-v1": request("POST", "/v1/models/iris:predict", b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
                         headers={"Content-Type": "application/json"}),
    "oip-v2": request("POST", "/v2/models/iris/infer",
                      b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}',
                      headers={"Content-Type": "application/json"}),
    "malformed-json": request("POST", "/v1/models/m:predict", b'{"instances": [[1, 2,',
                              headers={"Content-Type": "application/json"}),
    "not-json": request("POST", "/echo", b"plain text, not json\n", headers={"Content-Type": "text/plain"}),
    "binary-body": request("POST", "/echo", bytes(range(256)) * 3 + b"\r\n\r\n\x00",
                           headers={"Content-Type": "application/octet-stream"}),
    "chunked-request": request("POST", "/echo", b'{"chunked": true}', chunked=True,
                               headers={"Content-Type": "application/json"}),
    "unknown-route": request("GET", "/no/such/route?x=1&y=%20z"),
    "4xx": request("POST", "/status/422", b"{}"),
    "5xx": request("GET", "/status/503"),
    "chunked-response": request("GET", "/chunked?n=7"),
    "binary-response": request("GET", "/binary"),
    "big-response": request("GET", "/big?size=3000000"),
    "eof-delimited-response": request("GET", "/eof"),
    "upstream-closes": request("GET", "/close", close=False),
    "head": request("HEAD", "/anything"),
    "delete": request("DELETE", "/v1/models/m"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_response_bytes_identical(name: str, upstream: Upstream,
                                  proxy: tuple[ProxyThread, SampleQueue]) -> None:
    same(upstream, proxy[0], CASES[name])


def test_keepalive_and_pipelining_identical(upstream: Upstream,
                                            proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """Several requests, pipelined on one connection, including HEAD among them."""
    raw = b"".join([
        request("POST", "/echo", b"one", close=False),
        request("GET", "/chunked?n=3", close=False),
        request("HEAD", "/x", close=False),
        request("GET", "/status/404", close=False),
        request("HEAD", "/y", close=False),
        request("POST", "/echo", b"two", close=False, chunked=True),
        request("GET", "/binary"),
    ])
    out = same(upstream, proxy[0], raw)
    assert out.count(b"HTTP/1.1 ") == 7
    samples = collect(proxy[1], 7)
    assert [(s.method, s.status) for s in samples] == [
        ("POST", 200), ("GET", 200), ("HEAD", 200), ("GET", 404), ("HEAD", 200), ("POST", 200),
        ("GET", 200)]
    assert samples[0].response_body == b"one" and samples[5].request_body == b"two"
    assert samples[2].response_body == b"" and samples[2].response_content_type == "text/plain"


def test_sequential_keepalive_uses_one_connection(proxy: tuple[ProxyThread, SampleQueue]) -> None:
    thread, queue = proxy
    before = thread.server.stats().connections_total
    conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=5)
    try:
        for i in range(5):
            body = b'{"instances": [[%d]]}' % i
            conn.request("POST", f"/v1/models/m:predict?i={i}", body,
                         {"Content-Type": "application/json", "X-Request-Id": f"req-{i}"})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == body
    finally:
        conn.close()
    assert thread.server.stats().connections_total == before + 1
    samples = collect(queue, 5)
    assert [s.path for s in samples] == [f"/v1/models/m:predict?i={i}" for i in range(5)]
    assert [s.header("x-request-id") for s in samples] == [f"req-{i}" for i in range(5)]
    assert all(s.request_content_type == "application/json" for s in samples)
    assert [s.response_header("X-Request-Id") for s in samples] == [f"req-{i}" for i in range(5)]


def test_samples_carry_exact_bodies(upstream: Upstream, proxy: tuple[ProxyThread, SampleQueue]) -> None:
    body = bytes(range(256)) * 1000 + b'{"tail": 1}'
    raw = request("PUT", "/echo?q=1", body, headers={"Content-Type": "application/x-thing",
                                                     "ce-id": "abc", "ce-type": "t",
                                                     "Authorization": "secret"})
    t0 = time.time()
    exchange(proxy[0].port, raw)
    (s,) = collect(proxy[1], 1)
    assert s.method == "PUT" and s.path == "/echo?q=1" and s.model_path == "/echo"
    assert s.request_body == body and s.response_body == body and s.status == 200
    assert s.request_content_type == s.response_content_type == "application/x-thing"
    assert s.request_headers == (("ce-id", "abc"), ("ce-type", "t"))  # not Authorization
    assert t0 - 1 <= s.received_at <= time.time() and 0 <= s.duration < 60


def test_chunked_response_streams_incrementally(upstream: Upstream,
                                                proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """The upstream holds the rest of the body until the test saw the first chunk via the proxy."""
    upstream.gate.clear()
    with socket.create_connection(("127.0.0.1", proxy[0].port), timeout=10) as s:
        s.sendall(request("GET", "/gated"))
        got = b""
        while b"first\n" not in got:
            data = s.recv(65536)
            assert data, "connection closed before the first chunk"
            got += data
        assert b"0\r\n\r\n" not in got  # the response is not complete yet
        upstream.gate.set()
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += data
    assert got.endswith(b"5\r\nrest\n\r\n0\r\n\r\n")
    (sample,) = collect(proxy[1], 1)
    assert sample.response_body == b"first\nrest\n"


def test_large_request_body_streams(upstream: Upstream, proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """20 MB up, echoed back: relayed in full, over the copy cap so not sampled."""
    body = bytes(range(251)) * (20_000_000 // 251)
    raw = request("POST", "/echo", body, headers={"Content-Type": "application/octet-stream"})
    before = proxy[1].dropped.get("too_large", 0)
    out = exchange(proxy[0].port, raw, timeout=30)
    assert out.endswith(body) and b"Content-Length: %d" % len(body) in out
    deadline = time.monotonic() + 5
    while proxy[1].dropped.get("too_large", 0) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy[1].dropped.get("too_large", 0) == before + 1


def test_expect_100_continue(upstream: Upstream, proxy: tuple[ProxyThread, SampleQueue]) -> None:
    body = b'{"instances": [[1]]}'
    head = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(body))

    def run(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head)
            interim = s.recv(65536)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            rest = b""
            while data := s.recv(65536):
                rest += data
        return interim + rest

    assert run(proxy[0].port) == run(upstream.port)
    (sample,) = collect(proxy[1], 1)
    assert sample.status == 200 and sample.request_body == body == sample.response_body


def test_malformed_http_is_relayed_untouched(upstream: Upstream,
                                             proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """Not even HTTP: the proxy stops parsing and lets the upstream answer (here 400)."""
    raw = b"GARBAGE\x00 / HTTP/9\r\n\r\n"
    before = proxy[0].server.stats().tunnelled
    direct = exchange(upstream.port, raw)
    assert exchange(proxy[0].port, raw) == direct
    assert b"400" in direct
    assert proxy[0].server.stats().tunnelled == before + 1


def test_latency_histograms_count_exchanges(upstream: Upstream,
                                            proxy: tuple[ProxyThread, SampleQueue]) -> None:
    before = proxy[0].server.latency_histograms()
    for raw in (request("GET", "/status/201"), request("GET", "/status/302"),
                request("GET", "/status/404"), request("GET", "/status/404"),
                request("GET", "/status/500")):
        exchange(proxy[0].port, raw)
    time.sleep(0.05)
    after = proxy[0].server.latency_histograms()
    assert sorted(after) == ["2xx", "3xx", "4xx", "5xx"]
    grown = {k: after[k].count - before[k].count for k in after}
    assert grown == {"2xx": 1, "3xx": 1, "4xx": 2, "5xx": 1}
    for h in after.values():
        assert sum(h.counts) == h.count and h.sum >= 0 and len(h.counts) == len(h.bounds) + 1


def test_bytes_sent_while_the_upstream_connects_keep_their_order(
        upstream: Upstream, proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """Regression: a body streamed right after connecting straddles the moment the upstream
    connection opens; the bytes buffered meanwhile must go out before later ones."""
    body = bytes(range(256)) * 4096  # 1 MiB
    raw = request("POST", "/echo", body, headers={"Content-Type": "application/octet-stream"})
    for _ in range(15):
        out = exchange(proxy[0].port, raw, timeout=30)
        assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(body)


@pytest.mark.parametrize("raw", [b"GET /binary HTTP/1.0\r\n\r\n",
                                 request("POST", "/echo", b"abc", close=False)])
def test_client_half_close_still_gets_the_response(raw: bytes, upstream: Upstream,
                                                   proxy: tuple[ProxyThread, SampleQueue]) -> None:
    """Send, then shut down the write side at once (as HTTP/1.0 tools do)."""

    def half_close(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while data := s.recv(65536):
                out += data
        return out

    direct = half_close(upstream.port)
    assert half_close(proxy[0].port) == direct and direct.startswith(b"HTTP/1.")
