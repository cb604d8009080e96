"""`driftline analyze` throughput and memory, beside a plain numpy loop doing PSI + KS.

Generates reference (200k rows) and analysis data (250k and 1M rows) of 25 numeric features into
temporary Parquet files, builds a baseline, then runs in fresh subprocesses (so the RSS high-water
mark belongs to that run alone):

Each is run ``DRIFTLINE_BENCH_REPEAT`` (3) times, alternating, and the best run is shown.

* ``driftline``: the full offline analysis (PSI, KS, JS, Wasserstein, missing ratio, BH, quantile
  ranks, per window of 10k rows), reading Parquet with pyarrow;
* ``numpy loop``: the same Parquet read the same way, and per window and feature only PSI
  (searchsorted + bincount on the same edges) and KS (presorted reference + searchsorted, asymptotic
  p-value) — the floor any tool must pay.

``python -m benchmarks analyze`` runs it; ``--evidently`` also times Evidently's default data-drift
report on 100k reference vs 10k rows, in its own virtualenv under /tmp (never the project's).
``python -m benchmarks analyze --rss`` instead prints the whole ``driftline analyze`` process's
peak RSS at 25, 100 and 400 features (:func:`rss_by_features`; ``--features 25,400``,
``--rows N``, ``--rounds N`` and ``--against OTHER/.venv/bin/python`` for a side-by-side
comparison with another checkout); ``--reconstruction`` the CPU
cost of the multivariate reconstruction error per window (:func:`reconstruction_cost`);
``--stages`` wall and CPU per stage of the whole CLI process (:mod:`benchmarks.analyze_stages`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_FEATURES = 25
WINDOW = 10_000
REF_ROWS = 200_000
SIZES = (250_000, 1_000_000)
REPEAT = int(os.environ.get("DRIFTLINE_BENCH_REPEAT", "3"))


def generate(path: Path, rows: int, seed: int, drift_after: float | None = None) -> None:
    """Write ``rows`` × 25 features in 100k-row chunks (the generator's memory stays small)."""
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    schema = pa.schema([(n, pa.float64()) for n in names])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            cols = []
            for i in range(N_FEATURES):
                kind = i % 3
                if kind == 0:
                    x = rng.normal(0, 1, n)
                elif kind == 1:
                    x = rng.lognormal(0, 0.5, n)
                else:
                    x = rng.integers(0, 20, n).astype(np.float64)
                if drift_after is not None and i < 5:
                    pos = start + np.arange(n)
                    x = x + np.where(pos >= drift_after * rows, 0.5, 0.0)
                cols.append(x)
            w.write_table(pa.table(dict(zip(names, cols, strict=True)), schema=schema))


#: The child's own peak RSS: ``VmHWM`` belongs to its memory map, made at ``exec``, whereas
#: ``ru_maxrss`` would start from the spawning benchmark's high-water mark (see :data:`LAUNCH`).
PEAK = """
def peak_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
"""

DRIFTLINE_RUN = PEAK + """
import json, sys, time
from driftline.analyze.offline import analyze
from driftline.profile.format import BaselineProfile
from driftline.io.readers import discover
prof = BaselineProfile.load(sys.argv[1])
t = time.perf_counter()
windows = list(analyze(prof, discover([sys.argv[2]]), window_size=int(sys.argv[3])))
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "windows": len(windows),
                  "drifted": sum(w.drifted for w in windows),
                  "rss_mb": peak_mb()}))
"""

BUILD_RUN = PEAK + """
import json, sys, time
from driftline.profile.build import BuildOptions, build_profile
from driftline.io.readers import discover
t = time.perf_counter()
prof = build_profile(discover([sys.argv[1]]), BuildOptions(), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "error": prof.settings["quantile_rank_error"],
                  "rss_mb": peak_mb()}))
"""

NUMPY_RUN = PEAK + """
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from scipy import stats
from driftline.profile.format import BaselineProfile
prof = BaselineProfile.load(sys.argv[1])
window = int(sys.argv[3])
refs = {n: (f.edges_array, np.maximum(f.proportions_array, 1e-4), np.sort(f.summary_array))
        for n, f in prof.features.items()}
t = time.perf_counter()
buf = {n: [] for n in refs}
size = 0
results = []

def close():
    for n, (edges, ref, summary) in refs.items():
        x = np.concatenate(buf[n])
        x = x[np.isfinite(x)]
        cur = np.maximum(np.bincount(np.searchsorted(edges, x, side="right"),
                                     minlength=len(edges) + 1) / len(x), 1e-4)
        psi = float(np.sum((cur - ref) * np.log(cur / ref)))
        s = np.sort(x)
        m, w = len(summary), len(s)
        below = np.searchsorted(summary, s, side="left") / m
        d_plus = np.max(below - np.arange(w) / w)
        at_ref = np.searchsorted(summary, s, side="right") / m
        at_cur = np.searchsorted(s, s, side="right") / w
        d = max(d_plus, np.max(at_cur - at_ref))
        p = stats.kstwo.sf(d, round(m * w / (m + w)))
        results.append((psi, d, p))
        buf[n] = []

with pq.ParquetFile(sys.argv[2], pre_buffer=False) as pf:
  for group in range(pf.metadata.num_row_groups):
    for batch in pf.iter_batches(batch_size=65536, columns=list(refs), row_groups=[group],
                                 use_threads=False):
        pos = 0
        while pos < batch.num_rows:
            take = min(window - size, batch.num_rows - pos)
            part = batch.slice(pos, take)
            for n in refs:
                buf[n].append(part.column(n).to_numpy())
            size += take
            pos += take
            if size == window:
                close()
                size = 0
if size:
    close()
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "windows": len(results) // len(refs),
                  "rss_mb": peak_mb()}))
"""


def _child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _evidently(tmp: Path) -> None:
    venv = Path(tempfile.gettempdir()) / "driftline-bench-evidently"
    py = venv / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # evidently 0.7 still imports a helper that pandas 3 removed
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "evidently", "pandas<3",
                        "pyarrow"], check=True, timeout=900, capture_output=True)
        ref = tmp / "ev_ref.parquet"
        cur = tmp / "ev_cur.parquet"
        generate(ref, 100_000, seed=3)
        generate(cur, WINDOW, seed=4, drift_after=0.5)
        code = """
import sys, time, json
import pandas as pd
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
t0 = time.perf_counter()
try:
    from evidently import Report
    from evidently.presets import DataDriftPreset
    new = True
except ImportError:
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    new = False
t = time.perf_counter()  # the report alone: Evidently's import (several seconds) is apart
if new:
    Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
else:
    r = Report(metrics=[DataDriftPreset()]); r.run(reference_data=ref, current_data=cur)
print(json.dumps({"seconds": time.perf_counter() - t, "import_seconds": t - t0}))
"""
        res = subprocess.run([str(py), "-c", code, str(ref), str(cur)], check=True,
                             capture_output=True, text=True, timeout=900)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        sec = out["seconds"]
        print(f"evidently DataDriftPreset, 100k ref vs one 10k window of 25 features: {sec:.2f} s "
              f"for the report alone ({WINDOW * N_FEATURES / sec:,.0f} feature-values/s); "
              f"its import took {out['import_seconds']:.2f} s more")
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
        print(f"evidently comparison skipped: {tail[0][:200]}")
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
        print(f"evidently comparison skipped: {type(exc).__name__}: {str(exc)[:200]}")


def small_batches(profile_path: Path) -> None:
    """Sidecar-style intake: Monitor.observe on small batches (per-batch overhead, no reading)."""
    from driftline.engine.monitor import Monitor, WindowPolicy
    from driftline.engine.records import RecordBatch
    from driftline.profile.format import BaselineProfile

    prof = BaselineProfile.load(profile_path)
    rng = np.random.default_rng(5)
    for size, total in ((1, 5_000), (100, 100_000), (10_000, 500_000)):
        mon = Monitor(prof, window=WindowPolicy(records=10_000, max_age=None), clock=None)
        batch = RecordBatch({n: rng.normal(size=size) for n in prof.features})
        t = time.perf_counter()
        for _ in range(total // size):
            mon.observe(batch)
        sec = time.perf_counter() - t
        print(f"Monitor.observe, batches of {size:>6,} rows × {N_FEATURES} features "
              f"({total // 10_000:>2} windows of 10k closed): {total / sec:>10,.0f} rows/s")


RSS_FEATURES = (25, 100, 400)
RSS_ROWS, RSS_REF_ROWS = 200_000, 20_000

PROFILE_RUN = """
import sys
from driftline.profile.format import BaselineProfile
BaselineProfile.load(sys.argv[1])
"""

#: Runs one command and prints its own peak RSS and CPU time (``wait4``: its children's CPU
#: counted, their RSS not), and the peak of its process tree's summed RSS sampled every 20 ms
#: (``tree_mb``: ``analyze``'s second process included). A child's
#: ``ru_maxrss`` starts from the high-water mark of the process that spawned it (Linux records
#: the old memory map's peak at ``exec``), so a child of this benchmark — hundreds of MB after
#: generating the data — reported that instead of its own; this small launcher is the parent.
LAUNCH = """
import json, os, subprocess, sys, threading
def tree_kb(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except OSError:
            pass
    return total
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
done, tree = threading.Event(), [0]
def watch():
    while not done.wait(0.02):
        tree[0] = max(tree[0], tree_kb(proc.pid))
threading.Thread(target=watch, daemon=True).start()
_, status, usage = os.wait4(proc.pid, 0)
done.set()
err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "rss_mb": usage.ru_maxrss / 1024,
                  "tree_mb": tree[0] / 1024, "cpu": usage.ru_utime + usage.ru_stime,
                  "err": err[-300:]}))
"""


def _peak_mb(cmd: list[str]) -> tuple[float, float, float]:
    """Peak RSS (MB) and CPU seconds of ``cmd`` alone, and its process tree's sampled peak
    RSS (MB), through :data:`LAUNCH`."""
    # from a neutral directory: `python -c` imports the checkout it runs in before its own venv's
    out = subprocess.run([sys.executable, "-c", LAUNCH, *cmd], check=True, capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"]:
        raise RuntimeError(f"{cmd[:3]} failed: {res['err'].strip()}")
    return float(res["rss_mb"]), float(res["cpu"]), float(res["tree_mb"])


def _option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def rss_by_features(features: tuple[int, ...] = RSS_FEATURES, rows: int = RSS_ROWS, *,
                    rounds: int = 1, against: str | None = None) -> None:
    """Peak RSS of the whole ``driftline analyze`` process against the number of features:
    the ``peers`` workload's shapes (4/5 numeric, 1/5 categorical) at ``rows`` rows in windows
    of 10k against a 20k-row reference, the file in 100k-row row groups; beside it the peak of
    loading the baseline alone (the floor before any data is read) and of building it. The
    minimum of ``rounds``; with ``against`` (another checkout's ``.venv/bin/python``) the same
    runs with that one too, interleaved, on the same files."""
    from benchmarks.workload import generate as generate_mixed

    pythons = {"this": sys.executable}
    if against:
        pythons["against"] = against
    print(f"peak RSS, whole processes, {rows:,} rows in windows of {WINDOW:,} vs a "
          f"{RSS_REF_ROWS:,}-row reference; min of {rounds}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| features | code | analyze peak RSS MB | with its second process (sampled) MB | "
          "analyze CPU s | baseline load alone MB | baseline build peak MB | baseline JSON MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for nf in features:
        with tempfile.TemporaryDirectory(prefix="driftline-rss-") as d:
            tmp = Path(d)
            nn = nf * 4 // 5
            generate_mixed(tmp / "ref.parquet", RSS_REF_ROWS, seed=1, n_numeric=nn,
                           n_categorical=nf - nn)
            generate_mixed(tmp / "cur.parquet", rows, seed=2, drift_after=0.5,
                           n_numeric=nn, n_categorical=nf - nn)
            best: dict[str, dict[str, float]] = {k: {} for k in pythons}
            for _ in range(rounds):
                for code, py in pythons.items():
                    cli = str(Path(py).with_name("driftline"))
                    base = tmp / f"base-{code}.json"
                    runs = {
                        "build": [cli, "baseline", "build", str(tmp / "ref.parquet"), "-o",
                                  str(base)],
                        "analyze": [cli, "analyze", str(tmp / "cur.parquet"), "--baseline",
                                    str(base), "--window-size", str(WINDOW), "--format",
                                    "json", "-o", str(tmp / "out.json")],
                        "load": [py, "-c", PROFILE_RUN, str(base)],
                    }
                    for what, cmd in runs.items():
                        mb, cpu, tree = _peak_mb(cmd)
                        b = best[code]
                        b[what] = min(b.get(what, mb), mb)
                        if what == "analyze":
                            b["cpu"] = min(b.get("cpu", cpu), cpu)
                            b["tree"] = min(b.get("tree", tree), tree)
                    best[code]["json"] = base.stat().st_size / 1e6
            for code, b in best.items():
                print(f"| {nf} | {code} | {b['analyze']:.0f} | {b['tree']:.0f} | {b['cpu']:.1f} "
                      f"| {b['load']:.0f} "
                      f"| {b['build']:.0f} | {b['json']:.0f} |", flush=True)


def reconstruction_cost(repeat: int = 30) -> None:
    """CPU ms per 10k-row window of the multivariate reconstruction error on the ``peers``
    workload (25 features, 100k-row reference): the encoding, the standardise-project-
    reconstruct definition (``row_errors``) and the one-product form the monitor runs
    (``ErrorMap``), each the minimum of ``repeat`` calls, interleaved."""
    from benchmarks.workload import generate as generate_mixed
    from driftline.analyze.offline import layout_for_schema, to_record_batch
    from driftline.detectors.reconstruction import ErrorMap, row_errors
    from driftline.engine.multivariate import MultivariateRef
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile

    with tempfile.TemporaryDirectory(prefix="driftline-mv-") as d:
        tmp = Path(d)
        generate_mixed(tmp / "ref.parquet", 100_000, seed=1)
        generate_mixed(tmp / "cur.parquet", WINDOW, seed=2)
        prof = build_profile(discover([str(tmp / "ref.parquet")]), BuildOptions(),
                             progress=False)
        table = pq.read_table(tmp / "cur.parquet")
    ref = MultivariateRef.of(prof)
    assert ref is not None
    cols = to_record_batch(prof, table.to_batches()[0],
                           layout_for_schema(prof, table.schema, "cur", None)).features
    x = ref.encoder.encode(cols)
    fast = ErrorMap.of(ref.model)
    runs: dict[str, list[float]] = {"encode": [], "row_errors": [], "ErrorMap": []}
    calls = {"encode": lambda: ref.encoder.encode(cols), "row_errors":
             lambda: row_errors(ref.model, x), "ErrorMap": lambda: fast.errors(x)}
    for _ in range(repeat):
        for name, call in calls.items():
            t = time.process_time()
            call()
            runs[name].append(time.process_time() - t)
    old, new = row_errors(ref.model, x).sum(), fast.errors(x).sum()
    print(f"reconstruction error, one window of {len(x):,} × {x.shape[1]} encoded columns, "
          f"{ref.model.n_components} components; CPU ms, min / median of {repeat}, load "
          f"{os.getloadavg()[0]:.1f}")
    for name, ts in runs.items():
        ms = sorted(1e3 * t for t in ts)
        print(f"  {name:>10}: {ms[0]:.2f} / {ms[len(ms) // 2]:.2f}")
    print(f"  window value relative difference: {abs(new - old) / old:.1e}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from benchmarks.workload import compile_bytecode

    compile_bytecode()  # every figure here is of fresh processes
    if "--rss" in argv:
        feats = tuple(int(x) for x in _option(argv, "--features", "25,100,400").split(","))
        rss_by_features(feats, int(_option(argv, "--rows", str(RSS_ROWS))),
                        rounds=int(_option(argv, "--rounds", "1")),
                        against=_option(argv, "--against", "") or None)
        return
    if "--reconstruction" in argv:
        reconstruction_cost()
        return
    if "--stages" in argv:  # wall and CPU per stage of the whole CLI process
        from benchmarks.analyze_stages import main as stages

        stages(argv)
        return
    sizes = SIZES
    if os.environ.get("DRIFTLINE_BENCH_QUICK"):
        sizes = (50_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as d:
        tmp = Path(d)
        ref = tmp / "ref.parquet"
        generate(ref, REF_ROWS, seed=1)
        from driftline.io.readers import discover
        from driftline.profile.build import BuildOptions, build_profile

        t = time.perf_counter()
        prof = build_profile(discover([str(ref)]), BuildOptions(), progress=False)
        build_s = time.perf_counter() - t
        prof_path = tmp / "profile.json"
        prof.save(prof_path)
        print(f"baseline build: {REF_ROWS:,} rows × {N_FEATURES} features in {build_s:.2f} s "
              f"({REF_ROWS / build_s:,.0f} rows/s)")
        print(f"{'rows':>10} {'tool':>10} {'seconds':>8} {'rows/s':>12} {'values/s':>13} "
              f"{'peak RSS MB':>12} {'windows':>8}")
        for rows in sizes:
            data = tmp / f"cur_{rows}.parquet"
            generate(data, rows, seed=2, drift_after=0.5)
            # best of REPEAT, alternating the two, so a noisy neighbour hurts both alike
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "floor": []}
            for _ in range(REPEAT):
                runs["ours"].append(_child(DRIFTLINE_RUN, str(prof_path), str(data), str(WINDOW)))
                runs["floor"].append(_child(NUMPY_RUN, str(prof_path), str(data), str(WINDOW)))
            ours = min(runs["ours"], key=lambda r: r["seconds"])
            floor = min(runs["floor"], key=lambda r: r["seconds"])
            for name, r in (("driftline", ours), ("numpy", floor)):
                print(f"{rows:>10,} {name:>10} {r['seconds']:>8.2f} {rows / r['seconds']:>12,.0f} "
                      f"{rows * N_FEATURES / r['seconds']:>13,.0f} {r['rss_mb']:>12.0f} "
                      f"{int(r['windows']):>8}")
            print(f"{'':>10} driftline / numpy loop speed: {floor['seconds'] / ours['seconds']:.2f}× "
                  f"(target ≥ 0.5×); drifted windows: {int(ours['drifted'])}")
            b = _child(BUILD_RUN, str(data))
            print(f"{'':>10} baseline build on these rows: {b['seconds']:.2f} s "
                  f"({rows / b['seconds']:,.0f} rows/s), peak RSS {b['rss_mb']:.0f} MB, "
                  f"quantile rank error bound {b['error']:.5f}")
            data.unlink()
        small_batches(prof_path)
        if "--evidently" in argv:
            _evidently(tmp)


if __name__ == "__main__":
    main()
