"""The compiled kernel of a window's numeric statistics (``native/windowcore.c``), when built.

:func:`~driftline.engine.kernels.stacked_arrays` (the sidecar's 1000-record windows, a stack of
features at a time) and :func:`~driftline.engine.kernels._numeric_stats` (one feature: 10k
windows, ``driftline analyze``, features with missing values) sort each window with numpy and
hand it to :func:`stats`: the PSI bin counts, the KS statistic and the Wasserstein-1 distance of
every row in one pass of C, the same floats as their numpy code bit for bit. The numpy code
stays, as the fallback and as the reference the tests hold the C to: at a 1000-value window it
is ≈ 40 numpy calls a feature whose fixed cost is most of its time.

The same module ranks the values arriving between windows, for the cumulative quantile-rank
histograms: :func:`~driftline.engine.kernels.rank_update` hands each sorted batch of a feature to
:func:`rank_kernel`'s function, the same counts, rank sum and occurrence counters as its numpy
code (15–40 numpy calls a feature and block, whose fixed cost was most of their time).

Optional like ChangeDetector's core: an install without a C compiler still works and runs
numpy (one warning at first use); ``DRIFTLINE_NATIVE=0`` forces numpy (the one switch,
:func:`~driftline.detectors.change_native.native_wanted`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from driftline.detectors.change_native import native_wanted

__all__ = ["kernel", "native_available", "rank_kernel"]

_log = logging.getLogger(__name__)
_UNSET: Any = object()
_core: Any = _UNSET


def _module() -> Any | None:
    """The extension module, imported on first use (None, warned once, when it is missing)."""
    global _core
    if _core is _UNSET:
        try:
            _core = importlib.import_module("driftline.engine._windowcore")
        except ImportError as exc:
            _core = None
            _log.warning("window statistics: compiled kernel not available (%s); using numpy",
                         exc)
    return _core


def native_available() -> bool:
    """Whether the compiled kernel is importable (whatever ``DRIFTLINE_NATIVE`` says)."""
    return _module() is not None


Stats = Callable[..., tuple[list[float], list[float]]]


def kernel() -> Stats | None:
    """``_windowcore.stats`` unless ``DRIFTLINE_NATIVE=0`` or the extension is missing.

    ``stats(windows, refs, sums, edges, rows, counts) -> (D, W)``: sorted windows ``k × w``
    (or one of ``w``) against sorted summaries ``K × n`` (or one), their
    :func:`~driftline.engine.kernels.centred_sums` ``K × (n+1)`` and bin edges ``K × e``; row
    ``i`` against reference ``rows[i]`` (all in order for None); the bin counts written into
    ``counts`` (intp, ``k × (e+1)``), the KS statistics and distances returned as lists.
    TypeError / ValueError for buffers of another dtype, shape or layout, or a window that is
    not sorted or holds a NaN."""
    return _function("stats")


RankUpdate = Callable[..., float]


def rank_kernel() -> RankUpdate | None:
    """``_windowcore.rank_update`` unless ``DRIFTLINE_NATIVE=0`` or the extension is missing.

    ``rank_update(values, distinct, below, n, limits, bounds, cut_at, cut_first, cut_bucket,
    seen, counts) -> rank sum``: sorted float64 values against a
    :class:`~driftline.engine.kernels.RankReference`'s fields; the bucket counts written into
    ``counts`` (int64, ``len(limits) + 1``) and ``seen`` advanced in place. TypeError /
    ValueError (and ``seen`` unchanged) for buffers of another dtype, shape or layout, values
    that are not sorted or hold a NaN, or tables no ``RankReference.build`` makes."""
    return _function("rank_update")


def _function(name: str) -> Any:
    """The extension's function ``name``, or None (``DRIFTLINE_NATIVE=0``, or no extension)."""
    if not native_wanted():
        return None
    mod = _module()
    return None if mod is None else getattr(mod, name)
