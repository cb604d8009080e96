"""Hostile label values and per-model failure isolation: one bad record must not blind the
monitor. Label-bearing values (model name, version, endpoint) are checked at the edge, refusals
are counted as ``bad_label``, and a failure in one model's work cannot stop another's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from test_collectors_sidecar import T0, ce_headers, make_sidecar, snap, v2_exchange
from test_serve_http import Stack, request
from test_serve_support import make_profile

from driftline.collectors.cloudevents import from_http
from driftline.collectors.ingest import split_records
from driftline.collectors.label_values import MAX_LABEL_LENGTH, label_value
from driftline.collectors.payloads import PayloadError
from driftline.collectors.sample import Sample
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy


@pytest.fixture()
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


def _record(**extra: Any) -> dict[str, Any]:
    return {"model_name": "car-loan", "features": {"f0": 0.1, "f1": 0.2, "f2": 0.3, "f3": 0.4},
            **extra}


def _wait_idle(s: Stack) -> None:
    done = __import__("threading").Event()
    s.queue.put(done.set)
    assert done.wait(10)


@pytest.mark.parametrize("value", [5, "x" * 10])
def test_integer_endpoint_does_not_break_metrics(stack: Stack, value: Any) -> None:
    """An integer endpoint used to create a monitor whose label sorted against strings: every
    later scrape answered 500 until restart."""
    status, _, _ = request(stack.port, "POST", "/ingest", orjson.dumps(_record(endpoint=value)))
    assert status == 202
    _wait_idle(stack)
    status, _, body = request(stack.port, "GET", "/metrics")
    assert status == 200
    assert f'endpoint="{value}"'.encode() in body


@pytest.mark.parametrize("field,value", [
    ("endpoint", ["a"]), ("endpoint", {"a": 1}), ("model_name", ["car-loan"]),
    ("model_version", {"v": 1}), ("endpoint", "x" * (MAX_LABEL_LENGTH + 1)),
    ("endpoint", "canary\n"), ("model_name", True), ("endpoint", 1.5)])
def test_bad_label_values_refused_and_counted(stack: Stack, field: str, value: Any) -> None:
    good = _record()
    bad = _record(**{field: value})
    status, _, body = request(stack.port, "POST", "/ingest", orjson.dumps([good, bad]))
    assert status == 202 and orjson.loads(body) == {"accepted": 1}
    status, _, body = request(stack.port, "POST", "/ingest", orjson.dumps(bad))
    assert status == 400 and orjson.loads(body)["reason"] == "bad_label"
    _wait_idle(stack)
    assert sum(n for (_, r), n in stack.sidecar.dropped.items() if r == "bad_label") == 2
    status, _, metrics = request(stack.port, "GET", "/metrics")
    assert status == 200 and b'reason="bad_label"' in metrics
    assert snap(stack.sidecar).records_by_source == {"ingest": 1}


def test_shared_model_name_must_be_a_label() -> None:
    with pytest.raises(PayloadError) as e:
        split_records(orjson.dumps({"model_name": {"x": 1}, "records": [_record()]}))
    assert e.value.reason == "bad_label"


def test_structured_cloudevent_with_list_model_is_refused_at_the_edge() -> None:
    ev = {"id": "1", "type": "org.kubeflow.serving.inference.request", "specversion": "1.0",
          "inferenceservicename": ["car-loan"], "data": {"instances": [[1, 2, 3, 4]]}}
    with pytest.raises(PayloadError) as e:
        from_http({"content-type": "application/cloudevents+json"}, orjson.dumps(ev))
    assert e.value.reason == "bad_label"
    with pytest.raises(PayloadError):
        from_http({**ce_headers("2", "request"), "ce-endpoint": "a b"}, b"{}")


def test_full_queue_answers_429_even_for_hostile_cloudevents() -> None:
    s = Stack(queue_size=1, start_worker=False)
    try:
        req, _, _ = v2_exchange(1)
        assert request(s.port, "POST", "/cloudevents", req, ce_headers("a", "request"))[0] == 202
        assert request(s.port, "POST", "/cloudevents", req, ce_headers("b", "request"))[0] == 429
        ev = {"id": "1", "type": "x.request", "inferenceservicename": [1], "data": {}}
        status, _, _ = request(s.port, "POST", "/cloudevents", orjson.dumps(ev),
                               {"content-type": "application/cloudevents+json"})
        assert status == 429  # refused before its body is read, never a 500
        assert s.sidecar.dropped == {("car-loan", "queue_full"): 1, ("", "queue_full"): 1}
    finally:
        s.close()


def test_proxy_headers_with_bad_labels_are_counted() -> None:
    sc = make_sidecar()
    sc.trusted_headers = frozenset({"x-driftline-endpoint"})
    req, resp, _ = v2_exchange(3)
    sample = Sample("POST", "/v2/models/car-loan/infer", "application/json", req, 200,
                    "application/json", resp, T0, 0.01,
                    (("x-driftline-endpoint", "c" * 500),), ())
    assert sc.handle_sample(sample) == 0
    assert sc.dropped == {("", "bad_label"): 1}


def test_label_value_is_strict_and_ints_become_strings() -> None:
    assert label_value(7, "v") == "7" and label_value("v1.2-rc+3", "v") == "v1.2-rc+3"
    for bad in (["a"], {"a": 1}, 1.0, False, "-x", "a b", "é", "x" * 129):
        with pytest.raises(PayloadError):
            label_value(bad, "v")


class _Faulty:
    """A real monitor that fails on demand (the fault injected: a bug in one model's work)."""

    def __init__(self, inner: Any, fail: set[str]) -> None:
        self.inner = inner
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in self.fail:
            def boom(*a: Any, **k: Any) -> Any:
                raise RuntimeError(f"{name} failed")
            return boom
        return attr


def _two_models(fail: set[str], max_age: float = 5.0) -> Sidecar:
    real = engine_factory(WindowPolicy(records=1000, max_age=max_age), DriftPolicy())

    def factory(profile: Any, endpoint: str, cfg: ModelConfig) -> Any:
        mon = real(profile, endpoint, cfg)
        return _Faulty(mon, fail) if cfg.name == "fraud" else mon

    return Sidecar([(ModelConfig("car-loan", baseline=None), make_profile()),  # type: ignore[arg-type]
                    (ModelConfig("fraud", baseline=None), make_profile("fraud"))],  # type: ignore[arg-type]
                   limits=LimitsConfig(cloudevents_ttl=10.0), monitor_factory=factory,
                   clock=lambda: T0)


def test_one_models_failure_does_not_stop_anothers_ingest() -> None:
    sc = _two_models({"observe"})
    body = orjson.dumps([{**_record(), "model_name": "fraud"}, _record(), _record()])
    assert sc.handle_ingest(split_records(body), now=T0) == 2
    assert snap(sc).records_by_source == {"ingest": 2}
    assert sc.dropped == {("fraud", "internal_error"): 1}


def test_expiring_cloudevent_that_fails_does_not_abort_the_tick() -> None:
    """A failing exchange released by TTL used to abort the whole tick: the other expiring
    exchanges were lost uncounted and window ageing was skipped."""
    sc = _two_models({"observe", "tick"})
    req, _, _ = v2_exchange(4)
    sc.handle_cloudevents(from_http(ce_headers("f", "request", model="fraud"), req), now=T0)
    sc.handle_cloudevents(from_http(ce_headers("c", "request"), req), now=T0)
    sc.handle_exchange("car-loan", None, None, req, None, protocol="v2", now=T0)
    sc.tick(T0 + 11)
    s = snap(sc)
    assert s.records_by_source == {"cloudevents": 4, "proxy": 4}
    assert s.windows_total == 1  # the car-loan window aged out in the same tick
    assert sc.dropped == {("fraud", "internal_error"): 2}  # the exchange and fraud's tick


# --- NaN / Infinity literals are missing values, not parse errors -------------------------------

def test_nan_and_infinity_literals_count_as_missing_values() -> None:
    """Python's json.dumps writes NaN/Infinity and model servers accept them; they used to drop
    the whole payload as parse_error, so the missing values never reached missing_ratio."""
    import json

    nan, inf = float("nan"), float("inf")
    data = [nan, 1.0, 2.0, 3.0, inf, 1.0, 2.0, 3.0, -inf, 1.0, 2.0, 3.0, 0.5, 1.0, 2.0, 3.0]
    req = json.dumps({"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP64",
                                  "data": data}]}).encode()
    resp = json.dumps({"outputs": [{"name": "predict_proba", "shape": [4, 2], "datatype": "FP64",
                                    "data": [0.5, 0.5, nan, nan, 0.2, 0.8, 0.9, 0.1]}]}).encode()
    assert b"NaN" in req and b"-Infinity" in req
    sc = make_sidecar(window=4)
    assert sc.handle_exchange("car-loan", None, None, req, resp, protocol="v2", now=T0) == 4
    assert sc.dropped == {}
    w = snap(sc).last_window  # 4 records close the window
    assert w is not None and w.features["f0"].n_missing == 3
    assert w.features["f0"].missing_ratio == 0.75 and w.features["f1"].missing_ratio == 0.0
    ingest = json.dumps([{"model_name": "car-loan", "features": {"f0": nan, "f1": 1.0}}] * 4)
    assert sc.handle_ingest(split_records(ingest), now=T0) == 4
    w = snap(sc).last_window
    assert w is not None and w.index == 1 and w.features["f0"].missing_ratio == 1.0


def test_invalid_json_with_nan_word_is_still_a_parse_error() -> None:
    from driftline.collectors.payloads import loads

    for body in (b'{"a": NaN', b'{"a": NaNa}', b"[" * 100_000 + b"NaN" + b"]" * 100_000):
        with pytest.raises(PayloadError) as e:
            loads(body)
        assert e.value.reason == "parse_error"
    assert loads(b'{"a": [NaN, Infinity, -Infinity, 1]}') == {"a": [None, None, None, 1]}
