"""Loopback HTTP stubs standing in for the systems the receiver acts on (Argo Workflows, KServe).

The demo and the end-to-end test point the webhook receiver's retraining and rollback targets at
a :class:`TargetStub`, which answers like the real API would (Argo: 200 with a workflow name;
KServe: 200 with the patched resource) and records every call, so "the action ran exactly once"
is something a test can count.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedCall", "TargetStub"]


@dataclass(frozen=True)
class RecordedCall:
    """One request a stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class TargetStub:
    """A threaded HTTP server on 127.0.0.1 that records calls and answers 200 with JSON."""

    def __init__(self, name: str = "target", port: int = 0) -> None:
        self.name = name
        self._calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = RecordedCall(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                    body, time.time())
                with stub._cond:
                    stub._calls.append(call)
                    stub._cond.notify_all()
                reply = json.dumps(stub.response_for(call)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PATCH = do_PUT = do_GET = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"stub-{name}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def response_for(self, call: RecordedCall) -> Any:
        """What the real API would answer (enough for a client to treat it as success)."""
        if "/workflows/" in call.path:
            return {"metadata": {"name": f"retrain-{len(self._calls)}", "namespace": "ml"}}
        return {"kind": "Response", "path": call.path}

    def calls(self, method: str | None = None, path_contains: str = "") -> list[RecordedCall]:
        with self._lock:
            return [c for c in self._calls
                    if (method is None or c.method == method) and path_contains in c.path]

    def wait_for_calls(self, n: int = 1, *, timeout: float = 60.0, method: str | None = None,
                       path_contains: str = "") -> list[RecordedCall]:
        """Block until at least ``n`` matching calls arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [c for c in self._calls
                       if (method is None or c.method == method) and path_contains in c.path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: {len(got)} of {n} calls after {timeout:.0f}s")
                self._cond.wait(min(left, 0.5))

    def start(self) -> TargetStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> TargetStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
