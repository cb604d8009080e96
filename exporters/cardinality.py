"""Cardinality guard: bounded label values for every exported series.

Every label value that can come from outside (model names, endpoints, features, categories,
classes, drop reasons, ...) passes through :class:`CardinalityGuard` before it becomes a series.
Per scope (e.g. "features of model X") at most ``cap`` distinct values are admitted; the rest
fold into ``__other__``. Admission is sticky: a value keeps its slot for as long as it is present
at every build, so series do not flap between scrapes, and a flood of new values can never push
the series count past the cap. A slot is freed when its value disappears from the source.

Each fold that was not already folded at the previous build counts once in
``driftline_series_capped_total{label}``; the guard remembers only the previous build's folded
values, so its memory is bounded by the size of the source, not by the history of the flood.

>>> g = CardinalityGuard(CardinalityLimits(max_models=2))
>>> g.begin()
>>> g.resolve("model_name", (), ["a", "b", "c"], 2)
{'__other__': '__other__', 'a': 'a', 'b': 'b', 'c': '__other__'}
>>> g.end()
{'model_name': 1}
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from driftline.errors import ConfigError

OTHER = "__other__"


@dataclass(frozen=True)
class CardinalityLimits:
    """Caps on distinct label values. Each cap counts real values; ``__other__`` comes on top.

    ``max_enum_values`` covers the small enumerations that should never be large (``source``,
    ``matched``, ``code``, ``exporter``, and ADWIN ``signal`` values that are not
    ``feature:<name>``); ``feature:<name>`` signals follow the feature cap.
    """

    max_models: int = 50
    max_versions_per_model: int = 5
    max_endpoints_per_model: int = 4
    max_features_per_model: int = 200
    max_categories_per_feature: int = 50
    max_classes_per_model: int = 50
    max_drop_reasons: int = 20
    max_enum_values: int = 16

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", key=name,
                                  fix="set a cap of at least 1")


class CardinalityGuard:
    """Sticky first-come admission of label values per scope, with fold counting.

    Use ``begin()``, any number of ``resolve()`` calls, then ``end()`` per build; the calls are
    serialised by an internal lock held from ``begin`` to ``end``.
    """

    def __init__(self, limits: CardinalityLimits | None = None) -> None:
        self.limits = limits if limits is not None else CardinalityLimits()
        self._lock = threading.Lock()
        self._admitted: dict[tuple[str, tuple[str, ...]], dict[str, None]] = {}
        self._touched: set[tuple[str, tuple[str, ...]]] = set()
        self._folded_prev: set[tuple[str, tuple[str, ...], str]] = set()
        self._folded_now: set[tuple[str, tuple[str, ...], str]] = set()
        self._capped: dict[str, int] = {}

    def begin(self) -> None:
        """Start a build; blocks while another thread's build is running."""
        self._lock.acquire()
        self._touched = set()
        self._folded_now = set()

    def resolve(self, label: str, scope: tuple[str, ...], candidates: Iterable[str],
                cap: int) -> dict[str, str]:
        """Map every candidate to itself (admitted) or to ``__other__`` (folded).

        ``candidates`` are the values present in this build, in priority order (earlier values
        win free slots). ``__other__`` always maps to itself and takes no slot.
        """
        key = (label, scope)
        self._touched.add(key)
        values = [v for v in dict.fromkeys(candidates) if v != OTHER]
        present = set(values)
        old = self._admitted.get(key, {})
        admitted = {v: None for v in old if v in present}
        for v in values:
            if len(admitted) >= cap:
                break
            admitted.setdefault(v, None)
        self._admitted[key] = admitted
        out = {OTHER: OTHER}
        for v in values:
            if v in admitted:
                out[v] = v
            else:
                out[v] = OTHER
                fold = (label, scope, v)
                self._folded_now.add(fold)
                if fold not in self._folded_prev:
                    self._capped[label] = self._capped.get(label, 0) + 1
        return out

    def end(self) -> dict[str, int]:
        """Finish the build; returns the cumulative fold counts per label."""
        try:
            for key in [k for k in self._admitted if k not in self._touched]:
                del self._admitted[key]
            self._folded_prev = self._folded_now
            return dict(self._capped)
        finally:
            self._lock.release()

    def admitted_count(self) -> int:
        """Total admitted values over all scopes (for tests and diagnostics)."""
        return sum(len(v) for v in self._admitted.values())
