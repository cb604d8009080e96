"""Service health per model: requests by status class, latency and payload sizes.

The proxy reports every exchange (sampled or not) by its request path; the payload logger
reports every paired CloudEvent. Paths are attacker-controlled (any client can ask for
``/v2/models/<anything>/infer``), so the recorder keeps at most ``max_keys`` distinct
(model, version, endpoint) keys and folds the rest into ``__other__``; the exporter then folds
every model the sidecar is not configured for, and caps versions and endpoints, like every other
series (exporters/cardinality.py). Path parsing is cached (bounded) so the proxy's hot path pays
a dict lookup per request.

>>> m = RequestMetrics()
>>> m.observe_path(b"/v2/models/iris/versions/3/infer", 200, 0.004, 120)
>>> m.observe_path(b"/v2/health/ready", 200, 0.001, 0)   # not an inference request
>>> m.stats().counts
{('iris', '3', 'default', '2xx'): 1}
"""

from __future__ import annotations

import threading
from bisect import bisect_left

from driftline.catalogue import LATENCY_BUCKETS, SIZE_BUCKETS
from driftline.collectors.payloads import route
from driftline.collectors.proxy_latency import status_class
from driftline.engine.snapshot import Histogram, RequestStats

__all__ = ["RequestMetrics"]

OTHER = "__other__"
DEFAULT_ENDPOINT = "default"
_NOT_INFERENCE = ("", "")


class _Hist:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def add(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v

    def frozen(self) -> Histogram:
        c = tuple(self.counts)
        return Histogram(self.bounds, c, self.sum, sum(c))


class RequestMetrics:
    """Thread-safe cumulative counters and histograms; readers get a copy (:meth:`stats`)."""

    def __init__(self, max_keys: int = 256, max_paths: int = 4096,
                 endpoint: str = DEFAULT_ENDPOINT) -> None:
        self.max_keys = max_keys
        self.max_paths = max_paths
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._paths: dict[bytes, tuple[str, str]] = {}
        self._keys: set[tuple[str, str, str]] = set()
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Hist] = {}
        self._req: dict[str, _Hist] = {}
        self._resp: dict[str, _Hist] = {}

    def _model_of(self, path: bytes) -> tuple[str, str]:
        hit = self._paths.get(path)
        if hit is not None:
            return hit
        r = route(path.decode("latin-1"))
        out = _NOT_INFERENCE if r is None else (r.model, r.version or "")
        if len(self._paths) < self.max_paths:
            self._paths[path] = out
        return out

    def observe_path(self, path: bytes, status: int, seconds: float, request_bytes: int) -> None:
        """One proxied exchange; non-inference paths (health, metadata) are ignored."""
        model, version = self._model_of(path)
        if model:
            self.observe(model, version, None, status_class(status), seconds, request_bytes, None)

    def observe(self, model: str, version: str, endpoint: str | None, code: str,
                seconds: float | None, request_bytes: int | None, response_bytes: int | None) -> None:
        key = (model, version, endpoint or self.endpoint)
        with self._lock:
            if key not in self._keys:
                if len(self._keys) >= self.max_keys:
                    key = (OTHER, OTHER, OTHER)
                self._keys.add(key)
            model = key[0]
            ck = (*key, code)
            self._counts[ck] = self._counts.get(ck, 0) + 1
            if seconds is not None:
                lk = (model, key[2])
                h = self._latency.get(lk)
                if h is None:
                    h = self._latency[lk] = _Hist(LATENCY_BUCKETS)
                h.add(seconds)
            for size, table in ((request_bytes, self._req), (response_bytes, self._resp)):
                if size is not None:
                    s = table.get(model)
                    if s is None:
                        s = table[model] = _Hist(SIZE_BUCKETS)
                    s.add(float(size))

    def stats(self) -> RequestStats:
        with self._lock:
            return RequestStats(dict(self._counts),
                                {k: h.frozen() for k, h in self._latency.items()},
                                {k: h.frozen() for k, h in self._req.items()},
                                {k: h.frozen() for k, h in self._resp.items()})
