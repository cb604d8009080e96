"""The metrics-port HTTP service: ``/metrics``, ``/healthz``, ``/readyz`` and the ingest endpoints.

A small asyncio server on httptools (keep-alive, pipelining, chunked bodies, body size cap),
separate from the reverse proxy's server so that a scrape or a large ingest body never sits in the
model's request path.

========================  ======================================================================
``GET /metrics``          Prometheus text 0.0.4, or OpenMetrics when ``Accept`` asks for it
``GET /healthz``          200 while the process serves (liveness)
``GET /readyz``           200 when the monitors are loaded, the worker runs and the proxy listens
``POST /ingest``          native records (:mod:`~driftline.collectors.ingest`) → 202
``POST /feedback``        delayed labels (:mod:`~driftline.collectors.feedback`) → 202
``POST /cloudevents``     KServe/Seldon payload logger (also ``POST /``) → 202
========================  ======================================================================

Write endpoints can require a bearer token (``ingest.bearer_token_file``; ``401``, counted
``unauthorized``) and can be moved to a listener of their own (``ingest.listen``, optionally TLS
with client certificates), leaving the scraped metrics port read-only: see ``App(serve=...)``.

Handlers only decode and validate the body, then queue a job for the collector worker and
answer ``202 Accepted``: a bad body gets ``400`` (counted ``parse_error``/``schema_mismatch``, or
``bad_label`` when a model name, version or endpoint cannot be a label value), an oversized
body ``413`` (counted ``too_large``), a full queue ``429``. A ``429`` on ``/ingest`` or
``/feedback`` keeps nothing and tells the client to send the same body again (``driftline
replay`` and well-behaved clients do), so it is not counted as dropped: nothing is lost yet, and a
retried batch must not count twice. The payload loggers behind ``/cloudevents`` do not retry, so
there a ``429`` is a loss, counted ``queue_full`` under each event's model (structured and batched
events are refused before their body is decoded, so they count without a model).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import httptools
import orjson

from driftline.collectors.cloudevents import from_http, is_structured
from driftline.collectors.feedback import parse_feedback
from driftline.collectors.ingest import split_records
from driftline.collectors.label_values import safe_label
from driftline.collectors.loop_thread import LoopThread
from driftline.collectors.payloads import PayloadError
from driftline.collectors.sidecar import QUEUE_FULL, Sidecar
from driftline.collectors.worker import WorkQueue

_log = logging.getLogger("driftline.serve")

Renderer = Callable[[str | None], tuple[bytes, str]]
#: Which endpoints one listener serves: everything, the read-only ones, or the writers.
Serves = Literal["all", "read", "write"]
UNAUTHORIZED = "unauthorized"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, obj: Any) -> Response:
        return cls(status, orjson.dumps(obj))


class App:
    """Routes requests; everything but ``/metrics`` answers on the event loop without waiting."""

    def __init__(self, sidecar: Sidecar, queue: WorkQueue, renderer: Renderer, *,
                 ready_checks: dict[str, Callable[[], bool]] | None = None,
                 serve: Serves = "all", write_token: Callable[[], str] | None = None) -> None:
        self.sidecar = sidecar
        self.queue = queue
        self.renderer = renderer
        self.ready_checks = dict(ready_checks or {})
        #: The expected bearer token of the write endpoints (read on each request, so a
        #: rotated secret file takes effect); None: writes need no token.
        self.write_token = write_token
        read: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
            ("GET", "/metrics"): self.metrics,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz,
        }
        self.writes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
            ("POST", "/ingest"): self.ingest,
            ("POST", "/feedback"): self.feedback,
            ("POST", "/cloudevents"): self.cloudevents,
            ("POST", "/"): self.cloudevents,
        }
        self.routes = {
            "all": {**read, **self.writes},
            "read": read,
            "write": {("GET", "/healthz"): self.healthz, **self.writes},
        }[serve]

    async def dispatch(self, req: Request) -> Response:
        path = req.path.split("?", 1)[0]
        key = (req.method, path)
        handler = self.routes.get(key)
        if handler is None:
            if any(p == path for _, p in self.routes):
                return Response.json(405, {"error": f"{req.method} not allowed on {path}"})
            return Response.json(404, {"error": f"no route {path}", "routes": sorted(
                {p for _, p in self.routes})})
        if key in self.writes and not self._authorized(req):
            self.sidecar.drop(None, UNAUTHORIZED)
            return Response.json(401, {"error": "writes need Authorization: Bearer <token> "
                                       "(ingest.bearer_token_file)", "reason": UNAUTHORIZED})
        return await handler(req)

    def _authorized(self, req: Request) -> bool:
        if self.write_token is None:
            return True
        expected = self.write_token()
        scheme, _, given = req.headers.get("authorization", "").partition(" ")
        # An empty or unreadable token file refuses everyone rather than admitting everyone.
        return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), expected.encode("utf-8", "replace"))

    async def metrics(self, req: Request) -> Response:
        loop = asyncio.get_running_loop()
        body, ctype = await loop.run_in_executor(None, self.renderer, req.headers.get("accept"))
        return Response(200, body, ctype)

    async def healthz(self, req: Request) -> Response:
        return Response(200, b"ok\n", "text/plain; charset=utf-8")

    async def readyz(self, req: Request) -> Response:
        checks = {name: bool(fn()) for name, fn in self.ready_checks.items()}
        ok = all(checks.values())
        return Response.json(200 if ok else 503, {"ready": ok, "checks": checks})

    def _enqueue(self, job: Callable[[], Any], n: int,
                 lost: dict[str | None, int] | None = None) -> Response:
        """Queue ``job``; on a full queue answer 429 and count ``lost`` (records by model) as
        dropped, when the client will not send them again."""
        if not self.queue.put(job, n):
            lost_n = 0
            for model, k in (lost or {}).items():
                self.sidecar.drop(model, QUEUE_FULL, k)
                lost_n += k
            if lost_n:
                return Response.json(429, {"error": "collector queue full", "dropped": lost_n})
            return Response.json(429, {"error": "collector queue full; nothing was kept, send "
                                       "the same body again", "refused": n})
        return Response.json(202, {"accepted": n})

    @staticmethod
    def _full() -> Response:
        # Answered before the body is decoded: a client retrying 429s must not make the
        # sidecar parse every refused body (the record count is therefore not known here).
        return Response.json(429, {"error": "collector queue full; nothing was kept, send "
                                   "the same body again"})

    def _bad(self, exc: PayloadError, model: str | None = None) -> Response:
        self.sidecar.drop(model, exc.reason)
        return Response.json(400, {"error": str(exc), "reason": exc.reason})

    async def ingest(self, req: Request) -> Response:
        if self.queue.full:
            return self._full()
        try:
            groups = split_records(req.body, typed=self.sidecar.typed_split())
        except PayloadError as exc:
            return self._bad(exc)
        n = sum(len(v) for v in groups.groups.values())
        if n == 0:
            self.sidecar.handle_ingest(groups)  # only counts the bad records
            if groups.bad_labels and not groups.bad:
                return Response.json(400, {"error": "no usable record: model_name, "
                                           "model_version and endpoint must be label strings "
                                           "(letters, digits, . _ - : @ + /, at most 128)",
                                           "reason": "bad_label"})
            return Response.json(400, {"error": "no usable record (each needs model_name and "
                                       "a features object)", "reason": "schema_mismatch"})
        sidecar = self.sidecar
        return self._enqueue(lambda: sidecar.handle_ingest(groups), n)

    async def feedback(self, req: Request) -> Response:
        if self.queue.full:
            return self._full()
        try:
            items = parse_feedback(req.body)
        except PayloadError as exc:
            return self._bad(exc)
        sidecar = self.sidecar
        return self._enqueue(lambda: sidecar.handle_feedback(items), len(items))

    async def cloudevents(self, req: Request) -> Response:
        if self.queue.full and is_structured(req.headers):
            return self._lost_cloudevents(req.body)
        try:
            events = from_http(req.headers, req.body)
        except PayloadError as exc:
            return self._bad(exc, safe_label(req.headers.get("ce-inferenceservicename")))
        sidecar = self.sidecar
        lost: dict[str | None, int] = {}
        for ev in events:
            lost[ev.model] = lost.get(ev.model, 0) + 1
        return self._enqueue(lambda: sidecar.handle_cloudevents(events), len(events), lost)


    def _lost_cloudevents(self, body: bytes) -> Response:
        """A full queue meets structured or batched CloudEvents: refused before the body is
        decoded, like ``/ingest``, but the payload logger will not send them again, so they
        are a loss and counted: ``queue_full`` without a model (the model is inside the body
        that was not read), one per event (``"specversion"``, which every event carries once,
        counted in the raw bytes). Binary-mode events name their model in headers and are
        counted under it by ``_enqueue`` (their body is not decoded here either)."""
        n = max(1, body.count(b'"specversion"'))
        self.sidecar.drop(None, QUEUE_FULL, n)
        return Response.json(429, {"error": "collector queue full", "dropped": n})


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; requests are answered in order (pipelining-safe)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._url: list[bytes] = []
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._last: asyncio.Future[None] | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"bad HTTP request: {exc}")

    def _fail(self, status: int, message: str) -> None:
        self._closing = True
        self._write(Response.json(status, {"error": message}), keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = []
        self._headers = {}
        self._body = []
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length", "")
        if length.isdigit() and int(length) > self.server.max_body and self._last is None:
            # Declared too large and nothing in flight: answer now, do not read the body.
            self.server.app.sidecar.drop(None, "too_large")
            self._fail(413, f"body larger than {self.server.max_body} bytes")
            return
        if length.isdigit() and int(length) > self.server.max_body:
            self._too_large = True

    def on_body(self, body: bytes) -> None:
        if self._too_large or self._closing:
            return
        self._size += len(body)
        if self._size > self.server.max_body:
            self._too_large = True
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        method = self.parser.get_method().decode("ascii", "replace")
        keep = bool(self.parser.should_keep_alive())
        req = Request(method, b"".join(self._url).decode("latin-1"), self._headers,
                      b"".join(self._body))
        too_large = self._too_large
        prev = self._last
        self._last = asyncio.ensure_future(self._respond(req, keep, too_large, prev))

    async def _respond(self, req: Request, keep: bool, too_large: bool,
                       prev: asyncio.Future[None] | None) -> None:
        if prev is not None:
            with contextlib.suppress(Exception):
                await prev
        if too_large:
            self.server.app.sidecar.drop(None, "too_large")
            resp = Response.json(413, {"error": f"body larger than {self.server.max_body} bytes"})
            keep = False
        else:
            try:
                resp = await self.server.app.dispatch(req)
            except Exception:
                _log.exception("handler for %s %s failed", req.method, req.path)
                resp = Response.json(500, {"error": "internal error"})
        self._write(resp, keep_alive=keep and not self.server.stopping)

    def _write(self, resp: Response, *, keep_alive: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        head = (f"HTTP/1.1 {resp.status} {reason}\r\nContent-Type: {resp.content_type}\r\n"
                f"Content-Length: {len(resp.body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
        t.write(head.encode("latin-1") + resp.body)
        if not keep_alive:
            t.close()


class HttpServer:
    """The metrics-port server on the current event loop."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, *,
                 max_body: int = 16 * 1024 * 1024,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.host = host
        self.requested_port = port
        self.max_body = max_body
        self.conns: set[_Conn] = set()
        self.stopping = False
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host,
                                                self.requested_port, reuse_address=True,
                                                ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        """Stop accepting and close idle connections (responses in flight are written first)."""
        self.stopping = True
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await asyncio.sleep(0)
        for c in list(self.conns):
            idle = c._last is None or c._last.done()
            if idle and c.transport is not None:
                c.transport.close()
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)


class ServiceThread(LoopThread):
    """An :class:`HttpServer` on its own event loop in a daemon thread (used by the SDK)."""

    def __init__(self, server: HttpServer) -> None:
        super().__init__(server, name="driftline-metrics")
