"""Ingest throughput of the sidecar: records/s from bytes on the wire into the detectors.

25 features per record (20 numeric, 5 categorical), a classifier with probabilities, windows
of 1000 records, 20,000 records per run (min of 3 runs). Each path is measured three ways:

* ``served``       as ``driftline serve`` runs it: windows close every 1000 records and the
                   per-record change streams (confidence; the error stream when labels join)
                   run (:class:`~driftline.detectors.change.ChangeDetector`);
* ``no streams``   the same without the change streams (``Monitor(streams=False)``);
* ``per record``   no stream and no window close (windows of 10⁹ records): only the per-record
                   work — decode, columns, counters — which is what the parser-speed target is
                   about; window close is then stated on its own, per feature.

Paths: ``orjson decode`` (bytes → Python objects, the floor); ``/ingest`` (decode + group +
columns (``to_batch``) + ``Monitor.observe``, bodies of 500 records); ``v2`` (OIP v2, one ``[100]`` FP64 or
BYTES tensor per feature, request + response, as the proxy and CloudEvents paths parse it); ``SDK log()`` (one
call per record, drained by the background thread); ``SDK log_batch`` (numpy columns of 500).
Then HTTP ``POST /ingest`` over keep-alive (client threads share the process's GIL), one
``GET /metrics``, what one window close costs per feature, and what a ``POST /ingest`` costs
when it is accepted and when a full queue refuses it (``--full-queue`` runs only that).
``--stages`` prints the CPU time of each stage of each path in each mode instead
(``--stages ingest|v2|sdk-log|sdk-log_batch``: only those paths);
``--window-close`` only the window close (``--window-close --profile``: by part, and the
top functions of a cProfile of ``compute_window`` at 1000 and 10 000 records);
``--labels`` only the CPU per joined label fed 1, 10 and 100 per call (also the last part of a
full run).

Every rate is the best (min) of its runs, by CPU time of the whole process
(``time.process_time``: the SDK's worker thread included) and by wall time; under load the CPU
figure is the one that holds. Each row also gives its CPU rate as a fraction of ``orjson decode``
alone on the same run (each body decoded and let go, as the sidecar does), the floor of the
JSON paths on this machine. A summary table closes the run, with the load average before and
after.

Run: ``python -m benchmarks ingest``.
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import orjson

from driftline.collectors.ingest import split_records
from driftline.collectors.payloads import ModelSchema, parse_v2
from driftline.collectors.service import App, HttpServer, ServiceThread
from driftline.collectors.sidecar import MonitorLike, Sidecar
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.profile.format import (
    BaselineProfile,
    CategoricalFeature,
    Columns,
    NumericFeature,
    OutputProfile,
)

K_NUM, K_CAT = 20, 5
K = K_NUM + K_CAT
NUMERIC = [f"f{i}" for i in range(K_NUM)]
CATEGORICAL = [f"c{i}" for i in range(K_CAT)]
FEATURES = NUMERIC + CATEGORICAL
CATS = ("a", "b", "c", "d")
N = 20_000
NO_CLOSE = 10**9

if TYPE_CHECKING:
    import driftline.sdk


def _numeric(name: str, v: np.ndarray) -> NumericFeature:
    v = np.sort(v)
    edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return NumericFeature(name, tuple(edges.tolist()), tuple((counts / len(v)).tolist()),
                          tuple(v.tolist()), True, len(v), 0.0, float(v[0]), float(v[-1]),
                          float(v.mean()), float(v.std()))


def profile() -> BaselineProfile:
    rng = np.random.default_rng(0)
    feats: dict[str, NumericFeature | CategoricalFeature] = {
        n: _numeric(n, rng.normal(size=5000)) for n in NUMERIC}
    for n in CATEGORICAL:
        feats[n] = CategoricalFeature(n, CATS, (0.4, 0.3, 0.2, 0.1, 0.0), 5000, 0.0)
    out = OutputProfile("classification", "pred", {"1": "p"}, ("0", "1"), "1",
                        CategoricalFeature("pred", ("0", "1"), (0.5, 0.5, 0.0), 5000, 0.0),
                        _numeric("confidence", rng.uniform(0.5, 1, 5000)), 0.9)
    return BaselineProfile("bench", "1", "", 5000, feats, Columns("pred", {"1": "p"}), out)


FAST_KS = DriftPolicy(exact_ks=False)
"""The decision these figures are for: ``drift.exact_ks: false``. The benchmark's references
have 5000 values, where the default exact KS count costs ≈ 2 ms more per numeric feature and
window each time a feature's D falls on a lattice step not counted before (the counts are kept:
printed by :func:`exact_stream`); a reference above 10 000 values costs the same either way."""


def sidecar(prof: BaselineProfile, *, window: int = 1000, streams: bool = True) -> Sidecar:
    def make(p: BaselineProfile, endpoint: str, cfg: ModelConfig) -> MonitorLike:
        return Monitor(p, endpoint=endpoint, window=WindowPolicy(records=window, max_age=None),
                       drift=FAST_KS, streams=streams)

    return Sidecar([(ModelConfig("bench", baseline=None), prof)],  # type: ignore[arg-type]
                   limits=LimitsConfig(), monitor_factory=make)


MODES = (("served", 1000, True), ("no streams", 1000, False), ("per record", NO_CLOSE, False))


RESULTS: dict[str, tuple[float, float]] = {}
"""label → (records/s by CPU time, records/s by wall time), for the closing summary."""
FLOOR = "orjson decode (bodies of 500)"


def rate(label: str, n_records: int, fn: Callable[[], object], repeat: int = 3,
         setup: Callable[[], object] | None = None) -> float:
    """Best of ``repeat`` runs of ``fn`` (``setup`` untimed before each); prints and records
    the CPU and wall rates; returns the CPU rate."""
    cpu = wall = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - t)
    r_cpu, r_wall = n_records / max(cpu, 1e-9), n_records / wall
    RESULTS[label] = (r_cpu, r_wall)
    floor = RESULTS.get(FLOOR)
    ratio = f"  {r_cpu / floor[0]:5.2f}× decode" if floor is not None and label != FLOOR else ""
    print(f"{label:<44} {r_cpu:>10,.0f} records/s CPU ({cpu / n_records * 1e6:6.2f} µs), "
          f"wall {r_wall:>10,.0f}/s{ratio}", flush=True)
    return r_cpu


def decode_each(bodies: list[bytes]) -> None:
    for b in bodies:
        orjson.loads(b)


def summary(load_before: float) -> None:
    """The served / no streams / per record table of every path, CPU rates and their
    fraction of orjson decode alone."""
    floor = RESULTS[FLOOR][0]
    print(f"\nrecords/s by CPU time (min of runs); × = fraction of orjson decode alone "
          f"({floor:,.0f}/s); load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores")
    print(f"{'path':<22}" + "".join(f"{m:>26}" for m, _, _ in MODES))
    for path, prefix in (("/ingest", "/ingest (decode→columns→observe), "),
                         ("v2", "v2 (parse→observe), "),
                         ("SDK log()", "SDK log() → observed, "),
                         ("SDK log_batch(500)", "SDK log_batch(500) → observed, ")):
        cells = []
        for mode, _, _ in MODES:
            got = RESULTS.get(prefix + mode)
            cells.append(f"{got[0]:>14,.0f} ({got[0] / floor:4.2f}×)" if got else f"{'—':>26}")
        print(f"{path:<22}" + "".join(f"{c:>26}" for c in cells))


def data(n: int = N) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n, K_NUM)), rng.choice(np.array(CATS), size=(n, K_CAT)),
            rng.uniform(size=n))


def records(n: int = N) -> list[dict[str, object]]:
    x, c, proba = data(n)
    return [{"model_name": "bench", "id": f"r{i}",
             "features": {**dict(zip(NUMERIC, row, strict=True)),
                          **dict(zip(CATEGORICAL, cats, strict=True))},
             "prediction": int(p > 0.5), "probabilities": [1 - p, p]}
            for i, (row, cats, p) in enumerate(zip(x.tolist(), c.tolist(), proba.tolist(),
                                                   strict=True))]


def workload(n: int = N) -> tuple[np.ndarray, np.ndarray, list[dict[str, object]], list[bytes]]:
    """Numeric features, class-1 probabilities, the /ingest records and their bodies (500 a
    body): the ingest fixtures of ``python -m benchmarks profile`` too."""
    x, _, proba = data(n)
    recs = records(n)
    return x, proba, recs, [orjson.dumps(recs[i:i + 500]) for i in range(0, n, 500)]


def ingest_bodies(n: int = N, per_body: int = 500) -> list[bytes]:
    recs = records(n)
    return [orjson.dumps(recs[i:i + per_body]) for i in range(0, n, per_body)]


def v2_pairs(n: int = N, per: int = 100) -> list[tuple[bytes, bytes]]:
    x, c, proba = data(n)
    out = []
    for i in range(0, n, per):
        xb, cb, pb = x[i:i + per], c[i:i + per], proba[i:i + per]
        inputs = [{"name": n, "shape": [per], "datatype": "FP64", "data": xb[:, j].tolist()}
                  for j, n in enumerate(NUMERIC)]
        inputs += [{"name": n, "shape": [per], "datatype": "BYTES", "data": cb[:, j].tolist()}
                   for j, n in enumerate(CATEGORICAL)]
        out.append((orjson.dumps({"id": f"q{i}", "inputs": inputs}),
            orjson.dumps({"outputs": [
                {"name": "predict", "shape": [per], "datatype": "INT64",
                 "data": (pb > 0.5).astype(int).tolist()},
                {"name": "predict_proba", "shape": [per, 2], "datatype": "FP64",
                 "data": np.column_stack([1 - pb, pb]).ravel().tolist()}]})))
    return out


def window_close(prof: BaselineProfile) -> None:
    """What closing one window costs: the whole 25-feature model at 1000 records, then per
    numeric and per categorical feature at 1000 and 10 000 records, against the benchmark's
    5000-value reference and (numeric) a 20 000-value summary of a 100 000-row reference.
    CPU time of the process (every thread: a 10k window computes on the feature pool) and wall
    time, each the min of 20 closes after a warm-up, minus the same batches into a window that
    does not close. The closes cycle through distinct windows of the same data (4 of 10k, 40
    of 1000 records): one window closed over and over lets the CPU's branch predictors learn
    its searches, which flatters the figure."""
    x, c, proba = data(40_000)
    cols: dict[str, np.ndarray] = {n: x[:, j] for j, n in enumerate(NUMERIC)}
    cols |= {n: c[:, j].astype(object) for j, n in enumerate(CATEGORICAL)}

    def best(mon: Monitor, batches: list[RecordBatch]) -> tuple[float, float]:
        mon.observe(batches[0])
        cpu = wall = float("inf")
        for i in range(20):
            b = batches[(i + 1) % len(batches)]
            t, p = time.perf_counter(), time.process_time()
            mon.observe(b)
            cpu, wall = min(cpu, time.process_time() - p), min(wall, time.perf_counter() - t)
        return cpu, wall

    def close_cost(p: BaselineProfile, batches: list[RecordBatch], records: int,
                   drift: DriftPolicy = FAST_KS) -> tuple[float, float]:
        closing = best(Monitor(p, window=WindowPolicy(records=records, max_age=None),
                               drift=drift, streams=False), batches)
        open_ = best(Monitor(p, window=WindowPolicy(records=NO_CLOSE, max_age=None),
                             drift=drift, streams=False), batches)
        return closing[0] - open_[0], closing[1] - open_[1]

    def window(names: list[str], at: int, records: int, outputs: bool) -> RecordBatch:
        rows = slice(at, at + records)
        if not outputs:
            return RecordBatch({n: cols[n][rows] for n in names}, None, None, None, None, None,
                               n=records)
        p = proba[rows]
        return RecordBatch({n: cols[n][rows] for n in names},
                           (p > 0.5).astype(int).astype(str).astype(object),
                           np.column_stack([1 - p, p]), None, None, None, n=records)

    def windows(names: list[str], records: int, outputs: bool = False) -> list[RecordBatch]:
        return [window(names, at, records, outputs) for at in range(0, len(x), records)]

    cpu, wall = close_cost(prof, windows(FEATURES, 1000, outputs=True), 1000)
    print(f"{'window close (1000 records, 25 features)':<60} {cpu * 1e3:8.2f} ms CPU "
          f"{wall * 1e3:8.2f} ms wall per window")
    exact_stream(prof)
    rng = np.random.default_rng(2)
    big = {n: dataclasses.replace(_numeric(n, rng.normal(size=20_000)), count=100_000)
           for n in NUMERIC}
    cases = (("numeric", NUMERIC, prof.features, "5000-value reference"),
             ("numeric", NUMERIC, big, "20k summary of 100k"),
             ("categorical", CATEGORICAL, prof.features, "4 categories"))
    for records in (1000, 10_000):
        for kind, names, feats, label in cases:
            sub = BaselineProfile("bench", "1", "", 5000, {n: feats[n] for n in names},
                                  Columns(), None)
            cpu, wall = close_cost(sub, windows(names, records), records)
            print(f"{f'  per {kind} feature, {records} records, {label}':<60} "
                  f"{cpu / len(names) * 1e3:8.3f} ms CPU {wall / len(names) * 1e3:8.3f} ms wall",
                  flush=True)


def exact_stream(prof: BaselineProfile, windows: int = 60) -> None:
    """The default exact KS on a stream of fresh 1000-record null windows (the same window
    again would find every p-value kept: ``detectors.ks._exact_lattice``): CPU ms per close
    of the first windows and of the last 20, with every kept count dropped first (after
    one window that imports scipy)."""
    from driftline.detectors import ks

    rng = np.random.default_rng(5)

    def fresh() -> RecordBatch:
        x, c = rng.normal(size=(1000, K_NUM)), rng.choice(np.array(CATS), size=(1000, K_CAT))
        p = rng.uniform(size=1000)
        return RecordBatch({**{n: x[:, j].copy() for j, n in enumerate(NUMERIC)},
                            **{n: c[:, j].astype(object) for j, n in enumerate(CATEGORICAL)}},
                           (p > 0.5).astype(int).astype(str).astype(object),
                           np.column_stack([1 - p, p]), n=1000)

    batches = [fresh() for _ in range(windows + 1)]
    mon = Monitor(prof, window=WindowPolicy(records=1000, max_age=None), drift=DriftPolicy(),
                  streams=False, cumulative=False)
    mon.observe(batches[0])
    ks._exact_lattice.cache_clear()
    spent = []
    for b in batches[1:]:
        t = time.process_time()
        mon.observe(b)
        spent.append((time.process_time() - t) * 1e3)
    info = ks._exact_lattice.cache_info()
    last = sorted(spent[-20:])
    print(f"{'  the same with exact KS (the default), fresh windows: first 5':<60} "
          f"{float(np.median(spent[:5])):8.2f} ms CPU (median)")
    print(f"{f'    windows {windows - 19}-{windows} (min / median)':<60} {last[0]:8.2f} / "
          f"{float(np.median(last)):.2f} ms CPU; {info.misses} of "
          f"{info.hits + info.misses} exact p-values counted, the others kept")


def window_profile(prof: BaselineProfile, top: int = 14) -> None:
    """cProfile of ``compute_window`` (the statistics of one window close, as the monitor calls
    it) for the 25-feature model at 1000 and 10 000 records, ``drift.exact_ks: false``: the top
    functions by own time, and where the window's time goes by part (CPU ms per window, min of
    20, without the profiler)."""
    import cProfile
    import pstats

    from driftline.engine import window_stats as ws

    ref = ws.ReferenceArrays(prof)
    x, c, proba = data(10_000)

    def cpu(fn: Callable[[], object]) -> float:
        fn()
        best = float("inf")
        for _ in range(20):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best * 1e3

    def one(records: int) -> None:
        feats: dict[str, np.ndarray] = {n: x[:records, j].copy() for j, n in enumerate(NUMERIC)}
        feats |= {n: c[:records, j].astype(object) for j, n in enumerate(CATEGORICAL)}
        pred = (proba[:records] > 0.5).astype(int).astype(str).astype(object)
        cols = ws.WindowColumns(records, feats, pred,
                                np.column_stack([1 - proba[:records], proba[:records]]),
                                None, None, None)
        labels = ws.predicted_labels(ref, cols)
        # the sidecar's monitor looks the categories up as records arrive (Monitor._with_codes)
        # and hands the codes to the window; without them the window looks them up
        coded = dataclasses.replace(
            cols, codes={n: ws.category_codes(feats[n], ref.categorical[n]) for n in CATEGORICAL},
            class_codes=ws.category_codes(pred, ref.class_ref))

        def bare() -> ws.WindowColumns:
            cols.codes = {}  # what a close looked up is kept there: drop it
            return cols

        parts = {
            "compute_window (all)": lambda: ws.compute_window(ref, bare(), index=0,
                                                              policy=FAST_KS, min_records=200),
            "  the same with the codes from arrival (the sidecar's)": lambda: ws.compute_window(
                ref, coded, index=0, policy=FAST_KS, min_records=200),
            f"  {K_NUM} numeric features (_numeric_part)": lambda: ws._numeric_part(
                ref, cols, list(range(K_NUM)), approximate=True),
            f"  {K_CAT} categorical features (_categorical_part)": lambda: ws._categorical_part(
                ref, bare(), list(CATEGORICAL)),
            "    the same with the codes from arrival": lambda: ws._categorical_part(
                ref, coded, list(CATEGORICAL)),
            "  prediction drift": lambda: ws._prediction_drift(ref, cols, labels, FAST_KS, 200),
            "  estimated performance": lambda: ws._performance(ref, cols, labels, (None, 0), {}),
        }
        print(f"\nwindow close of {records} records, CPU ms per window (min of 20), "
              f"load {os.getloadavg()[0]:.1f}")
        for label, fn in parts.items():
            print(f"  {label:<52} {cpu(fn):8.3f}")
        pr = cProfile.Profile()
        pooled, ws.PARALLEL_RECORDS = ws.PARALLEL_RECORDS, 10**9  # profile one thread's work
        pr.enable()
        for _ in range(20):
            parts["compute_window (all)"]()
        pr.disable()
        ws.PARALLEL_RECORDS = pooled
        print(f"cProfile of 20 closes of {records} records (on one thread), top {top} by own "
              "time:")
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(top)

    for records in (1000, 10_000):
        one(records)


def _step_costs(w: int, n: int, rng: np.random.Generator) -> dict[str, float]:
    """µs CPU of each step of one numeric feature's close, window ``w`` against reference ``n``
    (min of 50; the 20-feature steps are per feature)."""
    from driftline.catalogue import QUANTILE_RANK_BUCKETS
    from driftline.detectors.distances import jensen_shannon_many
    from driftline.detectors.ks import ks_pvalues_fast
    from driftline.detectors.psi import psi_many
    from driftline.engine import kernels, monitor, window_native

    ref = np.sort(rng.normal(size=n))
    x = rng.normal(size=w)
    s = np.sort(x)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    at = kernels.rank_right(ref, s)
    csum = kernels.centred_sums(ref)  # kept per feature by the monitor
    d = kernels._numeric_stats(ref, edges, x, csum)[1]
    props = np.full((K_NUM, 10), 0.1)
    counts = np.stack([kernels.bin_counts_sorted(s, edges)] * K_NUM)
    rr = kernels.RankReference.build(ref, np.asarray(QUANTILE_RANK_BUCKETS))
    k_stack = 7  # the monitor's stacks for 20 features: 7, 7, 6
    stack = kernels.ReferenceStack.build([ref] * k_stack, [edges] * k_stack)
    xs = np.stack([x] * k_stack)
    seen = rr.new_seen()
    # the ingest side's ranks as Monitor._count runs them: the block's numeric columns sorted
    # in one call, each then ranked (the kernel looked up once a block); fresh values each run,
    # as arriving values are (the same batch again lets the branch predictor learn it)
    ranks = window_native.rank_kernel()
    fresh = itertools.cycle([np.sort(rng.normal(size=w)) for _ in range(50)])
    blocks = itertools.cycle([list(rng.normal(size=(K_NUM, w))) for _ in range(4)])
    steps: dict[str, tuple[Callable[[], object], int]] = {
        "sort": (lambda: np.sort(x), 1),
        "bin counts (PSI bins)": (lambda: kernels.bin_counts_sorted(s, edges), 1),
        "rank merge (#ref <= v)": (lambda: kernels.rank_right(ref, s), 1),
        "#ref < v from the merge": (lambda: kernels._left_from_right(ref, s, at), 1),
        "Wasserstein": (lambda: kernels._wasserstein(ref, s, at, at, csum), 1),
        "all of the above + KS D": (lambda: kernels._numeric_stats(ref, edges, x, csum), 1),
        "the same, 7 features stacked (each)": (lambda: kernels.stacked_stats(
            stack, np.arange(k_stack), xs), k_stack),
        "KS p-value (20 at once, each)": (lambda: ks_pvalues_fast(
            [d] * K_NUM, [n] * K_NUM, [w] * K_NUM), K_NUM),
        "PSI + JS (20 at once, each)": (lambda: (psi_many(props, counts),
                                                jensen_shannon_many(props, counts)), K_NUM),
        "quantile ranks (ingest side)": (lambda: kernels.rank_update(
            rr, next(fresh), seen, kernel=ranks), 1),
        "  + the block's sort (each of 20)": (lambda: [
            kernels.rank_update(rr, v, seen, kernel=ranks)
            for v in monitor._sorted_finite(next(blocks))], K_NUM),
    }
    out = {}
    for label, (fn, per) in steps.items():
        best = float("inf")
        for _ in range(50):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        out[label] = best / per * 1e6
    return out


def statistic_costs() -> None:
    """CPU time of each step of one numeric feature's window close, a null window against a
    normal reference: where the per-feature figure of :func:`window_close` goes."""
    rng = np.random.default_rng(3)
    sizes = [(w, n) for w in (1000, 10_000) for n in (5000, 20_000)]
    print(f"{'  step (µs CPU per numeric feature)':<36} "
          + " ".join(f"{f'{w}×{n}':>11}" for w, n in sizes))
    cols = [_step_costs(w, n, rng) for w, n in sizes]
    for label in cols[0]:
        print(f"{'  ' + label:<36} " + " ".join(f"{c[label]:11.1f}" for c in cols))


def log_batches(mon: driftline.sdk.Monitor, x: np.ndarray, c: np.ndarray, proba: np.ndarray,
                per: int = 500) -> None:
    """The workload through the SDK's ``log_batch``, ``per`` records a call."""
    for i in range(0, len(x), per):
        cols: dict[str, object] = {n: x[i:i + per, j] for j, n in enumerate(NUMERIC)}
        cols |= {n: c[i:i + per, j] for j, n in enumerate(CATEGORICAL)}
        p = proba[i:i + per]
        mon.log_batch(cols, predictions=(p > 0.5).astype(int),
                      probabilities=np.column_stack([1 - p, p]))


def sdk_paths(prof: BaselineProfile) -> None:
    import driftline.sdk

    recs = records()
    x, c, proba = data()
    live: list[driftline.sdk.Monitor] = []
    for mode, window, streams in MODES:
        def make(window: int = window, streams: bool = streams) -> driftline.sdk.Monitor:
            mon = driftline.sdk.Monitor(prof, queue_size=100_000, window_max_age=3600,
                                        window_records=window, drift=FAST_KS)
            if not streams:  # the same monitor without its change streams
                entry = mon.sidecar.entries[0]
                entry.monitors[mon.endpoint] = Monitor(
                    entry.profile, endpoint=mon.endpoint,
                    window=WindowPolicy(records=window, max_age=3600), drift=FAST_KS,
                    streams=False)
            return mon

        def setup(make: Callable[[], driftline.sdk.Monitor] = make) -> None:
            for m in live:  # the previous run's monitor (each run starts with a fresh one)
                assert m.dropped == 0, m.dropped
                m.close()
            live[:] = [make()]

        def log_all() -> None:
            mon = live[0]
            for r in recs:
                mon.log(features=r["features"], prediction=r["prediction"],
                        probabilities=r["probabilities"], id=r["id"])
            mon.flush(120)

        rate(f"SDK log() → observed, {mode}", N, log_all, setup=setup)

        def log_batch() -> None:
            mon = live[0]
            log_batches(mon, x, c, proba)
            mon.flush(120)

        rate(f"SDK log_batch(500) → observed, {mode}", N, log_batch, setup=setup)
    live[0].close()


def http_ingest(prof: BaselineProfile, bodies: list[bytes]) -> None:
    from driftline.exporters.prometheus import new_registry, render

    sc = sidecar(prof)
    queue = WorkQueue(200_000)
    worker = Worker(sc, queue, tick_interval=1.0)
    worker.start()
    registry, _ = new_registry(sc)
    svc = ServiceThread(HttpServer(App(sc, queue, lambda a: render(registry, a)),
                                   "127.0.0.1", 0)).start()

    def client(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
        for b in part:
            conn.request("POST", "/ingest", b, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 202, resp.status
        conn.close()

    def http_run() -> None:
        threads = [threading.Thread(target=client, args=(bodies[k::2],)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = threading.Event()  # a marker job: everything before it has been observed
        queue.put(done.set)
        done.wait(120)

    rate("HTTP POST /ingest, 500/batch, 2 clients, served", N, http_run, repeat=2)
    t = time.perf_counter()
    for _ in range(50):
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        conn.request("GET", "/metrics")
        conn.getresponse().read()
        conn.close()
    per_scrape = (time.perf_counter() - t) / 50 * 1e3
    print(f"{'GET /metrics over HTTP (1 model, 25 features)':<44} {per_scrape:10.2f} ms/scrape")
    svc.stop()
    worker.stop()


def full_queue(prof: BaselineProfile, body: bytes, n: int = 300) -> None:
    """What one ``POST /ingest`` of 500 records costs the sidecar's HTTP side when the queue has
    room (decode, group, enqueue; no worker runs, so no observe) and when it is full (429
    before decoding): min of ``n`` requests over one keep-alive connection."""
    from driftline.exporters.prometheus import new_registry, render

    sc = sidecar(prof)
    registry, _ = new_registry(sc)
    for label, capacity in (("accepted (202, queue has room)", 10**9),
                            ("refused (429, queue full)", 1)):
        queue = WorkQueue(capacity)
        if capacity == 1:
            queue.put(lambda: None)  # full from the start
        svc = ServiceThread(HttpServer(App(sc, queue, lambda a: render(registry, a)),
                                       "127.0.0.1", 0)).start()
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
        best, status = float("inf"), 0
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", "/ingest", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            best = min(best, time.perf_counter() - t)
            status = resp.status
        conn.close()
        svc.stop()
        print(f"{'POST /ingest of 500 records, ' + label:<60} {best * 1e3:8.3f} ms/request "
              f"(HTTP {status}; client and server in one process)")


def stages(prof: BaselineProfile, bodies: list[bytes], repeat: int = 5,
           paths: tuple[str, ...] = ("/ingest", "v2", "SDK log()", "SDK log_batch(500)")) -> None:
    """CPU time of each stage of each path without a profiler's overhead: the stages'
    functions are wrapped with ``time.thread_time`` (the stage's own thread: the SDK's run on
    its worker), in each mode, min of ``repeat`` runs by the process's total
    (``time.process_time``, every thread). A wrapper is called once per body, request or
    drained block (v2: once per tensor for ``_tensor``, 25 per 100 records), never per
    record. Nested stages are indented; a stage's time includes its nested ones. For the SDK
    ``log()`` path, "the caller's log() calls" is the calling thread's CPU."""
    import driftline.collectors.feedback as feedback
    import driftline.collectors.ingest as ingest
    import driftline.collectors.ingest_typed as ingest_typed
    import driftline.collectors.payloads as payloads
    import driftline.collectors.sdk as sdk_mod
    import driftline.collectors.sidecar as sidecar_mod
    import driftline.engine.monitor as monitor
    import driftline.sdk
    from driftline.collectors.payloads import ModelSchema

    spent: dict[str, float] = {}
    wrapped: list[tuple[object, str, object]] = []

    def wrap(owner: object, name: str, label: str) -> str:
        real = getattr(owner, name)
        wrapped.append((owner, name, real))

        def timed(*args: object, **kwargs: object) -> object:
            t = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.thread_time() - t

        setattr(owner, name, timed)
        return label

    engine = [wrap(monitor.Monitor, "observe", "  Monitor.observe"),
              wrap(monitor.Monitor, "_with_codes", "    category codes on arrival (_with_codes)"),
              wrap(monitor.Monitor, "_count",
                   "    cumulative counters, change streams (_count)"),
              wrap(monitor.Monitor, "_close", "    window close (_close)"),
              wrap(monitor.Monitor, "_columns", "      window columns (_columns, _concat)"),
              wrap(monitor, "compute_window", "      window statistics (compute_window)"),
              wrap(feedback.PredictionStore, "put", "  id store for the label join (put)")]
    columns = [wrap(ingest, "_feature_columns", "    feature columns"),
               wrap(ModelSchema, "outputs", "    prediction and probability columns")]
    orders = {
        "/ingest": [wrap(ingest, "split_records", "split_records (decode, group by model)"),
                    wrap(ingest_typed.TypedIngest, "split",
                         "  typed decode + feature columns (TypedIngest.split)"),
                    wrap(ingest, "loads", "  orjson decode (payloads.loads)"),
                    wrap(sidecar_mod.Sidecar, "handle_ingest", "handle_ingest"),
                    wrap(sidecar_mod, "to_batch", "  to_batch (columns)"),
                    wrap(ingest, "_same_keys", "    record fields, one pass"),
                    *columns, *engine],
        "v2": [wrap(payloads, "parse_v2", "parse_v2 (decode, tensors → columns)"),
               wrap(payloads, "loads", "  orjson decode (payloads.loads)"),
               wrap(payloads, "_v2_features", "  feature columns (_v2_features)"),
               wrap(payloads, "_tensor", "    tensors → arrays (_tensor, one call per tensor)"),
               "    prediction and probability columns",
               wrap(sidecar_mod.Sidecar, "observe", "Sidecar.observe"), *engine],
        "SDK log()": ["the caller's log() calls",
                      wrap(sdk_mod, "logged_batch", "worker: logged_batch (columns)"),
                      *columns,
                      wrap(sdk_mod.Monitor, "_handle", "worker: _handle (columns + observe)"),
                      *engine],
        "SDK log_batch(500)": ["the caller's log_batch() calls",
                               wrap(sdk_mod.Monitor, "_columns", "worker: _columns"),
                               "    prediction and probability columns",
                               "worker: _handle (columns + observe)", *engine],
    }
    schema = ModelSchema(prof, feature_order=FEATURES)
    pairs = v2_pairs()
    recs = records()
    x, c, proba = data()

    def run(path: str, window: int, streams: bool) -> tuple[float, float]:
        """One run of ``path``: (process CPU, the calling thread's CPU)."""
        if path in ("/ingest", "v2"):
            sc = sidecar(prof, window=window, streams=streams)
            sc.entries[0].schema = schema
            t, c0 = time.process_time(), time.thread_time()
            if path == "/ingest":
                for b in bodies:
                    sc.handle_ingest(ingest.split_records(b, typed=sc.typed_split()))
            else:
                for q, r in pairs:
                    sc.observe(sc.entries[0], None, payloads.parse_v2(schema, q, r), "proxy", 0.0)
            return time.process_time() - t, time.thread_time() - c0
        mon = driftline.sdk.Monitor(prof, queue_size=100_000, window_max_age=3600,
                                    window_records=window, drift=FAST_KS)
        if not streams:
            entry = mon.sidecar.entries[0]
            entry.monitors[mon.endpoint] = Monitor(
                entry.profile, endpoint=mon.endpoint,
                window=WindowPolicy(records=window, max_age=3600), drift=FAST_KS, streams=False)
        try:
            t, c0 = time.process_time(), time.thread_time()
            if path == "SDK log()":
                for r in recs:
                    mon.log(features=r["features"], prediction=r["prediction"],
                            probabilities=r["probabilities"], id=r["id"])
            else:
                log_batches(mon, x, c, proba)
            caller = time.thread_time() - c0
            mon.flush(120)
            took = time.process_time() - t, caller
            kept = dict(spent)  # not what close() spends (it closes the open window)
        finally:
            mon.close()
        spent.clear()
        spent.update(kept)
        return took

    try:
        for path in paths:
            for mode, window, streams in MODES:
                best: tuple[float, float, dict[str, float]] | None = None
                for _ in range(repeat):
                    spent.clear()
                    total, caller = run(path, window, streams)
                    if best is None or total < best[0]:
                        best = (total, caller, dict(spent))
                assert best is not None
                best[2]["the caller's log() calls"] = best[2]["the caller's log_batch() calls"] \
                    = best[1]
                print(f"{path} stages, {mode}: {best[0] / N * 1e6:.2f} µs/record CPU "
                      f"(min of {repeat}; load average {os.getloadavg()[0]:.1f})")
                for label in orders[path]:
                    sec = best[2].get(label, 0.0)
                    print(f"  {label:<52} {sec / N * 1e6:7.2f} µs/record "
                          f"{sec / best[0] * 100:5.1f} %")
    finally:
        for owner, name, real in reversed(wrapped):
            setattr(owner, name, real)


def label_calls(prof: BaselineProfile, repeat: int = 3) -> None:
    """CPU per joined label fed to ``Monitor.observe_labels`` 1, 10 and 100 per call (a
    ``/feedback`` body often carries one label): the realised metrics and the error stream's
    change detector, whose values are buffered and fed in blocks (``ChangeStream.FEED``), the
    last ones at the snapshot that ends each run."""
    rng = np.random.default_rng(3)
    print(f"labels into the monitor (CPU µs per label, min of {repeat}; load average "
          f"{os.getloadavg()[0]:.1f})")
    for per in (1, 10, 100):
        n = 2000 if per == 1 else 20_000
        pred = np.array([str(v) for v in rng.integers(0, 2, n)], dtype=object)
        lab = np.array([str(v) for v in rng.integers(0, 2, n)], dtype=object)
        best = float("inf")
        for _ in range(repeat):
            mon = Monitor(prof, window=WindowPolicy(records=1000))
            t = time.process_time()
            for lo in range(0, n, per):
                mon.observe_labels(pred[lo:lo + per], lab[lo:lo + per])
            mon.snapshot()
            best = min(best, time.process_time() - t)
        print(f"  {per:>4} per call  {best / n * 1e6:8.1f} µs/label", flush=True)


def main() -> None:
    if "--labels" in sys.argv:
        label_calls(profile())
        return
    if "--stages" in sys.argv:
        chosen = tuple(a for a in ("/ingest", "v2", "SDK log()", "SDK log_batch(500)")
                       if a.split("(")[0].lower().replace(" ", "-").strip("/") in sys.argv)
        stages(profile(), ingest_bodies(), paths=chosen or ("/ingest", "v2", "SDK log()",
                                                            "SDK log_batch(500)"))
        return
    if "--full-queue" in sys.argv:
        full_queue(profile(), ingest_bodies(500)[0])
        return
    if "--window-close" in sys.argv:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if "--profile" in sys.argv:
            window_profile(profile())
            return
        window_close(profile())
        statistic_costs()
        return
    prof = profile()
    bodies = ingest_bodies()
    load = os.getloadavg()[0]
    print(f"{K} features per record ({K_NUM} numeric, {K_CAT} categorical); {N:,} records; "
          f"min of 3 runs (5 for decode); load average {load:.1f} on {os.cpu_count()} cores")
    rate(FLOOR, N, lambda: decode_each(bodies), repeat=5)
    # the method of earlier figures: every decoded body kept until the end (more memory
    # touched, so slower than the sidecar's decode-and-let-go)
    rate("orjson decode, all 40 bodies kept", N, lambda: [orjson.loads(b) for b in bodies],
         repeat=5)
    # Each run gets a fresh sidecar: a re-sent id is rare in traffic but would be the rule here.
    fresh: list[Sidecar] = []
    for mode, window, streams in MODES:
        def new(window: int = window, streams: bool = streams) -> None:
            fresh[:] = [sidecar(prof, window=window, streams=streams)]

        rate(f"/ingest (decode→columns→observe), {mode}", N,
             lambda: [fresh[0].handle_ingest(
                 split_records(b, typed=fresh[0].typed_split())) for b in bodies], setup=new)
    schema = ModelSchema(prof, feature_order=FEATURES)
    pairs = v2_pairs()
    rate("v2 parse only (25 tensors of [100])", N, lambda: [parse_v2(schema, q, r) for q, r in pairs])
    for mode, window, streams in MODES:
        def new_v2(window: int = window, streams: bool = streams) -> None:
            fresh[:] = [sidecar(prof, window=window, streams=streams)]
            fresh[0].entries[0].schema = schema

        rate(f"v2 (parse→observe), {mode}", N, lambda: [
            fresh[0].observe(fresh[0].entries[0], None, parse_v2(schema, q, r), "proxy", 0.0)
            for q, r in pairs], setup=new_v2)
    sdk_paths(prof)
    window_close(prof)
    statistic_costs()
    http_ingest(prof, bodies)
    full_queue(prof, bodies[0])
    label_calls(prof)
    summary(load)


if __name__ == "__main__":
    main()
