"""Detection quality (a benchmark, not a test): change points and the window decision.

1. F1 per series and mean on river's 7 TCPD series (``benchmarks.changepoints``) for
   ChangeDetector, river's ADWIN, Page–Hinkley and KSWIN at their defaults (KSWIN seeded 42 for
   reproducibility) and a detector that never fires; then the same F1 on a generated held-out
   set with known change points (``synthetic_series``: 8 series of each of level steps, linear
   trends, random walks with jumps, seasonal + step, 0/1 rate steps, heavy tails), per family
   and mean, so that a default that only suits the 7 series shows.
2. False alarms per 10⁴ values on i.i.d. Normal, exponential and Bernoulli(0.1) streams
   (``DETECTION_IID`` values each, default 10⁶; KSWIN on a tenth, it is ~1000× slower).
3. Median detection delay over 40 streams: a 0.5 SD mean shift and an error rate stepping
   0.10 → 0.20, each after 1,000 stable values; and the median error of ChangeDetector's
   estimated change point.
4. The window decision (Monitor, default DriftPolicy and min_records): share of null windows
   flagged at each window size (``DETECTION_WINDOWS`` windows each, default 1,000; features:
   a Normal, a 5-valued discrete numeric and a categorical with a rare category), and the share
   flagged with a known shift (Normal mean +0.5 SD; categorical share +15 points).
   ``DETECTION_SIZES`` (comma-separated) picks the window sizes.
5. Block summaries (``summaries``): ChangeDetector fed the means of ``b`` consecutive records
   instead of the records (a way to cut the per-record cost by ``b``), at the default settings
   and with the hazard and ``min_gap`` rescaled to records, against ChangeDetector and ADWIN on
   the raw records: false alarms per 10⁴ records on null streams (Normal, exponential,
   Bernoulli(0.1), Beta(8, 2) confidences, t3; ``DETECTION_IID`` records each), median delay in
   records over 40 streams for the shifts of part 3 plus a +0.25 SD shift, a t3 +1 step and a
   Beta(8, 2) → Beta(7, 2) confidence drop, and the detector's CPU µs per record.
6. Speed: CPU time per value (``time.process_time``, min of ``DETECTION_REPEAT``, default 3,
   contenders interleaved) of ChangeDetector and ADWIN fed Beta(8, 2) confidences in batches of
   1, 16, 256, 1,024 and 4,096 values (the sidecar's change streams feed 1,024 at a time).

7. Speed against the implementation ChangeDetector replaced (``reference``; it is kept as
   ``tests/change_reference.py``, which the tests hold equal bit for bit): both fed the same
   Beta(8, 2) batches in lockstep, the CPU time of each call summed (which goes first
   alternates by stream, so both see the same load within milliseconds), min of
   ``DETECTION_REPEAT`` streams, at batches of 1, 16, 256, 1,024 and 4,096.

``DETECTION_PARTS`` (comma-separated, default all: tcpd, synthetic, delays, window,
false_alarms, summaries, speed, reference) picks the parts, e.g. ``DETECTION_PARTS=speed python -m benchmarks
detection``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.changepoints import FAMILIES, load_series, score, synthetic_series
from driftline.detectors import ChangeDetector, StreamDetector
from driftline.detectors.change import ChangeSettings

IID = int(os.environ.get("DETECTION_IID", 1_000_000))
WINDOWS = int(os.environ.get("DETECTION_WINDOWS", 1000))
SIZES = tuple(int(v) for v in os.environ.get(
    "DETECTION_SIZES", "20,50,100,200,1000,10000,100000").split(","))
#: windows of the shifted streams at 100,000 records (all are flagged long before that size)
SHIFTED_AT_LARGEST = 100
REPEAT = int(os.environ.get("DETECTION_REPEAT", 3))

Detect = Callable[[np.ndarray], list[int]]


def _change(v: np.ndarray) -> list[int]:
    d = ChangeDetector()
    d.update(v)
    return d.change_points


def _river(make: Callable[[], StreamDetector]) -> Detect:
    return lambda v: make().update(v)


DETECTORS: dict[str, Detect] = {
    "ChangeDetector": _change,
    "ADWIN": _river(StreamDetector.adwin),
    "Page-Hinkley": _river(StreamDetector.page_hinkley),
    "KSWIN": _river(lambda: StreamDetector.kswin(seed=42)),
    "never fires": lambda v: [],
}


def tcpd() -> None:
    series = load_series()
    print("TCPD F1 (margin 5, index 0 counted; river's 7 series)")
    print(f"{'detector':<16}" + "".join(f"{s.name[:10]:>11}" for s in series) + f"{'mean':>8}")
    for name, fn in DETECTORS.items():
        f1s = score(fn, series)
        print(f"{name:<16}" + "".join(f"{f1s[s.name]:>11.3f}" for s in series)
              + f"{np.mean(list(f1s.values())):>8.3f}", flush=True)


def synthetic() -> None:
    series = synthetic_series()
    print(f"\nheld-out generated series: F1 per family ({len(series) // len(FAMILIES)} series "
          "each, margin 5, index 0 counted) and the mean of the families")
    print(f"{'detector':<16}" + "".join(f"{f[:12]:>13}" for f in FAMILIES) + f"{'mean':>8}")
    for name, fn in DETECTORS.items():
        f1s = score(fn, series)
        fam = [float(np.mean([v for k, v in f1s.items() if k.split(" #")[0] == f]))
               for f in FAMILIES]
        print(f"{name:<16}" + "".join(f"{v:>13.3f}" for v in fam) + f"{np.mean(fam):>8.3f}",
              flush=True)


def false_alarms() -> None:
    rng = np.random.default_rng(12345)
    streams = {"normal": rng.normal(size=IID), "exponential": rng.exponential(size=IID),
               "bernoulli(0.1)": (rng.random(IID) < 0.1).astype(np.float64)}
    print(f"\nfalse alarms per 10^4 values (i.i.d., {IID:,} values; KSWIN {IID // 10:,})")
    print(f"{'detector':<16}" + "".join(f"{k:>16}" for k in streams) + f"{'µs/value':>10}")
    for name, fn in DETECTORS.items():
        if name == "never fires":
            continue
        row, spent, seen = [], 0.0, 0
        for x in streams.values():
            x = x[: IID // 10] if name == "KSWIN" else x
            t0 = time.perf_counter()
            n = len(fn(x))
            spent += time.perf_counter() - t0
            seen += len(x)
            row.append(n / len(x) * 1e4)
        print(f"{name:<16}" + "".join(f"{r:>16.2f}" for r in row)
              + f"{spent / seen * 1e6:>10.1f}", flush=True)


def delays() -> None:
    pre, post, reps = 1000, 3000, 40
    gens = {"mean +0.5 SD": lambda r: np.r_[r.normal(0, 1, pre), r.normal(0.5, 1, post)],
            "error 0.10→0.20": lambda r: np.r_[r.random(pre) < 0.1,
                                                r.random(post) < 0.2].astype(np.float64)}
    print(f"\nmedian detection delay (records after the change; {reps} streams, "
          f"{pre} stable values first, {post} after; 'missed' counts as {post})")
    for gname, gen in gens.items():
        cells = []
        for name in ("ChangeDetector", "ADWIN", "Page-Hinkley"):
            out, where = [], []
            for seed in range(reps):
                x = gen(np.random.default_rng(seed))
                if name == "ChangeDetector":
                    d = ChangeDetector()
                    hits = [h for h in d.update(x) if h >= pre]
                    cps = [c for c in d.change_points if c >= pre - 100]
                    if cps:
                        where.append(abs(cps[0] - pre))
                else:
                    hits = [h for h in DETECTORS[name](x) if h >= pre]
                out.append(hits[0] - pre if hits else post)
            extra = f" (change point off by {np.median(where):.0f})" if where else ""
            cells.append(f"{name} {np.median(out):.0f}{extra}")
        print(f"  {gname:<16} " + "; ".join(cells), flush=True)


def _block_means(x: np.ndarray, b: int) -> np.ndarray:
    x = x[np.isfinite(x)]
    m = x.size // b
    return x[: m * b].reshape(m, b).mean(axis=1)


def _on_summaries(b: int, settings: ChangeSettings | None) -> Detect:
    """Detections (index of the last record of the triggering block) of ChangeDetector on the
    means of ``b`` records."""
    def detect(x: np.ndarray) -> list[int]:
        return [(h + 1) * b - 1 for h in ChangeDetector(settings).update(_block_means(x, b))]
    return detect


def summaries() -> None:
    pre, post, reps = 1000, 3000, 40
    rng = np.random.default_rng(12345)
    nulls = {"normal": rng.normal(size=IID), "exponential": rng.exponential(size=IID),
             "bernoulli(0.1)": (rng.random(IID) < 0.1).astype(np.float64),
             "beta(8,2)": rng.beta(8, 2, IID), "t3": rng.standard_t(3, IID)}
    shifts: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
        "+0.5 SD": lambda r: np.r_[r.normal(0, 1, pre), r.normal(0.5, 1, post)],
        "error .1→.2": lambda r: np.r_[r.random(pre) < 0.1,
                                        r.random(post) < 0.2].astype(np.float64),
        "+0.25 SD": lambda r: np.r_[r.normal(0, 1, pre), r.normal(0.25, 1, post)],
        "t3 +1": lambda r: np.r_[r.standard_t(3, pre), 1 + r.standard_t(3, post)],
        "beta 8,2→7,2": lambda r: np.r_[r.beta(8, 2, pre), r.beta(7, 2, post)],
    }
    contenders: dict[str, Detect] = {"ChangeDetector, records":
                                     lambda v: ChangeDetector().update(v),
                                     "ADWIN, records": DETECTORS["ADWIN"]}
    for b in (8, 16, 32):
        contenders[f"means of {b}, defaults"] = _on_summaries(b, None)
        # the same hazard per record; a new run may begin every 4 blocks; 3 blocks to confirm
        contenders[f"means of {b}, rescaled"] = _on_summaries(
            b, ChangeSettings(expected_run=1000.0 / b, block=4, min_gap=3))
    print(f"\nChangeDetector on block means: false alarms per 10^4 records ({IID:,} each), "
          f"median delay in records ({reps} streams, {pre} stable first, 'missed' = {post}), "
          f"CPU µs per record on the nulls (load average {os.getloadavg()[0]:.1f})")
    print(f"{'contender':<28}" + "".join(f"{k:>15}" for k in nulls)
          + "".join(f"{k:>14}" for k in shifts) + f"{'µs/rec':>8}")
    for name, fn in contenders.items():
        t0, fa = time.process_time(), []
        for x in nulls.values():
            fa.append(len(fn(x)) / x.size * 1e4)
        cost = (time.process_time() - t0) / sum(x.size for x in nulls.values()) * 1e6
        dl = []
        for gen in shifts.values():
            out = []
            for seed in range(reps):
                hits = [h for h in fn(gen(np.random.default_rng(seed))) if h >= pre]
                out.append(hits[0] - pre if hits else post)
            dl.append(float(np.median(out)))
        print(f"{name:<28}" + "".join(f"{v:>15.2f}" for v in fa)
              + "".join(f"{v:>14.0f}" for v in dl) + f"{cost:>8.2f}", flush=True)


def _profile(d: Path):  # type: ignore[no-untyped-def]
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile

    rng = np.random.default_rng(0)
    n = 50_000
    ref = pa.table({"num": rng.normal(0, 1, n), "disc": rng.integers(0, 5, n).astype(float),
                    "cat": rng.choice(["a", "b", "c", "rare"], n, p=[0.5, 0.3, 0.19, 0.01])})
    pq.write_table(ref, d / "ref.parquet")
    return build_profile(discover([str(d / "ref.parquet")]), BuildOptions(), progress=False)


def _window_rates(profile, size: int, shift: str | None,  # type: ignore[no-untyped-def]
                  windows: int = WINDOWS) -> tuple[float, float]:
    """(share of windows flagged, share flagged by the multivariate reconstruction test)."""
    from driftline.engine.monitor import Monitor, WindowPolicy

    rng = np.random.default_rng(size + (0 if shift is None else 7))
    flagged = by_mv = 0
    mon = Monitor(profile, window=WindowPolicy(records=size, max_age=None), clock=None,
                  streams=False)
    per = max(1, 200_000 // size)  # windows generated at a time (bounded memory)
    for first in range(0, windows, per):
        f, m = _windows(mon, rng, size, min(per, windows - first), shift)
        flagged += f
        by_mv += m
    return flagged / windows, by_mv / windows


def _windows(mon, rng, size: int, count: int,  # type: ignore[no-untyped-def]
             shift: str | None) -> tuple[int, int]:
    from driftline.engine.records import RecordBatch

    n = size * count
    num = rng.normal(0.5 if shift == "num" else 0.0, 1, n)
    shares = [0.65, 0.15, 0.19, 0.01] if shift == "cat" else [0.5, 0.3, 0.19, 0.01]
    cat = rng.choice(np.array(["a", "b", "c", "rare"], dtype=object), n, p=shares)
    disc = rng.integers(0, 5, n).astype(float)
    flagged = by_mv = 0
    step = max(size, 100_000 // size * size)
    for lo in range(0, n, step):
        batch = RecordBatch({"num": num[lo:lo + step], "disc": disc[lo:lo + step],
                             "cat": cat[lo:lo + step]})
        for r in mon.observe(batch):
            flagged += r.drifted
            by_mv += bool(r.multivariate is not None and r.multivariate.drifted)
    return flagged, by_mv


def window_decision() -> None:
    with tempfile.TemporaryDirectory() as d:
        profile = _profile(Path(d))
        print(f"\nwindow decision: share of windows flagged drifted ({WINDOWS} windows per size; "
              f"{SHIFTED_AT_LARGEST} shifted ones from 100,000; default policy, "
              "min_records 200; 'of which PCA': flagged by the multivariate reconstruction "
              "error)")
        print(f"{'window':>8}{'no drift':>10}{'of which PCA':>14}{'num +0.5SD':>12}"
              f"{'cat +15pt':>11}")
        for size in SIZES:
            shifted = SHIFTED_AT_LARGEST if size >= 100_000 else WINDOWS
            null, null_mv = _window_rates(profile, size, None)
            num = _window_rates(profile, size, "num", shifted)[0]
            cat = _window_rates(profile, size, "cat", shifted)[0]
            print(f"{size:>8}{null:>10.3f}{null_mv:>14.3f}{num:>12.3f}{cat:>11.3f}",
                  flush=True)


def _cpu_per_value(make: Callable[[], Callable[[np.ndarray], object]], x: np.ndarray,
                   batch: int) -> float:
    feed = make()
    t0 = time.process_time()
    for lo in range(0, x.size, batch):
        feed(x[lo:lo + batch])
    return (time.process_time() - t0) / x.size * 1e6


def speed() -> None:
    rng = np.random.default_rng(7)
    contenders: dict[str, Callable[[], Callable[[np.ndarray], object]]] = {
        "ChangeDetector": lambda: ChangeDetector().update,
        "ADWIN": lambda: StreamDetector.adwin().update,
    }
    sizes = {1: 3_000, 16: 16_000, 256: 40_960, 1024: 40_960, 4096: 40_960}  # values fed
    best = {(n, b): math.inf for n in contenders for b in sizes}
    for _ in range(REPEAT):
        for b, total in sizes.items():
            x = rng.beta(8, 2, total)
            for name, make in contenders.items():  # interleaved
                best[name, b] = min(best[name, b], _cpu_per_value(make, x, b))
    print(f"\nCPU µs per value (min of {REPEAT}, interleaved; Beta(8, 2) values; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'detector':<16}" + "".join(f"{'batch ' + str(b):>12}" for b in sizes))
    for name in contenders:
        print(f"{name:<16}" + "".join(f"{best[name, b]:>12.2f}" for b in sizes), flush=True)


def reference() -> None:
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "tests" / "change_reference.py"
    spec = importlib.util.spec_from_file_location("change_reference", path)
    if spec is None or spec.loader is None or not path.exists():
        raise SystemExit(f"reference: {path} not found (it ships with the source tree's tests)")
    module = importlib.util.module_from_spec(spec)
    sys.modules["change_reference"] = module
    spec.loader.exec_module(module)
    rng = np.random.default_rng(7)
    sizes = {1: 2_000, 16: 16_000, 256: 40_960, 1024: 40_960, 4096: 40_960}
    clock = time.process_time
    print(f"\nCPU µs per value, ChangeDetector against the implementation it replaced "
          f"(lockstep, min of {REPEAT}; Beta(8, 2) values)")
    print(f"{'batch':>6}{'before':>10}{'after':>10}{'ratio':>8}{'load':>6}")
    for b, total in sizes.items():
        best_old = best_new = math.inf
        for r in range(REPEAT):
            x = rng.beta(8, 2, total)
            old, new = module.ChangeDetector(), ChangeDetector()
            spent = {id(old): 0.0, id(new): 0.0}
            order = (new, old) if r % 2 else (old, new)
            for lo in range(0, total, b):
                chunk = x[lo:lo + b]
                for det in order:
                    t0 = clock()
                    det.update(chunk)
                    spent[id(det)] += clock() - t0
            if old.change_points != new.change_points:
                raise SystemExit("reference: the detectors disagree")
            best_old = min(best_old, spent[id(old)] / total * 1e6)
            best_new = min(best_new, spent[id(new)] / total * 1e6)
        print(f"{b:>6}{best_old:>10.2f}{best_new:>10.2f}{best_old / best_new:>7.2f}×"
              f"{os.getloadavg()[0]:>6.1f}", flush=True)


PARTS: dict[str, Callable[[], None]] = {
    "tcpd": tcpd, "synthetic": synthetic, "delays": delays, "window": window_decision,
    "false_alarms": false_alarms, "summaries": summaries, "speed": speed, "reference": reference,
}


def main() -> None:
    wanted = os.environ.get("DETECTION_PARTS", ",".join(PARTS)).split(",")
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        raise SystemExit(f"DETECTION_PARTS: unknown part(s) {unknown}; choose from "
                         f"{', '.join(PARTS)}")
    for name in PARTS:
        if name in wanted:
            PARTS[name]()


if __name__ == "__main__":
    main()
