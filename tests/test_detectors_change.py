"""ChangeDetector: the run-length posterior against brute force, the index and NaN contract,
determinism, model choice, and false alarms on stable streams. Every test runs on both paths:
the compiled core and the numpy implementation (``DRIFTLINE_NATIVE``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import special

from driftline.detectors import ChangeDetector
from driftline.detectors.change import ChangeSettings, predictive
from driftline.detectors.change_native import native_available


@pytest.fixture(scope="module", autouse=True, params=["native", "numpy"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test once on the compiled core and once on numpy (module-scoped: hypothesis)."""
    if request.param == "native" and not native_available():
        pytest.skip("the compiled core is not built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTLINE_NATIVE", "1" if request.param == "native" else "0")
        assert ChangeDetector().native == (request.param == "native")
        yield request.param


def _brute_force_bernoulli(x: list[float], hazard: float, block: int) -> dict[int, float]:
    """P(current regime began at s | x) by summing over every segmentation: at each block
    boundary (every ``block`` values) a new regime begins with probability
    ``q = 1 - (1 - hazard) ** block``; a regime's marginal likelihood under Beta(1, 1) is
    B(1 + ones, 1 + zeros) / B(1, 1)."""
    t = len(x)
    q = 1 - (1 - hazard) ** block
    bounds_at = list(range(block, t, block))
    out: dict[int, float] = {}
    for cuts in itertools.product([False, True], repeat=len(bounds_at)):
        starts = [0] + [b for b, c in zip(bounds_at, cuts, strict=True) if c]
        bounds = [*starts, t]
        like = 1.0
        for a, b in itertools.pairwise(bounds):
            ones = sum(x[a:b])
            like *= math.exp(special.betaln(1 + ones, 1 + (b - a) - ones))
        k = len(starts) - 1
        w = like * q ** k * (1 - q) ** (len(bounds_at) - k)
        out[starts[-1]] = out.get(starts[-1], 0.0) + w
    total = sum(out.values())
    return {s: w / total for s, w in out.items()}


@pytest.mark.parametrize(("seed", "block", "n"), [(0, 1, 10), (1, 1, 11), (2, 3, 14), (3, 4, 23)])
def test_run_length_posterior_equals_brute_force(seed: int, block: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(float).tolist()
    cfg = ChangeSettings(expected_run=4.0, prune=1e-300, max_runs=64, threshold=0.999999,
                         block=block)
    det = ChangeDetector(cfg)
    det.update(np.array(x[:5]))
    det.update(np.array(x[5:]))  # a block split across two calls
    assert det.detections == 0
    starts, probs = det.run_lengths()
    got = dict(zip(starts.tolist(), probs.tolist(), strict=True))
    want = _brute_force_bernoulli(x, 1 / 4.0, block)
    assert got.keys() == want.keys()
    for s, p in want.items():
        assert got[s] == pytest.approx(p, rel=1e-9)


def test_level_shift_found_where_it_began_and_indices_count_invalid_values() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(10, 2, 500), rng.normal(16, 2, 500)]
    det = ChangeDetector()
    hits = det.update(x)
    assert len(hits) == 1 and 500 <= hits[0] < 530
    assert det.change_point is not None and abs(det.change_point - 500) <= 3
    assert det.model == "level"
    # 50 invalid values before the change: every index moves by 50, they are counted, not fed
    gaps = np.r_[x[:200], np.full(48, np.nan), [np.inf, -np.inf], x[200:]]
    other = ChangeDetector()
    assert [h - 50 for h in other.update(gaps)] == hits
    assert other.change_point == det.change_point + 50
    assert other.n_invalid == 50 and other.n == det.n == 1000


def test_error_rate_step_on_a_zero_one_stream() -> None:
    rng = np.random.default_rng(4)
    x = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.3].astype(float)
    det = ChangeDetector()
    hits = det.update(x)
    assert det.model == "bernoulli"
    assert len(hits) == 1 and 2000 < hits[0] < 2300
    assert det.change_point is not None and abs(det.change_point - 2000) < 60
    assert not det.drift_detected  # river's convention: the *last* value did not trigger it


def _state(det: object) -> dict[str, object]:
    """Every piece of the detector's state, arrays as bytes: equal means bit for bit equal (the
    reference implementation's attributes of the same names)."""
    if isinstance(det, ChangeDetector):
        got = det.state()
    else:
        keys = ChangeDetector(native=False).state().keys()
        got = {k: v for k, v in vars(det).items() if k in keys}
    return {k: (v.dtype.str, v.tobytes()) if isinstance(v, np.ndarray) else v
            for k, v in got.items()}


_STREAMS = {
    "level": lambda r: np.r_[r.normal(0, 1, 150), r.normal(4, 1, 150)],
    "heavy tails": lambda r: np.r_[r.standard_t(2, 200), 3 + r.standard_t(2, 100)],
    "zero/one": lambda r: np.r_[r.random(200) < 0.1, r.random(200) < 0.6].astype(float),
    "ties": lambda r: np.r_[r.integers(0, 3, 150), r.integers(2, 5, 150)].astype(float),
    "trend": lambda r: np.r_[0.05 * np.arange(150), 7.5 - 0.05 * np.arange(150)]
    + r.normal(0, 1, 300),
}


@settings(max_examples=12, deadline=None)
@example(seed=2123, cuts=[162, 130], kind="level", block=1)  # a NaN right after a detection
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 200), min_size=1, max_size=8),
       st.sampled_from(sorted(_STREAMS)), st.sampled_from([1, 4, 16]))
def test_batches_and_single_values_give_the_same_result(seed: int, cuts: list[int], kind: str,
                                                         block: int) -> None:
    rng = np.random.default_rng(seed)
    x = _STREAMS[kind](rng)
    x[rng.integers(0, x.size, 5)] = np.nan
    cfg = ChangeSettings(block=block)
    whole = ChangeDetector(cfg)
    hits = whole.update(x)
    parts = ChangeDetector(cfg)
    found, pos = [], 0
    for c in [*cuts, len(x)]:
        chunk = x[pos:pos + c]
        found += [pos + h for h in parts.update(chunk)]
        pos += len(chunk)
        if pos >= len(x):
            break
    assert found == hits and parts.change_points == whole.change_points
    assert _state(parts) == _state(whole)
    single = ChangeDetector(cfg)
    flags = []
    for v in x.tolist():
        single.update(v)
        # drift_detected speaks of the last *valid* value: after a skipped NaN it still tells
        # whether the value before it triggered, so only valid values' flags are detections
        flags.append(single.drift_detected and math.isfinite(v))
    assert np.flatnonzero(flags).tolist() == hits
    assert _state(single) == _state(whole)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_predictive_equals_bayesian_linear_regression(seed: int) -> None:
    """The closed-form predictive against numpy: posterior of (c, β) with prior precision
    diag(kk, kb) and mean (mu0, 0), evaluated at the next position (σ = 1)."""
    rng = np.random.default_rng(seed)
    kk, kb, mu0 = 1 / 9, 1 / 0.03 ** 2, float(rng.normal())
    for n in [0, 1, 2, 7, 40]:
        x = rng.normal(1.0, 1.0, n) + 0.1 * np.arange(n)
        tau = np.arange(n, dtype=float)
        for slope in (False, True):
            design = np.c_[np.ones(n), tau] if slope else np.ones((n, 1))
            prior = np.diag([kk, kb]) if slope else np.array([[kk]])
            m0 = np.array([mu0, 0.0])[: prior.shape[0]]
            prec = prior + design.T @ design
            post = np.linalg.solve(prec, prior @ m0 + design.T @ x)
            phi = np.array([1.0, n])[: prior.shape[0]]
            mean, spread = predictive(np.array(float(n)), np.array(x.sum()),
                                      np.array((tau * x).sum()), np.array(mu0), kk, kb,
                                      np.array(slope))
            assert float(mean) == pytest.approx(phi @ post, rel=1e-9, abs=1e-9)
            assert float(spread) == pytest.approx(phi @ np.linalg.solve(prec, phi), rel=1e-9)


def test_a_trend_is_one_regime_and_a_change_of_trend_is_found() -> None:
    rng = np.random.default_rng(5)
    trend = 0.02 * np.arange(1500) + rng.normal(0, 1, 1500)
    assert ChangeDetector().update(trend) == []
    # the level kind alone cuts the same trend into a staircase
    assert len(ChangeDetector(ChangeSettings(slope_weight=1e-9)).update(trend)) > 10
    vee = np.r_[0.03 * np.arange(600), 18 - 0.03 * np.arange(600)] + rng.normal(0, 1, 1200)
    det = ChangeDetector()
    assert len(det.update(vee)) == 1
    assert det.change_point is not None and abs(det.change_point - 600) < 60


@pytest.mark.parametrize("kind", ["normal", "exponential", "bernoulli", "pareto"])
def test_no_false_alarm_on_stable_streams(kind: str) -> None:
    rng = np.random.default_rng(11)
    n = 5000
    x = {"normal": lambda: rng.normal(100, 5, n), "exponential": lambda: rng.exponential(3, n),
         "bernoulli": lambda: (rng.random(n) < 0.1).astype(float),
         "pareto": lambda: rng.pareto(3.0, n)}[kind]()
    det = ChangeDetector()
    assert det.update(x) == [] and det.change_point is None


def test_reset_and_settings_validation() -> None:
    det = ChangeDetector()
    det.update(np.r_[np.zeros(300), np.ones(300) * 5])
    assert det.detections == 1
    det.reset()
    assert det.detections == 0 and det.n == 0 and det.model == "bernoulli"
    with pytest.raises(ValueError, match="threshold"):
        ChangeSettings(threshold=1.0)
    with pytest.raises(ValueError, match="slope_weight"):
        ChangeSettings(slope_weight=0.0)


_REFERENCE_STREAMS = {
    "normal": lambda r, n: r.normal(r.normal(0, 100), r.uniform(0.01, 10), n),
    "bernoulli": lambda r, n: (r.random(n) < r.uniform(0.01, 0.5)).astype(float),
    "bernoulli step": lambda r, n: (r.random(n) < np.where(np.arange(n) < n // 2, 0.1, 0.4))
    .astype(float),
    "heavy tails": lambda r, n: r.standard_t(1.5, n) * 3,
    "skewed": lambda r, n: r.beta(8, 2, n),
    "steps": lambda r, n: r.normal(0, 1, n) + 3 * (np.arange(n) // r.integers(100, 400)),
    "trend": lambda r, n: 0.02 * np.arange(n) + r.normal(0, 1, n),
    "integers": lambda r, n: r.integers(0, 4, n).astype(float),
    "binary then not": lambda r, n: np.r_[(r.random(n // 3) < 0.2).astype(float),
                                          r.normal(5, 1, n - n // 3)],
    # squares and sums that overflow to inf (and differences of them to NaN)
    "overflowing": lambda r, n: np.r_[r.normal(0, 1, n // 2), r.normal(1e300, 1e299, n - n // 2)],
}


@settings(max_examples=30, deadline=None)
@example(seed=1, kind="overflowing", n=900, cuts=[300, 77], nan_share=0.01, shape=(16, 24))
# every call after the first starts on a full carried block (its boundary is the run's first)
@example(seed=5, kind="steps", n=1200, cuts=[16, 16, 32, 256, 512], nan_share=0.0,
         shape=(16, 24))
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(_REFERENCE_STREAMS)),
       st.integers(1, 1500), st.lists(st.integers(1, 700), min_size=0, max_size=6),
       st.floats(0.0, 0.05), st.sampled_from([(16, 24), (16, 3), (4, 24), (1, 8), (5, 6)]))
def test_equals_the_reference_implementation(seed: int, kind: str, n: int, cuts: list[int],
                                             nan_share: float, shape: tuple[int, int]) -> None:
    """The package's detector against the implementation it replaced (tests/change_reference.py):
    the same detections, change points and state, bit for bit, on any stream in any batches."""
    rng = np.random.default_rng(seed)
    x = _REFERENCE_STREAMS[kind](rng, n)
    x[rng.random(n) < nan_share] = np.nan
    with np.errstate(all="ignore"):
        _feed_both(x, cuts, shape)


def _numpy_exp_is_libm() -> bool:
    """Whether numpy's ``exp``/``log`` give the C library's floats here. The detector's prune
    uses ``math.exp``/``math.log`` where the reference used numpy's; numpy builds for AVX-512
    machines carry their own SIMD ``exp``, which can differ in the last bit."""
    v = np.random.default_rng(7).uniform(-745.0, 5.0, 20_000)
    w = np.random.default_rng(8).uniform(1e-300, 1e3, 20_000)
    return (np.exp(v).tobytes() == np.array([math.exp(a) for a in v]).tobytes()
            and np.log(w).tobytes() == np.array([math.log(a) for a in w]).tobytes())


_BIT_FOR_BIT = _numpy_exp_is_libm()


def _same_state(a: dict[str, object], b: dict[str, object]) -> None:
    """Bit for bit where numpy's exp is the C library's; else equal to 1e-12 (relative)."""
    if _BIT_FOR_BIT:
        assert a == b
        return
    assert a.keys() == b.keys()
    for key, va in a.items():
        vb = b[key]
        if isinstance(va, tuple) and len(va) == 2 and isinstance(va[1], bytes):
            assert isinstance(vb, tuple) and va[0] == vb[0]
            xa, xb = np.frombuffer(va[1], va[0]), np.frombuffer(vb[1], vb[0])
            np.testing.assert_allclose(xa, xb, rtol=1e-12, atol=0, equal_nan=True)
        elif isinstance(va, float):
            assert isinstance(vb, float) and (va == vb or math.isclose(va, vb, rel_tol=1e-12)
                                              or (math.isnan(va) and math.isnan(vb)))
        else:
            assert va == vb, key


def _feed_both(x: np.ndarray, cuts: list[int], shape: tuple[int, int]) -> None:
    from change_reference import ChangeDetector as Reference

    n = x.size
    cfg = ChangeSettings(block=shape[0], max_runs=shape[1])
    new, ref = ChangeDetector(cfg), Reference(cfg)
    pos = 0
    for c in [*cuts, n]:
        chunk = x[pos:pos + c]
        assert new.update(chunk) == ref.update(chunk)
        assert new.drift_detected == ref.drift_detected
        pos += chunk.size
    assert new.change_points == ref.change_points
    _same_state(_state(new), _state(ref))
    for a, b in zip(new.run_lengths(), ref.run_lengths(), strict=True):
        if _BIT_FOR_BIT:
            assert a.tobytes() == b.tobytes()
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_pickle_round_trip_continues_the_same() -> None:
    import pickle

    rng = np.random.default_rng(9)
    x = np.r_[rng.normal(0, 1, 700), rng.normal(3, 1, 700)]
    whole, first = ChangeDetector(), ChangeDetector()
    hits = whole.update(x)
    found = first.update(x[:650])
    back = pickle.loads(pickle.dumps(first))
    assert back.native == first.native
    assert found + [650 + h for h in back.update(x[650:])] == hits
    assert _state(back) == _state(whole)
