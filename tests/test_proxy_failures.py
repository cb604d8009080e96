"""The proxy under failure: upstream down, reset, slow; tee full or broken; graceful stop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from proxy_helpers import Upstream, exchange, free_port, request, running_proxy

from driftline.collectors.proxy import ProxyServer, new_event_loop
from driftline.collectors.sample import Sample
from driftline.collectors.sampling import Sampler
from driftline.collectors.tee import SampleQueue
from driftline.errors import ConfigError


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


def _split(raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return lines[0].encode(), headers, body


def test_upstream_down_gives_502_naming_it() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with running_proxy(dead) as (proxy, queue):
        out = exchange(proxy.port, request("POST", "/v1/models/m:predict", b'{"instances":[[1]]}'))
        hout = exchange(proxy.port, request("HEAD", "/v1/models/m"))
        stats = proxy.server.stats()
        hist = proxy.server.latency_histograms()
    status, headers, body = _split(out)
    assert status == b"HTTP/1.1 502 Bad Gateway"
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    message = json.loads(body)["error"]
    assert dead in message and "refused" in message
    hstatus, _, hbody = _split(hout)
    assert hstatus == b"HTTP/1.1 502 Bad Gateway" and hbody == b""  # no body for HEAD
    assert stats.upstream_errors == {"unavailable": 2}
    assert hist["5xx"].count == 2 and queue.depth == 0


def test_upstream_reset_before_response_gives_502(upstream: Upstream) -> None:
    with running_proxy(upstream.url) as (proxy, _):
        out = exchange(proxy.port, request("POST", "/reset", b"{}"))
        stats = proxy.server.stats()
    status, headers, body = _split(out)
    assert status == b"HTTP/1.1 502 Bad Gateway" and headers["connection"] == "close"
    assert upstream.url in json.loads(body)["error"]
    assert stats.upstream_errors == {"reset": 1}


def test_slow_upstream_gives_504(upstream: Upstream) -> None:
    with running_proxy(upstream.url, timeout=0.5) as (proxy, _):
        out = exchange(proxy.port, request("GET", "/slow?delay=2.0"))
        ok = exchange(proxy.port, request("GET", "/slow?delay=0"))
        stats = proxy.server.stats()
    status, headers, body = _split(out)
    assert status == b"HTTP/1.1 504 Gateway Timeout" and headers["connection"] == "close"
    assert "did not respond within 0.5s" in json.loads(body)["error"]
    assert ok.startswith(b"HTTP/1.1 200 OK")
    assert stats.upstream_errors == {"timeout": 1}


def test_streaming_response_is_not_cut_by_the_timeout(upstream: Upstream) -> None:
    """The timeout is for silence, not for the whole response: a slow stream keeps going."""
    with running_proxy(upstream.url, timeout=1.0) as (proxy, _):
        raw = request("GET", "/chunked?n=5&delay=0.3")  # 1.5 s in all, never 1 s silent
        assert exchange(proxy.port, raw) == exchange(upstream.port, raw)
        assert proxy.server.stats().upstream_errors == {}


def test_full_queue_drops_are_counted_and_requests_succeed(upstream: Upstream) -> None:
    with running_proxy(upstream.url, capacity=2) as (proxy, queue):
        for i in range(6):
            out = exchange(proxy.port, request("POST", "/echo", b"%d" % i))
            assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"%d" % i)
        deadline = time.monotonic() + 5
        while queue.offered < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.depth == 2 and queue.dropped == {"queue_full": 4}
        assert [s.request_body for s in queue.drain(10, 0)] == [b"0", b"1"]


class _BrokenQueue(SampleQueue):
    def offer(self, sample: Sample) -> bool:
        raise RuntimeError("tee is broken")


def test_tee_exceptions_are_swallowed_and_counted(upstream: Upstream) -> None:
    queue = _BrokenQueue(10)
    server = ProxyServer("127.0.0.1", 0, upstream.url, queue, Sampler())
    thread = server.run_in_thread()
    try:
        for _ in range(3):
            assert exchange(thread.port, request("GET", "/binary")).startswith(b"HTTP/1.1 200 OK")
        deadline = time.monotonic() + 5
        while server.stats().tee_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.stop(2)
    assert server.stats().tee_errors == 3 and queue.dropped == {"tee_error": 3}


def test_bodies_over_the_copy_cap_are_relayed_not_copied(upstream: Upstream) -> None:
    with running_proxy(upstream.url, max_body_copy=100) as (proxy, queue):
        big = exchange(proxy.port, request("POST", "/echo", b"x" * 101))
        small = exchange(proxy.port, request("POST", "/echo", b"y" * 100))
        bigresp = exchange(proxy.port, request("GET", "/big?size=5000"))
        samples = []
        deadline = time.monotonic() + 5
        while not samples and time.monotonic() < deadline:
            samples = queue.drain(10, 0.05)
        time.sleep(0.05)
        samples += queue.drain(10, 0)
        dropped = queue.dropped
    assert big.endswith(b"x" * 101) and small.endswith(b"y" * 100) and len(bigresp) > 5000
    assert [s.request_body for s in samples] == [b"y" * 100]
    assert dropped == {"too_large": 2}


def test_sampling_rate_is_applied(upstream: Upstream) -> None:
    with running_proxy(upstream.url, sampler=Sampler(0.5, deterministic=True)) as (proxy, queue):
        for i in range(6):
            exchange(proxy.port, request("POST", "/echo", b"%d" % i))
        time.sleep(0.05)
        samples = queue.drain(10, 0.5)
    assert [s.request_body for s in samples] == [b"1", b"3", b"5"]
    assert proxy.server.sampler.not_sampled == {"rate": 3, "rate_limited": 0}


def test_graceful_stop_lets_inflight_requests_finish(upstream: Upstream) -> None:
    queue = SampleQueue(10)
    server = ProxyServer("127.0.0.1", 0, upstream.url, queue, Sampler())
    thread = server.run_in_thread()
    port = thread.port
    idle = socket.create_connection(("127.0.0.1", port))
    result: list[bytes] = []
    client = threading.Thread(target=lambda: result.append(
        exchange(port, request("GET", "/slow?delay=0.4"))))
    client.start()
    deadline = time.monotonic() + 5
    while server.stats().requests_total < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    thread.stop(grace=5)
    client.join(5)
    assert result and result[0].startswith(b"HTTP/1.1 200 OK") and result[0].endswith(b'{"slow":true}')
    assert idle.recv(10) == b""  # the idle keep-alive connection was closed
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_start_stop_on_callers_loop(upstream: Upstream) -> None:
    """``start``/``stop`` on a loop the caller owns (as ``driftline serve`` may do)."""

    async def scenario() -> bytes:
        server = ProxyServer("127.0.0.1", 0, upstream.url, SampleQueue(10), Sampler())
        await server.start()
        assert server.running and server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request("GET", "/binary"))
        out = await reader.read()
        writer.close()
        await server.stop()
        assert not server.running
        return out

    loop = new_event_loop()
    try:
        out = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert out == exchange(upstream.port, request("GET", "/binary"))


@pytest.mark.parametrize("url", ["https://x:1", "127.0.0.1:80", "http://h:1/prefix", "http://h:99999"])
def test_bad_upstream_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        ProxyServer("127.0.0.1", 0, url, SampleQueue(1), Sampler())


def test_bind_error_surfaces_from_run_in_thread(upstream: Upstream) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ProxyServer("127.0.0.1", taken.getsockname()[1], upstream.url, SampleQueue(1),
                             Sampler())
        with pytest.raises(OSError):
            server.run_in_thread()


def test_upstream_coming_back_is_used_by_the_next_connection() -> None:
    """No state survives a failed connect: each client connection dials the upstream anew."""
    port = free_port()
    with running_proxy(f"http://127.0.0.1:{port}") as (proxy, _):
        assert exchange(proxy.port, request("GET", "/binary")).startswith(b"HTTP/1.1 502")
        with socket.socket() as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", port))
            srv.listen()

            def answer() -> None:
                conn, _ = srv.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

            t = threading.Thread(target=answer)
            t.start()
            out = exchange(proxy.port, request("GET", "/binary"))
            t.join(5)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
