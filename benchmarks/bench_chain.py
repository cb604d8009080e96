"""The whole chain, measured: stack start-up, a real model server direct vs through the sidecar,
and the time from an alert firing to the action call.

    python -m benchmarks chain [--requests 2000] [--skip-chain]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from driftline_demo import stack
from driftline_demo.data import generate, records
from driftline_demo.scenario import MODEL, DemoSettings, DemoStack, prepare, run_scenario
from driftline_demo.traffic import TrafficClient


def _startup(runs: int = 3) -> None:
    cfg = "route:\n  receiver: x\nreceivers:\n- name: x\n"
    for name, start in (("prometheus", lambda: stack.start_prometheus(["127.0.0.1:9"])),
                        ("alertmanager", lambda: stack.start_alertmanager(cfg))):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = start()
            times.append(time.perf_counter() - t)
            proc.stop()
        print(f"{name:<13} start → /-/ready: median {statistics.median(times):.2f} s over {runs} runs")


def _throughput(st: DemoStack, n: int, threads: int = 4) -> None:
    rows = records(generate(n, seed=99))
    client = TrafficClient(threads=threads)
    targets = (("direct to the model server", st.model_url), ("through the sidecar proxy", st.proxy_url))
    for label, url in targets:
        client.infer_v2(url, MODEL, rows[:200])  # warm-up
        t = time.perf_counter()
        sent = client.infer_v2(url, MODEL, rows)
        dt = time.perf_counter() - t
        print(f"{label:<28} {n / dt:8.0f} req/s ({threads} keep-alive clients, 1 record per request, "
              f"{sent.errors} errors)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks chain")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--skip-chain", action="store_true", help="only start-up and throughput")
    args = ap.parse_args(argv if argv is not None else [])
    _startup()
    settings = DemoSettings(train_rows=5000, reference_rows=10000, stable_rows=700, drift_rows=1200,
                            canary_rows=400, use_prometheus=not args.skip_chain)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-chain-") as tmp:
        t = time.perf_counter()
        prepared = prepare(Path(tmp), settings)
        print(f"train + reference + baseline build: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        with DemoStack(prepared, settings) as st:
            print(f"stack start (model server, sidecar, receiver, Prometheus, Alertmanager): "
                  f"{time.perf_counter() - t:.1f} s")
            _throughput(st, args.requests)
            if not args.skip_chain:
                result = run_scenario(st)
                for name, secs in sorted(result.action_latency.items()):
                    print(f"{name} fired → action call on the target: {secs:.2f} s")
                print(f"scenario (stable, drift → retrain, canary → rollback): {result.elapsed:.1f} s; "
                      f"{result.retrain_calls} retrain call, {result.rollback_calls} rollback call")


if __name__ == "__main__":
    main(sys.argv[1:])
