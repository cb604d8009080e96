"""Snapshots → metric points, once, for every exporter.

:func:`build_points` is the single place that decides which series exist and what they hold.
The Prometheus collector and the OTLP exporter only change the encoding of its result, which is
why both routes yield the same series names, label sets and values.

Rules applied here:

- Gauges describe ``last_window``. A statistic that is None or NaN (no data, or not defined for
  the feature type) is omitted: an absent sample is "unknown", a NaN sample would look like a
  value. Features absent from the last window get no gauges.
- Every label value passes the :class:`~driftline.exporters.cardinality.CardinalityGuard`.
  Counters and histograms of folded values add up under ``__other__`` (sums stay right);
  gauges of folded models, endpoints or features are omitted (a PSI cannot be summed), except
  the reference category share, which is additive and folds like the counts.
- Counters and histograms are cumulative since the monitor started (Prometheus semantics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from driftline import __version__
from driftline import catalogue as cat
from driftline.catalogue import MetricSpec
from driftline.engine.snapshot import Histogram, ModelSnapshot, RequestStats, SidecarStats
from driftline.exporters.cardinality import OTHER, CardinalityGuard

Labels = tuple[str, ...]


@dataclass
class HistogramPoint:
    """Per-bucket counts (``len(bounds) + 1`` entries, last one is +Inf), sum and count."""

    bounds: tuple[float, ...]
    counts: list[int]
    sum: float
    count: int

    def cumulative(self) -> list[int]:
        """Counts for Prometheus ``le`` buckets, +Inf last."""
        out, run = [], 0
        for c in self.counts:
            run += c
            out.append(run)
        return out


@dataclass
class MetricPoints:
    """The points of one catalogue metric, keyed by label values in ``spec.labels`` order."""

    spec: MetricSpec
    values: dict[Labels, float] = field(default_factory=dict)
    histograms: dict[Labels, HistogramPoint] = field(default_factory=dict)
    #: Per-snapshot parts whose series, in order, are exactly ``values`` / ``histograms``
    #: (empty when they are not): the text encoder reuses an unchanged part's lines whole.
    blocks: list[MetricPoints] = field(default_factory=list, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.values) + len(self.histograms)

    def set(self, labels: Labels, value: float | None) -> None:
        """Gauge: first value wins; None/NaN are omitted."""
        if value is None or math.isnan(value):
            return
        self.values.setdefault(labels, float(value))

    def add(self, labels: Labels, value: float) -> None:
        """Counter or additive gauge."""
        self.values[labels] = self.values.get(labels, 0.0) + float(value)

    def observe(self, labels: Labels, hist: Histogram) -> None:
        """Add a cumulative-since-start histogram; buckets must equal the catalogue's."""
        if self.spec.buckets is not None and tuple(hist.bounds) != self.spec.buckets:
            return
        if len(hist.counts) != len(hist.bounds) + 1:
            return
        # The count is the sum of the buckets, so +Inf always equals _count (both formats require it).
        counts = list(map(int, hist.counts))
        count = sum(counts)
        cur = self.histograms.get(labels)
        if cur is None:
            self.histograms[labels] = HistogramPoint(tuple(hist.bounds), counts, float(hist.sum),
                                                     count)
            return
        cur.counts = [a + b for a, b in zip(cur.counts, counts, strict=True)]
        cur.sum += float(hist.sum)
        cur.count += count


_FEATURE_GAUGES: tuple[tuple[MetricSpec, str], ...] = (
    (cat.FEATURE_PSI, "psi"),
    (cat.FEATURE_PSI_CORRECTED, "psi_corrected"),
    (cat.FEATURE_KS_STATISTIC, "ks_statistic"),
    (cat.FEATURE_KS_PVALUE, "ks_pvalue"),
    (cat.FEATURE_CHI2_PVALUE, "chi2_pvalue"),
    (cat.FEATURE_JENSEN_SHANNON, "jensen_shannon"),
    (cat.FEATURE_WASSERSTEIN, "wasserstein"),
    (cat.FEATURE_MISSING_RATIO, "missing_ratio"),
)


def _features_of(s: ModelSnapshot) -> list[str]:
    names: dict[str, None] = {}
    if s.last_window is not None:
        names.update(dict.fromkeys(s.last_window.features))
        names.update(dict.fromkeys(s.last_window.embeddings))
    for d in (s.quantile_rank, s.categories, s.reference_categories):
        names.update(dict.fromkeys(d))
    return list(names)


def _by_count(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda k: (-counts[k], k))


class _Resolved:
    """Folded label values of one snapshot."""

    def __init__(self, model: str, version: str, endpoint: str) -> None:
        self.model, self.version, self.endpoint = model, version, endpoint
        self.features: dict[str, str] = {}
        self.categories: dict[str, dict[str, str]] = {}

    @property
    def key(self) -> Labels:
        return (self.model, self.version, self.endpoint)

    @property
    def folded(self) -> bool:
        return OTHER in self.key


def _resolve_snapshots(snaps: list[ModelSnapshot], stats: SidecarStats,
                       guard: CardinalityGuard) -> tuple[list[_Resolved], dict[str, str],
                                                         dict[str, dict[str, str]],
                                                         dict[str, dict[str, str]]]:
    lim = guard.limits
    monitored = {s.model_name for s in snaps}
    snap_names = sorted(monitored)
    drop_names = sorted({m for m, _ in stats.dropped if m and m not in monitored})
    models = guard.resolve("model_name", (), [*snap_names, *drop_names], lim.max_models)
    versions: dict[str, dict[str, str]] = {}
    endpoints: dict[str, dict[str, str]] = {}
    feats: dict[str, dict[str, str]] = {}
    classes: dict[str, dict[str, str]] = {}
    signals: dict[str, dict[str, str]] = {}
    per_model: dict[str, list[ModelSnapshot]] = {}
    for s in snaps:
        if models[s.model_name] != OTHER:
            per_model.setdefault(s.model_name, []).append(s)
    for name, group in per_model.items():
        scope = (name,)
        versions[name] = guard.resolve("model_version", scope, sorted({s.model_version for s in group}),
                                       lim.max_versions_per_model)
        endpoints[name] = guard.resolve("endpoint", scope, sorted({s.endpoint for s in group}),
                                        lim.max_endpoints_per_model)
        fnames: dict[str, None] = {}
        for s in group:
            fnames.update(dict.fromkeys(_features_of(s)))
        feats[name] = guard.resolve("feature", scope, fnames, lim.max_features_per_model)
        class_counts: dict[str, int] = {}
        sig_names: dict[str, None] = {}
        for s in group:
            for k, v in s.prediction_classes.items():
                class_counts[k] = class_counts.get(k, 0) + v
            sig_names.update(dict.fromkeys(s.change_detections))
        classes[name] = guard.resolve("class", scope, _by_count(class_counts), lim.max_classes_per_model)
        plain = [g for g in sig_names if not g.startswith("feature:")]
        sig = guard.resolve("signal", scope, plain, lim.max_enum_values)
        for g in sig_names:
            if g.startswith("feature:"):
                f = feats[name].get(g.removeprefix("feature:"), OTHER)
                sig[g] = "feature:" + f
        signals[name] = sig
    resolved: list[_Resolved] = []
    for s in snaps:
        m = models[s.model_name]
        if m == OTHER:
            r = _Resolved(OTHER, OTHER, OTHER)
        else:
            r = _Resolved(m, versions[m][s.model_version], endpoints[m][s.endpoint])
        resolved.append(r)
    # Categories per (model, feature), ranked by count over the model's snapshots.
    cat_counts: dict[tuple[str, str], dict[str, int]] = {}
    for s in snaps:
        if models[s.model_name] == OTHER:
            continue
        for f, counts in s.categories.items():
            acc = cat_counts.setdefault((s.model_name, f), {})
            for c, n in counts.items():
                acc[c] = acc.get(c, 0) + n
        for f, shares in s.reference_categories.items():
            acc = cat_counts.setdefault((s.model_name, f), {})
            for c in shares:
                acc.setdefault(c, 0)
    cat_maps: dict[tuple[str, str], dict[str, str]] = {}
    for (name, f), counts in cat_counts.items():
        if feats[name].get(f, OTHER) == OTHER:
            cat_maps[(name, f)] = {c: OTHER for c in counts}
        else:
            cat_maps[(name, f)] = guard.resolve("category", (name, f), _by_count(counts),
                                                lim.max_categories_per_feature)
    for s, r in zip(snaps, resolved, strict=True):
        if r.model == OTHER:
            r.features = {f: OTHER for f in _features_of(s)}
            r.categories = {f: {c: OTHER for c in counts} for f, counts in s.categories.items()}
            continue
        r.features = feats[s.model_name]
        fset = set(s.categories) | set(s.reference_categories)
        r.categories = {f: cat_maps[(s.model_name, f)] for f in fset}
    return resolved, models, classes, signals


def build_points(snapshots: Iterable[ModelSnapshot], stats: SidecarStats,
                 guard: CardinalityGuard, version: str = __version__,
                 cache: PointsCache | None = None) -> list[MetricPoints]:
    """All non-empty metrics of the catalogue, in catalogue order, for the current state.

    With a ``cache`` (one per exporter, kept between builds) the series of a snapshot that is
    the very object of the previous build, with the same label resolution, are reused instead
    of being built again: after one model's data, only that model's points are rebuilt."""
    snaps = list(snapshots)
    out = {spec.name: MetricPoints(spec) for spec in cat.ALL}
    guard.begin()
    try:
        _fill(out, snaps, stats, guard, version, cache)
    finally:
        capped = guard.end()
    series_capped = out[cat.SERIES_CAPPED.name]
    for label, n in {**stats.series_capped}.items():
        series_capped.add((label,), n)
    for label, n in capped.items():
        series_capped.add((label,), n)
    for pts in out.values():
        # blocks describe the series only when nothing else was added beside them (a folded
        # model's series, or two endpoints' one build_info series); else the encoder uses values
        if pts.blocks and sum(len(b) for b in pts.blocks) != len(pts):
            pts.blocks = []
    return [p for p in out.values() if len(p)]


class PointsCache:
    """Each unfolded snapshot's points from the previous build, with what they were built from.

    Keyed by the snapshot's (model, version, endpoint); an entry is reused only when the
    snapshot is the same object (a monitor hands out one snapshot until its state changes) and
    every label resolution it used is equal, so a reused entry equals a rebuilt one. Only the
    snapshots of the latest build are kept. Not thread-safe: use it under the exporter's lock.
    """

    def __init__(self) -> None:
        self.entries: dict[Labels, tuple[ModelSnapshot, tuple[object, ...],
                                         dict[str, MetricPoints]]] = {}
        self.reused = 0
        self.built = 0


class PointsBuilder:
    """:func:`build_points` for one exporter, kept between its scrapes or exports.

    When every snapshot is the very object of the previous build (a monitor hands out one
    snapshot until its state changes) and the sidecar stats are equal, the previous points are
    kept as they are: nothing is rebuilt. They are a pure function of those inputs and of the
    guard's state, which the same inputs leave unchanged. Otherwise only the models whose
    snapshot changed are rebuilt (:class:`PointsCache`). Not thread-safe: use it under the
    exporter's own lock (never one the monitors take)."""

    def __init__(self, guard: CardinalityGuard) -> None:
        self.guard = guard
        self.cache = PointsCache()
        self.points: list[MetricPoints] = []
        self.builds = 0  # how many updates built points (the others kept the previous ones)
        self._last: tuple[list[ModelSnapshot], SidecarStats] | None = None

    def update(self, snapshots: Iterable[ModelSnapshot], stats: SidecarStats) -> bool:
        """Make :attr:`points` describe these inputs; True when they had to be built."""
        snaps = list(snapshots)
        last = self._last
        if (last is not None and len(last[0]) == len(snaps)
                and all(a is b for a, b in zip(last[0], snaps, strict=True)) and last[1] == stats):
            return False
        self.points = build_points(snaps, stats, self.guard, cache=self.cache)
        self._last = (snaps, stats)
        self.builds += 1
        return True


def _fill(out: dict[str, MetricPoints], snaps: list[ModelSnapshot], stats: SidecarStats,
          guard: CardinalityGuard, version: str, cache: PointsCache | None = None) -> None:
    lim = guard.limits
    resolved, models, classes, signals = _resolve_snapshots(snaps, stats, guard)
    sources = guard.resolve("source", (), sorted({k for s in snaps for k in s.records_by_source}),
                            lim.max_enum_values)
    matched = guard.resolve("matched", (), sorted({k for s in snaps for k in s.labels}), lim.max_enum_values)

    def p(spec: MetricSpec) -> MetricPoints:
        return out[spec.name]

    entries: dict[Labels, tuple[ModelSnapshot, tuple[object, ...], dict[str, MetricPoints]]] = {}
    old = cache.entries if cache is not None else {}
    for s, r in zip(snaps, resolved, strict=True):
        cls, sig = classes.get(r.model, {}), signals.get(r.model, {})
        if r.folded:  # its counters add up with other folded snapshots' under __other__
            _snapshot_points(p, s, r, sources, matched, cls, sig, version)
            continue
        deps = (r.features, r.categories, sources, matched, cls, sig, version)
        prev = old.get(r.key)
        if prev is not None and prev[0] is s and prev[1] == deps:
            frag = prev[2]
            if cache is not None:
                cache.reused += 1
        else:
            frag = {}

            def fp(spec: MetricSpec, frag: dict[str, MetricPoints] = frag) -> MetricPoints:
                got = frag.get(spec.name)
                if got is None:
                    got = frag[spec.name] = MetricPoints(spec)
                return got

            _snapshot_points(fp, s, r, sources, matched, cls, sig, version)
            if cache is not None:
                cache.built += 1
        entries[r.key] = (s, deps, frag)
        for name, pts in frag.items():
            o = out[name]
            o.values.update(pts.values)
            o.histograms.update(pts.histograms)
            o.blocks.append(pts)
    if cache is not None:
        cache.entries = entries

    reasons = guard.resolve("reason", (), sorted({r for _, r in stats.dropped}), lim.max_drop_reasons)
    for (m, reason), n in stats.dropped.items():
        if m:
            p(cat.RECORDS_DROPPED).add((models.get(m, OTHER), reasons[reason]), n)
        else:  # no model to name: a sidecar-level counter, never model_name=""
            p(cat.UNATTRIBUTED_DROPS).add((reasons[reason],), n)
    codes = guard.resolve("code", (), sorted(stats.proxy_latency), lim.max_enum_values)
    for code, hist in stats.proxy_latency.items():
        p(cat.PROXY_DURATION).observe((codes[code],), hist)
    kinds = guard.resolve("kind", (), sorted(stats.proxy_errors), lim.max_enum_values)
    for kind, n in stats.proxy_errors.items():
        p(cat.PROXY_UPSTREAM_ERRORS).add((kinds[kind],), n)
    if stats.proxy_tunnelled is not None:
        p(cat.PROXY_TUNNELLED).add((), stats.proxy_tunnelled)
    if stats.proxy_tee_errors is not None:
        p(cat.PROXY_TEE_ERRORS).add((), stats.proxy_tee_errors)
    if stats.requests is not None:
        _requests(p, stats.requests, snaps, models, guard)
    exporters = guard.resolve("exporter", (), sorted(stats.export_errors), lim.max_enum_values)
    for name, n in stats.export_errors.items():
        p(cat.EXPORT_ERRORS).add((exporters[name],), n)
    p(cat.QUEUE_DEPTH).set((), stats.queue_depth)
    p(cat.QUEUE_CAPACITY).set((), stats.queue_capacity)


def _snapshot_points(p: Callable[[MetricSpec], MetricPoints], s: ModelSnapshot, r: _Resolved,
                     sources: Mapping[str, str], matched: Mapping[str, str],
                     cls: Mapping[str, str], sig: Mapping[str, str], version: str) -> None:
    """One snapshot's series into ``p(spec)``: counters and histograms, then (unfolded only)
    its gauges."""
    key = r.key
    for src, n in s.records_by_source.items():
        p(cat.RECORDS).add((*key, sources[src]), n)
    p(cat.RECORDS_SAMPLED).add(key, s.records_sampled)
    p(cat.WINDOWS).add(key, s.windows_total)
    for m, n in s.labels.items():
        p(cat.LABELS).add((*key, matched[m]), n)
    for c, n in s.prediction_classes.items():
        p(cat.PREDICTION_CLASS).add((*key, cls.get(c, OTHER)), n)
    for g, n in s.change_detections.items():
        p(cat.CHANGE_DETECTIONS).add((*key, sig.get(g, OTHER)), n)
    for g, began in s.change_points.items():
        p(cat.CHANGE_POINT_TIME).set((*key, sig.get(g, OTHER)), began)
    if s.prediction_confidence is not None:
        p(cat.PREDICTION_CONFIDENCE).observe(key, s.prediction_confidence)
    for f, hist in s.quantile_rank.items():
        p(cat.FEATURE_QUANTILE_RANK).observe((*key, r.features.get(f, OTHER)), hist)
    for f, counts in s.categories.items():
        fl = r.features.get(f, OTHER)
        cmap = r.categories.get(f, {})
        for c, n in counts.items():
            p(cat.FEATURE_CATEGORY).add((*key, fl, cmap.get(c, OTHER)), n)
    if r.folded:
        return  # gauges cannot be summed across folded models
    p(cat.BUILD_INFO).set((version, r.model, r.version, s.baseline_id, s.baseline_source),
                          1.0)
    p(cat.REFERENCE_ACCURACY).set(key, s.reference_accuracy)
    p(cat.ESTIMATED_ACCURACY).set(key, s.estimated_accuracy)
    p(cat.ACCURACY).set(key, s.accuracy)
    for spec, values in ((cat.ESTIMATED_PERFORMANCE, s.estimated_performance),
                         (cat.PERFORMANCE, s.performance),
                         (cat.REFERENCE_PERFORMANCE, s.reference_performance)):
        for metric, v in values.items():
            if metric in cat.PERFORMANCE_METRICS:  # a fixed set: bounded label values
                p(spec).set((*key, metric), v)
    for f, shares in s.reference_categories.items():
        fl = r.features.get(f, OTHER)
        if fl == OTHER:
            continue
        cmap = r.categories.get(f, {})
        for c, share in shares.items():
            if not math.isnan(share):
                p(cat.FEATURE_REFERENCE_CATEGORY_RATIO).add((*key, fl, cmap.get(c, OTHER)), share)
    w = s.last_window
    end = s.last_window_end if s.last_window_end is not None else (w.end if w else None)
    p(cat.WINDOW_END).set(key, end)
    if w is None:
        return
    p(cat.WINDOW_RECORDS).set(key, w.records)
    if w.prediction is not None:
        p(cat.PREDICTION_PSI).set(key, w.prediction.psi)
    mv = w.multivariate
    if mv is not None and mv.n:
        p(cat.MULTIVARIATE_ERROR).set(key, mv.reconstruction_error)
        p(cat.MULTIVARIATE_UPPER).set(key, mv.upper_threshold)
        p(cat.MULTIVARIATE_LOWER).set(key, mv.lower_threshold)
        p(cat.MULTIVARIATE_DRIFTED).set(key, 1.0 if mv.drifted else 0.0)
    for f, fd in w.features.items():
        fl = r.features.get(f, OTHER)
        if fl == OTHER:
            continue
        fkey = (*key, fl)
        for spec, attr in _FEATURE_GAUGES:
            p(spec).set(fkey, getattr(fd, attr))
        p(cat.FEATURE_DRIFTED).set(fkey, 1.0 if fd.drifted else 0.0)
    for f, ed in w.embeddings.items():
        fl = r.features.get(f, OTHER)
        if fl == OTHER:
            continue
        fkey = (*key, fl)
        p(cat.EMBEDDING_MMD).set(fkey, ed.mmd)
        p(cat.EMBEDDING_MMD_PVALUE).set(fkey, ed.mmd_pvalue)
        p(cat.EMBEDDING_COSINE).set(fkey, ed.cosine_distance)
        p(cat.FEATURE_MISSING_RATIO).set(fkey, ed.missing_ratio)
        p(cat.FEATURE_DRIFTED).set(fkey, 1.0 if ed.drifted else 0.0)


def _requests(p: Callable[[MetricSpec], MetricPoints], rs: RequestStats, snaps: list[ModelSnapshot],
              models: Mapping[str, str], guard: CardinalityGuard) -> None:
    """Service-health series: only configured models keep their name (the rest fold into
    ``__other__``), versions and endpoints capped per model, code classes an enumeration."""
    lim = guard.limits
    configured = {s.model_name: s.model_version for s in snaps}
    by_model: dict[str, list[tuple[str, str, str, int]]] = {}
    for (m, v, e, code), n in rs.counts.items():
        # an unconfigured model's request without a version in its path: "__other__", never ""
        by_model.setdefault(models.get(m, OTHER), []).append(
            (v or configured.get(m, "") or OTHER, e, code, n))
    codes = guard.resolve("code", ("requests",), sorted({c for _, _, _, c in rs.counts}),
                          lim.max_enum_values)
    endpoints_of: dict[str, dict[str, str]] = {}
    for m, rows in by_model.items():
        vers = guard.resolve("request_model_version", (m,), sorted({v for v, _, _, _ in rows}),
                             lim.max_versions_per_model)
        eps = guard.resolve("request_endpoint", (m,),
                            sorted({e for _, e, _, _ in rows} | {e for mm, e in rs.latency
                                                                 if models.get(mm, OTHER) == m}),
                            lim.max_endpoints_per_model)
        endpoints_of[m] = eps
        for v, e, code, n in rows:
            p(cat.MODEL_REQUESTS).add((m, vers[v], eps[e], codes[code]), n)
    for (m, e), hist in rs.latency.items():
        ml = models.get(m, OTHER)
        p(cat.MODEL_REQUEST_DURATION).observe((ml, endpoints_of.get(ml, {}).get(e, OTHER)), hist)
    for spec, table in ((cat.MODEL_REQUEST_SIZE, rs.request_size),
                        (cat.MODEL_RESPONSE_SIZE, rs.response_size)):
        for m, hist in table.items():
            p(spec).observe((models.get(m, OTHER),), hist)

