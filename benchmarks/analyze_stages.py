"""Where a whole ``driftline analyze`` process spends its time, stage by stage (wall and CPU).

The workload of ``python -m benchmarks peers`` (``--rows`` rows, 1M, × 25 features in windows of
10k against a 100k-row reference). Each round runs the CLI in a fresh interpreter with timers
wrapped around its stages (imports, baseline load, Parquet read, conversion to monitor columns,
``compute_window``, the multivariate encoding and error product, the rest of the window close,
JSON writing) in one process (``--processes 1``), and ``python -c pass`` beside it for the
interpreter's own start; the whole CLI is also timed as it runs by default and with
``--processes 1`` and ``2`` (the second process computes the later windows; its CPU is
counted too). The table shows the minimum over ``--rounds``
of each figure. CPU time counts every thread of the process, so a stage on the window's thread
pool can show more CPU than wall; stages nest as indented.

A stage read ahead on the reader's thread (``read parquet``) overlaps the window computation:
its wall time is then not on the critical path.

Run: ``python -m benchmarks analyze --stages`` (``--rows 200000``, ``--rounds 3``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.workload import compile_bytecode, generate

WINDOW = 10_000
REF_ROWS = 100_000
#: The stages are timed in one process: a second one (``--processes``) would compute windows
#: beside it, outside the timers. The whole CLI is timed both ways (its CPU counts the child's).
ONE = ["--processes", "1"]

#: Runs in the child: timers around the stages, then the CLI's own main(); prints one JSON line.
CHILD = r"""
import json, sys, threading, time
T0w, T0c = time.perf_counter(), time.process_time()
acc = {}
names = []
lock = threading.Lock()
def add(label, w, c):
    with lock:
        a = acc.setdefault(label, [0.0, 0.0, 0])
        a[0] += w; a[1] += c; a[2] += 1
def timed(owner, name, label, gen=False):
    f = getattr(owner, name)
    names.append(label)
    if gen:
        def w(*a, **k):
            it = f(*a, **k)
            while True:
                t, c = time.perf_counter(), time.thread_time()
                try:
                    v = next(it)
                except StopIteration:
                    add(label, time.perf_counter() - t, time.thread_time() - c)
                    return
                add(label, time.perf_counter() - t, time.thread_time() - c)
                yield v
    else:
        def w(*a, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return f(*a, **k)
            finally:
                add(label, time.perf_counter() - t, time.process_time() - c)
    setattr(owner, name, w)
from driftline.cli import main
import driftline.analyze.offline as off
import driftline.engine.monitor as mon
import driftline.engine.multivariate as mv
import driftline.profile.format as fmt
import driftline.profile.multivariate as pmv
import driftline.detectors.reconstruction as rec
imports = (time.perf_counter() - T0w, time.process_time() - T0c)
timed(fmt.BaselineProfile, "load", "baseline load")
timed(off, "iter_batches", "read parquet (reader thread)", gen=True)
timed(off, "to_record_batch", "to monitor columns")
timed(mon.Monitor, "_close", "window close")
timed(mon, "compute_window", "  compute_window (thread pool)")
timed(mv.MultivariateRef, "window", "  multivariate")
timed(pmv.Encoder, "encode", "    encode")
timed(rec.ErrorMap, "errors", "    error product")
timed(off, "checked", "data-quality checks")
import driftline.engine.snapshot as snap
timed(snap.WindowReport, "to_dict", "report: WindowReport.to_dict")
timed(json, "dumps", "report: json.dumps")
rc = main(sys.argv[1:])
total = (time.perf_counter() - T0w, time.process_time() - T0c)
print(json.dumps({"imports": imports, "total": total, "rc": rc,
                  "stages": {k: acc[k] for k in names if k in acc}}))
"""


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall, CPU of the child, its stdout)."""
    before = os.times()
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system
                                                          - before.children_system)
    return wall, cpu, out.stdout


def main(argv: list[str]) -> None:
    rows = int(argv[argv.index("--rows") + 1]) if "--rows" in argv else 1_000_000
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 3
    driftline = Path(sys.executable).with_name("driftline")
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="driftline-stages-") as d:
        tmp = Path(d)
        ref, cur, base = tmp / "ref.parquet", tmp / "cur.parquet", tmp / "baseline.json"
        generate(ref, REF_ROWS, seed=1)
        generate(cur, rows, seed=2, drift_after=0.5)
        subprocess.run([str(driftline), "baseline", "build", str(ref), "-o", str(base)],
                       check=True, capture_output=True)
        args = ["analyze", str(cur), "--baseline", str(base), "--window-size", str(WINDOW),
                "--format", "json", "-o", str(tmp / "out.json"), "-q"]
        best: dict[str, list[float]] = {}
        loads = [os.getloadavg()[0]]

        def keep(label: str, wall: float, cpu: float) -> None:
            b = best.setdefault(label, [wall, cpu])
            b[0], b[1] = min(b[0], wall), min(b[1], cpu)

        order: list[str] = []
        for _ in range(rounds):
            keep("interpreter start (python -c pass)", *_run([sys.executable, "-c", "pass"])[:2])
            keep("whole CLI process (timed outside, no timers)",
                 *_run([str(driftline), *args])[:2])
            keep("whole CLI process, --processes 1", *_run([str(driftline), *args, *ONE])[:2])
            keep("whole CLI process, --processes 2",
                 *_run([str(driftline), *args, "--processes", "2"])[:2])
            _, _, out = _run([sys.executable, "-c", CHILD, *args, *ONE])
            res = json.loads(out.strip().splitlines()[-1])
            keep("in process: imports of the CLI and analyze path", *res["imports"])
            for label, (wall, cpu, _n) in res["stages"].items():
                keep(label, wall, cpu)
                if label not in order:
                    order.append(label)
            keep("in process: total with timers", *res["total"])
            loads.append(os.getloadavg()[0])
    print(f"driftline analyze, {rows:,} rows × 25 features (20 numeric, 5 categorical), windows "
          f"of {WINDOW:,} vs a {REF_ROWS:,}-row reference; min of {rounds} rounds; load average "
          f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores")
    print("| stage | wall s | CPU s |")
    print("| --- | --- | --- |")
    labels = ["interpreter start (python -c pass)", "whole CLI process (timed outside, no timers)",
              "whole CLI process, --processes 1", "whole CLI process, --processes 2",
              "in process: imports of the CLI and analyze path", *order,
              "in process: total with timers"]
    for label in labels:
        wall, cpu = best[label]
        print(f"| {label} | {wall:.3f} | {cpu:.3f} |")
