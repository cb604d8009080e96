"""Upgrades become an opaque tunnel; 1xx interim responses pass and the final one is sampled."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from proxy_helpers import exchange, running_proxy


class ScriptedUpstream:
    """A raw-socket upstream: ``script(conn)`` talks to each accepted connection."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                self.script(conn)

    def close(self) -> None:
        self.sock.close()


def _read_head(conn: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            break
        buf += data
    return buf


def _upgrade_then_echo(conn: socket.socket) -> None:
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
    while data := conn.recv(4096):
        conn.sendall(data.upper())


def _early_hints(conn: socket.socket) -> None:
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    time.sleep(0.01)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                 b"Connection: close\r\n\r\nfinal")


@pytest.fixture
def upgrade_upstream() -> Iterator[ScriptedUpstream]:
    up = ScriptedUpstream(_upgrade_then_echo)
    yield up
    up.close()


def test_upgrade_becomes_a_tunnel(upgrade_upstream: ScriptedUpstream) -> None:
    with running_proxy(upgrade_upstream.url) as (proxy, queue):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            head = _read_head(s)
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            for msg in (b"hello", b"\x00\x01not http at all\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    got += s.recv(4096)
                assert got == msg.upper()
        assert proxy.server.stats().tunnelled == 1
        assert queue.drain(10, 0.05) == []


def test_interim_103_passes_and_final_response_is_sampled() -> None:
    up = ScriptedUpstream(_early_hints)
    try:
        with running_proxy(up.url) as (proxy, queue):
            raw = b"GET /page HTTP/1.1\r\nHost: t\r\n\r\n"
            through = exchange(proxy.port, raw)
            direct = exchange(up.port, raw)
            samples = []
            deadline = time.monotonic() + 5
            while not samples and time.monotonic() < deadline:
                samples = queue.drain(10, 0.05)
    finally:
        up.close()
    assert through == direct and through.count(b"HTTP/1.1 ") == 2
    assert [(s.status, s.response_body, s.response_content_type) for s in samples] == [
        (200, b"final", "text/plain")]
