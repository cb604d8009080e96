"""The collector worker: one thread that parses and feeds the monitors, off every request path.

Front-ends (the metrics-port HTTP handlers, the SDK) put small jobs into a bounded
:class:`WorkQueue`; the reverse proxy fills its own :class:`~driftline.collectors.tee.SampleQueue`.
:class:`Worker` drains both, runs each job on the :class:`~driftline.collectors.sidecar.Sidecar`
(the only thread that touches monitors), and ticks the sidecar on a timer so that age-based
windows close and TTL stores expire even without traffic.

``put`` never blocks: a full queue refuses the job and the caller counts ``queue_full``. A job that
raises is logged and counted as ``internal_error``; the worker keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from driftline.collectors.sidecar import INTERNAL_ERROR, Sidecar

_log = logging.getLogger("driftline.serve")

Job = Callable[[], Any]


class WorkQueue:
    """Bounded FIFO of jobs, weighed in records (a 500-record ingest body weighs 500)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: deque[tuple[Job, int]] = deque()
        self._weight = 0
        self._cond = threading.Condition(threading.Lock())
        self.closed = False

    @property
    def depth(self) -> int:
        return self._weight

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """True when :meth:`put` would refuse even a one-record job. Handlers check it before
        decoding a body, so that refusing a body costs less than accepting one."""
        with self._cond:
            return self.closed or (bool(self._items) and self._weight >= self.capacity)

    def put(self, job: Job, weight: int = 1) -> bool:
        """Enqueue unless full (a single job heavier than the capacity is admitted only into an
        empty queue, so a big batch is never refused forever). Never blocks."""
        w = max(1, weight)
        with self._cond:
            if self.closed or (self._items and self._weight + w > self.capacity):
                return False
            self._items.append((job, w))
            self._weight += w
            self._cond.notify()
            return True

    def get_many(self, max_items: int = 256, timeout: float | None = 0.1) -> list[Job]:
        """Up to ``max_items`` jobs, waiting at most ``timeout`` seconds for the first."""
        with self._cond:
            if not self._items and timeout != 0 and not self.closed:
                self._cond.wait(timeout)
            out: list[Job] = []
            while self._items and len(out) < max_items:
                job, w = self._items.popleft()
                self._weight -= w
                out.append(job)
            return out

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Worker:
    """Runs jobs and proxy samples on one thread; ``stop()`` drains, then closes the windows."""

    def __init__(self, sidecar: Sidecar, queue: WorkQueue, *, samples: Any = None,
                 on_samples: Callable[[list[Any]], Any] | None = None,
                 tick_interval: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.sidecar = sidecar
        self.queue = queue
        #: Anything with ``drain(max_items, timeout) -> list`` (the proxy's SampleQueue, the
        #: SDK's buffer); ``on_samples`` handles each drained list (default: proxy samples).
        self.samples = samples
        self.on_samples = on_samples
        self.tick_interval = tick_interval
        self.clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs_done = 0
        self.samples_done = 0
        self.errors = 0
        self._idle = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftline-worker",
                                            daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_job(self, job: Job) -> None:
        try:
            job()
        except Exception:  # never let one payload kill the worker
            self.errors += 1
            self.sidecar.drop(None, INTERNAL_ERROR)
            _log.exception("collector job failed")
        self.jobs_done += 1

    def _run_samples(self, samples: list[Any]) -> None:
        if not samples:
            return
        if self.on_samples is not None:
            try:
                self.on_samples(samples)
            except Exception:
                self.errors += 1
                self.sidecar.drop(None, INTERNAL_ERROR, len(samples))
                _log.exception("handling %d queued items failed", len(samples))
            self.samples_done += len(samples)
            return
        for sample in samples:
            try:
                self.sidecar.handle_sample(sample)
            except Exception:
                self.errors += 1
                self.sidecar.drop(None, INTERNAL_ERROR)
                _log.exception("parsing a proxied sample failed")
            self.samples_done += 1

    def run_once(self, wait: float = 0.05) -> int:
        """One round: jobs, then proxy samples. Returns how many items were handled."""
        if self.samples is not None:
            jobs = self.queue.get_many(timeout=0)
            samples = self.samples.drain(max_items=1024, timeout=0 if jobs else wait)
        else:
            jobs = self.queue.get_many(timeout=wait)
            samples = []
        for job in jobs:
            self._run_job(job)
        self._run_samples(samples)
        return len(jobs) + len(samples)

    def _run(self) -> None:
        next_tick = self.clock() + self.tick_interval
        while not self._stopping.is_set():
            wait = max(0.0, min(0.05, next_tick - self.clock()))
            self.run_once(wait)
            now = self.clock()
            if now >= next_tick:
                self._tick(now)
                next_tick = now + self.tick_interval

    def _tick(self, now: float) -> None:
        try:
            self.sidecar.tick(now)
        except Exception:
            self.errors += 1
            _log.exception("collector tick failed")

    def drain(self) -> int:
        """Run everything queued now (on the caller's thread; only when the worker is stopped)."""
        total = 0
        while True:
            n = 0
            for job in self.queue.get_many(max_items=1 << 30, timeout=0):
                self._run_job(job)
                n += 1
            if self.samples is not None:
                batch = self.samples.drain(max_items=1 << 30, timeout=0)
                self._run_samples(batch)
                n += len(batch)
            total += n
            if n == 0:
                return total

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, run what is still queued, release pending CloudEvents and close the
        open windows (``Monitor.flush``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.queue.close()
        self.drain()
        try:
            self.sidecar.flush()
        except Exception:
            _log.exception("flushing the monitors failed")
