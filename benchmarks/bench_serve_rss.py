"""Resident memory of a whole ``driftline serve`` with one 30-feature model: the figure the
Kubernetes examples size their memory request from (examples/kubernetes-sidecar/README.md).

For each baseline profile (the default, and the ConfigMap-sized ``--summary-size 1000
--no-multivariate``) it builds the baseline from 100 000 synthetic reference rows, starts the
sidecar (proxy and metrics ports on 127.0.0.1), reads VmRSS once ready and idle, then after
``--records`` records through ``POST /ingest`` and one ``GET /metrics``.

Run: ``python -m benchmarks serve_rss`` or ``python -m benchmarks.bench_serve_rss --records 20000``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = 30
PROFILES = {"default": [], "ConfigMap-sized": ["--summary-size", "1000", "--no-multivariate"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reference(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    cols = {f"f{i}": rng.normal(size=rows) for i in range(FEATURES)}
    p = 1 / (1 + np.exp(-cols["f0"]))
    cols |= {"proba": p, "prediction": (p > 0.5).astype(np.int64),
             "target": (rng.random(rows) < p).astype(np.int64)}
    pq.write_table(pa.table(cols), path)


def _post(url: str, doc: object) -> None:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def measure(work: Path, name: str, extra: list[str], records: int) -> tuple[float, float, int]:
    baseline = work / f"baseline-{name.split()[0]}.json"
    subprocess.run([sys.executable, "-m", "driftline", "baseline", "build", str(work / "ref.parquet"),
                    "-o", str(baseline), "--prediction", "prediction", "--proba", "proba",
                    "--target", "target", "--model-name", "m", "--no-progress", *extra],
                   check=True, capture_output=True)
    mp, pp = _free_port(), _free_port()
    cfg = work / "serve.yaml"
    cfg.write_text(f"models: [{{name: m, version: '1', baseline: {baseline}}}]\n"
                   f"metrics: {{listen: 127.0.0.1:{mp}}}\n"
                   f"proxy: {{listen: 127.0.0.1:{pp}, upstream: 'http://127.0.0.1:{_free_port()}'}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "driftline", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mp}/readyz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("driftline serve did not become ready") from None
                time.sleep(0.1)
        time.sleep(2)
        idle = _rss_mib(proc.pid)
        rng = np.random.default_rng(1)
        for b in range(0, records, 500):
            x = rng.normal(size=(500, FEATURES))
            _post(f"http://127.0.0.1:{mp}/ingest", {"model_name": "m", "records": [
                {"id": f"{b + i}", "features": {f"f{j}": float(v) for j, v in enumerate(row)},
                 "prediction": 1, "probabilities": [0.3, 0.7]} for i, row in enumerate(x)]})
        time.sleep(3)
        urllib.request.urlopen(f"http://127.0.0.1:{mp}/metrics", timeout=60).read()
        return idle, _rss_mib(proc.pid), baseline.stat().st_size
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000, help="records sent through /ingest")
    ap.add_argument("--reference-rows", type=int, default=100_000)
    args = ap.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _reference(work / "ref.parquet", args.reference_rows)
        print(f"driftline serve, one model of {FEATURES} numeric features, "
              f"{args.reference_rows:,} reference rows; VmRSS in MiB")
        print(f"{'profile':<18} {'baseline MB':>12} {'idle':>8} {f'after {args.records:,} + scrape':>22}")
        for name, extra in PROFILES.items():
            idle, busy, size = measure(work, name, extra, args.records)
            print(f"{name:<18} {size / 1e6:>12.1f} {idle:>8.0f} {busy:>22.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
