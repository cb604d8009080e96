"""Service health per model: requests by status class, latency and payload sizes.

The proxy reports every exchange (sampled or not) by its request path, with the request and
response body sizes it relayed and the endpoint: its configured one (``proxy.endpoint``, e.g.
``canary`` in a KServe canary revision's pods), or the ``x-driftline-endpoint`` header when
``proxy.trusted_headers`` lists it, as for records. The payload logger reports every paired
CloudEvent (its ``ce-endpoint``). Each source has its own recorder (one writer thread each, so
the hot path takes no lock: the lock only guards adding a key and copying for exporters), and
:func:`merge` adds them up for the exporters.

Paths are attacker-controlled (any client can ask for ``/v2/models/<anything>/infer``), so a
recorder keeps at most ``max_keys`` distinct (model, version, endpoint) keys and folds the rest
into ``__other__``; the exporter then folds every model the sidecar is not configured for, and
caps versions and endpoints, like every other series (exporters/cardinality.py). The proxy's
path → key lookup is cached (bounded), so a request costs one dict lookup and a few increments
(``python -m benchmarks requests``).

>>> m = RequestMetrics()
>>> m.observe_path(b"/v2/models/iris/versions/3/infer", 200, 0.004, 120)
>>> m.observe_path(b"/v2/health/ready", 200, 0.001, 0)   # not an inference request
>>> m.stats().counts
{('iris', '3', 'default', '2xx'): 1}
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable

from driftline.catalogue import LATENCY_BUCKETS, SIZE_BUCKETS
from driftline.collectors.label_values import safe_label
from driftline.collectors.payloads import route
from driftline.engine.snapshot import Histogram, RequestStats

__all__ = ["CODES", "RequestMetrics", "merge"]

OTHER = "__other__"
DEFAULT_ENDPOINT = "default"
#: Status classes by ``status // 100`` (0, 1 and 6+ count as 5xx, a broken upstream), then the
#: payload logger's "request without a response".
CODES = ("2xx", "3xx", "4xx", "5xx", "unknown")
_CLASS_OF = (3, 3, 0, 1, 2, 3)


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


class _Key:
    """Counters of one (model, version, endpoint); histograms shared with its model/endpoint."""

    __slots__ = ("codes", "latency", "request", "response")

    def __init__(self, latency: _Hist, request: _Hist, response: _Hist) -> None:
        self.codes = [0] * len(CODES)
        self.latency = latency
        self.request = request
        self.response = response


class RequestMetrics:
    """Cumulative counters and histograms of one source; :meth:`stats` copies them."""

    def __init__(self, max_keys: int = 256, max_paths: int = 4096,
                 endpoint: str = DEFAULT_ENDPOINT) -> None:
        self.max_keys = max_keys
        self.max_paths = max_paths
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._paths: dict[bytes | tuple[bytes, bytes], _Key | None] = {}
        self._keys: dict[tuple[str, str, str], _Key] = {}
        self._latency: dict[tuple[str, str], _Hist] = {}
        self._req: dict[str, _Hist] = {}
        self._resp: dict[str, _Hist] = {}

    def _key(self, model: str, version: str, endpoint: str) -> _Key:
        k = (model, version, endpoint)
        rec = self._keys.get(k)
        if rec is not None:
            return rec
        with self._lock:
            if k not in self._keys and len(self._keys) >= self.max_keys:
                k = (OTHER, OTHER, OTHER)
            rec = self._keys.get(k)
            if rec is None:
                m, e = k[0], k[2]
                lat = self._latency.setdefault((m, e), _Hist(LATENCY_BUCKETS))
                req = self._req.setdefault(m, _Hist(SIZE_BUCKETS))
                resp = self._resp.setdefault(m, _Hist(SIZE_BUCKETS))
                rec = self._keys[k] = _Key(lat, req, resp)
            return rec

    def observe_path(self, path: bytes, status: int, seconds: float, request_bytes: int,
                     response_bytes: int | None = None, endpoint: bytes = b"") -> None:
        """One proxied exchange; non-inference paths (health, metadata) are ignored.

        ``endpoint``: the trusted ``x-driftline-endpoint`` header's value, if any (else the
        recorder's configured endpoint); a value that is no valid label counts as ``__other__``.
        ``response_bytes``: the response body as relayed (None: no response, e.g. a reset).
        """
        cache: bytes | tuple[bytes, bytes] = (path, endpoint) if endpoint else path
        try:
            rec = self._paths[cache]
        except KeyError:
            r = route(path.decode("latin-1"))
            rec = None if r is None else self._key(r.model, r.version or "",
                                                   _endpoint(endpoint, self.endpoint))
            if len(self._paths) < self.max_paths:
                self._paths[cache] = rec
        if rec is None:
            return
        h = status // 100
        rec.codes[_CLASS_OF[h] if 0 <= h < 6 else 3] += 1
        rec.latency.add(seconds)
        rec.request.add(request_bytes)
        if response_bytes is not None:
            rec.response.add(response_bytes)

    def observe(self, model: str, version: str, endpoint: str | None, code: str,
                seconds: float | None, request_bytes: int | None, response_bytes: int | None) -> None:
        """One exchange known by name (the payload logger); ``code`` is one of :data:`CODES`."""
        rec = self._key(model, version, endpoint or self.endpoint)
        rec.codes[CODES.index(code)] += 1
        if seconds is not None:
            rec.latency.add(seconds)
        if request_bytes is not None:
            rec.request.add(float(request_bytes))
        if response_bytes is not None:
            rec.response.add(float(response_bytes))

    def stats(self) -> RequestStats:
        with self._lock:
            keys = list(self._keys.items())
            lat = list(self._latency.items())
            req = list(self._req.items())
            resp = list(self._resp.items())
        counts = {(*k, CODES[i]): n for k, rec in keys for i, n in enumerate(list(rec.codes)) if n}
        return RequestStats(counts, {k: h.frozen() for k, h in lat if sum(h.counts)},
                            {k: h.frozen() for k, h in req if sum(h.counts)},
                            {k: h.frozen() for k, h in resp if sum(h.counts)})


def _endpoint(header: bytes, default: str) -> str:
    """The endpoint label a request header names: checked like every label value, since any
    client can send it (a bad one is ``__other__``, not dropped: the exchange still counts)."""
    value = header.decode("latin-1").strip()
    if not value:
        return default
    return safe_label(value) or OTHER


def _add(a: Histogram | None, b: Histogram) -> Histogram:
    if a is None:
        return b
    c = tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
    return Histogram(a.bounds, c, a.sum + b.sum, sum(c))


def merge(parts: Iterable[RequestStats]) -> RequestStats:
    """The sum of several sources' stats (proxy and payload logger)."""
    out = RequestStats()
    for p in parts:
        for k, n in p.counts.items():
            out.counts[k] = out.counts.get(k, 0) + n
        for lk, h in p.latency.items():
            out.latency[lk] = _add(out.latency.get(lk), h)
        for table, add in ((out.request_size, p.request_size), (out.response_size, p.response_size)):
            for m, h in add.items():
                table[m] = _add(table.get(m), h)
    return out
