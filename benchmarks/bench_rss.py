"""Resident memory of a whole ``driftline serve`` with one 30-feature model.

Builds a 50,000-row baseline (default summary size), starts ``driftline serve`` on a free
loopback port, reads VmRSS from /proc when it is ready and again after 10,000 records over
``POST /ingest`` and one scrape. Linux only (reads /proc).
"""

from __future__ import annotations

import json
import os
import shutil
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
ROWS = 50_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "driftline")
    work = Path(tempfile.mkdtemp(prefix="driftline-rss-"))
    rng = np.random.default_rng(0)
    cols = {f"f{i}": rng.normal(size=ROWS) for i in range(FEATURES)}
    p = rng.random(ROWS)
    cols["p"] = p
    cols["y"] = (rng.random(ROWS) < p).astype(int)
    pq.write_table(pa.table(cols), work / "ref.parquet")
    subprocess.run([exe, "baseline", "build", str(work / "ref.parquet"), "-o", str(work / "b.json"),
                    "--proba", "p", "--target", "y", "--model-name", "m", "--no-progress"],
                   check=True, capture_output=True)
    port = _free_port()
    (work / "d.yaml").write_text(f"models:\n  - name: m\n    version: '1'\n    baseline: b.json\n"
                                 f"metrics:\n  listen: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([exe, "serve", "--config", str(work / "d.yaml")], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=5).read()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2)
        idle = _rss_mib(proc.pid)
        for b in range(20):
            recs = [{"model_name": "m", "id": f"r{b}-{j}", "probabilities": [0.4, 0.6],
                     "features": {f"f{i}": float(v) for i, v in enumerate(rng.normal(size=FEATURES))}}
                    for j in range(500)]
            req = urllib.request.Request(base + "/ingest", json.dumps(recs).encode(),
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=30).read()
        time.sleep(3)
        urllib.request.urlopen(base + "/metrics", timeout=30).read()
        busy = _rss_mib(proc.pid)
        size = (work / "b.json").stat().st_size / 1e6
        print(f"driftline serve, one {FEATURES}-feature model ({ROWS:,}-row baseline, {size:.1f} MB):")
        print(f"  RSS when ready                        {idle:6.0f} MiB")
        print(f"  RSS after 10,000 records and a scrape {busy:6.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
