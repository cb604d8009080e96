"""Multivariate, embedding and text drift: cost per window, beside Alibi Detect and NannyML.

* MMD: a 10k × 384 window against a 5k reference (Gaussian kernel, 100 permutations). Driftline
  tests bounded samples (the sidecar's defaults: 250 window vectors, 500 reference vectors);
  the same samples, and 2000 + 2000 ones, also go through Alibi Detect's ``MMDDrift``
  (PyTorch backend).
* Reconstruction error: 1M × 25 rows (20 numeric, 5 categorical) against a PCA model fitted on
  100k reference rows, windows of 10k; NannyML's ``DataReconstructionDriftCalculator`` on the
  same data and chunks, and the largest difference between the two per-chunk errors.
* The monitor with a 384-d embedding feature (plus 5 numeric features): records/s through
  ``Monitor.observe`` in batches of 100, windows of 1000 (what the sidecar's worker runs), with
  the MMD test on every window, every 5th and every 10th (``drift.embedding_mmd_every``), beside
  the same 5 numeric features without the embedding.

The peers are installed only in the benchmark's own virtualenv (``$DRIFTLINE_BENCH_PEERS`` or
``/tmp/bench-peers``, created on first use: ``pip install nannyml statsmodels pyarrow
alibi-detect torch``); when that fails they are reported as skipped.

Run: ``python -m benchmarks shapes``.
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

PEERS = Path(os.environ.get("DRIFTLINE_BENCH_PEERS", "/tmp/bench-peers"))


def _peer_python() -> Path | None:
    py = PEERS / "bin" / "python"
    if not py.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
            # nannyml imports statsmodels without declaring it; pandas reads Parquet with pyarrow
            # (below 20: alibi-detect keeps numpy 1)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", "nannyml", "statsmodels",
                            "pyarrow<20", "alibi-detect", "torch"], check=True, timeout=1800)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"peers skipped: cannot install them ({exc})")
            return None
    return py


def _peer(code: str, *args: str) -> dict[str, float] | None:
    py = _peer_python()
    if py is None:
        return None
    out = subprocess.run([str(py), "-c", code, *args], capture_output=True, text=True,
                         timeout=3600)
    if out.returncode != 0:
        print(f"peer failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


ALIBI = """
import json, sys, time, numpy as np, torch
torch.set_num_threads(1)
from alibi_detect.cd import MMDDrift
x = np.load(sys.argv[1]).astype(np.float32); y = np.load(sys.argv[2]).astype(np.float32)
t = time.perf_counter()
cd = MMDDrift(x, backend="pytorch", p_val=0.05, n_permutations=100, device="cpu")
fit = time.perf_counter() - t
t = time.perf_counter(); r = cd.predict(y); sec = time.perf_counter() - t
print(json.dumps({"fit": fit, "predict": sec, "p": float(r["data"]["p_val"]),
                  "mmd2": float(r["data"]["distance"])}))
"""

NANNY = """
import json, sys, time, pandas as pd, nannyml as nml
ref = pd.read_parquet(sys.argv[1]); ana = pd.read_parquet(sys.argv[2])
cols = [c for c in ref.columns]
t = time.perf_counter()
calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_size=int(sys.argv[3]))
calc.fit(ref); fit = time.perf_counter() - t
t = time.perf_counter(); res = calc.calculate(ana); sec = time.perf_counter() - t
df = res.filter(period="analysis").to_df()
err = df[("reconstruction_error", "value")].tolist()
up = df[("reconstruction_error", "upper_threshold")].tolist()[0]
lo = df[("reconstruction_error", "lower_threshold")].tolist()[0]
print(json.dumps({"fit": fit, "calculate": sec, "errors": err, "upper": up, "lower": lo}))
"""


def _mmd(tmp: Path) -> None:
    from driftline.detectors.mmd import cosine_distance, median_bandwidth, mmd_test, reference_kernel

    rng = np.random.default_rng(0)
    d = 384
    basis = rng.normal(size=(32, d)) / np.sqrt(32)
    ref = rng.normal(size=(5000, 32)) @ basis + 0.5
    win = rng.normal(0.05, 1.0, size=(10_000, 32)) @ basis + 0.5
    for caps in ((500, 250), (2000, 2000)):
        m, n = caps
        x = ref[np.linspace(0, len(ref) - 1, m).astype(int)]
        y = win[np.linspace(0, len(win) - 1, n).astype(int)]
        t = time.perf_counter()
        sigma = median_bandwidth(x)
        kxx = reference_kernel(x, sigma)
        setup = time.perf_counter() - t
        t = time.perf_counter()
        res = mmd_test(x, y, sigma, permutations=100, seed=1, kxx=kxx)
        cos = cosine_distance(win.mean(axis=0), ref.mean(axis=0))  # all 10k vectors
        sec = time.perf_counter() - t
        print(f"driftline MMD, 10k x 384 window vs 5k reference, samples {m} ref + {n} window, "
              f"100 permutations: {sec * 1000:.0f} ms per window (+ {setup * 1000:.0f} ms once "
              f"per reference), MMD2 {res.mmd2:.4f}, p {res.pvalue:.3f}, cosine {cos:.5f}")
        np.save(tmp / "x.npy", x)
        np.save(tmp / "y.npy", y)
        peer = _peer(ALIBI, str(tmp / "x.npy"), str(tmp / "y.npy"))
        if peer is not None:
            print(f"  alibi-detect MMDDrift (pytorch, 1 thread) on the same samples: "
                  f"{peer['predict'] * 1000:.0f} ms per window (+ {peer['fit'] * 1000:.0f} ms "
                  f"set-up), MMD2 {peer['mmd2']:.4f}, p {peer['p']:.3f}")


def _tabular(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))
    mix = np.random.default_rng(7).normal(size=(8, 20))
    num = z @ mix + rng.normal(0, 0.5, size=(n, 20))
    cols: dict[str, object] = {f"n{i}": num[:, i] for i in range(20)}
    for j in range(5):
        level = np.digitize(z[:, j] + rng.normal(0, 0.5, n), [-0.5, 0.5])
        cols[f"c{j}"] = pa.array(np.array(["lo", "mid", "hi"], dtype=object)[level].tolist())
    return pa.table(cols)


def _reconstruction(tmp: Path) -> None:
    from driftline.engine.multivariate import MultivariateRef
    from driftline.io.readers import discover, iter_batches, to_float, to_strings
    from driftline.profile.build import BuildOptions, build_profile
    from driftline.profile.format import NumericFeature

    ref_path, ana_path = tmp / "ref.parquet", tmp / "ana.parquet"
    pq.write_table(_tabular(100_000, 1), ref_path)
    pq.write_table(_tabular(1_000_000, 2), ana_path)
    t = time.perf_counter()
    prof = build_profile(discover([str(ref_path)]), BuildOptions(), progress=False)
    build = time.perf_counter() - t
    mv = MultivariateRef(prof)
    chunk = 10_000
    errors: list[float] = []
    t = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {c: [] for c in mv.features}
    for batch in iter_batches(discover([str(ana_path)])[0], list(mv.features)):
        for c in mv.features:
            parts[c].append(to_float(batch.column(c)) if isinstance(prof.features[c], NumericFeature)
                            else to_strings(batch.column(c)))
    cols = {c: np.concatenate(v) for c, v in parts.items()}
    for lo in range(0, len(cols[mv.features[0]]), chunk):  # chunks aligned with NannyML's
        errors.append(mv.window({c: v[lo: lo + chunk] for c, v in cols.items()})
                      .reconstruction_error)
    sec = time.perf_counter() - t
    lo_t, hi_t = mv.band(chunk)
    print(f"driftline reconstruction error, 1M x 25 in windows of 10k: {sec:.2f} s "
          f"({1e6 / sec / 1e3:.0f} k rows/s); baseline build incl. PCA fit on 100k rows "
          f"{build:.2f} s; band [{lo_t:.4f}, {hi_t:.4f}]")
    peer = _peer(NANNY, str(ref_path), str(ana_path), str(chunk))
    if peer is not None:
        theirs = np.asarray(peer["errors"][: len(errors)])
        ours = np.asarray(errors[: len(theirs)])
        print(f"  nannyml DataReconstructionDriftCalculator: fit {peer['fit']:.2f} s, calculate "
              f"{peer['calculate']:.2f} s; band [{peer['lower']:.4f}, {peer['upper']:.4f}]; "
              f"largest per-chunk difference {float(np.max(np.abs(theirs - ours))):.2e} "
              f"(errors ≈ {float(np.mean(ours)):.4f})")


def _monitor(repeats: int = 3) -> None:
    from driftline.engine.derived import EmbeddingPolicy
    from driftline.engine.monitor import Monitor, WindowPolicy
    from driftline.engine.records import RecordBatch
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile

    rng = np.random.default_rng(3)
    d = 384
    n_ref = 20_000
    basis = rng.normal(size=(32, d)) / np.sqrt(32)
    emb = (rng.normal(size=(n_ref, 32)) @ basis + 0.5).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.parquet"
        cols = {f"x{i}": rng.normal(size=n_ref) for i in range(5)}
        pq.write_table(pa.table(cols), Path(tmp) / "plain.parquet")
        plain = build_profile(discover([str(Path(tmp) / "plain.parquet")]), BuildOptions(),
                              progress=False)
        cols["emb"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), d)
        pq.write_table(pa.table(cols), path)
        prof = build_profile(discover([str(path)]), BuildOptions(), progress=False)
    total = 50_000
    vec = rng.normal(size=(total, 32)) @ basis + 0.5
    xs = rng.normal(size=(total, 5))
    batches = [RecordBatch({**{f"x{i}": xs[lo: lo + 100, i] for i in range(5)},
                            "emb": vec[lo: lo + 100]}) for lo in range(0, total, 100)]
    windows = total // 1000
    # (label, profile, MMD every k windows or None without the embedding); interleaved runs,
    # the best of `repeats` each (the machine is shared)
    cases = [("5 numeric features, no embedding", plain, None)] + [
        (f"+ 384-d embedding, MMD every {k} window{'s' if k > 1 else ''}", prof, k)
        for k in (1, 5, 10)]
    best = dict.fromkeys(range(len(cases)), float("inf"))
    for _ in range(repeats):
        for i, (_, p, k) in enumerate(cases):
            mon = Monitor(p, window=WindowPolicy(records=1000, max_age=None), clock=None,
                          embedding=EmbeddingPolicy(mmd_every=k or 1))
            t = time.perf_counter()
            for b in batches:
                mon.observe(b)
            best[i] = min(best[i], time.perf_counter() - t)
    print(f"monitor, batches of 100, windows of 1000, {total} records ({windows} windows), "
          f"best of {repeats} interleaved runs:")
    for i, (label, _, _) in enumerate(cases):
        sec = best[i]
        print(f"  {label}: {total / sec / 1e3:.1f} k records/s, {sec / windows * 1e3:.0f} ms "
              "per window")


def main(parts: tuple[str, ...] = ("mmd", "reconstruction", "monitor")) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if "mmd" in parts:
            _mmd(Path(tmp))
        if "reconstruction" in parts:
            _reconstruction(Path(tmp))
    if "monitor" in parts:
        _monitor()


if __name__ == "__main__":  # python -m benchmarks.bench_shapes [mmd|reconstruction|monitor]
    main(tuple(sys.argv[1:]) or ("mmd", "reconstruction", "monitor"))
