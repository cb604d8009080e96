"""The metrics-port HTTP service over a real socket: routes, status codes, limits, HTTP framing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import orjson
import pytest
from test_serve_support import make_profile

from driftline.collectors.service import App, HttpServer, ServiceThread
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.exporters.prometheus import new_registry, render


class Stack:
    def __init__(self, queue_size: int = 1000, max_body: int = 1 << 20,
                 start_worker: bool = True) -> None:
        self.sidecar = Sidecar(
            [(ModelConfig("car-loan", baseline=None), make_profile())],  # type: ignore[arg-type]
            limits=LimitsConfig(), monitor_factory=engine_factory(
                WindowPolicy(records=100, max_age=300), DriftPolicy()))
        self.queue = WorkQueue(queue_size)
        self.worker = Worker(self.sidecar, self.queue, tick_interval=0.1)
        if start_worker:
            self.worker.start()
        registry, _ = new_registry(self.sidecar)
        app = App(self.sidecar, self.queue, lambda a: render(registry, a),
                  ready_checks={"worker_running": lambda: self.worker.alive})
        self.service = ServiceThread(HttpServer(app, "127.0.0.1", 0, max_body=max_body)).start()
        self.port = self.service.port

    def close(self) -> None:
        self.service.stop()
        self.worker.stop()


@pytest.fixture()
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


def raw(port: int, data: bytes, responses: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes, read ``responses`` HTTP responses (Content-Length framed)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while len(out) < responses:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            n = int(headers["content-length"])
            while len(buf) < n:
                buf += s.recv(65536)
            out.append((status, headers, buf[:n]))
            buf = buf[n:]
    return out


def request(port: int, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    h = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    data = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{h}"
            "Connection: close\r\n\r\n").encode() + body
    return raw(port, data)[0]


def test_health_ready_metrics(stack: Stack) -> None:
    assert request(stack.port, "GET", "/healthz")[0] == 200
    status, _, body = request(stack.port, "GET", "/readyz")
    assert status == 200 and orjson.loads(body) == {"ready": True,
                                                    "checks": {"worker_running": True}}
    status, h, body = request(stack.port, "GET", "/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
    assert b'driftline_records_sampled_total{endpoint="default",model_name="car-loan"' in body
    status, h, body = request(stack.port, "GET", "/metrics",
                              headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert h["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_readyz_503_when_worker_stopped() -> None:
    s = Stack(start_worker=False)
    try:
        status, _, body = request(s.port, "GET", "/readyz")
        assert status == 503 and orjson.loads(body)["checks"] == {"worker_running": False}
    finally:
        s.close()


def test_ingest_feedback_and_errors(stack: Stack) -> None:
    recs = [{"model_name": "car-loan", "id": f"a{i}", "features": {"f0": i}, "prediction": 1}
            for i in range(10)]
    status, _, body = request(stack.port, "POST", "/ingest", orjson.dumps(recs))
    assert (status, orjson.loads(body)) == (202, {"accepted": 10})
    status, _, _ = request(stack.port, "POST", "/feedback",
                           orjson.dumps([{"id": "a1", "label": 1}]))
    assert status == 202
    assert request(stack.port, "POST", "/ingest", b"{oops")[0] == 400
    status, _, body = request(stack.port, "POST", "/ingest", b'{"features": {"f0": 1}}')
    assert status == 400 and orjson.loads(body)["reason"] == "schema_mismatch"
    assert request(stack.port, "POST", "/feedback", b"[]")[0] == 400
    assert request(stack.port, "GET", "/ingest")[0] == 405
    assert request(stack.port, "GET", "/nope")[0] == 404
    status, _, _ = request(stack.port, "POST", "/cloudevents", b"{}",
                           {"Content-Type": "application/json"})  # binary mode without ce-id
    assert status == 400
    stack.worker.stop()
    snap = stack.sidecar.snapshots()[0]
    assert snap.records_by_source == {"ingest": 10} and snap.labels["true"] == 1
    assert stack.sidecar.dropped == {("", "parse_error"): 2, ("", "schema_mismatch"): 2}


def test_cloudevents_binary_mode_at_root_path(stack: Stack) -> None:
    req = orjson.dumps({"instances": [[1, 2, 3, 4]]})
    for kind, body in (("request", req), ("response", b'{"predictions": [1]}')):
        status, _, _ = request(stack.port, "POST", "/", body, {
            "Content-Type": "application/json", "ce-id": "e1", "ce-specversion": "1.0",
            "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-source": "x",
            "ce-inferenceservicename": "car-loan"})
        assert status == 202
    stack.worker.stop()
    snap = stack.sidecar.snapshots()[0]
    assert snap.records_by_source == {"cloudevents": 1} and snap.prediction_classes.get("1") == 1


def test_keepalive_pipelining_and_chunked_body(stack: Stack) -> None:
    body = orjson.dumps({"model_name": "car-loan", "features": {"f0": 1}})
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
            b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    out = raw(stack.port, data, responses=3)
    assert [o[0] for o in out] == [200, 202, 200]
    assert all(o[1]["connection"] == "keep-alive" for o in out)


def test_body_too_large_and_queue_full() -> None:
    s = Stack(queue_size=5, max_body=1000, start_worker=False)
    try:
        status, _, _ = request(s.port, "POST", "/ingest", b"[" + b" " * 2000 + b"]")
        assert status == 413
        recs = orjson.dumps([{"model_name": "car-loan", "features": {"f0": 1}}] * 3)
        assert request(s.port, "POST", "/ingest", recs)[0] == 202
        status, _, body = request(s.port, "POST", "/ingest", recs)  # 3 + 3 > 5, worker idle
        # refused, not lost: the client sends them again, so they are not counted as dropped
        # (they used to be, under model_name="", and retried batches counted twice)
        assert status == 429 and orjson.loads(body)["refused"] == 3
        assert s.sidecar.dropped == {("", "too_large"): 1}
        stats = s.sidecar.sidecar_stats()
        assert stats.queue_depth == 0  # queue_stats not wired in this stack
    finally:
        s.close()


def test_full_queue_refuses_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client retrying 429s must not make the sidecar parse each refused body: once the queue
    # holds its capacity, /ingest and /feedback answer 429 without calling their decoders.
    import driftline.collectors.service as service

    s = Stack(queue_size=3, start_worker=False)
    try:
        recs = orjson.dumps([{"model_name": "car-loan", "features": {"f0": 1}}] * 3)
        assert request(s.port, "POST", "/ingest", recs)[0] == 202  # the queue is now full
        calls: list[str] = []

        def spy(name: str, real: object) -> object:
            def decode(*args: object, **kwargs: object) -> object:
                calls.append(name)
                return real(*args, **kwargs)  # type: ignore[operator]
            return decode

        monkeypatch.setattr(service, "split_records", spy("ingest", service.split_records))
        monkeypatch.setattr(service, "parse_feedback", spy("feedback", service.parse_feedback))
        for path in ("/ingest", "/feedback"):
            status, _, body = request(s.port, "POST", path, b"{not json")  # would be a 400
            assert status == 429 and "send the same body again" in orjson.loads(body)["error"]
        assert calls == [] and s.sidecar.dropped == {}
        s.worker.drain()  # room again: the same bad body is decoded and refused as bad
        assert request(s.port, "POST", "/ingest", b"{not json")[0] == 400
        assert calls == ["ingest"]
    finally:
        s.close()


def test_full_queue_refuses_structured_cloudevents_before_decoding_and_counts_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The payload logger does not retry: a refused event is lost and counted, one per event,
    # without a model (it is inside the body, which is not decoded); binary-mode events carry
    # their model in headers and are counted under it.
    import driftline.collectors.service as service

    s = Stack(queue_size=1, start_worker=False)
    try:
        recs = orjson.dumps([{"model_name": "car-loan", "features": {"f0": 1}}])
        assert request(s.port, "POST", "/ingest", recs)[0] == 202  # the queue is now full
        calls: list[object] = []

        def spy(*args: object) -> object:
            calls.append(args)
            return real(*args)

        real = service.from_http
        monkeypatch.setattr(service, "from_http", spy)
        ev = {"specversion": "1.0", "id": "1", "type": "org.kubeflow.serving.inference.request",
              "inferenceservicename": "car-loan", "data": {"instances": [[1, 2, 3, 4]]}}
        for ctype, body, n in (("application/cloudevents+json", orjson.dumps(ev), 1),
                               ("application/cloudevents-batch+json",
                                orjson.dumps([ev, {**ev, "id": "2"}, {**ev, "id": "3"}]), 3),
                               ("application/cloudevents+json; charset=utf-8", b"{not json", 1)):
            status, _, out = request(s.port, "POST", "/cloudevents", body,
                                     {"content-type": ctype})
            assert status == 429 and orjson.loads(out)["dropped"] == n
        assert calls == [] and s.sidecar.dropped == {("", "queue_full"): 5}
        status, _, _ = request(s.port, "POST", "/cloudevents", b"{}",
                               {"ce-id": "9", "ce-type": "org.kubeflow.serving.inference.request",
                                "ce-specversion": "1.0", "ce-inferenceservicename": "car-loan"})
        assert status == 429 and len(calls) == 1  # headers only: the body is not decoded
        assert s.sidecar.dropped == {("", "queue_full"): 5, ("car-loan", "queue_full"): 1}
        s.worker.drain()  # room again: the structured body is decoded (and queued)
        assert request(s.port, "POST", "/cloudevents", orjson.dumps(ev),
                       {"content-type": "application/cloudevents+json"})[0] == 202
        assert len(calls) == 2
    finally:
        s.close()


def test_bad_http_gets_400() -> None:
    s = Stack()
    try:
        out = raw(s.port, b"NOT-HTTP\r\n\r\n")
        assert out and out[0][0] == 400
    finally:
        s.close()


def test_concurrent_clients(stack: Stack) -> None:
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            for i in range(20):
                rec = orjson.dumps({"model_name": "car-loan", "features": {"f0": k * 100 + i}})
                assert request(stack.port, "POST", "/ingest", rec)[0] == 202
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    stack.worker.stop()
    assert stack.sidecar.snapshots()[0].records_sampled == 160
