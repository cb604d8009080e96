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
