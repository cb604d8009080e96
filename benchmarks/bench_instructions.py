"""Instructions per record on the served record paths, counted by valgrind's callgrind.

Why: on 2 shared cores the CPU time of the same code moves by 20-40 % from one minute to the
next (other machines share the host), which hides a 10 % change however the runs are
interleaved. Instructions executed depend far less on the load: the same tree and inputs give
counts within ≈ ±2,000 per record (≈ 3 %) of each other, even with the hash seed fixed (what
still moves is time-dependent: the clock-driven flushes and ticks run at other points under
valgrind's ≈ 50× slowdown), so a change smaller than that needs several runs. They are not
time (cache misses and branch mispredictions cost cycles that no count shows), so read them
beside ``--stages``, never instead of it.

Method: the served path (``/ingest`` bodies of 500 records, or v2 requests of 100, windows of
1000 records, the confidence change stream, ``drift.exact_ks: false``) runs in a child process
under ``valgrind --tool=callgrind`` twice, with ``LOW`` and ``HIGH`` records after the same
start-up and warm-up; the difference of the two totals over the difference of records is the
cost of one record, start-up and warm-up cancelled out. The children run with
``PYTHONHASHSEED=0`` (string hashes, hence dict layouts, fixed).

    python -m benchmarks.bench_instructions              # /ingest and v2
    python -m benchmarks.bench_instructions --paths ingest
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

LOW, HIGH = 4_000, 14_000
"""Records fed after the warm-up in the two runs (whole windows of 1000 in both)."""
WARM = 2_000


def _child(path: str, records: int) -> None:
    """Runs in the child: warm up, then feed ``records`` records through ``path``."""
    from benchmarks.bench_ingest import (
        FEATURES,
        ingest_bodies,
        profile,
        sidecar,
        v2_pairs,
    )
    from driftline.collectors import ingest, payloads
    from driftline.collectors.payloads import ModelSchema

    prof = profile()
    sc = sidecar(prof)
    schema = ModelSchema(prof, feature_order=FEATURES)
    sc.entries[0].schema = schema
    # the inputs are made for the larger run in both runs, so their cost cancels out
    if path == "ingest":
        bodies = ingest_bodies(WARM + HIGH, per_body=500)
        for b in bodies[:(WARM + records) // 500]:
            sc.handle_ingest(ingest.split_records(b, typed=sc.typed_split()))
    else:
        pairs = v2_pairs(WARM + HIGH, per=100)
        for q, r in pairs[:(WARM + records) // 100]:
            sc.observe(sc.entries[0], None, payloads.parse_v2(schema, q, r), "proxy", 0.0)


def _count(path: str, records: int) -> int:
    """Total instructions of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, "-m", "benchmarks.bench_instructions", "--child", path,
               str(records)]
        # one string hash seed for every run: dict and set layouts (and so the instructions of
        # their lookups) follow it, which moved the count by ≈ 5 % between identical runs
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        m = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
        if not m:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr[-2000:]}")
        return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", default="ingest,v2")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "RECORDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed (Debian: apt-get install valgrind); "
              "skipped", file=sys.stderr)
        return
    print(f"instructions per record (callgrind; ({HIGH:,} − {LOW:,} records) after "
          f"{WARM:,} warm-up; windows of 1000, the confidence change stream, exact_ks false)")
    for path in args.paths.split(","):
        low, high = _count(path, LOW), _count(path, HIGH)
        per = (high - low) / (HIGH - LOW)
        label = "/ingest (bodies of 500)" if path == "ingest" else "v2 (requests of 100)"
        print(f"  {label:<28} {per:12,.0f} instructions per record")


if __name__ == "__main__":
    main()
