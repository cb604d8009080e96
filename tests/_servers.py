"""Loopback HTTP servers for the tests: the stand-ins for webhooks, model servers, OTLP
receivers, Grafana or Jenkins that a test drives Driftline against.

One way to start them (a ``ThreadingHTTPServer`` on 127.0.0.1, a free port, served from a
daemon thread), to address them (``url``, ``port``, ``target``) and to stop them (idempotent,
quick: the serving loop polls every 50 ms, so ``stop`` does not wait the standard library's
half second), plus :class:`QuietHandler` for the chores every handler repeats: no request log
on stderr, the request body by its ``Content-Length``, a complete response.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackHTTPServer", "OtlpReceiver", "QuietHandler"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log requests, with :meth:`body` and :meth:`reply`."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        """The request body (empty without a ``Content-Length``)."""
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, body: bytes = b"", *, content_type: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        """A whole response: the status, ``Content-Type`` when given, ``Content-Length``, any
        further headers, the body."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def reply_json(self, status: int, doc: Any) -> None:
        self.reply(status, json.dumps(doc).encode(), content_type="application/json")


class LoopbackHTTPServer:
    """``handler`` served on 127.0.0.1 at a free port from a daemon thread.

    Starts at once unless ``start=False`` (then :meth:`start`, or ``with``). A context manager;
    :meth:`stop` shuts the loop down, closes the socket and joins the thread, once."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, start: bool = True) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.target = f"127.0.0.1:{self.port}"  # host:port, as a Prometheus scrape target
        self.url = f"http://{self.target}"
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._started = self._stopped = False
        if start:
            self.start()

    def start(self) -> LoopbackHTTPServer:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OtlpReceiver:
    """A minimal OTLP/HTTP metrics endpoint (``url`` ends in ``/v1/metrics``): decodes every
    ``ExportMetricsServiceRequest`` (gzip or not) with opentelemetry-proto, keeps it in
    ``requests`` with its headers (names lower-cased) and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb

        self.status = status
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.body()
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = pb.ExportMetricsServiceRequest()
                req.ParseFromString(body)
                with outer.cond:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, req))
                    outer.cond.notify_all()
                self.reply(outer.status, pb.ExportMetricsServiceResponse().SerializeToString(),
                           content_type="application/x-protobuf")

        self.server = LoopbackHTTPServer(Handler)
        self.port = self.server.port
        self.url = f"{self.server.url}/v1/metrics"

    def wait_for(self, n: int, timeout: float = 20.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, timeout), len(self.requests)

    def values(self, name: str) -> list[float]:
        """Every data point's value of the metric ``name`` (gauges and sums), in arrival order."""
        with self.cond:
            received = [req for _, req in self.requests]
        out: list[float] = []
        for req in received:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name:
                            pts = m.gauge.data_points or m.sum.data_points
                            out += [p.as_double or float(p.as_int) for p in pts]
        return out

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
