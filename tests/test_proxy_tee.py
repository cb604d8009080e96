"""SampleQueue, Sampler and the latency histograms, against hand-computed and numpy references."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.catalogue import LATENCY_BUCKETS
from driftline.collectors.proxy_latency import LatencyRecorder, status_class
from driftline.collectors.sample import Sample, keep_header
from driftline.collectors.sampling import Sampler
from driftline.collectors.tee import SampleQueue
from driftline.errors import ConfigError


def _sample(i: int) -> Sample:
    return Sample("POST", f"/v1/models/m:predict?i={i}", "application/json", b"%d" % i, 200,
                  "application/json", b"{}", 0.0, 0.001)


# -- SampleQueue -----------------------------------------------------------------------------------
def test_queue_bounded_fifo_and_counters() -> None:
    q = SampleQueue(3)
    assert [q.offer(_sample(i)) for i in range(5)] == [True, True, True, False, False]
    assert q.depth == len(q) == 3 and q.capacity == 3 and q.offered == 5
    assert q.dropped == {"queue_full": 2}
    q.count_drop("too_large")
    assert q.dropped == {"queue_full": 2, "too_large": 1} and q.dropped_total == 3
    assert [s.request_body for s in q.drain(2, 0)] == [b"0", b"1"]
    assert q.offer(_sample(9))
    assert [s.request_body for s in q.drain(10, 0)] == [b"2", b"9"]
    assert q.drain(10, 0) == [] and q.depth == 0


def test_drain_waits_for_wake_at_or_timeout() -> None:
    q = SampleQueue(100, wake_at=3)
    got: list[list[Sample]] = []
    t = threading.Thread(target=lambda: got.append(q.drain(10, timeout=30)))
    t.start()
    for i in range(3):
        q.offer(_sample(i))
    t.join(10)
    assert not t.is_alive() and [s.request_body for s in got[0]] == [b"0", b"1", b"2"]
    q.offer(_sample(3))  # fewer than wake_at: returned at the timeout
    assert [s.request_body for s in q.drain(10, timeout=0.05)] == [b"3"]


def test_close_wakes_consumer_and_refuses() -> None:
    q = SampleQueue(10)
    got: list[list[Sample]] = []
    t = threading.Thread(target=lambda: got.append(q.drain(10, timeout=None)))
    t.start()
    time.sleep(0.02)
    q.close()
    t.join(10)
    assert not t.is_alive() and got == [[]]
    assert not q.offer(_sample(1)) and q.closed


def test_queue_concurrent_producers_lose_nothing_uncounted() -> None:
    q = SampleQueue(500, wake_at=16)
    received: list[Sample] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() or q.depth:
            received.extend(q.drain(64, 0.01))

    def produce(k: int) -> None:
        for i in range(2000):
            q.offer(_sample(k * 10_000 + i))

    c = threading.Thread(target=consume)
    c.start()
    producers = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    stop.set()
    c.join(10)
    assert len(received) + q.dropped.get("queue_full", 0) == 6000 == q.offered
    bodies = [int(s.request_body) for s in received]
    assert len(set(bodies)) == len(bodies)
    for k in range(3):  # per producer, FIFO order survives
        mine = [b for b in bodies if b // 10_000 == k]
        assert mine == sorted(mine)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_queue_rejects_bad_capacity(bad: object) -> None:
    with pytest.raises(ConfigError):
        SampleQueue(bad)  # type: ignore[arg-type]


# -- Sampler -----------------------------------------------------------------------------------------
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 500))
def test_deterministic_rate_samples_exactly_floor(num: int, den: int, n: int) -> None:
    """After n requests, a deterministic sampler has taken floor(n * rate) (within float error)."""
    rate = min(num, den) / max(num, den)
    s = Sampler(rate, deterministic=True)
    taken = sum(s.should_sample() for _ in range(n))
    assert abs(taken - n * rate) <= 1
    assert s.sampled == taken and s.not_sampled["rate"] == n - taken


def test_random_rate_matches_binomial() -> None:
    s = Sampler(0.3, seed=7)
    n = 20_000
    taken = sum(s.should_sample() for _ in range(n))
    # 5 standard deviations of Binomial(n, 0.3)
    assert abs(taken - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5


def test_rate_bounds() -> None:
    assert all(Sampler(1.0).should_sample() for _ in range(100))
    s = Sampler(0.0)
    assert not any(s.should_sample() for _ in range(100)) and s.not_sampled["rate"] == 100


def test_token_bucket_with_a_fake_clock() -> None:
    now = [100.0]
    s = Sampler(1.0, max_per_second=10, burst=5, clock=lambda: now[0])
    assert [s.should_sample() for _ in range(7)] == [True] * 5 + [False] * 2  # the burst
    now[0] += 0.25  # 2.5 tokens
    assert [s.should_sample() for _ in range(3)] == [True, True, False]
    now[0] += 10.0  # refills to the burst, not beyond
    assert sum(s.should_sample() for _ in range(20)) == 5
    assert s.not_sampled == {"rate": 0, "rate_limited": 2 + 1 + 15} and s.sampled == 12


@pytest.mark.parametrize("kw", [{"rate": 1.5}, {"rate": -0.1}, {"rate": float("nan")},
                                {"max_per_second": 0}, {"max_per_second": float("inf")},
                                {"burst": 0.5}])
def test_sampler_rejects_bad_config(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Sampler(**kw)  # type: ignore[arg-type]


# -- latency histograms ------------------------------------------------------------------------------
@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from([200, 201, 302, 404, 499, 500, 503, 99, 700]),
                          st.floats(0, 20, allow_nan=False)), max_size=200))
def test_latency_histogram_matches_numpy(obs: list[tuple[int, float]]) -> None:
    rec = LatencyRecorder()
    for status, secs in obs:
        rec.observe(status, secs)
    hists = rec.histograms()
    assert sorted(hists) == ["2xx", "3xx", "4xx", "5xx"]
    # numpy reference: upper-inclusive buckets (le), plus +Inf
    edges = np.array(LATENCY_BUCKETS)
    for cls, h in hists.items():
        values = np.array([v for s, v in obs if status_class(s) == cls], dtype=float)
        expected = np.bincount(np.searchsorted(edges, values, side="left"),
                               minlength=len(edges) + 1)
        assert h.counts == tuple(int(c) for c in expected)
        assert h.count == len(values) and h.sum == pytest.approx(values.sum())
        assert h.bounds == LATENCY_BUCKETS


def test_status_class_edges() -> None:
    assert [status_class(s) for s in (200, 299, 300, 404, 500, 599, 600, 101)] == [
        "2xx", "2xx", "3xx", "4xx", "5xx", "5xx", "5xx", "5xx"]
    rec = LatencyRecorder()
    rec.observe(200, 0.001)  # exactly on a bound: counted in that bucket (le)
    assert rec.histograms()["2xx"].counts[LATENCY_BUCKETS.index(0.001)] == 1


def test_docstring_examples() -> None:
    import doctest

    from driftline.collectors import sample, sampling

    for mod in (sample, sampling):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0


# -- Sample ------------------------------------------------------------------------------------------
def test_sample_is_frozen_and_selects_headers() -> None:
    s = Sample("GET", "/a?b=c", "", b"", 200, "", b"", 1.0, 0.5,
               request_headers=(("ce-id", "1"), ("x-request-id", "r")),
               response_headers=(("inference-header-content-length", "12"),))
    with pytest.raises(AttributeError):
        s.status = 500  # type: ignore[misc]
    assert s.header("CE-ID") == "1" and s.header("nope") is None and s.header("nope", "d") == "d"
    assert s.response_header("Inference-Header-Content-Length") == "12" and s.model_path == "/a"
    assert keep_header(b"ce-specversion") and keep_header(b"x-request-id")
    assert not keep_header(b"authorization") and not keep_header(b"cookie")
