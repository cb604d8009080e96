"""Baseline build and analysis on Spark (local mode, 2 cores) beside the single-machine engine.

For each size in ``DRIFTLINE_BENCH_SPARK_ROWS`` (default ``1000000,2000000,10000000``; add
``50000000`` when the disk allows, ~4.5 GB) it uses a Parquet reference of 8 numeric and 2
categorical features with a binary model's probability, prediction, label and a timestamp
(250k-row row groups), generated once and cached under ``~/.cache/driftline-bench/spark``
(``DRIFTLINE_BENCH_CACHE``), then, each in a fresh subprocess so the memory high-water marks
belong to that run alone (the Spark run writes its build figures to stderr as soon as the build
is done):

* ``local build`` / ``local analyze``: ``build_profile`` (without the multivariate PCA model's
  two extra passes, in both engines, so figures compare with earlier runs) and
  ``driftline analyze`` over the same file, windows of 1 hour of record time (sizes above
  ``DRIFTLINE_BENCH_SPARK_LOCAL_MAX`` rows skip it; Spark then analyzes against its profile);
* ``spark build`` / ``spark analyze``: :func:`driftline.spark.build_baseline` and
  :func:`driftline.spark.analyze` (same windows) on ``local[2]``, 8 shuffle partitions; the
  Spark session start (with one tiny Python job, which starts the Python workers) is timed
  apart.

Reported: wall seconds, CPU seconds (the process's for the local engine; for Spark the JVM's
and its Python workers', which do the work, with the driver's), rows/s, and memory:

* ``driver MB``: the Python driver process's own peak RSS (``ru_maxrss`` of ``RUSAGE_SELF``).
  It does not include the JVM (py4j starts it as a child, read apart below) nor the Python
  workers (children of the JVM). ``build/analyze``: the driver's RSS high-water mark within
  each phase, sampled every 20 ms;
* ``JVM MB``: the JVM's ``VmHWM`` (Spark's driver and, in local mode, its executors);
* ``workers MB``: the largest summed RSS of the JVM's Python workers (sampled every 0.5 s;
  pages shared by forked workers are counted in each).

At 2M rows (or the smallest size) it also checks the Spark profile against the local one:
counts, categories and missing ratios equal, edges within the stored rank bound, and prints the
largest PSI difference of the same windows.

``python -m benchmarks spark`` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SIZES = tuple(int(s) for s in os.environ.get(
    "DRIFTLINE_BENCH_SPARK_ROWS", "1000000,2000000,10000000").split(","))
#: Sizes above this run on Spark only (the single-machine engine takes ~1 h at 50M rows).
LOCAL_MAX = int(os.environ.get("DRIFTLINE_BENCH_SPARK_LOCAL_MAX", "100000000"))
CHUNK = 250_000
T0 = 1_700_000_000


CACHE = Path(os.environ.get("DRIFTLINE_BENCH_CACHE",
                            Path.home() / ".cache" / "driftline-bench")) / "spark"
#: Bump when the generated data changes, so a stale cached file is never reused.
DATA_VERSION = 2


def dataset(rows: int, seed: int) -> Path:
    """The reference file for ``rows``, generated once and cached (50M rows is ~4.5 GB and takes
    minutes to write; a re-run reuses it)."""
    path = CACHE / f"ref-{rows}-s{seed}-v{DATA_VERSION}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            generate(tmp, rows, seed)
            os.replace(tmp, path)  # a killed run never leaves a truncated file under the name
        finally:
            tmp.unlink(missing_ok=True)
    return path


def generate(path: Path, rows: int, seed: int) -> None:
    """Write ``rows`` rows as 250k-row row groups (Spark splits the file along them).

    Categories are drawn as indices and cast from a dictionary, which writes strings ~10x
    faster than building them in numpy."""
    rng = np.random.default_rng(seed)
    small = pa.array(["a", "b", "c", "d", "e"])
    large = pa.array([f"v{j}" for j in range(40)])
    with pq.ParquetWriter(path, _SCHEMA) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            cols: dict[str, pa.Array] = {}
            for i in range(8):
                x = rng.normal(0, 1, n) if i % 2 == 0 else rng.lognormal(0, 0.5, n)
                cols[f"f{i}"] = pa.array(x)
            for name, values in (("c0", small), ("c1", large)):
                idx = pa.array(rng.integers(0, len(values), n).astype(np.int32))
                cols[name] = pa.DictionaryArray.from_arrays(idx, values).cast(pa.string())
            p = 1 / (1 + np.exp(-cols["f0"].to_numpy()))
            cols["p"] = pa.array(p)
            cols["pred"] = pa.array((p > 0.5).astype(np.int64))
            cols["y"] = pa.array((rng.random(n) < p).astype(np.int64))
            ts = (T0 + (start + np.arange(n)) * 0.1) * 1e6  # 10 rows per second
            cols["ts"] = pa.array(ts.astype(np.int64), pa.timestamp("us", tz="UTC"))
            writer.write_table(pa.table(cols, schema=_SCHEMA), row_group_size=CHUNK)


_SCHEMA = pa.schema([*(pa.field(f"f{i}", pa.float64()) for i in range(8)),
                     pa.field("c0", pa.string()), pa.field("c1", pa.string()),
                     pa.field("p", pa.float64()), pa.field("pred", pa.int64()),
                     pa.field("y", pa.int64()), pa.field("ts", pa.timestamp("us", tz="UTC"))])


_COMMON = """
import json, os, resource, sys, time
from driftline.profile.build import BuildOptions
OPTS = BuildOptions(prediction="pred", proba_binary="p", target="y", timestamp="ts",
                    multivariate=False, model_name="bench")
def procs():  # pid -> (parent pid, CPU ticks) of every process
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    return out
def tree(root, table):  # root and its descendants
    found, todo = [], [root]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(c for c, (pp, _) in table.items() if pp == p)
    return found
def tree_cpu(root):  # CPU s of process root and its descendants (exited ones once waited)
    table = procs()
    return sum(table.get(p, (0, 0))[1] for p in tree(root, table)) / os.sysconf("SC_CLK_TCK")
def vmrss(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return 0.0
class Peaks:
    # The driver's RSS high-water mark per phase (sampled every 20 ms), and the largest summed
    # RSS of the Python worker processes under root (the JVM; sampled every 0.5 s, pages
    # shared by forked workers counted in each).
    def __init__(self):
        import threading
        self.phase, self.driver, self.workers, self.root = "start", {}, 0.0, None
        threading.Thread(target=self._run, daemon=True).start()
    def _run(self):
        n = 0
        while True:
            r = vmrss(os.getpid())
            self.driver[self.phase] = max(self.driver.get(self.phase, 0.0), r)
            if self.root is not None and n % 25 == 0:
                table = procs()
                self.workers = max(self.workers, sum(vmrss(p) for p in tree(self.root, table)
                                                     if p != self.root))
            n += 1
            time.sleep(0.02)
PEAKS = Peaks()
def cpu():
    return time.process_time()
def rss():
    # RUSAGE_CHILDREN is not used: a child forked from this process starts with its
    # high-water mark (Linux records it at the child's exec), so it would report the driver
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_LOCAL = _COMMON + """
from driftline.analyze.offline import analyze
from driftline.io.readers import discover
from driftline.profile.build import build_profile
data, out = sys.argv[1], sys.argv[2]
PEAKS.phase = "build"
t, c = time.perf_counter(), cpu()
prof = build_profile(discover([data]), OPTS, progress=False)
build, build_cpu = time.perf_counter() - t, cpu() - c
prof.save(out + ".local.json")
PEAKS.phase = "analyze"
t, c = time.perf_counter(), cpu()
windows = [w.to_dict() for w in analyze(prof, discover([data]), window_size=2**62,
                                         window_duration=3600.0)]
an, an_cpu = time.perf_counter() - t, cpu() - c
json.dump(windows, open(out + ".local.windows.json", "w"))
py = rss()
print(json.dumps({"build": build, "analyze": an, "windows": len(windows), "rss": py,
                  "build_cpu": build_cpu, "analyze_cpu": an_cpu, "phases": PEAKS.driver}))
"""

_SPARK = _COMMON + """
os.environ["PYSPARK_PYTHON"] = sys.executable
t = time.perf_counter()
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "8").config("spark.driver.memory", "2g")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
# the first Python job starts the executors' Python workers: counted as start, not as build
spark.range(1000).mapInArrow(lambda it: it, "id long").count()
start = time.perf_counter() - t
from driftline import spark as dls
from driftline.profile.format import BaselineProfile
data, out = sys.argv[1], sys.argv[2]
df = spark.read.parquet(data)
jvm = spark.sparkContext._gateway.proc.pid
PEAKS.root = jvm
def spark_cpu():
    return cpu() + tree_cpu(jvm)
PEAKS.phase = "build"
t, c = time.perf_counter(), spark_cpu()
prof = dls.build_baseline(df, OPTS, name=data)
build, build_cpu = time.perf_counter() - t, spark_cpu() - c
prof.save(out + ".spark.json")
PEAKS.phase = "between"
print(json.dumps({"start": start, "build": build, "build_cpu": build_cpu,
                  "rss_after_build": rss(), "phases": PEAKS.driver,
                  "workers": PEAKS.workers}), file=sys.stderr, flush=True)
local = BaselineProfile.load(out + ".local.json" if os.path.exists(out + ".local.json")
                             else out + ".spark.json")
PEAKS.phase = "analyze"
t, c = time.perf_counter(), spark_cpu()
windows = [w.to_dict() for w in dls.analyze(df, local, window_duration=3600.0)]
an, an_cpu = time.perf_counter() - t, spark_cpu() - c
json.dump(windows, open(out + ".spark.windows.json", "w"))
parts = df.rdd.getNumPartitions()
py = rss()
with open(f"/proc/{jvm}/status") as fh:  # the JVM's peak RSS (it is not a waited-for child)
    child = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
spark.stop()
print(json.dumps({"start": start, "build": build, "analyze": an, "windows": len(windows),
                  "partitions": parts, "rss": py, "child_rss": child, "build_cpu": build_cpu,
                  "analyze_cpu": an_cpu, "phases": PEAKS.driver, "workers": PEAKS.workers}))
"""


def _run(script: str, *args: str) -> dict[str, Any]:
    before = _load()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                          stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"exit {proc.returncode}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = f"{before}-{_load()}"  # 1-minute load average before and after the run
    return out


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _compare(out: str, data: Path) -> str:
    from driftline.profile.format import BaselineProfile, NumericFeature

    a = BaselineProfile.load(out + ".spark.json")
    b = BaselineProfile.load(out + ".local.json")
    same = (a.n_records == b.n_records
            and all(a.features[n] == b.features[n] for n in ("c0", "c1"))
            and all(a.features[n].count == b.features[n].count  # type: ignore[union-attr]
                    and a.features[n].missing_ratio == b.features[n].missing_ratio
                    for n in a.features)
            and a.provenance["content_hash"] == b.provenance["content_hash"])
    eps = a.settings["quantile_rank_error"]
    worst = 0.0
    table = pq.read_table(data, columns=[f"f{i}" for i in range(8)])
    for name in table.column_names:
        f = a.features[name]
        assert isinstance(f, NumericFeature)
        v = np.sort(table.column(name).to_numpy())
        probs = np.arange(1, 10) / 10
        lo = np.searchsorted(v, f.edges, "left") / len(v) - probs
        hi = probs - np.searchsorted(v, f.edges, "right") / len(v)
        worst = max(worst, float(np.max(lo)), float(np.max(hi)))
    wa = json.loads(Path(out + ".spark.windows.json").read_text())
    wb = json.loads(Path(out + ".local.windows.json").read_text())
    dpsi = max(abs(x["features"][n]["psi"] - y["features"][n]["psi"])
               for x, y in zip(wa, wb, strict=True) for n in x["features"])
    return (f"counts/categories/missing/content hash equal: {same}; edge rank error "
            f"{max(worst, 0.0):.2e} <= bound {eps:.2e}: {worst <= eps}; windows {len(wa)} = "
            f"{len(wb)}; max |PSI diff| of the same windows {dpsi:.1e}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="driftline-bench-spark-") as tmp:
        print(f"{'rows':>11} {'engine':>7} {'start s':>8} {'build s':>8} {'cpu s':>7} "
              f"{'build rows/s':>13} {'analyze s':>10} {'cpu s':>7} {'driver MB':>10} "
              f"{'build/analyze':>14} {'JVM MB':>7} {'workers MB':>10} {'parts':>5} load",
              flush=True)
        check_at = 2_000_000 if 2_000_000 in SIZES else min(SIZES)
        for rows in SIZES:
            data = dataset(rows, seed=1)
            out = str(Path(tmp) / f"out-{rows}")
            runs = [("local", _run(_LOCAL, str(data), out))] if rows <= LOCAL_MAX else []
            runs.append(("spark", _run(_SPARK, str(data), out)))
            for name, r in runs:
                def phase(p: str, r: dict[str, Any] = r) -> str:
                    return f"{r['phases'].get(p, 0):.0f}"
                start = f"{r['start']:8.1f}" if "start" in r else f"{'-':>8}"
                print(f"{rows:>11,} {name:>7} {start} {r['build']:8.1f} {r['build_cpu']:7.1f} "
                      f"{rows / r['build']:13,.0f} {r['analyze']:10.1f} {r['analyze_cpu']:7.1f} "
                      f"{r['rss']:10.0f} {phase('build'):>6}/{phase('analyze'):<7} "
                      f"{r['child_rss'] if name == 'spark' else 0:7.0f} "
                      f"{r.get('workers', 0):10.0f} {r.get('partitions', '-'):>5} "
                      f"{r['load']}", flush=True)
            if rows == check_at and len(runs) == 2:
                print(f"  check at {rows:,} rows: {_compare(out, data)}", flush=True)


if __name__ == "__main__":
    main()
