"""Test upstream and raw-socket helpers for the proxy tests.

The upstream is the standard library's ``http.server`` (not httptools, which the proxy uses), with
a fixed ``Date`` and ``Server`` so the same request always yields the same bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from _servers import LoopbackHTTPServer

from driftline.collectors.proxy import ProxyServer, ProxyThread
from driftline.collectors.sampling import Sampler
from driftline.collectors.tee import SampleQueue


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def version_string(self) -> str:
        return "test-upstream"

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Sun, 22 Nov 2026 00:00:00 GMT"

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- helpers ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              extra: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    # -- routes ----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._send(200, b"x" * 1234, "text/plain", head=True)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/reset":
            self._body()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        body = self._body()
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, b'{"error":"status %d"}' % code)
        elif path == "/echo" or path.startswith("/v1/") or path.startswith("/v2/"):
            self._send(200, body, self.headers.get("Content-Type", "application/octet-stream"),
                       {"X-Echo-Path": self.path, "X-Request-Id": self.headers.get("X-Request-Id", "")})
        elif path == "/big":
            size = int(q.get("size", "1000000"))
            pattern = bytes(range(256))
            self._send(200, (pattern * (size // 256 + 1))[:size], "application/octet-stream")
        elif path == "/binary":
            self._send(200, bytes(range(256)) * 4 + b"\x00\xff\r\n\r\n", "application/octet-stream")
        elif path == "/slow":
            time.sleep(float(q.get("delay", "0.5")))
            self._send(200, b'{"slow":true}')
        elif path == "/chunked":
            n, delay = int(q.get("n", "5")), float(q.get("delay", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(n):
                part = b'{"chunk":%d}\n' % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/gated":
            # first chunk, then wait until the test has seen it through the proxy
            gate: threading.Event = self.server.gate  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            self.wfile.flush()
            gate.wait(10)
            self.wfile.write(b"5\r\nrest\n\r\n0\r\n\r\n")
        elif path == "/eof":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"until the connection ends\n" * 10)
        elif path == "/close":
            self.close_connection = True
            self._send(200, b'{"closing":true}', extra={"Connection": "close"})
        else:
            self._send(404, b'{"error":"no route %s"}' % path.encode())


class Upstream:
    """The threaded test upstream on 127.0.0.1, a free port."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.server = LoopbackHTTPServer(_Handler, start=False)
        self.server.httpd.gate = self.gate  # type: ignore[attr-defined]
        self.port = self.server.port
        self.url = self.server.url
        self.server.start()

    def close(self) -> None:
        self.gate.set()
        self.server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_proxy(upstream_url: str, *, capacity: int = 1000, sampler: Sampler | None = None,
                  **kw: object) -> Iterator[tuple[ProxyThread, SampleQueue]]:
    queue = SampleQueue(capacity, wake_at=1)
    server = ProxyServer("127.0.0.1", 0, upstream_url, queue, sampler or Sampler(), **kw)  # type: ignore[arg-type]
    thread = server.run_in_thread()
    try:
        yield thread, queue
    finally:
        thread.stop(grace=2.0)


def exchange(port: int, raw: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close nothing, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def request(method: str, path: str, body: bytes = b"", *, close: bool = True,
            headers: dict[str, str] | None = None, chunked: bool = False) -> bytes:
    """Raw HTTP/1.1 request bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
