"""Prometheus exposition: a custom prometheus-client collector over a SnapshotSource.

The collector builds metric families only when scraped, from whatever the source holds at that
moment (:func:`~driftline.exporters.points.build_points`), so a scrape never waits on the
monitors and the collector keeps no state between scrapes apart from the cardinality guard.
Register it in a fresh ``CollectorRegistry`` per sidecar, never in the global default registry:

>>> from driftline.engine.snapshot import SidecarStats, SnapshotSource
>>> class Empty(SnapshotSource):
...     def snapshots(self): return []
...     def sidecar_stats(self): return SidecarStats(queue_capacity=10000)
>>> registry, _ = new_registry(Empty())
>>> body, ctype = render(registry, "text/plain")
>>> b"driftline_queue_capacity 10000.0" in body, ctype
(True, 'text/plain; version=0.0.4; charset=utf-8')
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from wsgiref.simple_server import WSGIServer

from prometheus_client.exposition import choose_encoder, generate_latest, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from driftline.engine.snapshot import SnapshotSource
from driftline.exporters.cardinality import CardinalityGuard, CardinalityLimits
from driftline.exporters.points import MetricPoints, PointsBuilder, build_points
from driftline.exporters.text import TextEncoder

__all__ = ["DriftlineCollector", "MetricsServer", "new_registry", "render", "start_metrics_server",
           "to_families"]

_UNITS = {"s": "seconds"}


def _family(points: MetricPoints) -> Metric:
    spec = points.spec
    names = spec.labels
    unit = _UNITS.get(spec.unit, "")
    if spec.type == "histogram":
        fam: Metric = HistogramMetricFamily(spec.name, spec.help, labels=names, unit=unit)
        bucket, count, total = fam.name + "_bucket", fam.name + "_count", fam.name + "_sum"
        les = None
        for values, h in points.histograms.items():
            if les is None or len(les) != len(h.bounds) + 1:
                les = [floatToGoString(b) for b in h.bounds] + ["+Inf"]
            base = dict(zip(names, values, strict=True))
            for le, c in zip(les, h.cumulative(), strict=True):
                fam.samples.append(Sample(bucket, {**base, "le": le}, float(c)))
            fam.samples.append(Sample(count, base, float(h.count)))
            fam.samples.append(Sample(total, base, h.sum))
        return fam
    if spec.type == "counter":
        fam = CounterMetricFamily(spec.name, spec.help, labels=names, unit=unit)
        sample_name = fam.name + "_total"
    else:
        fam = GaugeMetricFamily(spec.name, spec.help, labels=names, unit=unit)
        sample_name = fam.name
    fam.samples.extend(Sample(sample_name, dict(zip(names, values, strict=True)), v)
                       for values, v in points.values.items())
    return fam


def to_families(points: list[MetricPoints]) -> list[Metric]:
    """prometheus-client metric families for already built points."""
    return [_family(p) for p in points]


class DriftlineCollector(Collector):
    """Every catalogue metric, built from ``source`` at scrape time.

    ``limits`` caps label values (see :class:`CardinalityLimits`); the guard that enforces them
    is the collector's state between scrapes, with :meth:`exposition`'s caches.
    """

    def __init__(self, source: SnapshotSource, *, limits: CardinalityLimits | None = None) -> None:
        self.source = source
        self.guard = CardinalityGuard(limits)
        self._encoder = TextEncoder()
        self._lock = threading.Lock()  # the exporter's own: monitors never wait on it
        self._bodies: dict[bool, bytes] = {}
        self._points = PointsBuilder(self.guard)  # kept between scrapes: see exposition

    def exposition(self, openmetrics: bool) -> bytes:
        """The scrape body, text 0.0.4 or OpenMetrics 1.0.

        When every snapshot is the very object of the previous scrape (a monitor hands out
        the same snapshot until something changes) and the sidecar stats are equal, the
        previous body is returned as it is: nothing is rebuilt, hashed or formatted. The
        points are a pure function of those inputs and the guard's state, which the same
        inputs leave unchanged, so the body would be byte for byte the same. Otherwise only the
        models whose snapshot changed are rebuilt (:class:`~driftline.exporters.points.PointsCache`)
        and only their text is formatted again."""
        snaps = list(self.source.snapshots())
        stats = self.source.sidecar_stats()
        with self._lock:
            if self._points.update(snaps, stats):
                self._bodies = {}
            body = self._bodies.get(openmetrics)
            if body is None:
                body = self._encoder.encode(self._points.points, openmetrics)
                self._bodies[openmetrics] = body
            return body

    def describe(self) -> list[Metric]:
        """Empty, so that registering does not trigger a scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        points = build_points(self.source.snapshots(), self.source.sidecar_stats(), self.guard)
        yield from to_families(points)


def new_registry(source: SnapshotSource, *, limits: CardinalityLimits | None = None,
                 ) -> tuple[CollectorRegistry, DriftlineCollector]:
    """A fresh registry holding one :class:`DriftlineCollector` (one per sidecar)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = DriftlineCollector(source, limits=limits)
    registry.register(collector)
    _COLLECTORS[registry] = collector
    return registry, collector


#: The Driftline collector of each registry made by :func:`new_registry` (its only collector).
_COLLECTORS: weakref.WeakKeyDictionary[Collector, DriftlineCollector] = weakref.WeakKeyDictionary()


def render(registry_or_collector: Collector, accept_header: str | None = None) -> tuple[bytes, str]:
    """Encode for a scrape: OpenMetrics when the ``Accept`` header asks for it, else text 0.0.4.

    A registry from :func:`new_registry` (or its collector) goes through
    :meth:`DriftlineCollector.exposition` for text 0.0.4 and OpenMetrics 1.0 with the
    default escaping (what Prometheus asks for); other negotiations through prometheus-client."""
    encoder, content_type = choose_encoder(accept_header or "")
    collector = (registry_or_collector if isinstance(registry_or_collector, DriftlineCollector)
                 else _COLLECTORS.get(registry_or_collector))
    if collector is not None:
        if encoder is generate_latest:
            return collector.exposition(False), content_type
        if (isinstance(encoder, partial) and encoder.func is openmetrics_latest
                and encoder.keywords.get("version") == "1.0.0"
                and encoder.keywords.get("escaping") in (UNDERSCORES, ALLOWUTF8)):
            return collector.exposition(True), content_type
    return encoder(registry_or_collector), content_type


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (prometheus-client's threaded WSGI server)."""

    server: WSGIServer
    thread: threading.Thread
    registry: CollectorRegistry
    collector: DriftlineCollector

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


def start_metrics_server(source: SnapshotSource, port: int = 0, addr: str = "127.0.0.1", *,
                         limits: CardinalityLimits | None = None) -> MetricsServer:
    """Serve ``source`` on ``http://addr:port/metrics`` from a daemon thread (in-process use).

    For notebooks and applications that monitor in-process without the sidecar. Binds loopback
    by default; ``port=0`` picks a free port (read it from ``.port``). Content negotiation
    (OpenMetrics or text) is prometheus-client's.
    """
    registry, collector = new_registry(source, limits=limits)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread, registry, collector)
