"""Exporters over a real Monitor (profile built from the demo dataset, drifted traffic)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.engine.snapshot import SidecarStats
from driftline.exporters.cardinality import CardinalityGuard
from driftline.exporters.fleet import StaticSource
from driftline.exporters.otlp import to_metrics_data
from driftline.exporters.points import build_points
from driftline.exporters.prometheus import new_registry, render
from driftline.io.readers import DataFile
from driftline.profile.build import BuildOptions, build_profile
from driftline_demo.data import CATEGORICAL, FEATURES, NUMERIC, generate, write_parquet


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Monitor, dict[str, np.ndarray]]:
    path = Path(tmp_path_factory.mktemp("ref")) / "ref.parquet"
    write_parquet(path, generate(5000, seed=1))
    profile = build_profile([DataFile(str(path), "parquet")],
                            BuildOptions(model_name="loans", model_version="3", target="defaulted"),
                            progress=False)
    mon = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    cur = generate(2500, seed=2, shift=0.8)
    mon.observe(RecordBatch({k: cur[k] for k in FEATURES}), source="proxy")
    return mon, cur


def scrape(source: StaticSource) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry, _ = new_registry(source)
    body, _ = render(registry, "text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def test_scrape_of_a_real_monitor(monitored: tuple[Monitor, dict[str, np.ndarray]]) -> None:
    mon, cur = monitored
    snap = mon.snapshot()
    series = scrape(StaticSource([snap], SidecarStats()))
    base = {"model_name": "loans", "model_version": "3", "endpoint": "default"}
    assert series[("driftline_windows_total", frozenset(base.items()))] == 2
    assert series[("driftline_records_total", frozenset({**base, "source": "proxy"}.items()))] == 2500
    assert snap.last_window is not None
    for name in FEATURES:
        fd = snap.last_window.features[name]
        psi = series[("driftline_feature_psi", frozenset({**base, "feature": name}.items()))]
        assert psi == fd.psi and psi > 0
    # 2500 records observed: every non-missing numeric value lands in one quantile-rank bucket.
    for name in NUMERIC:
        labels = frozenset({**base, "feature": name, "le": "+Inf"}.items())
        assert series[("driftline_feature_quantile_rank_bucket", labels)] == np.isfinite(cur[name]).sum()
    for name in CATEGORICAL:
        total = sum(v for (n, labels), v in series.items()
                    if n == "driftline_feature_category_total" and ("feature", name) in labels)
        assert total == sum(1 for v in cur[name] if v is not None)
        ratios = sum(v for (n, labels), v in series.items()
                     if n == "driftline_feature_reference_category_ratio" and ("feature", name) in labels)
        assert ratios == pytest.approx(1.0)
    assert not any(math.isnan(v) for v in series.values())
    # build_info names the reference data: the content hash's first 12 hex digits
    digest = mon.profile.provenance["content_hash"].split(":")[1][:12]
    info = [dict(labels) for n, labels in series if n == "driftline_build_info"]
    assert [i["baseline_source"] for i in info] == [digest]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_a_real_monitor(monitored: tuple[Monitor, dict[str, np.ndarray]]) -> None:
    mon, _ = monitored
    registry, _ = new_registry(StaticSource([mon.snapshot()], SidecarStats(queue_capacity=100)))
    body, _ = render(registry, "text/plain")
    proc = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stderr


def test_otlp_payload_of_a_real_monitor_encodes(monitored: tuple[Monitor, dict[str, np.ndarray]]) -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.resources import Resource

    mon, _ = monitored
    points = build_points([mon.snapshot()], SidecarStats(), CardinalityGuard())
    req = encode_metrics(to_metrics_data(points, Resource.create(), start_ns=1))
    n_points = sum(len(getattr(m, m.WhichOneof("data")).data_points)
                   for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    assert n_points == sum(len(p) for p in points)


def _label_values(mon: Monitor) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Every sample's labels on the Prometheus scrape, every data point's attributes in OTLP."""
    from opentelemetry.sdk.resources import Resource

    snap = mon.snapshot()
    series = scrape(StaticSource([snap], SidecarStats()))
    prom = [dict(labels) for _, labels in series]
    data = to_metrics_data(build_points([snap], SidecarStats(), CardinalityGuard()),
                           Resource.create(), start_ns=1)
    otlp = [{k: str(v) for k, v in (p.attributes or {}).items()}
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            for p in m.data.data_points]
    return prom, otlp


def test_a_baseline_without_provenance_is_unknown_on_both_exports(
        monitored: tuple[Monitor, dict[str, np.ndarray]]) -> None:
    """A baseline that records neither a revision nor a content hash (built before provenance
    was recorded) shows baseline_source="unknown" on the scrape and in OTLP alike: an empty
    value would vanish from Prometheus (an empty label is no label) and stay in OTLP."""
    import dataclasses

    from driftline.catalogue import UNKNOWN_SOURCE

    mon, cur = monitored
    old = dataclasses.replace(mon.profile, provenance={"sources": ["ref.parquet"]})
    fresh = Monitor(old, window=WindowPolicy(records=1000, max_age=None), clock=None)
    fresh.observe(RecordBatch({k: cur[k][:1000] for k in FEATURES}), source="proxy")
    prom, otlp = _label_values(fresh)
    info_prom = [d for d in prom if "baseline_source" in d]
    info_otlp = [d for d in otlp if "baseline_source" in d]
    assert [d["baseline_source"] for d in info_prom] == [UNKNOWN_SOURCE] == \
        [d["baseline_source"] for d in info_otlp]
    assert [sorted(d.values()) for d in info_prom] == [sorted(d.values()) for d in info_otlp]
    # no other label is empty either, on either export
    for labels in prom + otlp:
        assert all(v != "" for v in labels.values()), labels


def test_a_scrape_never_counts_what_the_tick_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a monitor is ticked, a scrape with records pending serves the snapshot of the last
    count (it does not count: that is the worker's work, and under the lock it made ingest
    wait); the next tick counts them and the scrape then equals the exact snapshot. A monitor
    nobody ticks counts on a scrape as before."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_serve_support import make_profile

    profile = make_profile(n_numeric=6, with_category=True)
    rng = np.random.default_rng(4)

    def batch(n: int) -> RecordBatch:
        return RecordBatch({**{f"f{i}": rng.normal(0.3, 1, n) for i in range(6)},
                            "color": np.array(["red", "blue", "pink"] * (n // 3), dtype=object)})

    ticked = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    exact = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    first = batch(300)
    for mon in (ticked, exact):
        mon.observe(first)
    ticked.tick()
    published = ticked.scrape_snapshot()
    assert published == exact.snapshot()

    counted: list[int] = []
    real = ticked._count
    monkeypatch.setattr(ticked, "_count", lambda b: counted.append(len(b)) or real(b))
    more = batch(150)
    ticked.observe(more)
    assert ticked.scrape_snapshot() is published and counted == []  # served, not counted
    ticked.tick()
    assert counted == [150]
    exact.observe(more)
    now = ticked.scrape_snapshot()
    assert now is not published and now == exact.snapshot()
    assert sum(now.quantile_rank["f0"].counts) == 450
    ticked.observe(batch(30))
    ticked.flush()  # shutdown or end of file: no more ticks, so a scrape counts again
    assert sum(ticked.scrape_snapshot().quantile_rank["f0"].counts) == 480 and counted == [150, 30]

    unticked = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    unticked.observe(first)
    assert unticked.scrape_snapshot() == published
    unticked.observe(more)  # no worker: a scrape counts every record, as snapshot() does
    assert unticked.scrape_snapshot() == now


def test_a_scrape_never_feeds_the_change_detector_of_a_ticked_monitor() -> None:
    """Labels since the last tick wait in the error stream's buffer: a scrape of a ticked
    monitor serves the tick's snapshot rather than run the detector under the lock; the next
    tick feeds them, and the scrape then equals the exact snapshot."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_serve_support import make_profile

    profile = make_profile(n_numeric=2, with_category=False)
    mon = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    mon.tick()
    published = mon.scrape_snapshot()
    det = mon._change["error"].detector
    mon.observe_labels(np.array(["1"] * 5, dtype=object), np.array(["0"] * 5, dtype=object))
    assert mon.scrape_snapshot() is published and det.n == 0
    mon.tick()
    assert det.n == 5
    now = mon.scrape_snapshot()
    assert now is not published and now.labels["true"] == 5 and now == mon.snapshot()
