"""Start-up footprint: what ``import driftline.sdk``, ``driftline --help`` and a sidecar cost
before any data arrives.

Each command runs ``--runs`` times as its own process, the commands interleaved round by round
(min / median wall seconds, so a loaded machine shows as a spread rather than a verdict, and the
process's own CPU seconds, user + system, which the load moves much less), from a neutral working
directory (``python -c`` would otherwise import the checkout it runs in). Beside the times,
``python -X importtime`` gives the figures the load does not move: how many modules the command
imports and whether the heavy ones (scipy.stats, river, sklearn, pyarrow, prometheus_client,
opentelemetry) are among them. The load average is printed first: read wall times against it.

Start-up is measured with compiled bytecode, as an installed package has it: the children run with
``PYTHONPYCACHEPREFIX`` set to a temporary directory (so nothing is written into the checkout) and
without ``PYTHONDONTWRITEBYTECODE``, after one warm-up run of each command. Without cached bytecode
every start compiles about fifty Driftline modules again (≈ 0.6 s under a profiler).

The sidecar's resident memory is ``python -m benchmarks serve_rss`` (a whole ``driftline serve``).

Run: ``python -m benchmarks footprint`` or ``python -m benchmarks.bench_footprint --runs 11``;
``--against OTHER/.venv/bin/python`` adds the SDK import and ``--help`` of another checkout's
environment, interleaved with these (a before/after comparison on the same load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("scipy.stats", "river", "sklearn", "pyarrow", "prometheus_client", "opentelemetry")


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("driftline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "driftline"]


def commands(against: str | None = None) -> dict[str, list[str]]:
    """What is measured: name → argv of a whole process."""
    cmds = {
        "python -c pass (the floor)": [sys.executable, "-c", "pass"],
        "import driftline.sdk": [sys.executable, "-c", "import driftline.sdk"],
        "driftline --help": [*_cli(), "--help"],
        "import driftline.engine.monitor": [sys.executable, "-c", "import driftline.engine.monitor"],
    }
    if against:
        cmds["other: import driftline.sdk"] = [against, "-c", "import driftline.sdk"]
        cmds["other: driftline --help"] = [against, "-m", "driftline", "--help"]
    return cmds


def child_env(pycache: str) -> dict[str, str]:
    """The children's environment: bytecode cached under ``pycache``, never in the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=env["PYTHONPYCACHEPREFIX"])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return wall, usage.ru_utime + usage.ru_stime


def imported_modules(argv: list[str], env: dict[str, str]) -> list[str]:
    """The modules ``argv`` imports, from ``-X importtime`` (the interpreter's own start-up included)."""
    if argv[0] == _cli()[0] != sys.executable:  # the console script: run its entry point under -X importtime
        argv = [sys.executable, "-c", "import sys; from driftline.cli import main; sys.exit(main())",
                *argv[1:]]
    env = dict(env, PYTHONPROFILEIMPORTTIME="1")
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=False, cwd=env["PYTHONPYCACHEPREFIX"])
    names = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="processes per command")
    ap.add_argument("--against", help="another environment's python, measured beside this one")
    args = ap.parse_args(argv if argv is not None else [])
    cmds = commands(args.against)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"{args.runs} runs each, interleaved")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    with tempfile.TemporaryDirectory(prefix="driftline-pycache-") as pycache:
        env = child_env(pycache)
        for cmd in cmds.values():  # warm-up: compiles and caches the bytecode
            _run(cmd, env)
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                runs[name].append(_run(cmd, env))
        mods = {name: imported_modules(cmd, env) for name, cmd in cmds.items()}
    print(f"{'command':<34} {'wall min':>8} {'median':>7} {'CPU min':>8} {'median':>7} "
          f"{'modules':>8}  heavy modules imported")
    for name in cmds:
        wall = [w for w, _ in runs[name]]
        cpu = [c for _, c in runs[name]]
        heavy = sorted({h for h in HEAVY for m in mods[name] if m == h or m.startswith(h + ".")})
        print(f"{name:<34} {min(wall):>8.3f} {statistics.median(wall):>7.3f} {min(cpu):>8.3f} "
              f"{statistics.median(cpu):>7.3f} {len(mods[name]):>8}  {', '.join(heavy) or '-'}")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main(sys.argv[1:])
