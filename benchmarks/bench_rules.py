"""Cost of the generated rules and dashboards.

* generation time of every rule file and dashboard;
* ``promtool test rules`` on the committed tests;
* evaluation time of the Driftline rule group in a real Prometheus scraping a synthetic fleet
  (replicas × models × features, counters growing every scrape), read from ``/api/v1/rules``.

    python -m benchmarks rules
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import time

from driftline.alertmanager.generate import PACKAGE_DIR, RULES_FILE, render_files
from driftline.alertmanager.rules_config import RulesConfig
from driftline.dashboards.generate import dashboards, render
from driftline.engine.snapshot import Histogram, ModelSnapshot, SidecarStats, SnapshotSource

REPLICAS, MODELS, FEATURES = 3, 20, 25


class Growing(SnapshotSource):
    """A synthetic sidecar whose counters grow with time (so increase() has something to see)."""

    def __init__(self, base: SnapshotSource) -> None:
        self.base = base
        self.t0 = time.monotonic()

    def snapshots(self) -> list[ModelSnapshot]:
        k = int((time.monotonic() - self.t0) * 10) + 1

        def h(x: Histogram) -> Histogram:
            return Histogram(x.bounds, tuple(c * k for c in x.counts), x.sum * k, x.count * k)

        return [dataclasses.replace(
            s, quantile_rank={f: h(x) for f, x in s.quantile_rank.items()},
            categories={f: {c: n * k for c, n in cs.items()} for f, cs in s.categories.items()},
            records_by_source={src: n * k for src, n in s.records_by_source.items()},
            records_sampled=s.records_sampled * k) for s in self.base.snapshots()]

    def sidecar_stats(self) -> SidecarStats:
        return self.base.sidecar_stats()


def _timeit(fn: object, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    cfg = RulesConfig()
    print(f"render rule files (4 files):       {_timeit(lambda: render_files(cfg)) * 1000:8.1f} ms")
    print(f"render dashboards (3 JSON):        "
          f"{_timeit(lambda: [render(d) for d in dashboards(cfg).values()]) * 1000:8.1f} ms")
    from driftline_demo.stack import StackError, find_binary, start_prometheus

    try:
        promtool = find_binary("promtool")
    except StackError as exc:
        print(f"promtool/prometheus not installed, skipping the rest: {exc}")
        return
    t = time.perf_counter()
    subprocess.run([promtool, "test", "rules", str(PACKAGE_DIR / "rules_test.yaml")], check=True,
                   capture_output=True)
    print(f"promtool test rules (all alerts):  {time.perf_counter() - t:8.2f} s")

    from prometheus_client.exposition import start_http_server

    from driftline.exporters.fleet import synthetic_fleet
    from driftline.exporters.prometheus import new_registry

    servers = []
    targets = []
    for i in range(REPLICAS):
        registry, _ = new_registry(Growing(synthetic_fleet(MODELS, FEATURES, seed=i)))
        server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        servers.append(server)
        targets.append(f"127.0.0.1:{server.server_address[1]}")
    try:
        with start_prometheus(targets, rule_files=[PACKAGE_DIR / RULES_FILE], scrape_interval="10s",
                              evaluation_interval="2s") as prom:
            prom.wait_for("model_feature:driftline_feature_psi:fleet1h", timeout=60)
            time.sleep(12)
            series = prom.values("count({__name__=~\"driftline_.+\"})")[0][1]
            rank = prom.values("count(driftline_feature_quantile_rank_bucket)")[0][1]
            out = prom.values("count(model_feature:driftline_feature_psi:fleet1h)")[0][1]
            samples = []
            for _ in range(5):
                g = prom.rules()[0]
                samples.append(float(g["evaluationTime"]))
                time.sleep(2)
            rules = sorted(prom.rules()[0]["rules"], key=lambda r: -float(r["evaluationTime"]))
            print(f"fleet: {REPLICAS} replicas x {MODELS} models x {FEATURES} features = "
                  f"{series:.0f} driftline series ({rank:.0f} quantile-rank buckets)")
            med = statistics.median(samples) * 1000
            print(f"rule group evaluation ({len(rules)} rules): median {med:8.1f} ms per evaluation, "
                  f"{out:.0f} fleet PSI series out")
            for r in rules[:3]:
                name = r.get("name")
                print(f"  slowest: {name:70s} {float(r['evaluationTime']) * 1000:6.1f} ms")
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


if __name__ == "__main__":
    main()
