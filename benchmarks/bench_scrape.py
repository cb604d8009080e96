"""Cost of one ``GET /metrics`` of a live monitor, with and without new data since the last one.

A real profile is built (``driftline baseline build``'s code path) from 50,000 generated rows of
25, 100 and 400 numeric features (default summary size, so the baseline is as large as a user's),
a :class:`~driftline.engine.monitor.Monitor` is fed 100-record batches as the sidecar would, and
the Prometheus text exposition is rendered through the same collector the sidecar registers.

* "idle": nothing arrived since the previous scrape (the snapshot is reused);
* "after data": one 100-record batch arrived just before the scrape, so the snapshot is rebuilt
  (pending counters folded in, histograms copied) — the case Prometheus sees every scrape on a
  serving model.

Also printed: how long the scrape holds the monitor lock (what a detector would wait for), and
the cost per 1,000 series so widths compare.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.engine.snapshot import ModelSnapshot, SidecarStats, SnapshotSource
from driftline.exporters.prometheus import new_registry, render
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile

ROWS = 50_000


class _One(SnapshotSource):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def snapshots(self) -> list[ModelSnapshot]:
        return [self.monitor.snapshot()]

    def sidecar_stats(self) -> SidecarStats:
        return SidecarStats(queue_capacity=10_000)


def _profile(features: int, tmp: Path) -> BaselineProfile:
    rng = np.random.default_rng(features)
    cols = {f"f{i}": rng.normal(0, 1, ROWS) for i in range(features)}
    p = rng.random(ROWS)
    cols["p"] = p
    cols["y"] = (rng.random(ROWS) < p).astype(np.int64)
    path = tmp / f"ref{features}.parquet"
    pq.write_table(pa.table(cols), path)
    opts = BuildOptions(proba_binary="p", target="y", model_name="bench")
    return build_profile(discover([str(path)]), opts, progress=False)


def _batch(profile: BaselineProfile, rng: np.random.Generator, n: int = 100) -> RecordBatch:
    feats = {name: rng.normal(0.1, 1, n) for name in profile.features}
    p = rng.random(n)
    return RecordBatch(feats, None, np.column_stack([1 - p, p]), None, None, None, n=n)


def _lock_hold_ms(monitor: Monitor, batch: RecordBatch) -> float:
    """Worst time of 20 ``snapshot()`` calls after new data: the scrape's share of the monitor
    lock is at most this (what a concurrent detector update could wait for)."""
    worst = 0.0
    for _ in range(20):
        monitor.observe(batch)
        t = time.perf_counter()
        monitor.snapshot()
        worst = max(worst, time.perf_counter() - t)
    return worst * 1000


def run(features: int, tmp: Path) -> None:
    t = time.perf_counter()
    profile = _profile(features, tmp)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    _ = profile.id
    id_ms = (time.perf_counter() - t) * 1000
    monitor = Monitor(profile, window=WindowPolicy(records=1000, max_age=None))
    rng = np.random.default_rng(1)
    batch = _batch(profile, rng)
    for _ in range(30):
        monitor.observe(batch)
    registry, _ = new_registry(_One(monitor))
    body, _ = render(registry, "text/plain")
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

    def best(with_data: bool, repeat: int = 15) -> float:
        out = float("inf")
        for _ in range(repeat):
            if with_data:
                monitor.observe(batch)
            t = time.perf_counter()
            render(registry, "text/plain")
            out = min(out, time.perf_counter() - t)
        return out * 1000

    idle = best(False)
    fresh = best(True)
    hold = _lock_hold_ms(monitor, batch)
    print(f"{features} features: {series} series, baseline built in {build_s:.1f} s, "
          f"id hashed once in {id_ms:.0f} ms")
    print(f"  scrape, idle          {idle:8.2f} ms  ({idle / series * 1000:6.2f} ms per 1,000 series)")
    print(f"  scrape, after data    {fresh:8.2f} ms  ({fresh / series * 1000:6.2f} ms per 1,000 series)")
    print(f"  monitor lock held     {hold:8.2f} ms  (worst of 20 snapshot rebuilds)")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        for features in (25, 100, 400):
            run(features, Path(d))


if __name__ == "__main__":
    main()
