"""Prometheus exporter: catalogue coverage, values against the snapshots, NaN handling,
exposition formats, promtool, and the cardinality guard."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from driftline import __version__
from driftline import catalogue as cat
from driftline.engine.snapshot import Histogram, SidecarStats
from driftline.exporters.cardinality import OTHER, CardinalityGuard, CardinalityLimits
from driftline.exporters.fleet import StaticSource, synthetic_fleet, synthetic_snapshot, synthetic_stats
from driftline.exporters.prometheus import DriftlineCollector, new_registry, render

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(source: StaticSource, limits: CardinalityLimits | None = None,
           collector: DriftlineCollector | None = None) -> tuple[Series, dict[str, tuple[str, str]]]:
    """Series {(sample name, labels): value} and {family: (type, help)} of one text scrape."""
    if collector is None:
        registry, _ = new_registry(source, limits=limits)
        body, _ = render(registry, "text/plain")
    else:
        body, _ = render(collector, "text/plain")
    series: Series = {}
    meta: dict[str, tuple[str, str]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        meta[fam.name] = (fam.type, fam.documentation)
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = s.value
    return series, meta


def lab(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def rich_fleet() -> StaticSource:
    """A fleet that exercises every catalogue metric at least once."""
    src = synthetic_fleet(models=4, features=10, seed=3)
    first = dataclasses.replace(src.models[0], accuracy=0.87)
    src.models[0] = first
    stats = dataclasses.replace(src.stats, series_capped={"category": 2}, export_errors={"otlp": 1},
                                proxy_errors={"reset": 2}, proxy_tunnelled=1, proxy_tee_errors=0)
    src.stats = stats
    return src


def test_every_catalogue_metric_is_exported_with_its_type_and_help() -> None:
    _, meta = scrape(rich_fleet())
    for spec in cat.ALL:
        family = spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
        assert family in meta, spec.name
        assert meta[family] == (spec.type, spec.help)
    assert len(meta) == len(cat.ALL)


def test_label_names_are_the_catalogue_labels() -> None:
    series, _ = scrape(rich_fleet())
    by_name = {}
    for name, labels in series:
        by_name.setdefault(name, set()).add(frozenset(k for k, _ in labels))
    for spec in cat.ALL:
        if spec.type == "histogram":
            assert by_name[spec.name + "_bucket"] == {frozenset((*spec.labels, "le"))}
            assert by_name[spec.name + "_count"] == {frozenset(spec.labels)}
        else:
            assert by_name[spec.name] == {frozenset(spec.labels)}, spec.name


def test_gauges_equal_the_last_window() -> None:
    src = rich_fleet()
    series, _ = scrape(src)
    for snap in src.models:
        base = {"model_name": snap.model_name, "model_version": snap.model_version,
                "endpoint": snap.endpoint}
        if snap.last_window is None:
            assert ("driftline_window_records", lab(**base)) not in series
            assert ("driftline_estimated_accuracy", lab(**base)) not in series
            assert series[("driftline_reference_accuracy", lab(**base))] == snap.reference_accuracy
            continue
        w = snap.last_window
        assert series[("driftline_window_records", lab(**base))] == w.records
        assert w.prediction is not None
        assert series[("driftline_prediction_psi", lab(**base))] == w.prediction.psi
        assert series[("driftline_window_end_timestamp_seconds", lab(**base))] == snap.last_window_end
        assert series[("driftline_estimated_accuracy", lab(**base))] == snap.estimated_accuracy
        acc = series.get(("driftline_accuracy", lab(**base)))
        assert acc == snap.accuracy  # None when no labels joined: no sample
        info = lab(version=__version__, model_name=snap.model_name, model_version=snap.model_version,
                   baseline_id=snap.baseline_id, baseline_source=snap.baseline_source)
        assert series[("driftline_build_info", info)] == 1.0
        for fname, fd in w.features.items():
            fl = lab(**base, feature=fname)
            for metric, value in (("psi", fd.psi), ("ks_statistic", fd.ks_statistic),
                                  ("ks_pvalue", fd.ks_pvalue), ("chi2_pvalue", fd.chi2_pvalue),
                                  ("jensen_shannon", fd.jensen_shannon),
                                  ("wasserstein", fd.wasserstein), ("missing_ratio", fd.missing_ratio)):
                got = series.get((f"driftline_feature_{metric}", fl))
                if value is None or math.isnan(value):
                    assert got is None, (metric, fname)  # NaN / undefined: omitted, not exported
                else:
                    assert got == value, (metric, fname)
            assert series[("driftline_feature_drifted", fl)] == float(fd.drifted)


def test_counters_and_histograms_equal_the_snapshots() -> None:
    src = rich_fleet()
    series, _ = scrape(src)
    for snap in src.models:
        base = {"model_name": snap.model_name, "model_version": snap.model_version,
                "endpoint": snap.endpoint}
        for source, n in snap.records_by_source.items():
            assert series[("driftline_records_total", lab(**base, source=source))] == n
        assert series[("driftline_records_sampled_total", lab(**base))] == snap.records_sampled
        assert series[("driftline_windows_total", lab(**base))] == snap.windows_total
        for c, n in snap.prediction_classes.items():
            assert series[("driftline_prediction_class_total", lab(**base, **{"class": c}))] == n
        for fname, counts in snap.categories.items():
            for c, n in counts.items():
                key = ("driftline_feature_category_total", lab(**base, feature=fname, category=c))
                assert series[key] == n
            for c, share in snap.reference_categories[fname].items():
                key = ("driftline_feature_reference_category_ratio", lab(**base, feature=fname, category=c))
                assert series[key] == pytest.approx(share)
        for fname, h in snap.quantile_rank.items():
            fl = {**base, "feature": fname}
            cum = np.cumsum(h.counts)
            for bound, c in zip([*h.bounds, math.inf], cum, strict=True):
                le = "+Inf" if bound == math.inf else repr(float(bound))
                assert series[("driftline_feature_quantile_rank_bucket", lab(**fl, le=le))] == c
            assert series[("driftline_feature_quantile_rank_count", lab(**fl))] == h.count == cum[-1]
            assert series[("driftline_feature_quantile_rank_sum", lab(**fl))] == pytest.approx(h.sum)
        conf = snap.prediction_confidence
        assert conf is not None
        assert series[("driftline_prediction_confidence_count", lab(**base))] == conf.count
    stats = src.stats
    assert ("", "parse_error") in stats.dropped
    for (m, reason), n in stats.dropped.items():
        if m:
            assert series[("driftline_records_dropped_total", lab(model_name=m, reason=reason))] == n
        else:  # no model to name: never model_name=""
            assert series[("driftline_unattributed_drops_total", lab(reason=reason))] == n
            assert ("driftline_records_dropped_total", lab(model_name=m, reason=reason)) \
                not in series
    for code, h in stats.proxy_latency.items():
        inf = lab(code=code, le="+Inf")
        assert series[("driftline_proxy_request_duration_seconds_bucket", inf)] == h.count
    assert series[("driftline_queue_depth", lab())] == stats.queue_depth
    assert series[("driftline_queue_capacity", lab())] == stats.queue_capacity
    assert series[("driftline_export_errors_total", lab(exporter="otlp"))] == 1
    assert series[("driftline_series_capped_total", lab(label="category"))] == 2


def test_feature_absent_from_last_window_gets_no_gauges_but_keeps_its_histogram() -> None:
    src = synthetic_fleet(models=1, features=3, seed=5)
    snap = src.models[0]
    assert snap.last_window is not None
    feats = dict(snap.last_window.features)
    del feats["f00"]
    window = dataclasses.replace(snap.last_window, features=feats)
    src.models[0] = dataclasses.replace(snap, last_window=window)
    series, _ = scrape(src)
    names = {n for n, labels in series if ("feature", "f00") in labels}
    assert names == {"driftline_feature_quantile_rank_bucket", "driftline_feature_quantile_rank_count",
                     "driftline_feature_quantile_rank_sum"}


def test_no_sample_is_ever_nan() -> None:
    series, _ = scrape(rich_fleet())
    assert not any(math.isnan(v) for v in series.values())


def test_openmetrics_when_asked() -> None:
    registry, _ = new_registry(rich_fleet())
    body, ctype = render(registry, "application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in parse_openmetrics(text)}
    assert fams["driftline_proxy_request_duration_seconds"].unit == "seconds"
    assert fams["driftline_records"].type == "counter"
    body, ctype = render(registry, None)
    assert ctype.startswith("text/plain; version=0.0.4")


def test_fresh_registry_never_the_global_one() -> None:
    before = set(REGISTRY._collector_to_names)
    registry, collector = new_registry(rich_fleet())
    assert collector.describe() == []
    assert collector not in REGISTRY._collector_to_names
    assert set(REGISTRY._collector_to_names) == before
    assert registry is not REGISTRY


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_metrics_finds_nothing_to_fix() -> None:
    registry, _ = new_registry(rich_fleet())
    body, _ = render(registry, "text/plain")
    assert len(body.splitlines()) > 500
    proc = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "" and proc.stderr.decode().strip() == ""


# --- cardinality guard ---------------------------------------------------------------------


def flood_of_models(n: int, seed: int = 0) -> StaticSource:
    rng = np.random.default_rng(seed)
    snaps = [synthetic_snapshot(rng, f"m{i:05d}", features=3, categories=3) for i in range(n)]
    return StaticSource(snaps, synthetic_stats(rng, [s.model_name for s in snaps]))


def test_model_flood_is_capped_and_sums_are_kept() -> None:
    src = flood_of_models(300)
    limits = CardinalityLimits(max_models=5)
    collector = DriftlineCollector(src, limits=limits)
    series, _ = scrape(src, collector=collector)
    models = {dict(labels).get("model_name") for _, labels in series} - {None, ""}
    assert models == {"m00000", "m00001", "m00002", "m00003", "m00004", OTHER}
    folded = src.models[5:]
    other = lab(model_name=OTHER, model_version=OTHER, endpoint=OTHER, source="proxy")
    assert series[("driftline_records_total", other)] == sum(s.records_by_source["proxy"] for s in folded)
    # Gauges of folded models cannot be summed: none exported.
    assert not any(n == "driftline_feature_psi" and ("model_name", OTHER) in labels for n, labels in series)
    assert series[("driftline_series_capped_total", lab(label="model_name"))] == 295
    # The same folds on the next scrape are not counted again.
    series2, _ = scrape(src, collector=collector)
    assert series2[("driftline_series_capped_total", lab(label="model_name"))] == 295
    # A flood of new names that sort first cannot displace admitted models; new folds count.
    rng = np.random.default_rng(9)
    src.models = [synthetic_snapshot(rng, f"a{i:05d}", features=3) for i in range(1000)] + src.models
    series3, _ = scrape(src, collector=collector)
    models3 = {dict(labels).get("model_name") for _, labels in series3} - {None, ""}
    assert models3 == models
    assert series3[("driftline_series_capped_total", lab(label="model_name"))] == 1295
    assert len(series3) <= len(series) + 5  # a few more drop-reason series for new names at most


def test_series_count_is_bounded_whatever_the_flood() -> None:
    limits = CardinalityLimits(max_models=3, max_features_per_model=4, max_categories_per_feature=3)
    small, _ = scrape(flood_of_models(3), limits)
    big, _ = scrape(flood_of_models(200), limits)
    # 200 models fold into 3 admitted plus one __other__ model whose series add up.
    per_model = len(small) / 3
    assert len(big) <= 4 * per_model + 20


def category_flood(n_categories: int, cap: int) -> tuple[Series, dict[str, int]]:
    rng = np.random.default_rng(n_categories)
    snap = synthetic_snapshot(rng, "m", features=5, categories=4)
    counts = {f"v{i}": int(c) for i, c in enumerate(rng.integers(1, 100, size=n_categories))}
    snap = dataclasses.replace(snap, categories={**snap.categories, "f04": counts},
                               reference_categories={})
    series, _ = scrape(StaticSource([snap], SidecarStats()),
                       CardinalityLimits(max_categories_per_feature=cap))
    return series, counts


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 400), cap=st.integers(1, 30))
def test_category_flood_is_capped_and_counts_are_conserved(n: int, cap: int) -> None:
    series, counts = category_flood(n, cap)
    got = {dict(labels)["category"]: v for (name, labels), v in series.items()
           if name == "driftline_feature_category_total" and ("feature", "f04") in labels}
    assert len(got) <= cap + 1
    assert sum(got.values()) == sum(counts.values())
    top = sorted(counts, key=lambda k: (-counts[k], k))[:cap]
    assert set(got) - {OTHER} == set(top)  # the busiest categories keep their own series
    capped = series.get(("driftline_series_capped_total", lab(label="category")), 0)
    assert capped == max(0, n - cap)


def test_guard_frees_slots_of_values_that_disappear() -> None:
    g = CardinalityGuard(CardinalityLimits())
    g.begin()
    assert g.resolve("feature", ("m",), ["a", "b", "c"], 2) == {"a": "a", "b": "b", "c": OTHER, OTHER: OTHER}
    g.end()
    g.begin()
    assert g.resolve("feature", ("m",), ["c", "b"], 2) == {"c": "c", "b": "b", OTHER: OTHER}
    assert g.end() == {"feature": 1}


def test_limits_reject_nonsense_at_setup() -> None:
    from driftline.errors import ConfigError

    with pytest.raises(ConfigError, match="max_models"):
        CardinalityLimits(max_models=0)


def test_mismatched_histogram_bounds_are_skipped_not_mixed() -> None:
    rng = np.random.default_rng(1)
    snap = synthetic_snapshot(rng, "m", features=2)
    bad = Histogram((0.5, 1.0), (1, 2, 3), 2.0, 6)
    snap = dataclasses.replace(snap, quantile_rank={**snap.quantile_rank, "f00": bad})
    series, _ = scrape(StaticSource([snap], SidecarStats()))
    assert not any(n.startswith("driftline_feature_quantile_rank") and ("feature", "f00") in labels
                   for n, labels in series)


@settings(max_examples=60, deadline=None)
@given(builds=st.lists(st.lists(st.sampled_from([f"v{i}" for i in range(30)]), max_size=30),
                       min_size=1, max_size=8),
       cap=st.integers(1, 10))
def test_guard_is_bounded_and_sticky(builds: list[list[str]], cap: int) -> None:
    g = CardinalityGuard()
    admitted_before: set[str] = set()
    folded_before: set[str] = set()
    expected_capped = 0
    for values in builds:
        g.begin()
        out = g.resolve("feature", ("m",), values, cap)
        capped = g.end().get("feature", 0)
        admitted = {v for v, o in out.items() if o == v and v != OTHER}
        folded = {v for v, o in out.items() if o == OTHER and v != OTHER}
        assert admitted | folded == set(values)
        assert len(admitted) == min(cap, len(set(values)))
        assert admitted_before & set(values) <= admitted  # present values keep their slot
        expected_capped += len(folded - folded_before)  # each new fold counted once
        assert capped == expected_capped
        admitted_before, folded_before = admitted, folded


def test_concurrent_scrapes_agree() -> None:
    import concurrent.futures

    src = flood_of_models(40)
    registry, _ = new_registry(src, limits=CardinalityLimits(max_models=10))
    first, _ = render(registry, "text/plain")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: render(registry, "text/plain")[0], range(8)))
    assert all(b == first for b in bodies)


def test_start_metrics_server_serves_both_formats_on_loopback() -> None:
    import urllib.request

    from driftline.exporters.prometheus import start_metrics_server

    src = rich_fleet()
    srv = start_metrics_server(src)
    try:
        assert srv.server.server_address[0] == "127.0.0.1" and srv.port > 0
        url = f"http://127.0.0.1:{srv.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            assert resp.read().decode().endswith("# EOF\n")
        expected, _ = scrape(src)
        served = {(s.name, frozenset(s.labels.items())): s.value
                  for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert served == expected
    finally:
        srv.stop()


def _reference_body(source: StaticSource, accept: str) -> bytes:
    """prometheus-client's own encoder over the same points (the independent reference)."""
    from prometheus_client.exposition import choose_encoder

    from driftline.exporters.points import build_points
    from driftline.exporters.prometheus import to_families

    class Families:
        def collect(self) -> list[object]:
            return to_families(build_points(source.snapshots(), source.sidecar_stats(),
                                            CardinalityGuard()))

    encoder, _ = choose_encoder(accept)
    return encoder(Families())  # type: ignore[arg-type]


@pytest.mark.parametrize("accept", [
    "text/plain",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",  # what Prometheus sends
])
def test_fast_exposition_is_byte_for_byte_prometheus_client(accept: str) -> None:
    src = rich_fleet()
    # label values that need escaping: a backslash, a quote and a newline in a category
    first = src.models[0]
    feat = next(iter(first.categories))
    weird = {**first.categories[feat], 'a"b\\c\nd': 3}
    src.models[0] = dataclasses.replace(first, categories={**first.categories, feat: weird})
    registry, _ = new_registry(src)
    body, _ = render(registry, accept)
    assert body == _reference_body(src, accept)
    assert render(registry, accept)[0] is body  # nothing changed: the same body, not rebuilt


def test_idle_scrape_reuses_the_body_and_new_data_rebuilds_it() -> None:
    src = rich_fleet()
    registry, collector = new_registry(src)
    first, _ = render(registry, "text/plain")
    again, _ = render(registry, "text/plain")
    assert again is first and collector._points.builds == 1
    src.models[1] = dataclasses.replace(src.models[1], windows_total=src.models[1].windows_total + 1)
    changed, _ = render(registry, "text/plain")
    assert collector._points.builds == 2 and changed != first
    assert changed == _reference_body(src, "text/plain")
    src.stats = dataclasses.replace(src.stats, queue_depth=src.stats.queue_depth + 7)
    assert render(registry, "text/plain")[0] != changed and collector._points.builds == 3


def test_a_scrape_after_one_models_data_rebuilds_and_formats_only_that_model() -> None:
    src = rich_fleet()
    registry, collector = new_registry(src)
    render(registry, "text/plain")
    cache, encoder = collector._points.cache, collector._encoder
    built, reused, blocks = cache.built, cache.reused, encoder.blocks_reused
    assert built == len(src.models) and reused == 0
    src.models[2] = dataclasses.replace(src.models[2], windows_total=src.models[2].windows_total + 1)
    body, _ = render(registry, "text/plain")
    assert body == _reference_body(src, "text/plain")
    assert cache.built - built == 1 and cache.reused - reused == len(src.models) - 1
    assert encoder.blocks_reused > blocks  # the other models' text was not formatted again


def _mutate(src: StaticSource, i: int, kind: str) -> None:
    m = src.models[i % len(src.models)]
    k = src.models.index(m)
    if kind == "window":
        src.models[k] = dataclasses.replace(m, windows_total=m.windows_total + 1,
                                            records_sampled=m.records_sampled + 100)
    elif kind == "category":  # a new category value: the label resolution of that feature changes
        feat = next(iter(m.categories))
        counts = {**m.categories[feat], f"new{m.windows_total}": 1_000 + i}
        src.models[k] = dataclasses.replace(m, categories={**m.categories, feat: counts},
                                            windows_total=m.windows_total + 1)
    elif kind == "histogram":  # counts past a million switch Go's number format
        f = next(iter(m.quantile_rank))
        h = m.quantile_rank[f]
        counts = [c + 999_990 for c in h.counts]
        src.models[k] = dataclasses.replace(
            m, quantile_rank={**m.quantile_rank, f: Histogram(h.bounds, tuple(counts), h.sum + 1.5,
                                                              sum(counts))})
    elif kind == "gone":  # a model leaves the sidecar
        if len(src.models) > 1:
            del src.models[k]
    elif kind == "same":  # an equal snapshot that is a new object
        src.models[k] = dataclasses.replace(m)
    else:
        src.stats = dataclasses.replace(src.stats, queue_depth=src.stats.queue_depth + 1)


@settings(max_examples=12, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(
    ["window", "category", "histogram", "gone", "same", "stats"])), min_size=1, max_size=5),
       fold=st.booleans())
def test_reused_points_and_text_equal_a_fresh_prometheus_client_encoding(
        steps: list[tuple[int, str]], fold: bool) -> None:
    """Scrapes after changes to some models, with and without folding (the cardinality caps),
    in both formats: every body equals prometheus-client's encoding of points built afresh
    (with a guard that saw the same builds, as the collector's did)."""
    from prometheus_client.exposition import choose_encoder

    from driftline.exporters.points import build_points
    from driftline.exporters.prometheus import to_families

    src = synthetic_fleet(models=6, features=5, categories=4, seed=9)
    limits = (CardinalityLimits(max_models=4, max_features_per_model=3, max_categories_per_feature=3)
              if fold else None)
    registry, _ = new_registry(src, limits=limits)
    ref_guard = CardinalityGuard(limits)

    def reference(accept: str) -> bytes:
        points = build_points(src.snapshots(), src.sidecar_stats(), ref_guard)

        class Families:
            def collect(self) -> list[object]:
                return to_families(points)  # type: ignore[return-value]

        encoder, _ = choose_encoder(accept)
        return encoder(Families())  # type: ignore[arg-type,no-any-return]

    accepts = ("text/plain", "application/openmetrics-text;version=1.0.0")
    assert render(registry, accepts[0])[0] == reference(accepts[0])
    for n, (i, kind) in enumerate(steps):
        _mutate(src, i, kind)
        accept = accepts[n % 2]
        assert render(registry, accept)[0] == reference(accept), (n, kind)


def test_count_string_is_go_formatting_of_the_count() -> None:
    from prometheus_client.utils import floatToGoString

    from driftline.exporters.text import count_string

    for n in (0, 1, 7, 999_999, 1_000_000, 1_234_567, 10**12, 2**53 + 1):
        assert count_string(n) == floatToGoString(n), n
    assert count_string(3.0) == floatToGoString(3.0)  # type: ignore[arg-type]


def test_requests_of_an_unconfigured_model_never_carry_an_empty_version() -> None:
    src = synthetic_fleet(models=1, features=2, seed=0)
    rs = src.stats.requests
    assert rs is not None
    counts = {**rs.counts, ("stranger", "", "default", "2xx"): 3}
    src.stats = dataclasses.replace(src.stats, requests=dataclasses.replace(rs, counts=counts))
    series, _ = scrape(src)
    key = ("driftline_model_requests_total",
           lab(model_name=OTHER, model_version=OTHER, endpoint="default", code="2xx"))
    assert series[key] == 3
    assert not [k for k in series if k[0].startswith("driftline_model_")
                and ("model_version", "") in k[1]]
