"""Cost of one ``GET /metrics`` of a live monitor, with and without new data since the last one.

A real profile is built (``driftline baseline build``'s code path) from 50,000 generated rows of
25, 100 and 400 numeric features (default summary size, so the baseline is as large as a user's),
a :class:`~driftline.engine.monitor.Monitor` is fed 100-record batches as the sidecar would, and
the Prometheus text exposition is rendered through the same collector the sidecar registers.

* "idle": nothing arrived since the previous scrape (the snapshot is reused);
* "after data": one 100-record batch arrived before the scrape and the worker's tick (every
  second in the sidecar) counted it, so the snapshot and the points are rebuilt — the case
  Prometheus sees every scrape on a serving model; "… still pending" is the same when the
  batch came less than a tick before the scrape: the scrape serves the snapshot of the last
  tick and counts nothing (``Monitor.scrape_snapshot``); the tick then counts the batch on the
  worker, timed as "tick counting 100 records".

Then 50 models × 25 features in one sidecar (its own process, for its RSS): ingest rate,
scrape cost idle and after one model's data, RSS.

Also printed: how long the scrape holds the monitor lock (what a detector would wait for), and
the cost per 1,000 series so widths compare. Each scrape figure is the min of its runs, wall and,
in brackets, the process's CPU time (``time.process_time``), which a loaded machine inflates less.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
        return [self.monitor.scrape_snapshot()]  # what the sidecar's source serves

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


def _lock_hold_ms(monitor: Monitor, batch: RecordBatch, *, ticked: bool) -> float:
    """Median of 20 ``scrape_snapshot()`` calls after new data: how long a scrape holds the
    monitor lock (what a concurrent detector update could wait for). ``ticked``: the worker's
    tick counted the pending records first, as it does every second in the sidecar."""
    times = []
    for _ in range(20):
        monitor.observe(batch)
        if ticked:
            monitor.tick()
        t = time.perf_counter()
        monitor.scrape_snapshot()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def _tick_ms(monitor: Monitor, batch: RecordBatch) -> tuple[float, float]:
    """Median wall and CPU ms of the worker's tick after one batch: counting it and building
    the snapshot it publishes (the work a scrape no longer does)."""
    wall, cpu = [], []
    for _ in range(20):
        monitor.observe(batch)
        t, c = time.perf_counter(), time.process_time()
        monitor.tick()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)) * 1000, float(np.median(cpu)) * 1000


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

    def best(with_data: bool, ticked: bool = True, repeat: int = 15) -> tuple[float, float]:
        out = []
        for _ in range(repeat):
            if with_data:
                monitor.observe(batch)
                if ticked:
                    monitor.tick()
            out.append(_timed(lambda: render(registry, "text/plain")))
        return _mins(out)

    idle = best(False)
    fresh = best(True)
    pending = best(True, ticked=False)
    hold = _lock_hold_ms(monitor, batch, ticked=True)
    hold_pending = _lock_hold_ms(monitor, batch, ticked=False)
    tick_wall, tick_cpu = _tick_ms(monitor, batch)
    print(f"{features} features: {series} series, baseline built in {build_s:.1f} s, "
          f"id hashed once in {id_ms:.0f} ms")
    for label, ms in (("scrape, idle", idle), ("scrape, after data", fresh),
                      ("  … 100 records still pending", pending)):
        _print_scrape(label, ms, series)
    print(f"  {'monitor lock held by a scrape':<30} {hold:8.2f} ms  "
          f"(median of 20; {hold_pending:.2f} ms with 100 records pending)")
    print(f"  {'tick counting 100 records':<30} {tick_wall:8.2f} ms  (CPU {tick_cpu:.2f} ms, median of "
          "20; on the worker, once a second)")


def many_models(models: int = 50, trace: bool = False) -> None:
    """One sidecar with ``models`` models of 25 features (20 numeric, 5 categorical): ingest
    rate, scrape cost and the process's RSS (run in its own process: ``--many``).

    The records are generated, encoded and sent one 500-record body at a time and dropped,
    so that the RSS after them is the sidecar's own state (windows, counters, the id store of
    the feedback join) and not the benchmark's input, which for 100 000 records as dicts and
    bodies held ≈ 400 MiB (the figure this benchmark printed before). ``--trace`` adds the
    top allocation sites (tracemalloc) of the monitors and of the records. Every body holds
    the same 500 generated rows (bench_ingest's), under distinct ids."""
    import dataclasses
    import gc
    import tracemalloc

    import orjson

    from benchmarks.bench_ingest import profile, records
    from driftline.collectors.ingest import split_records
    from driftline.collectors.sidecar import Sidecar, engine_factory
    from driftline.config import LimitsConfig, ModelConfig
    from driftline.engine.monitor import DriftPolicy

    def rss_mib() -> float:
        gc.collect()
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    if trace:
        tracemalloc.start(1)
    base = rss_mib()
    prof = profile()
    marks = [tracemalloc.take_snapshot()] if trace else []
    profs = [dataclasses.replace(prof, model_name=f"m{i}") for i in range(models)]
    sc = Sidecar([(ModelConfig(p.model_name, baseline=None), p) for p in profs],  # type: ignore[arg-type]
                 limits=LimitsConfig(), monitor_factory=engine_factory(
                     WindowPolicy(records=1000, max_age=None), DriftPolicy()))
    ready = rss_mib()
    if trace:
        marks.append(tracemalloc.take_snapshot())
    per_model, size = 2000, 500
    n_bodies = per_model * models // size
    secs = 0.0
    first_body = b""
    for k in range(n_bodies):  # bodies of 500 records, one model each, in turn
        recs = records(size)
        for i, r in enumerate(recs):
            r["model_name"] = f"m{k % models}"
            r["id"] = f"r{k * size + i}"
        body = orjson.dumps(recs)
        del recs
        first_body = first_body or body
        t = time.perf_counter()
        sc.handle_ingest(split_records(body))
        secs += time.perf_counter() - t
    sc.tick()
    loaded = rss_mib()
    if trace:
        marks.append(tracemalloc.take_snapshot())
    registry, _ = new_registry(sc)
    body, _ = render(registry, "text/plain")
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    idle = _mins([_timed(lambda: render(registry, "text/plain")) for _ in range(15)])

    def after_data() -> tuple[float, float]:
        sc.handle_ingest(split_records(first_body))  # one body for one model, counted by a tick
        sc.tick()
        return _timed(lambda: render(registry, "text/plain"))

    fresh = _mins([after_data() for _ in range(10)])
    scraped = rss_mib()
    total = n_bodies * size
    print(f"{models} models × 25 features in one sidecar: {series} series, "
          f"{total:,} records ({per_model} per model, 2 windows each)")
    print(f"  ingest (served: windows of 1000, streams on) {total / secs:10,.0f} records/s")
    for label, ms in (("scrape, idle", idle), ("scrape, after data (1 model)", fresh)):
        _print_scrape(label, ms, series)
    print(f"  RSS: {base:.0f} MiB after imports, {ready:.0f} MiB with the {models} monitors, "
          f"{loaded:.0f} MiB after the records, {scraped:.0f} MiB after the scrapes")
    if trace:
        for label, a, b in (("the monitors", marks[0], marks[1]), ("the records", marks[1], marks[2])):
            diff = b.compare_to(a, "lineno")
            grown = sum(d.size_diff for d in diff)
            print(f"  traced allocations of {label}: {grown / 2**20:+.1f} MiB; top sites:")
            for d in diff[:8]:
                frame = d.traceback[0]
                where = "/".join(Path(frame.filename).parts[-2:])
                print(f"    {d.size_diff / 2**20:7.2f} MiB {d.count_diff:8d} blocks  {where}:{frame.lineno}")


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def _mins(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(w for w, _ in runs), min(c for _, c in runs)


def _print_scrape(label: str, ms: tuple[float, float], series: int) -> None:
    wall, cpu = ms
    print(f"  {label:<30} {wall:8.2f} ms ({cpu:6.2f} CPU)  ({wall / series * 1000:6.2f} ms per "
          f"1,000 series; {cpu / series * 1000:5.2f} CPU)")


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; min of 15 scrapes "
          "(10 for the 50 models after data)")
    if "--many" in sys.argv:
        many_models(trace="--trace" in sys.argv)
        return
    with tempfile.TemporaryDirectory() as d:
        for features in (25, 100, 400):
            run(features, Path(d))
    # the many-model sidecar in a process of its own, so its RSS is its own
    subprocess.run([sys.executable, "-m", "benchmarks.bench_scrape", "--many"], check=True)


if __name__ == "__main__":
    main()
