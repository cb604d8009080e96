"""Label-free performance estimation: cost and accuracy, beside NannyML on the same data.

Generates 1M reference and 1M analysis rows of a regressor (8 numeric features and one
categorical, noise that grows with ``x0`` and with the category, so the loss is learnable; the
second half of the analysis data shifts ``x0`` into the noisy region) and of a binary classifier
(calibrated probabilities; the second half shifts towards the decision boundary). Then:

* ``baseline build``: the streaming profile, the DLE tree fit (regressor) or the calibration
  and reference metrics (classifier);
* ``analyze``: 1M rows in windows of 100k, the estimates of every window against the realised
  values of the same rows (mean absolute difference over the 10 windows);
* ``sidecar records/s`` of the regressor (``/ingest`` JSON batches of 500, windows of 1000,
  the DLE evaluated on every window);
* NannyML's DLE and CBPE on the same Parquet files with ``chunk_size=100_000`` (the same 10
  chunks), in their own virtualenv (``/tmp/bench-nannyml``, created on first use; never a
  Driftline dependency). ``--no-nannyml`` skips it.

Run: ``python -m benchmarks performance`` (``DRIFTLINE_BENCH_ROWS`` shrinks the data).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.analyze.offline import analyze
from driftline.collectors.ingest import split_records
from driftline.collectors.sidecar import Sidecar, engine_factory
from driftline.config import LimitsConfig, ModelConfig
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile

ROWS = int(os.environ.get("DRIFTLINE_BENCH_ROWS", "1000000"))
CHUNK = max(1, ROWS // 10)
NUMERIC = [f"x{i}" for i in range(8)]
VENV = Path(tempfile.gettempdir()) / "bench-nannyml"


def _regression(rows: int, seed: int, shift: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(NUMERIC)))
    x[:, 0] = rng.uniform(0, 1, rows)
    if shift:
        x[rows // 2:, 0] += 0.4
    colour = rng.choice(np.array(["red", "green", "blue"]), rows, p=[0.5, 0.3, 0.2])
    pred = 2 * x[:, 0] + x[:, 1] - 0.5 * x[:, 2]
    noise = 0.1 + x[:, 0] * (1.0 + (colour == "blue")) + 0.2 * np.abs(x[:, 3])
    y = pred + rng.normal(0, 1, rows) * noise
    cols = {n: x[:, i] for i, n in enumerate(NUMERIC)}
    return pa.table({**cols, "colour": colour, "pred": pred, "y": y})


def _binary(rows: int, seed: int, shift: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(NUMERIC)))
    if shift:
        x[rows // 2:, 0] *= 0.4  # more rows near the boundary: lower accuracy and AUC
    p = 1 / (1 + np.exp(-(2 * x[:, 0] + x[:, 1])))
    y = (rng.uniform(size=rows) < p).astype(np.int64)
    cols = {n: x[:, i] for i, n in enumerate(NUMERIC)}
    return pa.table({**cols, "p": p, "pred": (p > 0.5).astype(np.int64), "y": y})


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _windows(profile: BaselineProfile, path: Path) -> tuple[list[dict[str, dict]], float]:
    def run() -> list[dict[str, dict]]:
        return [{"estimated": w.performance.estimated, "realised": w.performance.realised}
                for w in analyze(profile, discover([str(path)]), window_size=CHUNK)]

    return _timed(run)


def _gap(windows: list[dict[str, dict]], metric: str, estimates: list[float] | None = None) -> float:
    est = estimates if estimates is not None else [w["estimated"][metric] for w in windows]
    real = [w["realised"][metric] for w in windows]
    pairs = [(e, r) for e, r in zip(est, real, strict=False) if math.isfinite(e) and math.isfinite(r)]
    return float(np.mean([abs(e - r) for e, r in pairs])) if pairs else math.nan


def _sidecar_rate(profile: BaselineProfile, table: pa.Table) -> float:
    n = 20_000
    rows = table.slice(0, n).to_pylist()
    recs = [{"model_name": "bench", "id": f"r{i}",
             "features": {k: r[k] for k in [*NUMERIC, "colour"]}, "prediction": r["pred"]}
            for i, r in enumerate(rows)]
    bodies = [orjson.dumps(recs[i:i + 500]) for i in range(0, n, 500)]
    best = math.inf
    for _ in range(3):
        sc = Sidecar([(ModelConfig("bench", baseline=None), profile)],  # type: ignore[arg-type]
                     limits=LimitsConfig(), monitor_factory=engine_factory(
                         WindowPolicy(records=1000, max_age=None), DriftPolicy()))
        t = time.perf_counter()
        for b in bodies:
            sc.handle_ingest(split_records(b, typed=sc.typed_split()))
        best = min(best, time.perf_counter() - t)
    return n / best


_NANNY = r'''
import json, sys, time
import pandas as pd
import nannyml as nml
ref_path, cur_path, kind, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
feats = [c for c in ref.columns if c not in ("pred", "y", "p")]
for df in (ref, cur):
    for c in feats:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = pd.Categorical(df[c].astype(object))
t = time.perf_counter()
if kind == "regression":
    metrics = ["mae", "rmse"]
    est = nml.DLE(feature_column_names=feats, y_pred="pred", y_true="y", metrics=metrics,
                  chunk_size=chunk)
else:
    metrics = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
    est = nml.CBPE(y_pred_proba="p", y_pred="pred", y_true="y", metrics=metrics,
                   chunk_size=chunk, problem_type="classification_binary")
est.fit(ref)
fit = time.perf_counter() - t
t = time.perf_counter()
res = est.estimate(cur.drop(columns=["y"]))
run = time.perf_counter() - t
df = res.filter(period="analysis").to_df()
out = {"fit_s": fit, "estimate_s": run, "version": nml.__version__,
       "estimates": {m: [float(v) for v in df[(m, "value")]] for m in metrics}}
print(json.dumps(out))
'''


def _nannyml(tmp: Path, ref: Path, cur: Path, kind: str) -> dict | None:
    py = VENV / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        ready = VENV / ".driftline-bench-ready"
        if not ready.exists():
            # nannyml 0.13 imports statsmodels without requiring it, and its DLE fails on
            # pandas 3's Arrow-backed categories
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", "nannyml", "pyarrow",
                            "statsmodels", "pandas<3"], check=True)
            ready.touch()
        script = tmp / "nanny.py"
        script.write_text(_NANNY)
        done = subprocess.run([str(py), str(script), str(ref), str(cur), kind, str(CHUNK)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        tail = getattr(exc, "stderr", "") or str(exc)
        print(f"NannyML comparison skipped: {tail.strip().splitlines()[-1][:300]}")
        return None


def _report(kind: str, metrics: list[str], windows: list[dict[str, dict]], nanny: dict | None,
            build_s: float, analyze_s: float, size: int) -> None:
    print(f"{kind}: baseline build {build_s:.1f} s ({size / 1e6:.1f} MB profile), analyze "
          f"{ROWS:,} rows {analyze_s:.1f} s ({ROWS / analyze_s:,.0f} rows/s)")
    if nanny is not None:
        print(f"  NannyML {nanny['version']}: fit {nanny['fit_s']:.1f} s, estimate "
              f"{nanny['estimate_s']:.1f} s")
    print(f"  {'metric':<12} {'realised (first/last window)':>30} {'Driftline |est-real|':>22}"
          f" {'NannyML |est-real|':>20}")
    for m in metrics:
        real = [w["realised"][m] for w in windows]
        ours = _gap(windows, m)
        theirs = _gap(windows, m, nanny["estimates"][m]) if nanny is not None else math.nan
        print(f"  {m:<12} {real[0]:>14.4f} / {real[-1]:<13.4f} {ours:>22.4f} {theirs:>20.4f}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory(prefix="driftline-bench-perf-") as d:
        tmp = Path(d)
        for kind, make, opts, metrics in (
            ("regression", _regression,
             BuildOptions(prediction="pred", target="y", task="regression",
                          multivariate=False), ["mae", "rmse"]),
            ("binary classification", _binary,
             BuildOptions(prediction="pred", proba_binary="p", target="y", multivariate=False),
             ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]),
        ):
            ref, cur = tmp / f"{kind[:3]}-ref.parquet", tmp / f"{kind[:3]}-cur.parquet"
            pq.write_table(make(ROWS, 0, False), ref)
            cur_table = make(ROWS, 1, True)
            pq.write_table(cur_table, cur)
            profile, build_s = _timed(lambda o=opts, r=ref: build_profile(discover([str(r)]), o,
                                                                          progress=False))
            profile.save(tmp / "b.json")
            size = (tmp / "b.json").stat().st_size
            windows, analyze_s = _windows(profile, cur)
            nanny = None if "--no-nannyml" in argv else _nannyml(
                tmp, ref, cur, "regression" if kind == "regression" else "binary")
            _report(kind, metrics, windows, nanny, build_s, analyze_s, size)
            if kind == "regression":
                out = profile.output
                assert out is not None and out.loss_model is not None
                m = out.loss_model
                print(f"  DLE: {m.absolute.n_trees} + {m.squared.n_trees} trees of depth "
                      f"{m.absolute.depth} fitted on {m.rows:,} sampled rows; hold-out MAE "
                      f"{m.holdout['mae']:.4f} estimated {m.holdout['estimated_mae']:.4f}")
                rate = _sidecar_rate(profile, cur_table)
                print(f"  sidecar /ingest, regressor with DLE, windows of 1000: "
                      f"{rate:,.0f} records/s")


if __name__ == "__main__":
    main()
