"""Service health per model: the recorder's counts and histograms against a hand-computed
reference, bounded keys under a flood of made-up model names, the proxy recording every exchange
(sampled or not, answered by the upstream or by the proxy itself), the payload logger's pairs, and
the exporter folding models the sidecar does not serve."""

from __future__ import annotations

import bisect
import itertools
import socket
from pathlib import Path

import numpy as np
from _servers import LoopbackHTTPServer, QuietHandler
from hypothesis import given, settings
from hypothesis import strategies as st
from proxy_helpers import Upstream, exchange, request, running_proxy

from driftline import catalogue as cat
from driftline.collectors.cloudevents import CloudEvent
from driftline.collectors.request_metrics import OTHER, RequestMetrics, merge
from driftline.collectors.sampling import Sampler
from driftline.engine.snapshot import ModelSnapshot, RequestStats, SidecarStats
from driftline.exporters.cardinality import CardinalityGuard
from driftline.exporters.points import build_points

obs = st.tuples(st.sampled_from(["iris", "fraud"]), st.sampled_from(["", "2"]),
                st.sampled_from([200, 201, 404, 500, 503]),
                st.floats(0, 20, allow_nan=False), st.integers(0, 5_000_000))


@settings(max_examples=30)
@given(st.lists(obs, max_size=40))
def test_counts_and_histograms_match_a_hand_computed_reference(rows: list) -> None:
    m = RequestMetrics()
    for model, version, status, secs, size in rows:
        path = f"/v2/models/{model}{'/versions/' + version if version else ''}/infer?x=1"
        m.observe_path(path.encode(), status, secs, size)
    s = m.stats()
    expected: dict[tuple[str, str, str, str], int] = {}
    for model, version, status, _, _ in rows:
        k = (model, version, "default", f"{status // 100}xx")
        expected[k] = expected.get(k, 0) + 1
    assert s.counts == expected
    for model in {r[0] for r in rows}:
        secs = [r[3] for r in rows if r[0] == model]
        # numpy's right-closed bins are Prometheus' le buckets.
        edges = [-np.inf, *cat.LATENCY_BUCKETS, np.inf]
        ref = [sum(1 for x in secs if lo < x <= hi) for lo, hi in itertools.pairwise(edges)]
        h = s.latency[(model, "default")]
        assert list(h.counts) == ref and h.count == len(secs)
        assert abs(h.sum - sum(secs)) <= 1e-9 * max(1.0, sum(secs))
        sizes = [float(r[4]) for r in rows if r[0] == model]
        hs = s.request_size[model]
        assert list(hs.counts) == [sum(1 for x in sizes if bisect.bisect_left(cat.SIZE_BUCKETS, x) == i)
                                   for i in range(len(cat.SIZE_BUCKETS) + 1)]


def test_non_inference_paths_are_not_requests() -> None:
    m = RequestMetrics()
    for path in (b"/v2/health/ready", b"/v2/models/iris", b"/metrics", b"/v1/models/iris:explain"):
        m.observe_path(path, 200, 0.001, 0)
    m.observe_path(b"/v1/models/iris:predict", 200, 0.001, 10)
    assert m.stats().counts == {("iris", "", "default", "2xx"): 1}


@settings(max_examples=10)
@given(st.integers(1, 8), st.lists(st.text("abcxyz0123", min_size=1, max_size=6), max_size=60))
def test_a_flood_of_model_names_stays_bounded(cap: int, names: list[str]) -> None:
    m = RequestMetrics(max_keys=cap, max_paths=4)
    for n in names:
        m.observe_path(f"/v2/models/{n}/infer".encode(), 200, 0.01, 1)
    s = m.stats()
    keys = {k[:3] for k in s.counts}
    assert len(keys) <= cap + 1
    assert sum(s.counts.values()) == len(names)
    if len(set(names)) > cap:
        assert (OTHER, OTHER, OTHER) in keys


def test_the_proxy_records_every_exchange_by_model(tmp_path: Path) -> None:
    up = Upstream()
    try:
        with running_proxy(up.url, sampler=Sampler(0.0)) as (t, _q):
            port = t.server.port
            for path in ("/v2/models/iris/versions/2/infer", "/v2/models/iris/infer",
                         "/v1/models/fraud:predict", "/v2/health/ready"):
                exchange(port, request("POST" if "health" not in path else "GET", path, b'{"a":1}'))
            stats = t.server.requests.stats()
    finally:
        up.close()
    assert stats.counts == {("iris", "2", "default", "2xx"): 1, ("iris", "", "default", "2xx"): 1,
                            ("fraud", "", "default", "2xx"): 1}
    assert stats.latency[("iris", "default")].count == 2
    assert stats.request_size["iris"].sum == 14.0  # two 7-byte bodies


def test_the_proxy_counts_its_own_502_for_the_model() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with running_proxy(dead, connect_timeout=1.0) as (t, _q):
        out = exchange(t.server.port, request("POST", "/v2/models/iris/infer", b"{}"))
        assert out.startswith(b"HTTP/1.1 502")
        stats = t.server.requests.stats()
    assert stats.counts == {("iris", "", "default", "5xx"): 1}
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body and stats.response_size["iris"].sum == len(body)  # its own error body


def test_endpoint_header_and_response_sizes_in_the_recorder() -> None:
    m = RequestMetrics(endpoint="canary")
    path = b"/v2/models/iris/infer"
    m.observe_path(path, 200, 0.01, 100, 40)                      # the configured endpoint
    m.observe_path(path, 200, 0.01, 100, 2_000, b"default")       # a trusted header's value
    m.observe_path(path, 200, 0.01, 100, 30, b" default ")
    m.observe_path(path, 500, 0.01, 100, None, b"../../etc")      # no label: counted, folded
    m.observe_path(path, 200, 0.01, 100, 50, b"  ")               # blank: the configured one
    s = m.stats()
    assert s.counts == {("iris", "", "canary", "2xx"): 2, ("iris", "", "default", "2xx"): 2,
                        ("iris", "", OTHER, "5xx"): 1}
    h = s.response_size["iris"]
    assert (h.count, h.sum) == (4, 2_120.0)
    # 30, 40 and 50 bytes fall in the first bucket (≤ 100); 2000 in the ≤ 10 000 one
    assert list(h.counts) == [sum(1 for x in (40, 2_000, 30, 50)
                                  if bisect.bisect_left(cat.SIZE_BUCKETS, x) == i)
                              for i in range(len(cat.SIZE_BUCKETS) + 1)]


class _Fixed(QuietHandler):
    """A model server answering every inference with the same 52-byte body."""

    BODY = b'{"outputs": [{"name": "predict", "data": [1, 0, 1]}]}'

    def do_POST(self) -> None:
        self.body()
        self.reply(200, self.BODY)


def test_the_proxy_labels_endpoints_and_measures_response_sizes() -> None:
    with LoopbackHTTPServer(_Fixed) as server:
        url = server.url
        path = "/v2/models/iris/infer"
        # a canary revision's sidecar that trusts the header its router sets
        with running_proxy(url, sampler=Sampler(0.0), endpoint="canary",
                           trust_endpoint_header=True) as (t, _q):
            port = t.server.port
            exchange(port, request("POST", path, b'{"a":1}'))
            exchange(port, request("POST", path, b'{"a":1}', headers={"X-Driftline-Endpoint": "default"}))
            exchange(port, request("POST", path, b'{"a":1}', headers={"x-driftline-endpoint": "a b"}))
            trusted = t.server.requests.stats()
        # the same header, not trusted: the configured endpoint holds
        with running_proxy(url, sampler=Sampler(0.0)) as (t, _q):
            exchange(t.server.port, request("POST", path, b"{}", headers={"x-driftline-endpoint": "canary"}))
            untrusted = t.server.requests.stats()
    assert trusted.counts == {("iris", "", "canary", "2xx"): 1, ("iris", "", "default", "2xx"): 1,
                              ("iris", "", OTHER, "2xx"): 1}
    assert set(trusted.latency) == {("iris", "canary"), ("iris", "default"), ("iris", OTHER)}
    resp = trusted.response_size["iris"]
    assert (resp.count, resp.sum) == (3, 3.0 * len(_Fixed.BODY))
    assert trusted.request_size["iris"].sum == 21.0
    assert untrusted.counts == {("iris", "", "default", "2xx"): 1}
    assert untrusted.response_size["iris"].sum == len(_Fixed.BODY)


def test_payload_logger_pairs_count_as_2xx_with_sizes() -> None:
    from driftline.collectors.sidecar import Sidecar

    sc = Sidecar([])
    req = CloudEvent("id1", "org.kubeflow.serving.inference.request", "iris", "canary", b'{"inputs": []}')
    resp = CloudEvent("id1", "org.kubeflow.serving.inference.response", "iris", "canary", b'{"o": 1}')
    sc.handle_cloudevents([req, resp], now=1.0)
    s = sc.requests.stats()
    assert s.counts == {("iris", "", "canary", "2xx"): 1}
    assert s.request_size["iris"].sum == 14.0 and s.response_size["iris"].sum == 8.0


def test_the_exporter_keeps_served_models_and_folds_the_rest() -> None:
    from driftline.engine.snapshot import Histogram

    lat = Histogram(cat.LATENCY_BUCKETS, (1,) + (0,) * len(cat.LATENCY_BUCKETS), 0.0001, 1)
    rs = RequestStats(counts={("iris", "", "default", "2xx"): 5, ("iris", "", "default", "5xx"): 1,
                              ("made-up", "", "default", "2xx"): 7},
                      latency={("iris", "default"): lat, ("made-up", "default"): lat})
    snaps = _snapshots("iris", "7")
    points = {p.spec.name: p for p in build_points(snaps, SidecarStats(requests=rs), CardinalityGuard())}
    got = dict(points[cat.MODEL_REQUESTS.name].values)
    assert got == {("iris", "7", "default", "2xx"): 5.0, ("iris", "7", "default", "5xx"): 1.0,
                   (OTHER, OTHER, "default", "2xx"): 7.0}  # never an empty version
    assert set(points[cat.MODEL_REQUEST_DURATION.name].histograms) == {("iris", "default"),
                                                                        (OTHER, "default")}


def _snapshots(model: str, version: str) -> list[ModelSnapshot]:
    return [ModelSnapshot(model, version, "default", "b1", None, 0, {}, 0, {}, {}, {}, None, {}, {},
                          {}, None, None, None, None)]


def test_sources_merge_into_one_view() -> None:
    proxy, logger = RequestMetrics(), RequestMetrics()
    proxy.observe_path(b"/v2/models/iris/infer", 200, 0.01, 100)
    proxy.observe_path(b"/v2/models/iris/infer", 503, 0.02, 50)
    logger.observe("iris", "", None, "2xx", None, 70, 30)
    logger.observe("iris", "", "canary", "unknown", None, 10, None)
    s = merge([proxy.stats(), logger.stats()])
    assert s.counts == {("iris", "", "default", "2xx"): 2, ("iris", "", "default", "5xx"): 1,
                        ("iris", "", "canary", "unknown"): 1}
    assert s.request_size["iris"].sum == 230.0 and s.request_size["iris"].count == 4
    assert s.response_size["iris"].count == 1
    assert s.latency[("iris", "default")].count == 2
