"""Change-point scoring as in the TCPD benchmark (van den Burg & Williams 2020) and river's copy
of its 7 annotated series (``river.drift.datasets``, shipped inside river: nothing downloaded).

F1 with a margin of 5 points, index 0 counted as a change point in every annotation and in
every prediction, one annotator's points matched at most once each: precision against the union
of the annotators' points, recall averaged over the annotators (the paper's definitions).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MARGIN = 5

#: (river class name, value column). Multivariate series are scored on one column.
SERIES: tuple[tuple[str, str], ...] = (
    ("AirlinePassengers", "Total Passengers"),
    ("Apple", "Close"),
    ("Bitcoin", "price"),
    ("BrentSpotPrice", "DPB"),
    ("Occupancy", "V1"),
    ("RunLog", "Pace"),
    ("UKCoalEmploy", "Employment"),
)


def true_positives(truth: Iterable[int], predicted: Iterable[int], margin: int = MARGIN) -> set[int]:
    """Annotated points matched by a distinct prediction within ``margin``, closest first."""
    free = set(predicted)
    found: set[int] = set()
    for tau in sorted(set(truth)):
        close = sorted((abs(tau - x), x) for x in free if abs(tau - x) <= margin)
        if close:
            found.add(tau)
            free.remove(close[0][1])
    return found


def f1(annotations: dict[str, Sequence[int]], predicted: Iterable[int], margin: int = MARGIN) -> float:
    """TCPD F1 (alpha 0.5) of ``predicted`` against every annotator's points."""
    sets = [set(v) | {0} for v in annotations.values()]
    x = set(predicted) | {0}
    union = set().union(*sets)
    precision = len(true_positives(union, x, margin)) / len(x)
    recall = float(np.mean([len(true_positives(s, x, margin)) / len(s) for s in sets]))
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Series:
    name: str
    values: np.ndarray
    annotations: dict[str, list[int]]


def load_series() -> list[Series]:
    """River's 7 TCPD series, read from the CSV files river ships."""
    from river.drift import datasets

    out = []
    for cls_name, column in SERIES:
        ds = getattr(datasets, cls_name)()
        with Path(ds.path).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        values = np.array([float(r[column]) if r[column] not in ("", "NA") else np.nan
                           for r in rows])
        out.append(Series(cls_name, values, {str(k): list(v) for k, v in ds.annotations.items()}))
    return out


def score(detect: Callable[[np.ndarray], list[int]], series: Sequence[Series]) -> dict[str, float]:
    """F1 per series of a detector given as ``values -> predicted change-point indices``."""
    return {s.name: f1(s.annotations, detect(s.values)) for s in series}


#: families of the generated held-out check (``synthetic_series``)
FAMILIES = ("level steps", "linear trends", "random walk + jumps", "seasonal + step",
            "0/1 rate steps", "heavy tails")


def _change_points(rng: np.random.Generator, n: int, gap: int = 60) -> list[int]:
    """Sorted change points in (gap, n - gap), at least ``gap`` apart (1 to 5 of them)."""
    out: list[int] = []
    for _ in range(int(rng.integers(1, 6))):
        c = int(rng.integers(gap, n - gap))
        if all(abs(c - o) >= gap for o in out):
            out.append(c)
    return sorted(out)


def _pieces(n: int, cps: list[int]) -> np.ndarray:
    """Regime number of every index."""
    return np.searchsorted(np.asarray(cps, dtype=np.int64), np.arange(n), side="right")


def _generate(family: str, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    n = int(rng.integers(400, 1200))
    cps = _change_points(rng, n)
    reg = _pieces(n, cps)
    k = len(cps) + 1
    signs = rng.choice([-1.0, 1.0], k)
    if family == "level steps":
        levels = np.cumsum(signs * rng.uniform(1.0, 4.0, k))
        x = levels[reg] + rng.normal(0, 1, n)
    elif family == "linear trends":
        # continuous piecewise linear: the slope changes at each change point
        slopes = signs * rng.uniform(0.01, 0.08, k)
        x = np.cumsum(slopes[reg]) + rng.normal(0, 1, n)
    elif family == "random walk + jumps":
        jumps = np.zeros(n)
        jumps[cps] = rng.choice([-1.0, 1.0], len(cps)) * rng.uniform(8.0, 15.0, len(cps))
        x = 100.0 + np.cumsum(rng.normal(0, 1, n) + jumps)
    elif family == "seasonal + step":
        levels = np.cumsum(signs * rng.uniform(2.0, 5.0, k))
        period = int(rng.choice([7, 12, 24]))
        x = (levels[reg] + 2.0 * np.sin(2 * np.pi * np.arange(n) / period)
             + rng.normal(0, 1, n))
    elif family == "0/1 rate steps":
        rates = rng.uniform(0.02, 0.5, k)
        for i in range(1, k):  # a step of at least 0.1 and half the rate before
            while abs(rates[i] - rates[i - 1]) < max(0.1, rates[i - 1] / 2):
                rates[i] = rng.uniform(0.02, 0.5)
        x = (rng.random(n) < rates[reg]).astype(np.float64)
    elif family == "heavy tails":
        levels = np.cumsum(signs * rng.uniform(2.0, 5.0, k))
        x = levels[reg] + rng.standard_t(3, n)
    else:
        raise ValueError(f"unknown family {family!r}")
    return x, cps


def synthetic_series(per_family: int = 8, seed: int = 20240601) -> list[Series]:
    """A held-out check no default was tuned on: generated series with known change points,
    ``per_family`` of each of :data:`FAMILIES` (names ``family #i``; one 'annotator', the
    truth). Scored with the same F1 as the TCPD series."""
    rng = np.random.default_rng(seed)
    out = []
    for fam in FAMILIES:
        for i in range(per_family):
            x, cps = _generate(fam, rng)
            out.append(Series(f"{fam} #{i}", x, {"truth": cps}))
    return out
