"""`driftline analyze` beside its peers on one workload: whole processes, interleaved, min/median.

The workload (:mod:`benchmarks.workload`): ``--rows`` rows (1M) × 25 features (20 numeric of
mixed shapes, 5 categorical) in windows of 10k against a 100k-row reference, drift injected in
the second half. Each round runs every contender once, in turn, as a fresh process timed from
outside (interpreter start and imports included); ``--rounds`` rounds (3); the table shows min
and median wall seconds, and each contender's own in-process seconds where it reports them.

Contenders:

* ``driftline analyze`` — the CLI, JSON report to a file (the project's environment), its
  later windows in a second process on a machine of 2+ cores (``--processes``);
* ``driftline-cli-1``, ``driftline-cli-2`` — the same with ``--processes 1`` and ``2`` (the
  default chooses by the load; their reports must be byte for byte the same);
* Driftline API — ``analyze()`` in a fresh interpreter, timed around the call only;
* numpy loop — per window and feature: PSI on reference deciles, KS against the presorted
  reference (binary searches) with scipy's asymptotic p-value (``kstwo.sf``), χ² contingency
  with scipy, Benjamini–Hochberg; the reference sorted and counted at start (what any
  hand-written monitor must pay);
* NannyML ``UnivariateDriftCalculator`` (KS + Wasserstein numeric, χ² categorical; no model
  outputs in this workload, so no CBPE);
* Alibi Detect ``TabularDrift`` (KS numeric, χ² categorical), one ``predict`` per window;
* whylogs: a profile per window, compared with the reference profile
  (``calculate_drift_scores``);
* Evidently ``DataDriftPreset``: one report per window for ``--evidently-windows`` (3)
  windows, extrapolated to all of them (stated in the table).

Peers run only in their own virtualenvs under ``--cache`` (``$DRIFTLINE_BENCH_CACHE``, else
``~/.cache/driftline-bench``), created on first use with ``pip install`` from PyPI, never in the
project's environment; one that cannot be installed or fails is listed as skipped with the
reason. All contenders must find the injected shift: the table prints the drifted windows each
reports (how each counts "drifted" differs: any feature alarmed in the window). Driftline's
modules are compiled to bytecode first (:func:`~benchmarks.workload.compile_bytecode`), as the
peers' installed packages are.

Run: ``python -m benchmarks peers`` (about 30 minutes with installs), or
``python -m benchmarks.bench_peers --rows 100000 --only driftline-cli,numpy`` for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.workload import N_CATEGORICAL, N_NUMERIC, compile_bytecode, generate, names

WINDOW = 10_000
REF_ROWS = 100_000
ENVS = {
    "nannyml": ["nannyml", "statsmodels", "pyarrow<20"],
    "alibi": ["alibi-detect", "pyarrow<20"],
    "whylogs": ["whylogs[viz]", "pandas<3", "pyarrow<20"],
    "evidently": ["evidently", "pandas<3", "pyarrow"],
}

API = """
import json, sys, time
t = time.perf_counter()
from driftline.analyze.offline import analyze
from driftline.io.readers import discover
from driftline.profile.format import BaselineProfile
prof = BaselineProfile.load(sys.argv[1])
t1 = time.perf_counter()
ws = list(analyze(prof, discover([sys.argv[2]]), window_size=int(sys.argv[3])))
print(json.dumps({"inner": time.perf_counter() - t1, "drifted": sum(w.drifted for w in ws),
                  "windows": len(ws)}))
"""

NUMPY = """
import json, sys, time
import numpy as np, pyarrow.parquet as pq, pyarrow.compute as pc
from scipy import stats
ref_path, cur_path, window = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
ref = pq.read_table(ref_path)
num = [c for c in ref.column_names if c.startswith("n")]
cat = [c for c in ref.column_names if c.startswith("c")]
R = {}
for c in num:
    r = np.sort(ref.column(c).to_numpy())
    edges = np.unique(np.quantile(r, np.linspace(0, 1, 11)[1:-1]))
    p = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1) / len(r)
    R[c] = (r, edges, np.maximum(p, 1e-4))
C = {}
for c in cat:
    vals = ref.column(c).combine_chunks().dictionary_encode()
    levels = vals.dictionary
    counts = np.bincount(vals.indices.to_numpy(), minlength=len(levels))
    C[c] = (levels, counts)

def close(cols):
    ps = []
    for c, (r, edges, p) in R.items():
        x = cols[c]; x = x[np.isfinite(x)]
        q = np.maximum(np.bincount(np.searchsorted(edges, x, side="right"),
                                   minlength=len(edges) + 1) / len(x), 1e-4)
        psi = float(np.sum((q - p) * np.log(q / p)))
        s = np.sort(x); m, w = len(r), len(s)  # presorted reference: two binary searches
        d_plus = np.max(np.searchsorted(r, s, side="left") / m - np.arange(w) / w)
        d_minus = np.max(np.searchsorted(s, s, side="right") / w
                         - np.searchsorted(r, s, side="right") / m)
        ps.append(stats.kstwo.sf(max(d_plus, d_minus), round(m * w / (m + w))))
    for c, (levels, counts) in C.items():
        idx = pc.index_in(cols[c], value_set=levels).fill_null(len(levels)).to_numpy()
        cur = np.bincount(idx, minlength=len(levels) + 1)[: len(levels)]
        table = np.vstack([counts, cur]); table = table[:, table.sum(axis=0) > 0]
        ps.append(stats.chi2_contingency(table, correction=False).pvalue)
    ps = np.asarray(ps); order = np.argsort(ps); m = len(ps)
    adj = np.minimum.accumulate((ps[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    return bool((adj < 0.05).any())

drifted = windows = 0
pf = pq.ParquetFile(cur_path)
buf = None
for batch in pf.iter_batches(batch_size=window):
    windows += 1
    cols = {c: batch.column(c).to_numpy() for c in num}
    cols.update({c: batch.column(c) for c in cat})
    drifted += close(cols)
print(json.dumps({"inner": time.perf_counter() - t0, "drifted": drifted, "windows": windows}))
"""

NANNYML = """
import json, sys, time
import pandas as pd, nannyml as nml
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
t = time.perf_counter()
calc = nml.UnivariateDriftCalculator(column_names=list(ref.columns), chunk_size=int(sys.argv[3]),
    continuous_methods=["kolmogorov_smirnov", "wasserstein"], categorical_methods=["chi2"])
calc.fit(ref)
df = calc.calculate(cur).filter(period="analysis").to_df()
alerts = df.xs("alert", axis=1, level=2).any(axis=1)
print(json.dumps({"inner": time.perf_counter() - t, "drifted": int(alerts.sum()),
                  "windows": len(df)}))
"""

ALIBI = """
import json, sys, time
import numpy as np, pandas as pd
from alibi_detect.cd import TabularDrift
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); w = int(sys.argv[3])
t = time.perf_counter()
cats = [c for c in ref.columns if c.startswith("c")]
for c in cats:
    levels = {v: i for i, v in enumerate(sorted(ref[c].unique()))}
    ref[c] = ref[c].map(levels).astype(float); cur[c] = cur[c].map(levels).fillna(-1).astype(float)
idx = {ref.columns.get_loc(c): None for c in cats}
cd = TabularDrift(ref.to_numpy(), p_val=0.05, categories_per_feature=idx)
x = cur.to_numpy(); drifted = windows = 0
for s in range(0, len(x), w):
    drifted += int(cd.predict(x[s:s + w])["data"]["is_drift"]); windows += 1
print(json.dumps({"inner": time.perf_counter() - t, "drifted": drifted, "windows": windows}))
"""

WHYLOGS = """
import json, sys, time
import pandas as pd, whylogs as why
from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); w = int(sys.argv[3])
t = time.perf_counter()
target = why.log(ref).view()
drifted = windows = 0
for s in range(0, len(cur), w):
    scores = calculate_drift_scores(target_view=why.log(cur.iloc[s:s + w]).view(),
                                    reference_view=target, with_thresholds=True)
    drifted += any(v and v.get("drift_category") == "DRIFT" for v in scores.values())
    windows += 1
print(json.dumps({"inner": time.perf_counter() - t, "drifted": drifted, "windows": windows}))
"""

EVIDENTLY = """
import json, sys, time
import pandas as pd
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); w = int(sys.argv[3])
k = int(sys.argv[4])
from evidently import Report
from evidently.presets import DataDriftPreset
t = time.perf_counter()  # the reports alone: Evidently's import (seconds) is not per window
total = len(range(0, len(cur), w)); drifted = 0
for s in list(range(0, len(cur), w))[:k]:
    snap = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur.iloc[s:s + w])
    res = snap.dict()["metrics"][0]["value"]
    drifted += int(res["count"] > 0)
sec = time.perf_counter() - t
print(json.dumps({"inner": sec * total / k, "drifted": drifted, "windows": k,
                  "extrapolated_from": k}))
"""


def _cache(arg: str | None) -> Path:
    base = arg or os.environ.get("DRIFTLINE_BENCH_CACHE") or str(Path.home() / ".cache"
                                                                  / "driftline-bench")
    return Path(base)


def ensure_env(cache: Path, name: str) -> Path:
    """The peer's own virtualenv (made and filled from PyPI on first use)."""
    venv = cache / name
    py = venv / "bin" / "python"
    done = venv / ".installed"
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *ENVS[name]], check=True,
                       timeout=3600, capture_output=True, text=True)
        done.write_text(" ".join(ENVS[name]) + "\n")
    return py


def _timed(cmd: list[str]) -> tuple[float, dict[str, float]]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(tail[:200])
    lines = out.stdout.strip().splitlines()
    try:
        return wall, json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return wall, {}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", help="where the peers' virtualenvs live")
    ap.add_argument("--only", help="comma-separated contenders (driftline-cli, driftline-cli-1, -2, "
                    "driftline-api, numpy, nannyml, alibi, whylogs, evidently)")
    ap.add_argument("--evidently-windows", type=int, default=3)
    ap.add_argument("--install-only", action="store_true", help="make the peers' venvs, exit")
    args = ap.parse_args(argv if argv is not None else [])
    cache = _cache(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    wanted = (args.only.split(",") if args.only else
              ["driftline-cli", "driftline-api", "numpy", *ENVS])
    peers: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for name in ENVS:
        if name in wanted:
            try:
                peers[name] = ensure_env(cache, name)
            except (subprocess.SubprocessError, OSError) as exc:
                err = getattr(exc, "stderr", "") or str(exc)
                skipped[name] = f"cannot install: {err.strip().splitlines()[-1:] or exc}"
    if args.install_only:
        print(f"peer environments in {cache}: {sorted(peers)}; skipped: {skipped}")
        return
    driftline = Path(sys.executable).with_name("driftline")
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="driftline-peers-") as d:
        tmp = Path(d)
        ref, cur, base = tmp / "ref.parquet", tmp / "cur.parquet", tmp / "baseline.json"
        generate(ref, REF_ROWS, seed=1)
        generate(cur, args.rows, seed=2, drift_after=0.5)
        subprocess.run([str(driftline), "baseline", "build", str(ref), "-o", str(base)],
                       check=True, capture_output=True)
        w = str(WINDOW)
        cmds = {
            "driftline-cli": [str(driftline), "analyze", str(cur), "--baseline", str(base),
                              "--window-size", w, "--format", "json", "-o",
                              str(tmp / "out.json")],
            "driftline-api": [sys.executable, "-c", API, str(base), str(cur), w],
            **{f"driftline-cli-{n}": [str(driftline), "analyze", str(cur), "--baseline",
                                      str(base), "--window-size", w, "--format", "json",
                                      "--processes", n, "-o", str(tmp / f"out{n}.json")]
               for n in ("1", "2")},
            "numpy": [sys.executable, "-c", NUMPY, str(ref), str(cur), w],
        }
        codes = {"nannyml": NANNYML, "alibi": ALIBI, "whylogs": WHYLOGS, "evidently": EVIDENTLY}
        for name, py in peers.items():
            extra = [str(args.evidently_windows)] if name == "evidently" else []
            cmds[name] = [str(py), "-c", codes[name], str(ref), str(cur), w, *extra]
        order = [n for n in wanted if n in cmds]
        walls: dict[str, list[float]] = {n: [] for n in order}
        inner: dict[str, list[float]] = {n: [] for n in order}
        info: dict[str, dict[str, float]] = {}
        load = [os.getloadavg()[0]]
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:  # interleaved, order alternating
                if name in skipped:
                    continue
                try:
                    wall, res = _timed(cmds[name])
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    skipped[name] = f"failed: {exc}"
                    continue
                if name.startswith("driftline-cli"):
                    report = tmp / f"out{name.removeprefix('driftline-cli').lstrip('-')}.json"
                    doc = json.loads(report.read_text())
                    for other in tmp.glob("out*.json"):
                        if other.read_bytes() != report.read_bytes():
                            raise SystemExit(f"the CLI's reports {report.name} and "
                                             f"{other.name} differ")
                    res = {"drifted": sum(x["drifted"] for x in doc["windows"]),
                           "windows": len(doc["windows"])}
                if name == "evidently" and "inner" in res:
                    wall = res["inner"]  # extrapolated to every window; its import excluded
                walls[name].append(wall)
                print(f"round {r + 1}: {name} {wall:.2f} s wall, in-process "
                      f"{res.get('inner', float('nan')):.2f} s, drifted "
                      f"{res.get('drifted')} of {res.get('windows')}, load "
                      f"{os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
                if "inner" in res:
                    inner[name].append(res["inner"])
                info[name] = res
            load.append(os.getloadavg()[0])
    print(f"{args.rows:,} rows × {N_NUMERIC + N_CATEGORICAL} features ({N_NUMERIC} numeric, "
          f"{N_CATEGORICAL} categorical: {', '.join(names()[-N_CATEGORICAL:])}), windows of "
          f"{WINDOW:,} vs a {REF_ROWS:,}-row reference; {args.rounds} interleaved rounds; "
          f"load average {min(load):.1f}–{max(load):.1f} on {os.cpu_count()} cores")
    print("| contender | wall s min / median | in-process s min | drifted windows | "
          "vs `driftline analyze` CLI |")
    print("| --- | --- | --- | --- | --- |")
    ref_s = min(walls["driftline-cli"]) if walls.get("driftline-cli") else None
    for name in order:
        if not walls[name]:
            print(f"| {name} | skipped: {skipped.get(name, 'no run')} | | | |")
            continue
        lo, med = min(walls[name]), statistics.median(walls[name])
        ins = f"{min(inner[name]):.2f}" if inner[name] else ""
        rel = f"{lo / ref_s:.2f}× the CLI's time" if ref_s else ""
        note = (f" (report per window × {int(info[name].get('windows', 0))}, extrapolated)"
                if name == "evidently" else "")
        print(f"| {name}{note} | {lo:.2f} / {med:.2f} | {ins} | "
              f"{int(info[name].get('drifted', -1))} of {int(info[name].get('windows', 0))} | "
              f"{rel} |")
    for name, why in skipped.items():
        if name not in order:
            print(f"| {name} | skipped: {why} | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
