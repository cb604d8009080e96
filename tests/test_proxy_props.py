"""Hypothesis: random bodies, paths and transfer codings round-trip byte-for-byte, and the
sample carries exactly what crossed the wire."""

from __future__ import annotations

import string
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_helpers import Upstream, exchange, request, running_proxy

from driftline.collectors.proxy import ProxyThread
from driftline.collectors.sample import Sample
from driftline.collectors.tee import SampleQueue

PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Upstream, ProxyThread, SampleQueue]]:
    up = Upstream()
    with running_proxy(up.url) as (proxy, queue):
        yield up, proxy, queue
    up.close()


def _one(queue: SampleQueue) -> list[Sample]:
    deadline = time.monotonic() + 5
    got: list[Sample] = []
    while not got and time.monotonic() < deadline:
        got = queue.drain(10, 0.02)
    return got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=20_000),
       path=st.text(PATH_CHARS, max_size=60),
       query=st.none() | st.text(PATH_CHARS + "?", max_size=40),
       method=st.sampled_from(["POST", "PUT"]),
       chunked=st.booleans(),
       ctype=st.sampled_from(["application/json", "application/octet-stream", "text/csv",
                              "application/cloudevents+json"]))
def test_random_exchanges_round_trip(stack: tuple[Upstream, ProxyThread, SampleQueue], body: bytes,
                                     path: str, query: str | None, method: str, chunked: bool,
                                     ctype: str) -> None:
    up, proxy, queue = stack
    queue.drain(100, 0)
    target = "/v1/" + path + ("" if query is None else "?" + query)
    raw = request(method, target, body, chunked=chunked, headers={"Content-Type": ctype})
    direct = exchange(up.port, raw)
    through = exchange(proxy.port, raw)
    assert through == direct
    samples = _one(queue)
    assert len(samples) == 1
    s = samples[0]
    assert (s.method, s.path, s.status) == (method, target, 200)
    assert s.request_body == body and s.response_body == body
    assert s.request_content_type == ctype == s.response_content_type
