"""StreamDetector against river itself, and the NaN guard."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import drift

from driftline.detectors.streaming import StreamDetector


def _river_stream() -> list[int]:
    rng = random.Random(12345)
    return rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)


def _river_detections(det: drift.base.DriftDetector, stream: list[float]) -> list[int]:
    found = []
    for i, x in enumerate(stream):
        det.update(x)
        if det.drift_detected:
            found.append(i)
    return found


def test_adwin_matches_river_documented_stream() -> None:
    stream = _river_stream()
    want = _river_detections(drift.ADWIN(), [float(x) for x in stream])
    assert want == [1023]  # river's docstring
    det = StreamDetector.adwin()
    assert det.update(np.array(stream, dtype=float)) == want
    assert det.detections == 1 and det.n == 2000 and det.n_invalid == 0


def test_adwin_in_chunks_equals_one_batch() -> None:
    stream = np.array(_river_stream(), dtype=float)
    det = StreamDetector.adwin()
    found: list[int] = []
    for start in range(0, stream.size, 137):
        found += [start + i for i in det.update(stream[start:start + 137])]
    assert found == [1023]


def test_nan_does_not_change_detections() -> None:
    stream = [float(x) for x in _river_stream()]
    with_gaps = [*stream[:500], float("nan"), *stream[500:1500], float("inf"), float("nan"), *stream[1500:]]
    det = StreamDetector.adwin()
    found = det.update(np.array(with_gaps))
    # map positions back to the clean stream: one gap before 1023
    assert [i - 1 for i in found] == [1023]
    assert det.n_invalid == 3 and det.n == 2000
    # and river alone is blinded by the NaN: it never detects the change
    assert _river_detections(drift.ADWIN(), with_gaps) == []


@pytest.mark.parametrize(("make", "ref"), [
    (lambda: StreamDetector.page_hinkley(), lambda: drift.PageHinkley()),
    (lambda: StreamDetector.kswin(seed=42), lambda: drift.KSWIN(seed=42)),
])
def test_other_detectors_match_river(make, ref) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    stream = np.concatenate([rng.normal(0, 1, 600), rng.normal(4, 1, 600)])
    det = make()
    assert det.update(stream) == _river_detections(ref(), stream.tolist())
    assert det.detections >= 1


def test_reset_and_scalar_update() -> None:
    det = StreamDetector.adwin()
    det.update(np.array(_river_stream(), dtype=float))
    det.reset()
    assert (det.n, det.detections, det.n_invalid, det.drift_detected) == (0, 0, 0, False)
    assert det.update(1.0) == []
    assert det.update(float("nan")) == []
    assert det.n == 1 and det.n_invalid == 1
    with pytest.raises(ValueError, match="unknown stream detector"):
        StreamDetector("cusum")


def test_object_and_integer_input() -> None:
    det = StreamDetector.adwin()
    assert det.update(np.array([1, None, "x", 2.0], dtype=object)) == []
    assert (det.n, det.n_invalid) == (2, 2)
    det.update(np.arange(10))
    assert det.n == 12
    assert det.estimation is not None and 0.0 < det.estimation < 10.0
    assert StreamDetector.page_hinkley().estimation is None


def test_module_doctests() -> None:
    import doctest
    import importlib

    # importlib, not `import a.b as m`: the package re-exports functions named like their
    # modules (psi, quantile_rank), which shadow the submodule attribute.
    for name in ("binning", "change", "psi", "quantile_rank", "streaming", "windowed"):
        mod = importlib.import_module(f"driftline.detectors.{name}")
        failed, attempted = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert attempted > 0 and failed == 0, name
