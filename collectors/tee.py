"""The bounded hand-off between the proxy's event loop and the consumer thread.

``offer`` runs on the proxy's hot path, so it never blocks and never raises: when the queue is
full the sample is dropped and counted (reason ``queue_full``). The consumer is a plain thread
that calls :meth:`SampleQueue.drain` in a loop. To keep the event loop from waking the consumer on
every sample (a futex call and a GIL hand-over each), the producer only signals once
``wake_at`` samples are waiting; the consumer's ``timeout`` bounds how long fewer samples wait.

Consumer loop::

    while not stopping:
        for sample in queue.drain(max_items=1024, timeout=0.1):
            handle(sample)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from driftline.errors import ConfigError

if TYPE_CHECKING:
    from driftline.collectors.sample import Sample

__all__ = ["DROP_QUEUE_FULL", "DROP_TEE_ERROR", "DROP_TOO_LARGE", "SampleQueue"]

#: Drop reasons (values of the ``reason`` label of ``driftline_records_dropped_total``).
DROP_QUEUE_FULL = "queue_full"
DROP_TOO_LARGE = "too_large"
DROP_TEE_ERROR = "tee_error"


class SampleQueue:
    """Bounded, thread-safe FIFO of :class:`~driftline.collectors.sample.Sample`.

    ``capacity`` is the most samples held; ``wake_at`` how many must wait before a blocked
    :meth:`drain` is woken early (it always wakes at its timeout).
    """

    def __init__(self, capacity: int = 10_000, *, wake_at: int = 64) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"queue capacity must be a positive integer, got {capacity!r}",
                              key="queue.capacity", fix="use e.g. 10000")
        if not isinstance(wake_at, int) or wake_at < 1:
            raise ConfigError(f"wake_at must be a positive integer, got {wake_at!r}",
                              key="queue.wake_at", fix="use e.g. 64")
        self._capacity = capacity
        self._wake_at = wake_at
        self._items: deque[Sample] = deque()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._want = wake_at
        self._waiting = 0
        self._closed = False
        self._offered = 0
        self._dropped: dict[str, int] = {}

    # -- producer side (event loop thread) ---------------------------------------------------
    def offer(self, sample: Sample) -> bool:
        """Enqueue ``sample`` unless the queue is full; never blocks. Returns whether it was kept."""
        with self._lock:
            self._offered += 1
            items = self._items
            if len(items) >= self._capacity or self._closed:
                self._dropped[DROP_QUEUE_FULL] = self._dropped.get(DROP_QUEUE_FULL, 0) + 1
                return False
            items.append(sample)
            if self._waiting and len(items) >= self._want:
                self._ready.notify()
            return True

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` samples lost before reaching the queue (e.g. ``too_large``, ``tee_error``)."""
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    # -- consumer side (plain thread) --------------------------------------------------------
    def drain(self, max_items: int = 1024, timeout: float | None = 0.1) -> list[Sample]:
        """Remove and return up to ``max_items`` samples, oldest first.

        Waits until ``min(max_items, wake_at)`` samples are queued, the queue is closed, or
        ``timeout`` seconds pass (``None``: no limit; ``0``: do not wait), then returns what is
        there — possibly an empty list.
        """
        if max_items < 1:
            return []
        want = min(max_items, self._wake_at)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            items = self._items
            while len(items) < want and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._want = want
                self._waiting += 1
                try:
                    self._ready.wait(remaining)
                finally:
                    self._waiting -= 1
            n = min(max_items, len(items))
            return [items.popleft() for _ in range(n)]

    def close(self) -> None:
        """Refuse further samples (counted as ``queue_full``) and wake every waiting consumer."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()

    # -- counters ----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def depth(self) -> int:
        """Samples waiting now."""
        return len(self._items)

    @property
    def offered(self) -> int:
        """Samples offered since start, kept or not."""
        return self._offered

    @property
    def dropped(self) -> dict[str, int]:
        """Cumulative drops by reason (a copy)."""
        with self._lock:
            return dict(self._dropped)

    @property
    def dropped_total(self) -> int:
        with self._lock:
            return sum(self._dropped.values())

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"SampleQueue(depth={self.depth}, capacity={self._capacity}, dropped={self.dropped})"
