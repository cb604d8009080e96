"""The compiled core of :class:`~driftline.detectors.change.ChangeDetector`, when it is built.

``native/changecore.c`` runs the detector value by value in C (≈ 0.3 µs a value against
2.2–3.7 µs for the numpy implementation, which stays as the fallback and the reference the tests
hold it to). It is an optional extension: an install without a C compiler still works and the
detector falls back to numpy, logging one warning the first time. ``DRIFTLINE_NATIVE=0`` in the
environment forces the numpy path (tests, A/B).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from typing import Any

import numpy as np

__all__ = ["as_arrays", "make_core", "native_available", "native_wanted", "state"]

_log = logging.getLogger(__name__)
_warned = False


def _module() -> Any | None:
    try:
        return importlib.import_module("driftline.detectors._changecore")
    except ImportError as exc:
        global _warned
        if not _warned:
            _warned = True
            _log.warning("ChangeDetector: compiled core not available (%s); using numpy", exc)
        return None


def native_available() -> bool:
    """Whether the compiled core is importable (whatever ``DRIFTLINE_NATIVE`` says)."""
    return _module() is not None


def native_wanted() -> bool:
    """False when ``DRIFTLINE_NATIVE`` is ``0``, ``false``, ``no`` or ``off``: the switch every
    compiled core of Driftline reads (this one, the window kernel's,
    :mod:`driftline.engine.window_native`, and the record paths' column builder,
    :mod:`driftline.collectors.columns_native`), read at each use so a test can flip it."""
    return os.environ.get("DRIFTLINE_NATIVE", "1").strip().lower() not in ("0", "false", "no",
                                                                          "off")


def _tie(j_end: list[float], room: int) -> list[int]:
    """The ``room`` best of ``j_end`` when a tie straddles the cut: numpy's choice, as the numpy
    implementation makes it (``np.argpartition``)."""
    return [int(i) for i in np.argpartition(np.array(j_end), -room)[-room:]]


def make_core(det: Any, native: bool | None) -> Any | None:
    """A core for detector ``det`` (its settings and derived constants), or None for numpy:
    ``native`` False, or None with ``DRIFTLINE_NATIVE=0``, or the extension missing, or
    settings past the core's limits (logged)."""
    if native is None:
        native = native_wanted()
    if not native:
        return None
    mod = _module()
    if mod is None:
        return None
    s = det.settings
    log_q = det._log_q
    try:
        return mod.Core(
            block=s.block, max_runs=s.max_runs, min_gap=s.min_gap, threshold=s.threshold,
            log_1mq=det._log_1mq, log_prune=det._log_prune, log_odds=det._log_odds, kk=det._kk,
            kb=det._kb, clip=s.clip, born_bin=0.0 + log_q, born_l0=det._log_kinds[0] + log_q,
            born_l1=det._log_kinds[1] + log_q, prior_l0=det._log_kinds[0],
            prior_l1=det._log_kinds[1], log_2pi=math.log(2.0 * math.pi),
            sqrt_pi_2=math.sqrt(math.pi) / 2.0, keep=det._keep, tie=_tie)
    except (ValueError, OverflowError) as exc:
        # settings past the core's limits (block or max_runs above 2**24): numpy has none
        _log.warning("ChangeDetector: settings beyond the compiled core's limits (%s); "
                     "using numpy", exc)
        return None


#: the numpy path's state attributes that are arrays, and their dtypes
ARRAYS = {"_recent": np.float64, "_buf_x": np.float64, "_buf_i": np.int64, "_start": np.int64,
          "_J0": np.float64, "_C": np.float64, "_L0": np.float64, "_S0": np.float64,
          "_Q0": np.float64, "_mu0": np.float64, "_T0": np.float64, "_slope": np.bool_,
          "_t1": np.float64}


def state(core: Any) -> dict[str, Any]:
    """The core's state in the numpy implementation's attribute names and types."""
    return as_arrays(core.state())


def as_arrays(raw: dict[str, Any]) -> dict[str, Any]:
    """``Core.state()`` (plain lists) with the numpy implementation's arrays and dtypes."""
    out = dict(raw)
    for key, dtype in ARRAYS.items():
        out[key] = np.array(out[key], dtype=dtype)
    out["_change_points"] = list(out["_change_points"])
    return out
