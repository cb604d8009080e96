"""Where the time goes: cProfile's top functions on the two hot paths, so the next change starts
from a measurement rather than a guess.

* ``ingest``: the sidecar's ``/ingest`` path without HTTP (``split_records`` → ``handle_ingest``
  → ``Monitor.observe`` → window close), 25 features (20 numeric, 5 categorical), windows of
  1000, the fixtures of ``python -m benchmarks ingest``;
* ``analyze``: :func:`driftline.analyze.offline.analyze` on generated Parquet (the workload of
  ``python -m benchmarks peers``: 20 numeric features of mixed shapes and 5 categorical ones,
  100k reference rows, 200k analysed rows in windows of 10k).

Each path runs once unprofiled first, so lazily imported libraries (scipy) are not charged to
it. cProfile slows Python-level code more than compiled code: read the shares, not the seconds.

Run: ``python -m benchmarks profile`` or ``python -m benchmarks.bench_profile --top 20``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def _report(title: str, fn: Callable[[], object], top: int) -> None:
    fn()  # warm: lazy imports, caches
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats(order).print_stats(top)
        text = out.getvalue()
        body = text[text.index("   ncalls"):] if "   ncalls" in text else text
        print(f"--- {title}, by {order} (total {stats.total_tt:.2f} s under cProfile)")  # type: ignore[attr-defined]
        print(body.rstrip())


def ingest_path() -> Callable[[], object]:
    from benchmarks.bench_ingest import profile, sidecar, workload
    from driftline.collectors.ingest import split_records

    bodies = workload()[3]
    prof = profile()

    def run() -> None:
        # a fresh sidecar each call: the warm-up call's ids would otherwise all be re-sent in
        # the profiled one, sending every body's ids down the id store's record-by-record path
        sc = sidecar(prof)
        for b in bodies:
            sc.handle_ingest(split_records(b, typed=sc.typed_split()))

    return run


def analyze_path(tmp: Path) -> Callable[[], object]:
    from benchmarks.workload import generate
    from driftline.analyze.offline import analyze
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile

    generate(tmp / "ref.parquet", 100_000, seed=1)
    generate(tmp / "cur.parquet", 200_000, seed=2, drift_after=0.5)
    prof = build_profile(discover([str(tmp / "ref.parquet")]), BuildOptions(), progress=False)
    files = discover([str(tmp / "cur.parquet")])
    return lambda: sum(1 for _ in analyze(prof, files, window_size=10_000))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=12, help="functions listed per ordering")
    ap.add_argument("paths", nargs="*", choices=("ingest", "analyze"), default=[],
                    help="which paths to profile (default: both)")
    args = ap.parse_args(argv if argv is not None else [])
    paths = args.paths or ["ingest", "analyze"]
    if "ingest" in paths:
        _report("ingest path, 20,000 records × 25 features (20 numeric, 5 categorical), "
                "windows of 1000", ingest_path(), args.top)
    if "analyze" in paths:
        with tempfile.TemporaryDirectory(prefix="driftline-profile-") as d:
            _report("analyze, 200k rows × 25 features (20 numeric, 5 categorical), windows of "
                    "10k", analyze_path(Path(d)), args.top)

if __name__ == "__main__":
    main(sys.argv[1:])
