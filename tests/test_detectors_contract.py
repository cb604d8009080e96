"""One suite for every windowed Detector class: protocol, missing values, empty windows, state."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from driftline.detectors.base import Detector, DetectorResult
from driftline.detectors.windowed import (
    CategoricalPSIDetector,
    Chi2Detector,
    JensenShannonDetector,
    KSDetector,
    PSIDetector,
    WassersteinDetector,
    detector_from_state,
)

_REF = np.sort(np.random.default_rng(0).normal(size=500))
_EDGES = np.quantile(_REF, [0.2, 0.4, 0.6, 0.8])
_SHARES = [0.2] * 5
_CATS = ["a", "b", "c"]
_CAT_SHARES = [0.5, 0.3, 0.2, 0.0]

Factory = Callable[[], Detector]

NUMERIC: dict[str, Factory] = {
    "psi": lambda: PSIDetector(_EDGES, _SHARES),
    "js": lambda: JensenShannonDetector(_EDGES, _SHARES),
    "ks": lambda: KSDetector(_REF),
    "wasserstein": lambda: WassersteinDetector(_REF, float(_REF.std())),
}
CATEGORICAL: dict[str, Factory] = {
    "cat_psi": lambda: CategoricalPSIDetector(_CATS, _CAT_SHARES),
    "chi2": lambda: Chi2Detector(_CATS, [c * 1000 for c in _CAT_SHARES]),
}
ALL = {**NUMERIC, **CATEGORICAL}


def _same(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    if name in CATEGORICAL:
        return rng.choice(np.array(_CATS, dtype=object), size=n, p=[0.5, 0.3, 0.2])
    return rng.normal(size=n)


def _shifted(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    if name in CATEGORICAL:
        return rng.choice(np.array(["a", "b", "c", "new"], dtype=object), size=n, p=[0.1, 0.1, 0.3, 0.5])
    return rng.normal(1.5, 1.0, size=n)


def _missing(name: str) -> np.ndarray:
    if name in CATEGORICAL:
        return np.array([None, float("nan")], dtype=object)
    return np.array([np.nan, np.inf, -np.inf])


@pytest.fixture(params=sorted(ALL))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_satisfies_protocol(name: str) -> None:
    det = ALL[name]()
    assert isinstance(det, Detector)
    assert isinstance(det.result(), DetectorResult)


def test_empty_is_nan_not_no_drift(name: str) -> None:
    det = ALL[name]()
    for batch in (None, np.array([], dtype=object if name in CATEGORICAL else float)):
        if batch is not None:
            det.update(batch)
        r = det.result()
        assert r.n == 0 and r.n_invalid == 0
        assert math.isnan(r.statistic)
        assert r.p_value is None or math.isnan(r.p_value)
        assert r.drifted is False


def test_only_missing_values_are_counted_not_used(name: str) -> None:
    det = ALL[name]()
    miss = _missing(name)
    det.update(miss)
    r = det.result()
    assert r.n == 0 and r.n_invalid == miss.size and math.isnan(r.statistic)


def test_missing_values_do_not_change_the_statistic(name: str) -> None:
    rng = np.random.default_rng(11)
    batch = _same(rng, name, 300)
    clean, dirty = ALL[name](), ALL[name]()
    clean.update(batch)
    dirty.update(np.concatenate([batch[:100], _missing(name), batch[100:]]))
    a, b = clean.result(), dirty.result()
    assert (a.statistic, a.p_value, a.drifted, a.n) == (b.statistic, b.p_value, b.drifted, b.n)
    assert b.n_invalid == _missing(name).size


def test_detects_shift_and_not_same_distribution(name: str) -> None:
    rng = np.random.default_rng(5)
    same, shifted = ALL[name](), ALL[name]()
    same.update(_same(rng, name, 2000))
    shifted.update(_shifted(rng, name, 2000))
    assert shifted.result().drifted is True
    assert same.result().drifted is False
    assert shifted.result().statistic > same.result().statistic


def test_reset_forgets(name: str) -> None:
    rng = np.random.default_rng(2)
    det = ALL[name]()
    det.update(_shifted(rng, name, 100))
    det.update(_missing(name))
    det.reset()
    r = det.result()
    assert r.n == 0 and r.n_invalid == 0 and math.isnan(r.statistic)


def test_state_round_trip_through_json(name: str) -> None:
    rng = np.random.default_rng(3)
    det = ALL[name]()
    det.update(_shifted(rng, name, 250))
    det.update(_missing(name))
    state = json.loads(json.dumps(det.to_state()))  # type: ignore[attr-defined]
    back = detector_from_state(state)
    assert type(back) is type(det)
    assert back.result() == det.result()


def test_merge_equals_one_detector_fed_both(name: str) -> None:
    rng = np.random.default_rng(4)
    x, y = _same(rng, name, 150), _shifted(rng, name, 90)
    a, b, both = ALL[name](), ALL[name](), ALL[name]()
    a.update(x)
    b.update(y)
    both.update(x)
    both.update(y)
    assert a.merge(b).result() == both.result()  # type: ignore[attr-defined]


def test_merge_refuses_other_configuration() -> None:
    with pytest.raises(ValueError, match="different configurations"):
        PSIDetector(_EDGES, _SHARES).merge(PSIDetector(_EDGES, _SHARES, threshold=0.2))
    with pytest.raises(ValueError, match="different configurations"):
        KSDetector(_REF).merge(KSDetector(_REF[1:]))


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        PSIDetector([1.0, 1.0], [0.3, 0.3, 0.4])
    with pytest.raises(ValueError, match="shares"):
        PSIDetector([1.0], [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="sorted"):
        KSDetector([3.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        KSDetector([])
    with pytest.raises(ValueError, match="unknown detector state"):
        detector_from_state({"kind": "nope"})


def test_every_class_is_a_stateful_detector(name: str) -> None:
    from driftline.detectors.base import StatefulDetector

    assert isinstance(ALL[name](), StatefulDetector)


def test_detectors_for_feature_uses_the_profile() -> None:
    from driftline.detectors.windowed import detectors_for_feature
    from driftline.profile.format import CategoricalFeature, NumericFeature

    num = NumericFeature(name="x", edges=tuple(_EDGES), proportions=tuple(_SHARES),
                         summary=tuple(_REF), summary_exact=True, count=_REF.size, missing_ratio=0.0,
                         minimum=float(_REF[0]), maximum=float(_REF[-1]), mean=float(_REF.mean()),
                         std=float(_REF.std()))
    dets = detectors_for_feature(num, psi_threshold=0.2)
    assert sorted(dets) == ["jensen_shannon", "ks", "psi", "wasserstein"]
    window = np.random.default_rng(8).normal(0.5, 1.0, size=400)
    for key, det in dets.items():
        det.update(window)
        want = NUMERIC[{"jensen_shannon": "js"}.get(key, key)]()
        want.update(window)
        assert det.result().statistic == want.result().statistic
    assert dets["psi"].result().threshold == 0.2
    cat = CategoricalFeature(name="c", categories=tuple(_CATS), proportions=tuple(_CAT_SHARES),
                             count=10, missing_ratio=0.0)
    cdets = detectors_for_feature(cat)
    assert sorted(cdets) == ["chi2", "psi"]
    assert isinstance(cdets["chi2"], Chi2Detector)
