"""Ingest throughput of the sidecar: records/s from bytes on the wire into the detectors.

Stages measured separately, 20 numeric features per record, windows of 1000:

* ``orjson decode``          JSON bytes → Python objects only (the floor);
* ``/ingest path``           decode + group + columns (``to_batch``) + ``Monitor.observe``;
* ``v2 tensor path``         OIP v2 ``[100, 20]`` request+response → columns → observe;
* ``v1 instances path``      KServe v1 rows (lists) + predictions → columns → observe;
* ``HTTP /ingest``           batches of 500 POSTed over keep-alive to the metrics port
                             (client threads in the same process, so they share its GIL);
* ``SDK log()``              calls per second into ``driftline.sdk.Monitor`` and their drain.

Run: ``python -m benchmarks ingest``.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from driftline.collectors.ingest import split_records, to_batch
from driftline.collectors.payloads import ModelSchema, parse_v1, parse_v2
from driftline.collectors.service import App, HttpServer, ServiceThread
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.profile.format import (
    BaselineProfile,
    CategoricalFeature,
    Columns,
    NumericFeature,
    OutputProfile,
)

K = 20
FEATURES = [f"f{i}" for i in range(K)]


def _numeric(name: str, v: np.ndarray) -> NumericFeature:
    v = np.sort(v)
    edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return NumericFeature(name, tuple(edges.tolist()), tuple((counts / len(v)).tolist()),
                          tuple(v.tolist()), True, len(v), 0.0, float(v[0]), float(v[-1]),
                          float(v.mean()), float(v.std()))


def profile() -> BaselineProfile:
    rng = np.random.default_rng(0)
    feats = {n: _numeric(n, rng.normal(size=5000)) for n in FEATURES}
    out = OutputProfile("classification", "pred", {"1": "p"}, ("0", "1"), "1",
                        CategoricalFeature("pred", ("0", "1"), (0.5, 0.5, 0.0), 5000, 0.0),
                        _numeric("confidence", rng.uniform(0.5, 1, 5000)), 0.9)
    return BaselineProfile("bench", "1", "", 5000, feats, Columns("pred", {"1": "p"}), out)


def sidecar(prof: BaselineProfile) -> Sidecar:
    return Sidecar([(ModelConfig("bench", baseline=None), prof)],  # type: ignore[arg-type]
                   limits=LimitsConfig(), monitor_factory=engine_factory(
                       WindowPolicy(records=1000, max_age=None), DriftPolicy()))


def rate(label: str, n_records: int, fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    r = n_records / best
    print(f"{label:<40} {r:>12,.0f} records/s   ({best * 1e3:8.1f} ms for {n_records:,})")
    return r


def workload(n: int = 20_000) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], list[bytes]]:
    """Features, class-1 probabilities, the /ingest records and their bodies (500 a batch)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, K))
    proba = rng.uniform(size=n)
    recs = [{"model_name": "bench", "id": f"r{i}", "features": dict(zip(FEATURES, row, strict=True)),
             "prediction": int(p > 0.5), "probabilities": [1 - p, p]}
            for i, (row, p) in enumerate(zip(x.tolist(), proba.tolist(), strict=True))]
    return x, proba, recs, [orjson.dumps(recs[i:i + 500]) for i in range(0, n, 500)]


def main() -> None:
    prof = profile()
    n = 20_000
    x, proba, recs, bodies = workload(n)

    print(f"20 numeric features per record; {n:,} records; windows of 1000 (detectors run)")
    rate("orjson decode (batches of 500)", n, lambda: [orjson.loads(b) for b in bodies])

    sc = sidecar(prof)
    rate("/ingest path (decode→columns→observe)", n,
         lambda: [sc.handle_ingest(split_records(b)) for b in bodies])

    schema = ModelSchema(prof)

    def columns_only() -> None:
        for b in bodies:
            for recs_ in split_records(b).groups.values():
                to_batch(schema, recs_)

    rate("  /ingest decode+columns only", n, columns_only)
    v2 = []
    for i in range(0, n, 100):
        xb, pb = x[i:i + 100], proba[i:i + 100]
        v2.append((orjson.dumps({"id": f"q{i}", "inputs": [
            {"name": "x", "shape": [100, K], "datatype": "FP64", "data": xb.ravel().tolist()}]}),
            orjson.dumps({"outputs": [
                {"name": "predict", "shape": [100], "datatype": "INT64",
                 "data": (pb > 0.5).astype(int).tolist()},
                {"name": "predict_proba", "shape": [100, 2], "datatype": "FP64",
                 "data": np.column_stack([1 - pb, pb]).ravel().tolist()}]})))
    sc2 = sidecar(prof)
    entry = sc2.entries[0]
    rate("v2 tensor path [100,20] (parse→observe)", n, lambda: [
        sc2.observe(entry, None, parse_v2(schema, q, r), "proxy", 0.0) for q, r in v2])
    rate("  v2 parse only", n, lambda: [parse_v2(schema, q, r) for q, r in v2])
    v1 = [(orjson.dumps({"instances": x[i:i + 100].tolist()}),
           orjson.dumps({"predictions": (proba[i:i + 100] > 0.5).astype(int).tolist()}))
          for i in range(0, n, 100)]
    sc3 = sidecar(prof)
    entry3 = sc3.entries[0]
    rate("v1 instances path (parse→observe)", n, lambda: [
        sc3.observe(entry3, None, parse_v1(schema, q, r), "proxy", 0.0) for q, r in v1])

    # HTTP /ingest over keep-alive, 2 client threads
    sc4 = sidecar(prof)
    queue = WorkQueue(200_000)
    worker = Worker(sc4, queue, tick_interval=1.0)
    worker.start()
    from driftline.exporters.prometheus import new_registry, render

    registry, _ = new_registry(sc4)
    svc = ServiceThread(HttpServer(App(sc4, queue, lambda a: render(registry, a)),
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

    rate("HTTP POST /ingest, 500/batch, 2 clients", n, http_run, repeat=2)
    t = time.perf_counter()
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        conn.request("GET", "/metrics")
        conn.getresponse().read()
        conn.close()
    per_scrape = (time.perf_counter() - t) / 200 * 1e3
    print(f"{'GET /metrics (1 model, 20 features)':<40} {per_scrape:>12.2f} ms/scrape")
    svc.stop()
    worker.stop()

    # SDK
    import driftline.sdk

    mon = driftline.sdk.Monitor(prof, queue_size=100_000, window_max_age=3600)
    feats = [r["features"] for r in recs]

    def sdk_log() -> None:
        for i, f in enumerate(feats):
            mon.log(features=f, prediction=recs[i]["prediction"], id=recs[i]["id"])

    t = time.perf_counter()
    sdk_log()
    call = time.perf_counter() - t
    mon.flush()
    total = time.perf_counter() - t
    print(f"{'SDK log() calls':<40} {n / call:>12,.0f} calls/s     ({call / n * 1e6:.2f} µs/call)")
    print(f"{'SDK log() → observed (drained)':<40} {n / total:>12,.0f} records/s   "
          f"(dropped {mon.dropped})")
    mon.close()


if __name__ == "__main__":
    main()
