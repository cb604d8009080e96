"""A real Prometheus 2.42 scrapes the exporter (it negotiates OpenMetrics) and stores every series."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from _servers import LoopbackHTTPServer, QuietHandler
from prometheus_client.parser import text_string_to_metric_families

from driftline.exporters.fleet import StaticSource, synthetic_fleet
from driftline.exporters.prometheus import new_registry, render
from driftline_demo.stack import start_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]


class MetricsServer:
    """/metrics on 127.0.0.1 rendered per request with the client's Accept header."""

    def __init__(self, source: StaticSource) -> None:
        registry, _ = new_registry(source)
        self.content_types: list[str] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body, ctype = render(registry, self.headers.get("Accept"))
                outer.content_types.append(ctype)
                self.reply(200, body, content_type=ctype)

        self.server = LoopbackHTTPServer(Handler)
        self.target = self.server.target

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, StaticSource]]:
    src = synthetic_fleet(models=3, features=6, seed=4)
    srv = MetricsServer(src)
    yield srv, src
    srv.close()


def test_prometheus_ingests_every_series(served: tuple[MetricsServer, StaticSource]) -> None:
    srv, src = served
    registry, _ = new_registry(src)
    body, _ = render(registry, "text/plain")
    want = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            want[(s.name, frozenset((k, v) for k, v in s.labels.items() if v != ""))] = s.value
    with start_prometheus([srv.target], scrape_interval="1s") as prom:
        prom.wait_for('up{job="driftline"} == 1', timeout=60)
        prom.wait_for('count({__name__=~"driftline_.+"})', lambda r: bool(r) and float(r[0]["value"][1]) > 0,
                      timeout=60)
        stored = {}
        for labels, value in prom.values('{__name__=~"driftline_.+"}'):
            name = labels.pop("__name__")
            labels.pop("job"), labels.pop("instance")
            stored[(name, frozenset(labels.items()))] = value
        samples = prom.values('scrape_samples_scraped{job="driftline"}')
    assert set(stored) == set(want)
    for key, value in want.items():
        assert stored[key] == pytest.approx(value), key
    assert samples[0][1] == len(want)
    assert any(c.startswith("application/openmetrics-text") for c in srv.content_types)
