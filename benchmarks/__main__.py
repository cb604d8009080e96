"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (``make bench``).

``python -m benchmarks analyze proxy`` runs only the named ones. Options go to one named
benchmark: ``python -m benchmarks peers --rows 100000 --only numpy`` (as soon as an argument
starts with ``-`` the first one names the benchmark and the rest are its own arguments;
``python -m benchmarks profile -- analyze`` passes a positional one).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import benchmarks


def _module(arg: str) -> str:
    return arg if arg.startswith("bench_") else f"bench_{arg}"


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    if argv and any(a.startswith("-") for a in argv[1:]):
        name, rest = _module(argv[0]), argv[1:]
        if name not in names:
            print(f"no benchmark {argv[0]!r}; choose from: "
                  f"{', '.join(n.removeprefix('bench_') for n in names)}", file=sys.stderr)
            return 2
        rest = rest[1:] if rest[:1] == ["--"] else rest
        run = importlib.import_module(f"benchmarks.{name}").main
        if not inspect.signature(run).parameters:
            print(f"benchmark {argv[0]!r} takes no options", file=sys.stderr)
            return 2
        print(f"\n=== {name} ===", flush=True)
        run(rest)
        return 0
    wanted = [_module(a) for a in argv]
    unknown = [a for a, w in zip(argv, wanted, strict=True) if w not in names]
    if unknown:
        print(f"no benchmark {', '.join(map(repr, unknown))}; choose from: "
              f"{', '.join(n.removeprefix('bench_') for n in names)}", file=sys.stderr)
        return 2
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
