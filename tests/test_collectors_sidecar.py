"""The sidecar core with real monitors: CloudEvents pairing/TTL, feedback join, unknown-model cap,
proxy samples, ingest grouping, age-based windows, and the worker's queue."""

from __future__ import annotations

import base64
import gzip
import threading
import time

import numpy as np
import orjson
import pytest
from test_serve_support import make_profile

from driftline.collectors.cloudevents import CloudEvent, Pairer, from_http
from driftline.collectors.feedback import Feedback, PredictionStore, parse_feedback
from driftline.collectors.ingest import split_records
from driftline.collectors.payloads import PayloadError
from driftline.collectors.sample import Sample
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy

T0 = 1_800_000_000.0


def make_sidecar(window: int = 1000, max_age: float = 300.0, two_models: bool = False,
                 **limits: float) -> Sidecar:
    models = [(ModelConfig("car-loan", baseline=None, version="1", aliases=("loan",)),  # type: ignore[arg-type]
               make_profile())]
    if two_models:
        models.append((ModelConfig("fraud", baseline=None, version="2"),  # type: ignore[arg-type]
                       make_profile("fraud", "2", n_numeric=2)))
    return Sidecar(models, limits=LimitsConfig(**limits),  # type: ignore[arg-type]
                   monitor_factory=engine_factory(WindowPolicy(records=window, max_age=max_age),
                                                  DriftPolicy()),
                   clock=lambda: T0)


def v2_exchange(n: int, seed: int = 0, rid: str | None = None) -> tuple[bytes, bytes, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, 4))
    p = 1 / (1 + np.exp(-x[:, 0]))
    req = {"inputs": [{"name": "x", "shape": [n, 4], "datatype": "FP64",
                       "data": x.ravel().tolist()}]}
    if rid:
        req["id"] = rid
    resp = {"outputs": [{"name": "predict", "shape": [n], "datatype": "INT64",
                         "data": (p > 0.5).astype(int).tolist()},
                        {"name": "predict_proba", "shape": [n, 2], "datatype": "FP64",
                         "data": np.column_stack([1 - p, p]).ravel().tolist()}]}
    return orjson.dumps(req), orjson.dumps(resp), (p > 0.5).astype(int)


def ce_headers(ce_id: str, kind: str, model: str = "car-loan", endpoint: str | None = None
               ) -> dict[str, str]:
    h = {"ce-id": ce_id, "ce-specversion": "1.0", "content-type": "application/json",
         "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-source": "http://x/",
         "ce-inferenceservicename": model, "ce-namespace": "ns", "ce-component": "predictor"}
    if endpoint:
        h["ce-endpoint"] = endpoint
    return h


def snap(sc: Sidecar, endpoint: str = "default", model: str = "car-loan"):  # type: ignore[no-untyped-def]
    for s in sc.snapshots():
        if s.endpoint == endpoint and s.model_name == model:
            return s
    raise AssertionError(f"no monitor {model}/{endpoint}")


# --- CloudEvents ---------------------------------------------------------------------------------

@pytest.mark.parametrize("response_first", [False, True])
def test_cloudevents_pairing_either_order(response_first: bool) -> None:
    sc = make_sidecar()
    req, resp, pred = v2_exchange(5)
    events = [(ce_headers("abc", "request"), req), (ce_headers("abc", "response"), resp)]
    if response_first:
        events.reverse()
    n = 0
    for h, body in events:
        n += sc.handle_cloudevents(from_http(h, body))
    assert n == 5 and len(sc.pairer) == 0
    s = snap(sc)
    assert s.records_by_source == {"cloudevents": 5}
    assert sum(s.prediction_classes.values()) == 5
    # predictions are stored under "<ce-id>:<row>" for the feedback join
    assert sc.handle_feedback([Feedback(f"abc:{i}", int(pred[i])) for i in range(5)]) == 5
    assert snap(sc).labels.get("true") == 5 and snap(sc).accuracy == 1.0


def test_cloudevents_ttl_releases_lone_request_and_drops_lone_response() -> None:
    sc = make_sidecar(cloudevents_ttl=10.0)
    req, resp, _ = v2_exchange(3)
    sc.handle_cloudevents(from_http(ce_headers("r-only", "request"), req), now=T0)
    sc.handle_cloudevents(from_http(ce_headers("p-only", "response"), resp), now=T0 + 1)
    sc.tick(T0 + 9.5)
    assert len(sc.pairer) == 2 and snap(sc).records_sampled == 0
    sc.tick(T0 + 10.5)  # request expired, response not yet
    assert snap(sc).records_sampled == 3 and snap(sc).prediction_classes.get("1", 0) == 0
    assert len(sc.pairer) == 1
    sc.tick(T0 + 11.5)
    assert len(sc.pairer) == 0
    assert sc.dropped == {("car-loan", "unpaired_response"): 1}


def test_pairer_is_bounded() -> None:
    p = Pairer(ttl=60, max_pending=100)
    released = []
    for i in range(1000):
        released += p.add(CloudEvent(str(i), "x.request", "m", None, b"{}"), now=float(i))
        assert len(p) <= 100
    assert len(released) == 900 and all(ex.request == b"{}" for ex in released)
    assert [ex.id for ex in released[:3]] == ["0", "1", "2"]  # oldest out first


def test_structured_batch_and_base64_modes() -> None:
    sc = make_sidecar()
    req, resp, _ = v2_exchange(2)
    structured = orjson.dumps({"specversion": "1.0", "id": "s1", "source": "x",
                               "type": "org.kubeflow.serving.inference.request",
                               "inferenceservicename": "car-loan", "datacontenttype":
                               "application/json", "data": orjson.loads(req)})
    evs = from_http({"content-type": "application/cloudevents+json"}, structured)
    assert evs[0].kind == "request" and evs[0].model == "car-loan"
    batch = orjson.dumps([{"specversion": "1.0", "id": "s1", "source": "x",
                           "type": "org.kubeflow.serving.inference.response",
                           "inferenceservicename": "car-loan",
                           "data_base64": base64.b64encode(resp).decode()}])
    evs += from_http({"content-type": "application/cloudevents-batch+json"}, batch)
    assert sc.handle_cloudevents(evs) == 2
    assert sum(snap(sc).prediction_classes.values()) == 2
    with pytest.raises(PayloadError):
        from_http({"content-type": "application/cloudevents+json"}, b"{")
    with pytest.raises(PayloadError):
        from_http({"content-type": "application/json"}, req)  # binary mode without ce-id


def test_canary_endpoint_gets_its_own_monitor_and_endpoints_are_capped() -> None:
    sc = make_sidecar(max_endpoints=2)
    req, resp, _ = v2_exchange(4)
    for i, ep in enumerate(["canary", "canary", "blue", None]):
        sc.handle_cloudevents(from_http(ce_headers(f"q{i}", "request", endpoint=ep), req))
        sc.handle_cloudevents(from_http(ce_headers(f"q{i}", "response", endpoint=ep), resp))
    assert snap(sc, "canary").records_sampled == 8
    assert snap(sc, "default").records_sampled == 4
    assert {s.endpoint for s in sc.snapshots()} == {"default", "canary"}
    assert sc.dropped == {("car-loan", "unknown_endpoint"): 4}


def test_seldon_metadata_request_id() -> None:
    h = ce_headers("ce1", "request")
    h["ce-type"] = "io.seldon.serving.inference.request"
    h["ce-metadata"] = '{"X-Request-Id": ["req-9"]}'
    ev = from_http(h, b"{}")[0]
    assert ev.kind == "request" and ev.request_id == "req-9"


# --- feedback ------------------------------------------------------------------------------------

def test_feedback_join_accuracy_and_unmatched() -> None:
    sc = make_sidecar(two_models=True)
    rng = np.random.default_rng(3)
    preds = rng.integers(0, 2, 40)
    labels = np.where(rng.uniform(size=40) < 0.75, preds, 1 - preds)
    body = [{"model_name": "car-loan", "id": f"id{i}", "features": {"f0": float(i)},
             "prediction": int(preds[i])} for i in range(40)]
    assert sc.handle_ingest(split_records(orjson.dumps(body))) == 40
    fb = [Feedback(f"id{i}", int(labels[i])) for i in range(40)]
    fb += [Feedback("nobody", 1, "car-loan"), Feedback("nobody2", 0), Feedback("x", 1, "fraud")]
    assert sc.handle_feedback(fb) == 40
    # the three strays wait for a prediction that may still be on its way ...
    assert snap(sc).labels == {"true": 40, "false": 0} and sc.dropped == {}
    sc.tick(T0 + 11)  # ... and count as unmatched once the wait (10 s) is over
    s = snap(sc)
    assert s.labels == {"true": 40, "false": 1}
    assert s.accuracy == pytest.approx(float(np.mean(preds == labels)))
    assert snap(sc, model="fraud").labels == {"true": 0, "false": 1}
    assert sc.dropped == {("", "unmatched_label"): 1}  # no model named, two models configured
    # a label joins once: the same ids again are unmatched
    assert sc.handle_feedback([Feedback("id0", 1)], T0 + 11) == 0
    sc.tick(T0 + 22)
    assert sc.dropped == {("", "unmatched_label"): 2}  # no model named again


def test_a_label_that_arrives_before_its_prediction_waits_and_joins() -> None:
    """Labels posted right after the response used to be counted matched="false" and lost when
    they overtook the sampled exchange (4 of 342 in one run)."""
    sc = make_sidecar(feedback_wait=5.0, feedback_wait_max_ids=3)
    assert sc.handle_feedback([Feedback(f"r{i}", i % 2) for i in range(3)], T0) == 0
    body = [{"model_name": "car-loan", "id": f"r{i}", "features": {"f0": 0.0}, "prediction": 1}
            for i in range(3)]
    assert sc.handle_ingest(split_records(orjson.dumps(body)), now=T0 + 1) == 3
    s = snap(sc)
    assert s.labels == {"true": 3, "false": 0} and s.accuracy == pytest.approx(1 / 3)
    assert len(sc.pending_labels) == 0
    # bounded: a fourth waiting label pushes the oldest out (counted at once); the rest wait
    # `feedback_wait` seconds, then count
    sc.handle_feedback([Feedback(f"late{i}", 1) for i in range(4)], T0 + 2)
    assert snap(sc).labels["false"] == 1 and len(sc.pending_labels) == 3
    sc.tick(T0 + 6.5)
    assert snap(sc).labels["false"] == 1  # still within the wait
    sc.tick(T0 + 7.5)
    assert snap(sc).labels["false"] == 4 and len(sc.pending_labels) == 0
    # shutdown gives up on whatever still waits
    sc.handle_feedback([Feedback("never", 1)], T0 + 8)
    sc.flush()
    assert snap(sc).labels == {"true": 3, "false": 5}


def test_prediction_store_bounded_and_ttl() -> None:
    st = PredictionStore(ttl=100, max_ids=50)
    ids = np.array([f"i{k}" for k in range(80)], dtype=object)
    st.put("k", ids, np.array(["1"] * 80, dtype=object), now=0.0)
    assert len(st) == 50 and st.pop("i0", 1.0) is None and st.pop("i79", 1.0) == ("k", "1")
    assert st.pop("i78", 101.0) is None  # expired
    assert st.expire(101.0) == 48 and len(st) == 0


def test_parse_feedback_forms() -> None:
    assert parse_feedback(b'{"id": 7, "label": "yes"}') == [Feedback("7", "yes")]
    out = parse_feedback(b'{"model_name": "m", "labels": [{"id": "a", "label": 0}, {"id": "b"}]}')
    assert out == [Feedback("a", 0, "m")]
    with pytest.raises(PayloadError):
        parse_feedback(b'[{"label": 1}]')


# --- unknown models, ingest ------------------------------------------------------------------

def test_unknown_models_are_capped_and_create_no_monitor() -> None:
    sc = make_sidecar(max_model_labels=5)
    body = [{"model_name": f"m{i}", "features": {"f0": 1}} for i in range(200)]
    sc.handle_ingest(split_records(orjson.dumps(body)))
    req, resp, _ = v2_exchange(2)
    for i in range(50):
        sc.handle_exchange(f"proxy{i}", None, None, req, resp)
    assert len(sc.monitors()) == 1
    dropped = sc.dropped
    assert len(dropped) == 6  # 5 names + __other__
    assert dropped[("__other__", "unknown_model")] == 245
    assert sum(dropped.values()) == 250
    assert sc.sidecar_stats().series_capped == {"model_name": 245}


def test_ingest_groups_versions_aliases_and_bad_records() -> None:
    sc = make_sidecar()
    body = {"model_name": "loan", "records": [
        {"features": {"f0": 1, "f1": 2}}, {"features": {"f0": 3}, "model_version": "1"},
        {"features": {"unknown": 1}}, {"features": [1, 2]}, {"features": {"f0": 1},
                                                               "model_version": "9"}]}
    assert sc.handle_ingest(split_records(orjson.dumps(body))) == 2
    assert snap(sc).records_by_source == {"ingest": 2}
    assert sc.dropped == {("car-loan", "schema_mismatch"): 1, ("loan", "schema_mismatch"): 1,
                          ("loan", "unknown_model"): 1}
    with pytest.raises(PayloadError):
        split_records(b"nope")


# --- proxy samples -----------------------------------------------------------------------------

def sample(path: str, req: bytes, resp: bytes, status: int = 200,
           headers: tuple[tuple[str, str], ...] = (),
           resp_headers: tuple[tuple[str, str], ...] = ()) -> Sample:
    return Sample("POST", path, "application/json", req, status, "application/json", resp,
                  T0, 0.001, headers, resp_headers)


def test_proxy_samples_v2_50x4_and_v1() -> None:
    sc = make_sidecar()
    req, resp, _ = v2_exchange(50, rid="req-1")
    assert sc.handle_sample(sample("/v2/models/car-loan/versions/1/infer", req, resp)) == 50
    v1req = orjson.dumps({"instances": [[0.1, 0.2, 0.3, 0.4]] * 3})
    v1resp = gzip.compress(b'{"predictions": [1, 0, 1]}')
    assert sc.handle_sample(sample("/v1/models/loan:predict", v1req, v1resp,
                                   headers=(("x-request-id", "h1"),),
                                   resp_headers=(("content-encoding", "gzip"),))) == 3
    assert sc.handle_sample(sample("/v2/models/car-loan/ready", b"", b"")) == 0
    assert sc.handle_sample(sample("/v2/models/car-loan/versions/2/infer", req, resp)) == 0
    assert sc.handle_sample(sample("/v1/models/car-loan:predict", b"{bad", b"")) == 0
    s = snap(sc)
    assert s.records_by_source == {"proxy": 53}
    assert sum(s.prediction_classes.values()) == 53
    assert sc.dropped == {("car-loan", "unknown_model"): 1, ("car-loan", "parse_error"): 1}
    assert sc.handle_feedback([Feedback("req-1:49", 1), Feedback("h1:2", 1)]) == 2


def test_proxied_records_take_the_configured_endpoint_unless_a_trusted_header_names_one() -> None:
    sc = make_sidecar()
    sc.proxy_endpoint = "canary"  # proxy.endpoint of a canary revision's sidecar
    req, resp, _ = v2_exchange(2)
    hinted = (("x-driftline-endpoint", "default"),)
    assert sc.handle_sample(sample("/v2/models/car-loan/infer", req, resp)) == 2
    assert sc.handle_sample(sample("/v2/models/car-loan/infer", req, resp, headers=hinted)) == 2
    assert snap(sc, "canary").records_sampled == 4 and snap(sc, "default").records_sampled == 0
    sc.trusted_headers = frozenset({"x-driftline-endpoint"})
    assert sc.handle_sample(sample("/v2/models/car-loan/infer", req, resp, headers=hinted)) == 2
    assert snap(sc, "default").records_sampled == 2


def test_failed_upstream_keeps_features_only() -> None:
    sc = make_sidecar()
    req, _, _ = v2_exchange(2)
    assert sc.handle_sample(sample("/v2/models/car-loan/infer", req, b'{"error":"x"}', 500)) == 2
    assert sum(snap(sc).prediction_classes.values()) == 0


# --- windows by age, worker ----------------------------------------------------------------------

def test_tick_closes_windows_by_age_without_traffic() -> None:
    sc = make_sidecar(window=1000, max_age=5.0)
    req, resp, _ = v2_exchange(10)
    sc.handle_exchange("car-loan", None, None, req, resp, protocol="v2", now=T0)
    sc.tick(T0 + 4.0)
    assert snap(sc).windows_total == 0
    sc.tick(T0 + 5.0)
    s = snap(sc)
    assert s.windows_total == 1 and s.last_window is not None and s.last_window.records == 10


def test_work_queue_never_blocks_and_drops_when_full() -> None:
    q = WorkQueue(capacity=10)
    assert q.put(lambda: None, 6) and q.put(lambda: None, 4)
    t = time.perf_counter()
    assert not q.put(lambda: None, 1)
    assert time.perf_counter() - t < 1.0
    assert q.depth == 10 and len(q.get_many(timeout=0)) == 2 and q.depth == 0
    assert q.put(lambda: None, 50)  # heavier than the capacity: admitted into an empty queue
    assert not q.put(lambda: None, 1)


def test_worker_survives_bad_jobs_and_flushes_on_stop() -> None:
    sc = make_sidecar(window=1000, max_age=300.0)
    q = WorkQueue(100)
    w = Worker(sc, q, tick_interval=0.05)
    w.start()
    done = threading.Event()
    req, resp, _ = v2_exchange(7)

    def boom() -> None:
        raise RuntimeError("bad job")

    q.put(boom)
    q.put(lambda: sc.handle_exchange("car-loan", None, None, req, resp, protocol="v2"), 7)
    q.put(done.set)
    assert done.wait(10)
    assert w.alive and w.errors == 1
    assert snap(sc).windows_total == 0
    w.stop()
    s = snap(sc)
    assert s.windows_total == 1 and s.last_window.records == 7  # type: ignore[union-attr]
    assert sc.dropped == {("", "internal_error"): 1}


def test_worker_timer_closes_aged_window_without_traffic() -> None:
    models = [(ModelConfig("car-loan", baseline=None), make_profile())]  # type: ignore[arg-type]
    sc = Sidecar(models, monitor_factory=engine_factory(
        WindowPolicy(records=1000, max_age=0.3), DriftPolicy()))  # real clock
    q = WorkQueue(100)
    w = Worker(sc, q, tick_interval=0.05)
    w.start()
    try:
        req, resp, _ = v2_exchange(3)
        q.put(lambda: sc.handle_exchange("car-loan", None, None, req, resp, protocol="v2"), 3)
        deadline = time.monotonic() + 20
        while snap(sc).windows_total == 0:  # no further traffic: only the timer can close it
            assert time.monotonic() < deadline, "aged window never closed"
            time.sleep(0.02)
        assert snap(sc).last_window.records == 3  # type: ignore[union-attr]
    finally:
        w.stop()


def test_triton_binary_tensor_extension() -> None:
    sc = make_sidecar()
    x = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    labels = [b"0", b"1", b"0"]
    lab_raw = b"".join(len(v).to_bytes(4, "little") + v for v in labels)
    head = orjson.dumps({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]})
    rhead = orjson.dumps({"outputs": [
        {"name": "predict", "shape": [3], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(lab_raw)}},
        {"name": "predict_proba", "shape": [3, 2], "datatype": "FP32",
         "parameters": {"binary_data_size": p.nbytes}}]})
    s = sample("/v2/models/car-loan/infer", head + x.tobytes(), rhead + lab_raw + p.tobytes(),
               headers=(("inference-header-content-length", str(len(head))),),
               resp_headers=(("inference-header-content-length", str(len(rhead))),))
    assert sc.handle_sample(s) == 3
    snapshot = snap(sc)
    assert snapshot.prediction_classes.get("0") == 2 and snapshot.prediction_classes.get("1") == 1
    assert snapshot.prediction_confidence.count == 3  # type: ignore[union-attr]
    assert snapshot.prediction_confidence.sum == pytest.approx(0.9 + 0.7 + 0.6, rel=1e-6)  # type: ignore[union-attr]
    assert all(snapshot.quantile_rank[f"f{j}"].count == 3 for j in range(4))
    bad = sample("/v2/models/car-loan/infer", head + x.tobytes()[:10], b"",
                 headers=(("inference-header-content-length", str(len(head))),))
    assert sc.handle_sample(bad) == 0
    assert sc.dropped == {("car-loan", "parse_error"): 1}


def test_drops_that_name_no_model_are_never_exported_with_an_empty_model_name() -> None:
    """A worker job that fails outside any model's work, an oversized body, a label that names
    no model: counted in driftline_unattributed_drops_total{reason}, while every series that
    carries model_name (Prometheus and OTLP read the same points) names a model."""
    from prometheus_client.parser import text_string_to_metric_families

    from driftline.exporters.cardinality import CardinalityGuard, CardinalityLimits
    from driftline.exporters.points import build_points
    from driftline.exporters.prometheus import new_registry, render

    sc = make_sidecar(two_models=True)
    q = WorkQueue(100)
    w = Worker(sc, q, tick_interval=0.05)

    def boom() -> None:
        raise RuntimeError("a defect outside any model")

    q.put(boom)
    w.run_once(wait=0)
    sc.drop(None, "too_large")
    sc.drop("car-loan", "queue_full", 3)
    assert sc.dropped == {("", "internal_error"): 1, ("", "too_large"): 1,
                          ("car-loan", "queue_full"): 3}

    body = render(new_registry(sc)[0], "text/plain")[0].decode()
    assert 'model_name=""' not in body
    series = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for fam in text_string_to_metric_families(body) for s in fam.samples}
    assert series[("driftline_unattributed_drops_total", (("reason", "internal_error"),))] == 1
    assert series[("driftline_unattributed_drops_total", (("reason", "too_large"),))] == 1
    assert series[("driftline_records_dropped_total",
                   (("model_name", "car-loan"), ("reason", "queue_full")))] == 3
    for points in build_points(sc.snapshots(), sc.sidecar_stats(), CardinalityGuard(CardinalityLimits())):
        if "model_name" in points.spec.labels:
            at = points.spec.labels.index("model_name")
            keys = [*points.values, *points.histograms]
            assert all(k[at] for k in keys), f"{points.spec.name} has an empty model_name"
