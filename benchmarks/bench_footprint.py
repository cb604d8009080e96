"""Start-up footprint: what ``import driftline.sdk``, ``driftline --help`` and a sidecar cost
before any data arrives.

Each command runs ``--runs`` times as its own process (min / median wall seconds, so a loaded
machine shows as a spread rather than a verdict). Beside the wall times, ``python -X importtime``
gives the figures the load does not move much: how many modules the command imports and whether
the heavy ones (scipy.stats, river, sklearn, pyarrow, prometheus_client, opentelemetry) are among
them. The load average is printed first: read wall times against it.

The sidecar's resident memory is ``python -m benchmarks serve_rss`` (a whole ``driftline serve``).

Run: ``python -m benchmarks footprint`` or ``python -m benchmarks.bench_footprint --runs 11``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("scipy.stats", "river", "sklearn", "pyarrow", "prometheus_client", "opentelemetry")


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("driftline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "driftline"]


def commands() -> dict[str, list[str]]:
    """What is measured: name → argv of a whole process."""
    return {
        "python -c pass (the floor)": [sys.executable, "-c", "pass"],
        "import driftline.sdk": [sys.executable, "-c", "import driftline.sdk"],
        "driftline --help": [*_cli(), "--help"],
        "import driftline.engine.monitor": [sys.executable, "-c", "import driftline.engine.monitor"],
    }


def _wall(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def imported_modules(argv: list[str]) -> list[str]:
    """The modules ``argv`` imports, from ``-X importtime`` (the interpreter's own start-up included)."""
    if argv[0] != sys.executable:  # the console script: run its entry point under -X importtime
        argv = [sys.executable, "-c", "import sys; from driftline.cli import main; sys.exit(main())",
                *argv[1:]]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=False)
    names = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="processes per command")
    args = ap.parse_args(argv if argv is not None else [])
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"{args.runs} runs each")
    print(f"{'command':<34} {'min s':>7} {'median s':>9} {'modules':>8}  heavy modules imported")
    for name, cmd in commands().items():
        times = _wall(cmd, args.runs)
        mods = imported_modules(cmd)
        heavy = sorted({h for h in HEAVY for m in mods if m == h or m.startswith(h + ".")})
        print(f"{name:<34} {min(times):>7.3f} {statistics.median(times):>9.3f} {len(mods):>8}  "
              f"{', '.join(heavy) or '-'}")


if __name__ == "__main__":
    main(sys.argv[1:])
