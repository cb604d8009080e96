"""The sidecar's reverse proxy: relay bytes to the model server, copy sampled exchanges aside.

Every client connection gets its own upstream connection and bytes are relayed as they arrive,
unchanged, in both directions (keep-alive, pipelining, chunked and streamed bodies,
``100-continue`` and upgrades work because nothing is rewritten). Two httptools parsers run beside
the relay only to find message boundaries, time each exchange and, for sampled requests, copy the
request target and bodies into a :class:`~driftline.collectors.sample.Sample` for the tee. Bytes
are written onward *before* they are parsed, and any failure of parsing or of the tee only turns
parsing off for that connection (counted), so monitoring can never stall or break a request.
No JSON is parsed here.

When the upstream cannot be reached, or closes or resets before it starts its first response on
the connection, the proxy answers ``502 Bad Gateway`` with ``{"error": "..."}`` naming the
upstream and ``Connection: close``; when a complete request gets no response bytes for
``timeout`` seconds it answers ``504 Gateway Timeout``. When the upstream ends a connection
after answering on it (``Connection: close``), requests the client pipelined behind get the
connection's end, exactly what the client would see talking to the upstream directly, never a
proxy-made 502. Error bodies name the upstream without its user-info.

Run it on your own loop::

    server = ProxyServer("0.0.0.0", 8080, "http://127.0.0.1:8081", SampleQueue(10_000), Sampler())
    await server.start()
    ...
    await server.stop()

or on a loop thread of its own: ``thread = server.run_in_thread(); ...; thread.stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from driftline.collectors.loop_thread import LoopThread
from driftline.collectors.proxy_latency import LatencyRecorder
from driftline.collectors.request_metrics import DEFAULT_ENDPOINT, RequestMetrics
from driftline.collectors.sample import (
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_TYPE,
    HEADER_KEPT,
    HEADER_TRANSFER_ENCODING,
    Sample,
    header_kind,
)
from driftline.collectors.sampling import Sampler
from driftline.collectors.tee import DROP_TEE_ERROR, DROP_TOO_LARGE, SampleQueue
from driftline.engine.snapshot import Histogram
from driftline.errors import ConfigError
from driftline.redact import redact_url

__all__ = ["DEFAULT_MAX_BODY_COPY", "ProxyServer", "ProxyStats", "ProxyThread", "new_event_loop"]

#: Bodies larger than this (request or response) are relayed but not copied (``too_large``).
DEFAULT_MAX_BODY_COPY = 8 * 1024 * 1024
_HEAD_SCAN_LIMIT = 64 * 1024  # a HEAD response's header block larger than this: stop parsing
_BACKLOG_LIMIT = 256 * 1024  # client bytes buffered while the upstream connection opens
_ENDPOINT_HEADER = b"x-driftline-endpoint"  # 20 bytes, compared only when trusted

_perf = time.perf_counter
_wall = time.time

_REASONS = {502: b"Bad Gateway", 504: b"Gateway Timeout"}


class _Desync(Exception):
    """Parsing can no longer pair responses with requests; relay the connection unparsed."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@dataclass(frozen=True)
class ProxyStats:
    """Counters of the proxy since start (all cumulative except ``connections_open``)."""

    connections_open: int
    connections_total: int
    requests_total: int
    responses_total: int
    upstream_errors: dict[str, int]
    tunnelled: int
    tee_errors: int


class _Copy:
    """What a sampled exchange keeps until its response completes."""

    __slots__ = ("method", "received_at", "req_body", "req_ct", "req_hdrs", "req_size", "resp_body",
                 "resp_ct", "resp_hdrs", "resp_size", "too_large", "url")

    def __init__(self, received_at: float) -> None:
        # Few allocations: most requests bring one URL piece, one body chunk and no kept header.
        self.received_at = received_at
        self.method = b""
        self.url = b""
        self.req_ct = b""
        self.req_hdrs: list[tuple[bytes, bytes]] | None = None
        self.req_body: bytes | bytearray = b""
        self.req_size = 0
        self.resp_ct = b""
        self.resp_hdrs: list[tuple[bytes, bytes]] | None = None
        self.resp_body: bytes | bytearray = b""
        self.resp_size = 0
        self.too_large = False

    def reset_response(self) -> None:
        self.resp_ct = b""
        self.resp_hdrs = None
        self.resp_body = b""
        self.resp_size = 0


class _Exchange:
    """One request and its response, in flight on a connection."""

    __slots__ = ("copy", "endpoint", "head", "req_done", "req_size", "resp_size", "resp_started",
                 "t0", "url")

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.url = b""
        self.endpoint = b""  # the trusted x-driftline-endpoint header, when trusted and sent
        self.req_size = 0
        self.resp_size = 0
        self.req_done = 0.0
        self.head = False
        self.resp_started = False
        self.copy: _Copy | None = None


def _headers(pairs: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs)


class _Conn(asyncio.Protocol):
    """A client connection: relays to its upstream connection, parses requests on the side."""

    def __init__(self, srv: ProxyServer) -> None:
        self.srv = srv
        self.ct: asyncio.Transport | None = None
        self.ut: asyncio.Transport | None = None
        self.up: _Upstream | None = None
        self.pending: deque[_Exchange] = deque()
        self.cur: _Exchange | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.parsing = True
        self.backlog: list[bytes] | None = []
        self.backlog_size = 0
        self.reading_paused = False
        self.failure: tuple[int, str, str] | None = None
        self.done = False
        self.closing = False
        self.client_eof = False
        self.last_up = 0.0  # when the sweeper last saw upstream bytes arrive
        self.up_chunks = 0  # upstream reads; a counter is cheaper than a clock read per chunk
        self.seen_chunks = 0
        self.heads = 0  # HEAD requests awaiting their response (their framing differs)
        self.connect_task: asyncio.Task[None] | None = None

    # -- client transport ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.ct = cast(asyncio.Transport, transport)
        srv = self.srv
        srv._conns.add(self)
        srv._connections_total += 1
        if srv._server is None:  # accepted while stopping: serve what comes, then close
            self.closing = True
        self.connect_task = srv._loop.create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        ut = self.ut
        if ut is not None:
            ut.write(data)
        elif self.backlog is not None:
            self.backlog.append(data)
            self.backlog_size += len(data)
            if self.backlog_size > _BACKLOG_LIMIT and self.ct is not None and not self.reading_paused:
                self.reading_paused = True
                self.ct.pause_reading()
        if self.parsing:
            try:
                self.parser.feed_data(data)  # type: ignore[union-attr]
            except Exception:  # upgrade, CONNECT, malformed HTTP or a bug: relay unparsed
                self._tunnel()
                if self.failure is not None:
                    self._answer_error(*self.failure)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.parsing and not self.pending:
            self._close_both()
            return False
        ut = self.ut
        if ut is not None and ut.can_write_eof():
            ut.write_eof()
        return True  # keep our side open to send the responses

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        self.srv._conns.discard(self)
        ut = self.ut
        if ut is not None:
            ut.close()
        task = self.connect_task
        if task is not None and not task.done():
            task.cancel()
        self._release()

    def pause_writing(self) -> None:
        if self.ut is not None:
            with contextlib.suppress(Exception):
                self.ut.pause_reading()

    def resume_writing(self) -> None:
        if self.ut is not None:
            with contextlib.suppress(Exception):
                self.ut.resume_reading()

    # -- request parser callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        ex = _Exchange(_perf())
        srv = self.srv
        srv._requests_total += 1
        try:
            if srv.sampler.should_sample():
                ex.copy = _Copy(_wall())
        except Exception:
            srv._tee_failed()
        self.cur = ex
        self.pending.append(ex)

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        ex.url += url  # type: ignore[union-attr]
        cp = ex.copy  # type: ignore[union-attr]
        if cp is not None:
            cp.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if self.srv.trust_endpoint and len(name) == 20 and name.lower() == _ENDPOINT_HEADER:
            ex.endpoint = value
        cp = ex.copy
        if cp is not None:
            kind = header_kind(name)
            if kind == HEADER_CONTENT_TYPE:
                cp.req_ct = value
            elif kind == HEADER_KEPT:
                if cp.req_hdrs is None:
                    cp.req_hdrs = []
                cp.req_hdrs.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()  # type: ignore[union-attr]
        ex = self.cur
        assert ex is not None
        if method == b"HEAD":
            ex.head = True
            self.heads += 1
        if ex.copy is not None:
            ex.copy.method = method

    def on_body(self, body: bytes) -> None:
        ex = self.cur
        ex.req_size += len(body)  # type: ignore[union-attr]
        cp = ex.copy  # type: ignore[union-attr]
        if cp is not None and not cp.too_large:
            cp.req_size += len(body)
            if cp.req_size > self.srv.max_body_copy:
                cp.too_large = True
                cp.req_body = b""
            elif not cp.req_body:
                cp.req_body = body
            else:
                if isinstance(cp.req_body, bytes):
                    cp.req_body = bytearray(cp.req_body)
                cp.req_body += body

    def on_message_complete(self) -> None:
        self.cur.req_done = _perf()  # type: ignore[union-attr]
        if self.failure is not None:
            self._answer_error(*self.failure)

    # -- upstream connection -------------------------------------------------------------------
    async def _connect(self) -> None:
        srv = self.srv
        try:
            ut, _ = await asyncio.wait_for(
                srv._loop.create_connection(lambda: _Upstream(self), srv._up_host, srv._up_port),
                srv.connect_timeout)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self._upstream_failed(504, "connect_timeout",
                                  f"connecting timed out after {srv.connect_timeout:g}s")
            return
        except Exception as e:  # OSError mostly: refused, unreachable, DNS
            self._upstream_failed(502, "unavailable", _describe(e))
            return
        if self.done:
            ut.close()

    def _upstream_connected(self, ut: asyncio.Transport) -> None:
        """Called from the upstream's ``connection_made``, before any client byte can take the
        direct path: flush what arrived meanwhile first, so nothing is reordered."""
        if self.done:
            ut.close()
            return
        backlog, self.backlog = self.backlog, None
        if backlog:
            ut.write(b"".join(backlog))
        self.ut = ut
        if self.reading_paused and self.ct is not None:
            self.reading_paused = False
            self.ct.resume_reading()
        if self.client_eof and ut.can_write_eof():
            ut.write_eof()

    def _upstream_failed(self, status: int, kind: str, why: str) -> None:
        self.backlog = None
        if self.ut is not None:  # connected just as the connect timeout fired
            self.ut.abort()
            self.ut = None
        self.failure = (status, kind, f"upstream {self.srv.upstream_display} unavailable: {why}")
        if self.reading_paused and self.ct is not None:
            self.reading_paused = False
            self.ct.resume_reading()
        if not self.parsing or (self.pending and self.pending[0].req_done):
            self._answer_error(*self.failure)
        elif self.client_eof or self.closing:
            self._close_both()

    # -- endings -------------------------------------------------------------------------------
    def _answer_error(self, status: int, kind: str, message: str) -> None:
        """Answer the oldest pending request ourselves and close; nothing of its response was sent."""
        if self.done:
            return
        self.done = True
        srv = self.srv
        srv._upstream_errors[kind] = srv._upstream_errors.get(kind, 0) + 1
        ex = self.pending[0] if self.pending else None
        body = json.dumps({"error": f"driftline proxy: {message}"}).encode()
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\nX-Driftline-Proxy-Error: %s\r\n\r\n"
                % (status, _REASONS.get(status, b"Error"), len(body), kind.encode()))
        if self.ct is not None:
            self.ct.write(head if ex is not None and ex.head else head + body)
        if ex is not None:
            dt = _perf() - ex.t0
            srv.latency.observe(status, dt)
            srv.requests.observe_path(ex.url, status, dt, ex.req_size, 0 if ex.head else len(body),
                                      ex.endpoint)
        self.pending.clear()
        self.heads = 0
        self._close_both()

    def _tunnel(self) -> None:
        """Stop parsing this connection (upgrade, CONNECT, malformed HTTP): bytes keep flowing."""
        if self.parsing:
            self.parsing = False
            self.srv._tunnelled += 1
            if self.up is not None:
                self.up.parser = None
            self.parser = None
            if self.failure is None:
                self.pending.clear()
                self.heads = 0

    def _close_both(self) -> None:
        self.done = True
        if self.ct is not None:
            self.ct.close()
        if self.ut is not None:
            self.ut.close()

    def _release(self) -> None:
        """Break the protocol <-> parser reference cycles."""
        self.parsing = False
        self.parser = None
        if self.up is not None:
            self.up.parser = None
        self.pending.clear()
        self.heads = 0
        self.cur = None

    def shutdown(self) -> None:
        """Graceful stop: close now when idle, else after the pending responses."""
        self.closing = True
        if not self.pending and self.parsing:
            self._close_both()

    def abort(self) -> None:
        self.done = True
        if self.ct is not None:
            self.ct.abort()
        if self.ut is not None:
            self.ut.abort()

    def check_timeout(self, now: float, timeout: float) -> None:
        if self.done or not self.parsing or not self.pending:
            return
        if self.up_chunks != self.seen_chunks:
            self.seen_chunks = self.up_chunks
            self.last_up = now
        ex = self.pending[0]
        if not ex.req_done or now - max(ex.req_done, self.last_up) < timeout:
            return
        if not ex.resp_started:
            self._answer_error(504, "timeout", f"upstream {self.srv.upstream_display} did not "
                               f"respond within {timeout:g}s")
        else:  # the response stalled halfway: nothing sensible can be sent any more
            srv = self.srv
            srv._upstream_errors["timeout"] = srv._upstream_errors.get("timeout", 0) + 1
            self.abort()


class _Upstream(asyncio.Protocol):
    """The upstream side of a connection: relays responses, parses them on the side."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        conn.up = self
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.ex: _Exchange | None = None
        self.in_msg = False
        self.headers_done = False
        self.framed = False
        self.chunked = False
        self.clen = -1  # Content-Length of the response being parsed, -1 when unknown
        self.remaining = -1  # its body bytes still to come, -1 when unknown
        self.stepped = 0  # bytes fed one at a time while a HEAD waited behind a response
        self.status = 0
        self.head_buf: bytearray | None = None
        self.completed = 0  # final responses relayed on this upstream connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn._upstream_connected(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        c = self.conn
        if c.done:
            return
        c.up_chunks += 1
        c.ct.write(data)  # type: ignore[union-attr]
        if c.parsing:
            try:
                if not c.heads and self.head_buf is None:
                    self.parser.feed_data(data)  # type: ignore[union-attr]
                else:
                    self._parse_with_heads(data)
            except Exception:
                c._tunnel()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        c = self.conn
        if c.done:
            c._release()
            return
        if c.parsing and self.in_msg and self.headers_done and not self.framed:
            with contextlib.suppress(Exception):
                self.on_message_complete()  # the body was delimited by the connection's end
        if c.parsing and c.pending and not c.pending[0].resp_started and not self.completed:
            # Nothing was answered on this connection: the upstream failed, say so. After a
            # response (``Connection: close``, an idle timeout) the client talking to the
            # upstream directly would see the connection end and retry; so does ours.
            how = "reset the connection" if exc is not None else "closed the connection"
            c._answer_error(502, "reset",
                            f"upstream {c.srv.upstream_display} {how} before responding")
        else:
            c._close_both()
        c._release()

    def pause_writing(self) -> None:
        if self.conn.ct is not None:
            with contextlib.suppress(Exception):
                self.conn.ct.pause_reading()

    def resume_writing(self) -> None:
        if self.conn.ct is not None:
            with contextlib.suppress(Exception):
                self.conn.ct.resume_reading()

    # -- HEAD responses have headers only; httptools cannot be told, so scan them here ----------
    def _parse_with_heads(self, data: bytes) -> None:
        """Slow path while a HEAD request is pending: its response has no body whatever its
        headers say, so it is scanned by hand, and the response before it is fed so that
        parsing stops exactly at its end (the rest of its Content-Length in one go, otherwise
        byte by byte, up to a limit)."""
        mv = memoryview(data)
        c = self.conn
        pending = c.pending
        parser = self.parser
        assert parser is not None
        while mv:
            if self.head_buf is not None or (not self.in_msg and pending and pending[0].head):
                mv = mv[self._scan_head(mv):]
            elif any(ex.head for ex in pending):
                step = self.remaining if self.headers_done and self.remaining > 0 else 1
                if step == 1:
                    self.stepped += 1
                    if self.stepped > _HEAD_SCAN_LIMIT:
                        raise _Desync("a HEAD request waits behind a long unframed response")
                parser.feed_data(mv[:step])
                mv = mv[step:]
            else:
                c.heads = 0
                parser.feed_data(mv)
                return

    def _scan_head(self, mv: memoryview) -> int:
        c = self.conn
        buf = self.head_buf
        if buf is None:
            buf = self.head_buf = bytearray()
            c.pending[0].resp_started = True
        start = max(0, len(buf) - 3)
        buf += mv
        idx = buf.find(b"\r\n\r\n", start)
        if idx < 0:
            if len(buf) > _HEAD_SCAN_LIMIT:
                raise _Desync("HEAD response header block too large")
            return len(mv)
        end = idx + 4
        used = len(mv) - (len(buf) - end)
        lines = bytes(buf[:idx]).split(b"\r\n")
        self.head_buf = None
        status = int(lines[0].split(b" ", 2)[1])
        ex = c.pending[0]
        if 100 <= status < 200:
            if status == 101:
                raise _Desync("upgrade")
            ex.resp_started = False  # interim response: the final one follows
            return used
        c.pending.popleft()
        c.heads = max(0, c.heads - 1)
        self.stepped = 0
        now = _perf()
        srv = c.srv
        srv.latency.observe(status, now - ex.t0)
        srv.requests.observe_path(ex.url, status, now - ex.t0, ex.req_size, 0, ex.endpoint)
        srv._responses_total += 1
        cp = ex.copy
        if cp is not None:
            try:
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip()
                    kind = header_kind(name)
                    if kind == HEADER_CONTENT_TYPE:
                        cp.resp_ct = value.strip()
                    elif kind == HEADER_KEPT:
                        if cp.resp_hdrs is None:
                            cp.resp_hdrs = []
                        cp.resp_hdrs.append((name.lower(), value.strip()))
                srv._emit(ex, cp, status, now)
            except Exception:
                srv._tee_failed()
        if c.closing and not c.pending:
            c._close_both()
        return used

    # -- response parser callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        pending = self.conn.pending
        ex = pending[0] if pending else None
        if ex is not None:
            if ex.head:
                raise _Desync("HEAD response in a pipelined batch")
            ex.resp_started = True
        self.ex = ex
        self.in_msg = True
        self.framed = False
        self.chunked = False
        self.clen = -1

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = header_kind(name)
        if not kind:
            return
        if kind == HEADER_CONTENT_LENGTH:
            self.framed = True
            with contextlib.suppress(ValueError):
                self.clen = int(value)
            return
        if kind == HEADER_TRANSFER_ENCODING:
            self.framed = True
            self.chunked = True
            return
        ex = self.ex
        if ex is not None and ex.copy is not None:
            cp = ex.copy
            if kind == HEADER_CONTENT_TYPE:
                cp.resp_ct = value
            else:
                if cp.resp_hdrs is None:
                    cp.resp_hdrs = []
                cp.resp_hdrs.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()  # type: ignore[union-attr]
        self.headers_done = True
        self.remaining = -1 if self.chunked else self.clen

    def on_body(self, body: bytes) -> None:
        if self.remaining > 0:
            self.remaining -= len(body)
        ex = self.ex
        if ex is not None:
            ex.resp_size += len(body)
            cp = ex.copy
            if cp is not None and not cp.too_large:
                cp.resp_size += len(body)
                if cp.resp_size > self.conn.srv.max_body_copy:
                    cp.too_large = True
                    cp.resp_body = b""
                elif not cp.resp_body:
                    cp.resp_body = body
                else:
                    if isinstance(cp.resp_body, bytes):
                        cp.resp_body = bytearray(cp.resp_body)
                    cp.resp_body += body

    def on_message_complete(self) -> None:
        self.in_msg = False
        self.headers_done = False
        self.stepped = 0
        ex, self.ex = self.ex, None
        status = self.status
        if ex is None:
            return
        c = self.conn
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): the final one follows
            ex.resp_started = False
            if ex.copy is not None:
                ex.copy.reset_response()
            return
        self.completed += 1
        pending = c.pending
        if pending and pending[0] is ex:
            pending.popleft()
        now = _perf()
        srv = c.srv
        srv.latency.observe(status, now - ex.t0)
        srv.requests.observe_path(ex.url, status, now - ex.t0, ex.req_size, ex.resp_size, ex.endpoint)
        srv._responses_total += 1
        cp = ex.copy
        if cp is not None:
            srv._emit(ex, cp, status, now)
        if c.closing and not pending:
            c._close_both()


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host ({e})"
    return str(e) or type(e).__name__


def _parse_upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"upstream must be an http://host:port URL, got {redact_url(url)!r}",
                          key="proxy.upstream", fix="e.g. http://127.0.0.1:8081")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"upstream URL must not have a path or query, got {redact_url(url)!r}: "
                          "requests are forwarded with their own path", key="proxy.upstream")
    try:
        port = parts.port or 80
    except ValueError as e:
        raise ConfigError(f"bad port in upstream URL {redact_url(url)!r}",
                          key="proxy.upstream") from e
    return parts.hostname, port


class ProxyServer:
    """Reverse proxy in front of one model server; see the module docstring.

    ``timeout``: seconds a complete request may wait for the next upstream bytes before the
    client gets ``504`` (or the connection is cut when the response had begun).
    ``connect_timeout``: seconds to open the upstream connection (default ``min(timeout, 10)``).
    ``max_body_copy``: larger request or response bodies are relayed but not sampled.
    """

    def __init__(self, listen_host: str, listen_port: int, upstream_url: str, queue: SampleQueue,
                 sampler: Sampler, *, timeout: float = 60.0, connect_timeout: float | None = None,
                 max_body_copy: int = DEFAULT_MAX_BODY_COPY, backlog: int = 1024,
                 requests: RequestMetrics | None = None, endpoint: str = DEFAULT_ENDPOINT,
                 trust_endpoint_header: bool = False) -> None:
        if not timeout > 0:
            raise ConfigError(f"proxy timeout must be positive, got {timeout!r}", key="proxy.timeout")
        if connect_timeout is not None and not connect_timeout > 0:
            raise ConfigError(f"connect timeout must be positive, got {connect_timeout!r}",
                              key="proxy.connect_timeout")
        if max_body_copy < 0:
            raise ConfigError(f"max_body_copy must be >= 0, got {max_body_copy!r}",
                              key="proxy.max_body_copy")
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.upstream_url = upstream_url.rstrip("/")
        #: The upstream as it may be shown (error bodies sent to clients, logs): no user-info.
        self.upstream_display = redact_url(self.upstream_url)
        self._up_host, self._up_port = _parse_upstream(upstream_url)
        self.queue = queue
        self.sampler = sampler
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout if connect_timeout is not None
                                     else min(timeout, 10.0))
        self.max_body_copy = max_body_copy
        self.latency = LatencyRecorder()
        #: Per-model requests, latency and request sizes (the sidecar's exporters read it).
        self.requests = requests if requests is not None else RequestMetrics(endpoint=endpoint)
        #: Whether the ``x-driftline-endpoint`` request header names the endpoint label of the
        #: request metrics (``proxy.trusted_headers``), as it does for records.
        self.trust_endpoint = trust_endpoint_header
        self._backlog = backlog
        self._conns: set[_Conn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._port = 0
        self._connections_total = 0
        self._requests_total = 0
        self._responses_total = 0
        self._tunnelled = 0
        self._tee_errors = 0
        self._upstream_errors: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and start accepting; ``port`` is valid afterwards."""
        if self._server is not None:
            return
        self._loop = asyncio.get_running_loop()
        await self._resolve_upstream()
        self._server = await self._loop.create_server(
            lambda: _Conn(self), self.listen_host, self.listen_port, backlog=self._backlog,
            reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]
        self._sweeper = self._loop.create_task(self._sweep())

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight exchanges finish (up to ``grace`` s), then close all."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for c in list(self._conns):
            c.shutdown()
        deadline = self._loop.time() + grace
        while self._conns and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        for c in list(self._conns):
            c.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    def run_in_thread(self, *, name: str = "driftline-proxy") -> ProxyThread:
        """Start the proxy on a new event loop in a daemon thread; returns once it listens."""
        return ProxyThread(self, name=name).start()

    @property
    def port(self) -> int:
        """The bound port (useful with ``listen_port=0``); 0 before :meth:`start`."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- read by exporters (any thread) --------------------------------------------------------
    def latency_histograms(self) -> dict[str, Histogram]:
        """Request duration per status class (``2xx``..``5xx``), catalogue LATENCY_BUCKETS."""
        return self.latency.histograms()

    def stats(self) -> ProxyStats:
        return ProxyStats(len(self._conns), self._connections_total, self._requests_total,
                          self._responses_total, dict(self._upstream_errors), self._tunnelled,
                          self._tee_errors)

    # -- internals -----------------------------------------------------------------------------
    async def _resolve_upstream(self) -> None:
        """Resolve a host name once (not per connection); keep the name if that fails now."""
        try:
            ipaddress.ip_address(self._up_host)
            return
        except ValueError:
            pass
        try:
            infos = await self._loop.getaddrinfo(self._up_host, self._up_port,
                                                 type=socket.SOCK_STREAM)
        except OSError:
            return
        if infos:
            self._up_host = str(infos[0][4][0])

    async def _sweep(self) -> None:
        tick = max(0.01, min(1.0, self.timeout / 10))
        while True:
            await asyncio.sleep(tick)
            now = _perf()
            for c in list(self._conns):
                c.check_timeout(now, self.timeout)

    def _emit(self, ex: _Exchange, cp: _Copy, status: int, now: float) -> None:
        """Hand a finished sampled exchange to the queue; never raises."""
        try:
            if cp.too_large:
                self.queue.count_drop(DROP_TOO_LARGE)
                return
            self.queue.offer(Sample(
                cp.method.decode("latin-1"), cp.url.decode("latin-1"), cp.req_ct.decode("latin-1"),
                bytes(cp.req_body), status, cp.resp_ct.decode("latin-1"), bytes(cp.resp_body),
                cp.received_at, now - ex.t0,
                _headers(cp.req_hdrs) if cp.req_hdrs else (),
                _headers(cp.resp_hdrs) if cp.resp_hdrs else ()))
        except Exception:
            self._tee_failed()

    def _tee_failed(self) -> None:
        self._tee_errors += 1
        with contextlib.suppress(Exception):
            self.queue.count_drop(DROP_TEE_ERROR)


class ProxyThread(LoopThread):
    """A :class:`ProxyServer` running on its own event loop (uvloop if available) in a thread."""

    def __init__(self, server: ProxyServer, *, name: str = "driftline-proxy",
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop) -> None:
        super().__init__(server, name=name, loop_factory=loop_factory)

    def _stop_server(self, grace: float) -> Coroutine[Any, Any, None]:
        """Graceful stop: see :meth:`ProxyServer.stop`."""
        return self.server.stop(grace)

    def stop(self, grace: float = 10.0) -> None:
        super().stop(grace)
