"""A static SnapshotSource and a synthetic fleet, for tests, benchmarks and exporter demos.

:class:`StaticSource` serves fixed snapshots (e.g. to export a ``driftline analyze`` result, or
to test a dashboard); :func:`synthetic_fleet` makes a realistic one: several models, numeric and
categorical features, histograms with plausible counts, some statistics missing (NaN/None).

>>> src = synthetic_fleet(models=2, features=4, seed=1)
>>> [s.model_name for s in src.snapshots()]
['model-0', 'model-1']
"""

from __future__ import annotations

import numpy as np

from driftline.catalogue import CONFIDENCE_BUCKETS, LATENCY_BUCKETS, QUANTILE_RANK_BUCKETS, SIZE_BUCKETS
from driftline.engine.snapshot import (
    EmbeddingDrift,
    FeatureDrift,
    Histogram,
    ModelSnapshot,
    MultivariateDrift,
    Performance,
    PredictionDrift,
    RequestStats,
    SidecarStats,
    SnapshotSource,
    WindowReport,
)


class StaticSource(SnapshotSource):
    """A SnapshotSource over fixed values; assign ``models``/``stats`` to change what it serves."""

    def __init__(self, models: list[ModelSnapshot], stats: SidecarStats | None = None) -> None:
        self.models = list(models)
        self.stats = stats if stats is not None else SidecarStats()

    def snapshots(self) -> list[ModelSnapshot]:
        return list(self.models)

    def sidecar_stats(self) -> SidecarStats:
        return self.stats


def _hist(rng: np.random.Generator, bounds: tuple[float, ...], n: int, low: float, high: float,
          ) -> Histogram:
    values = rng.uniform(low, high, size=n)
    idx = np.searchsorted(np.asarray(bounds), values, side="left")
    counts = np.bincount(idx, minlength=len(bounds) + 1)
    return Histogram(bounds, tuple(int(c) for c in counts), float(values.sum()), n)


def synthetic_snapshot(rng: np.random.Generator, name: str, *, version: str = "v1",
                       endpoint: str = "default", features: int = 25, categorical_every: int = 5,
                       categories: int = 8, classes: int = 3, window: bool = True) -> ModelSnapshot:
    """One model: every ``categorical_every``-th feature is categorical, the rest numeric."""
    fdrift: dict[str, FeatureDrift] = {}
    qrank: dict[str, Histogram] = {}
    cats: dict[str, dict[str, int]] = {}
    refcats: dict[str, dict[str, float]] = {}
    for i in range(features):
        fname = f"f{i:02d}"
        psi = float(rng.gamma(1.0, 0.05))
        if i % categorical_every == categorical_every - 1:
            counts = rng.integers(1, 500, size=categories)
            names = [f"c{j}" for j in range(categories - 1)] + ["__other__"]
            cats[fname] = {c: int(n) for c, n in zip(names, counts, strict=True)}
            shares = rng.dirichlet(np.ones(categories))
            refcats[fname] = {c: float(s) for c, s in zip(names, shares, strict=True)}
            fdrift[fname] = FeatureDrift(fname, "categorical", psi, float(rng.uniform(0, 0.3)),
                                         float(rng.uniform(0, 0.05)), 1000, 3, psi > 0.25,
                                         chi2_statistic=float(rng.gamma(2.0, 3.0)),
                                         chi2_pvalue=float(rng.uniform()),
                                         psi_corrected=max(0.0, psi - 0.02))
        else:
            qrank[fname] = _hist(rng, QUANTILE_RANK_BUCKETS, int(rng.integers(100, 5000)), 0.0, 1.0)
            pval = float("nan") if i == 0 else float(rng.uniform())
            fdrift[fname] = FeatureDrift(fname, "numeric", psi, float(rng.uniform(0, 0.3)),
                                         float(rng.uniform(0, 0.05)), 1000, 1, psi > 0.25,
                                         ks_statistic=float(rng.uniform(0, 0.2)), ks_pvalue=pval,
                                         wasserstein=float(rng.gamma(1.0, 0.1)),
                                         psi_corrected=max(0.0, psi - 0.01))
    class_names = [str(c) for c in range(classes)]
    pred = PredictionDrift(float(rng.gamma(1.0, 0.05)), False, 1000,
                           {c: 1.0 / classes for c in class_names}, 0.8, 0.4)
    est = float(rng.uniform(0.7, 0.95))
    last = None
    if window:
        err = float(rng.gamma(4.0, 0.2))
        mv = MultivariateDrift(err, 0.5, 1.2, not 0.5 <= err <= 1.2, 1000)
        last = WindowReport(7, 1000, 1.7e9, 1.7e9 + 60.0, fdrift, pred,
                            Performance(est, None, 0, 0.91), any(f.drifted for f in fdrift.values()),
                            multivariate=mv,
                            embeddings={"embedding": EmbeddingDrift(
                                "embedding", float(rng.gamma(1.0, 0.01)), float(rng.uniform()),
                                float(rng.gamma(1.0, 0.02)), False, 990, 10, 250, 500)})
    return ModelSnapshot(
        model_name=name, model_version=version, endpoint=endpoint, baseline_id=f"{name}-baseline",
        last_window=last, windows_total=8 if window else 0,
        records_by_source={"proxy": 8000, "sdk": 123},
        records_sampled=8123, quantile_rank=qrank, categories=cats, reference_categories=refcats,
        prediction_confidence=_hist(rng, CONFIDENCE_BUCKETS, 8000, 0.34, 1.0),
        prediction_classes={c: int(rng.integers(100, 3000)) for c in class_names},
        labels={"true": 40, "false": 2}, change_detections={"confidence": 1, "error": 0},
        change_points={"confidence": 1.7e9 - 600.0},
        reference_accuracy=0.91, accuracy=None, estimated_accuracy=est if window else None,
        last_window_end=1.7e9 + 60.0 if window else None,
        estimated_performance={"accuracy": est, "f1": est - 0.02, "roc_auc": est + 0.03}
        if window else {},
        performance={"accuracy": 0.88, "f1": 0.86} if window else {},
        reference_performance={"accuracy": 0.91, "f1": 0.9, "roc_auc": 0.95},
    )


def synthetic_stats(rng: np.random.Generator, model_names: list[str]) -> SidecarStats:
    dropped = {(m, "queue_full"): int(rng.integers(0, 10)) for m in model_names}
    dropped[("", "parse_error")] = 3
    return SidecarStats(
        queue_depth=17, queue_capacity=10000, dropped=dropped,
        proxy_latency={code: _hist(rng, LATENCY_BUCKETS, 5000, 0.0002, 0.2) for code in ("2xx", "5xx")},
        series_capped={}, export_errors={"otlp": 0},
        requests=RequestStats(
            counts={(m, "", "default", code): int(rng.integers(1, 5000))
                    for m in model_names for code in ("2xx", "4xx", "5xx")},
            latency={(m, "default"): _hist(rng, LATENCY_BUCKETS, 5000, 0.0005, 0.3)
                     for m in model_names},
            request_size={m: _hist(rng, SIZE_BUCKETS, 5000, 300.0, 60000.0) for m in model_names},
            response_size={m: _hist(rng, SIZE_BUCKETS, 5000, 100.0, 2000.0) for m in model_names}),
    )


def synthetic_fleet(models: int = 10, features: int = 25, *, categories: int = 8,
                    seed: int = 0) -> StaticSource:
    """``models`` models of ``features`` features each; the last model has no window yet."""
    rng = np.random.default_rng(seed)
    names = [f"model-{i}" for i in range(models)]
    snaps = [synthetic_snapshot(rng, n, features=features, categories=categories,
                                window=(i < models - 1 or models == 1))
             for i, n in enumerate(names)]
    return StaticSource(snaps, synthetic_stats(rng, names))
