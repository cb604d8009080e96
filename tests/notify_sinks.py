"""Loopback endpoints that receive what Alertmanager sends: an HTTP sink for Slack, PagerDuty,
webhooks and the Teams bridge (one server, one path per channel) and a minimal SMTP server.

The SMTP server speaks the part of RFC 5321 that Alertmanager's client uses without TLS or AUTH
(EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and keeps each message as parsed e-mail.
"""

from __future__ import annotations

import email
import email.message
import json
import socketserver
import threading
from dataclasses import dataclass
from email import policy
from typing import Any

from _servers import LoopbackHTTPServer, QuietHandler


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class HttpSink:
    """Records every POST as (path, headers, JSON body) and answers 200."""

    def __init__(self) -> None:
        self.calls: list[Delivery] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.body()
                with sink._lock:
                    sink.calls.append(Delivery(self.path, dict(self.headers.items()), json.loads(raw)))
                self.reply_json(200, {})

        self.server = LoopbackHTTPServer(Handler)
        self.url = self.server.url

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def stop(self) -> None:
        self.server.stop()


class SmtpSink:
    """A plain-text SMTP server on 127.0.0.1 keeping (envelope recipients, message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                rcpt: list[str] = []
                self.reply("220 127.0.0.1 ESMTP driftline-test")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line.decode("utf-8", "replace").strip().split(" ", 1)[0].upper()
                    arg = line.decode("utf-8", "replace").strip()[len(verb):].strip()
                    if verb == "EHLO":
                        self.reply("250-127.0.0.1")
                        self.reply("250 8BITMIME")
                    elif verb in ("HELO", "NOOP", "MAIL"):
                        self.reply("250 OK")
                    elif verb == "RSET":
                        rcpt = []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpt.append(arg.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = bytearray()
                        while True:
                            chunk = self.rfile.readline()
                            if not chunk or chunk in (b".\r\n", b".\n"):
                                break
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        msg = email.message_from_bytes(bytes(data), policy=policy.default)
                        assert isinstance(msg, email.message.EmailMessage)
                        sink.messages.append((rcpt, msg))
                        rcpt = []
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 command not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def text_of(msg: email.message.EmailMessage) -> str:
    """Every text part of a message, decoded and joined."""
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(str(part.get_content()))
    return "\n".join(parts)

