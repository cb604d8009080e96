"""An asyncio server on its own event loop in a daemon thread.

The sidecar's proxy and metrics port (and the SDK's /metrics) each run their own loop in a
thread, so the caller's thread — a model server's, or the sidecar's main thread handling
signals — never runs their I/O. ``start`` returns once the server listens and re-raises a bind
error there, at set-up, rather than in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Self


class LoopThread:
    """Run ``server.start()`` then the loop forever in a daemon thread until :meth:`stop`.

    ``server`` is any object with ``async start()``, ``async stop()`` and ``port``.
    """

    def __init__(self, server: Any, *, name: str,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
                 ) -> None:
        self.server = server
        self.loop = loop_factory()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started: Future[None] = Future()

    def start(self, timeout: float = 30.0) -> Self:
        """Start the thread and wait until the server listens; re-raises a bind error."""
        self._thread.start()
        self._started.result(timeout)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._started.set_exception(exc)
            self.loop.close()
            return
        self._started.set_result(None)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop (thread-safe)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def _stop_server(self, grace: float) -> Coroutine[Any, Any, None]:
        """The coroutine that stops the server; subclasses pass on the grace period."""
        return self.server.stop()

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server (waiting at most ``grace`` + 5 s), end the loop, join the thread."""
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._stop_server(grace), self.loop)
        with contextlib.suppress(Exception):
            fut.result(grace + 5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)

    @property
    def port(self) -> int:
        return int(self.server.port)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
