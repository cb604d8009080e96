"""ChangeDetector's compiled core against its numpy implementation: the same detections, change
points and ``drift_detected`` on any stream in any batches, the state equal to 1e-12 (the core's
exp/log are the C library's, numpy's may be its SIMD ones), a batch bit for bit the values one
at a time within the core, the boundary's pruning against ``ChangeDetector._prune`` (ties and
NaN included), the fallback when the extension is missing, and errors as exceptions."""

from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.detectors import change_native
from driftline.detectors.change import ChangeDetector, ChangeSettings


def test_the_core_is_built_where_the_suite_requires_it() -> None:
    """``make test`` sets ``DRIFTLINE_REQUIRE_NATIVE=1``: there a core that failed to build (the
    extension is optional, so ``pip install`` still succeeds) must fail the suite, not skip it."""
    if os.environ.get("DRIFTLINE_REQUIRE_NATIVE") != "1":
        pytest.skip("DRIFTLINE_REQUIRE_NATIVE is not set")
    assert change_native.native_available(), (
        "the compiled core (native/changecore.c) is not built: install a C compiler "
        "(scripts/install-system-deps.sh) and reinstall (pip install -e .)")


needs_core = pytest.mark.skipif(not change_native.native_available(),
                                reason="the compiled core is not built")

_STREAMS = {
    "normal": lambda r, n: r.normal(r.normal(0, 100), r.uniform(0.01, 10), n),
    "heavy tails": lambda r, n: r.standard_t(1.5, n) * 3,
    "cauchy": lambda r, n: r.standard_cauchy(n),
    "zero/one": lambda r, n: (r.random(n) < r.uniform(0.01, 0.5)).astype(float),
    "zero/one step": lambda r, n: (r.random(n) < np.where(np.arange(n) < n // 2, 0.1, 0.4))
    .astype(float),
    "steps": lambda r, n: r.normal(0, 1, n) + 3 * (np.arange(n) // r.integers(50, 400)),
    "trend": lambda r, n: r.uniform(-0.05, 0.05) * np.arange(n) + r.normal(0, 1, n),
    "vee": lambda r, n: np.abs(np.arange(n) - n // 2) * 0.03 + r.normal(0, 1, n),
    "integers": lambda r, n: r.integers(0, 4, n).astype(float),
    "constant": lambda r, n: np.full(n, float(r.integers(-2, 3))),
    "zero/one then not": lambda r, n: np.r_[(r.random(n // 3) < 0.2).astype(float),
                                            r.normal(5, 1, n - n // 3)],
    "beta": lambda r, n: r.beta(8, 2, n),
    "tiny": lambda r, n: r.normal(0, 1e-300, n),
    "overflowing": lambda r, n: np.r_[r.normal(0, 1, n // 2), r.normal(1e300, 1e299, n - n // 2)],
}

_SHAPES = [(16, 24), (16, 3), (4, 24), (1, 8), (5, 6), (2, 40)]


def _stream(seed: int, kind: str, n: int, bad_share: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        x = _STREAMS[kind](rng, n)
    bad = rng.random(n) < bad_share
    x[bad] = rng.choice([np.nan, np.inf, -np.inf], int(bad.sum()))
    return x


def _close(a: object, b: object, key: str) -> None:
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, key
        if b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True, err_msg=key)
        else:
            assert a.tolist() == b.tolist(), key
    elif isinstance(b, float):
        assert isinstance(a, float), key
        assert a == b or math.isclose(a, b, rel_tol=1e-12) or (math.isnan(a) and math.isnan(b)), key
    elif isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b), key
        for u, v in zip(a, b, strict=True):
            _close(u, v, key)
    else:
        assert type(a) is type(b) and a == b, key


def _batches(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    out, pos = [], 0
    for c in [*cuts, x.size]:
        out.append(x[pos:pos + c])
        pos += c
        if pos >= x.size:
            break
    return out


@needs_core
@settings(max_examples=60, deadline=None)
@example(seed=1, kind="overflowing", n=900, cuts=[300, 77], bad_share=0.01, shape=(16, 24))
@example(seed=5, kind="steps", n=1200, cuts=[16, 16, 32, 256, 512], bad_share=0.0,
         shape=(16, 24))
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(_STREAMS)), st.integers(1, 1500),
       st.lists(st.integers(1, 700), min_size=0, max_size=6), st.floats(0.0, 0.05),
       st.sampled_from(_SHAPES))
def test_core_equals_numpy(seed: int, kind: str, n: int, cuts: list[int], bad_share: float,
                           shape: tuple[int, int]) -> None:
    x = _stream(seed, kind, n, bad_share)
    cfg = ChangeSettings(block=shape[0], max_runs=shape[1])
    new, old = ChangeDetector(cfg, native=True), ChangeDetector(cfg, native=False)
    assert new.native and not old.native
    with np.errstate(all="ignore"):
        for chunk in _batches(x, cuts):
            assert new.update(chunk) == old.update(chunk)
            assert new.drift_detected == old.drift_detected
            assert (new.n, new.n_invalid, new.model) == (old.n, old.n_invalid, old.model)
        assert new.change_points == old.change_points and new.change_point == old.change_point
        assert new.detections == old.detections
        a, b = new.state(), old.state()
        assert a.keys() == b.keys()
        for key in b:
            _close(a[key], b[key], key)
        for u, v in zip(new.run_lengths(), old.run_lengths(), strict=True):
            _close(u, v, "run_lengths")


def _bits(det: ChangeDetector) -> dict[str, object]:
    """The state with arrays and floats as their bytes: equal means bit for bit (NaN too)."""
    def b(v: object) -> object:
        if isinstance(v, np.ndarray):
            return v.dtype.str, v.tobytes()
        if isinstance(v, float):
            return np.float64(v).tobytes()
        return tuple(map(b, v)) if isinstance(v, tuple) else v
    return {k: b(v) for k, v in det.state().items()}


@needs_core
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(set(_STREAMS) - {"overflowing"})),
       st.integers(1, 700), st.lists(st.integers(1, 300), min_size=1, max_size=8),
       st.floats(0.0, 0.05), st.sampled_from(_SHAPES))
def test_core_batch_is_the_values_one_at_a_time(seed: int, kind: str, n: int, cuts: list[int],
                                                bad_share: float,
                                                shape: tuple[int, int]) -> None:
    """Bit for bit within the core (numbers that overflow to inf are left out: there, as in the
    numpy path, where a call ends decides which non-finite weights are dropped)."""
    x = _stream(seed, kind, n, bad_share)
    cfg = ChangeSettings(block=shape[0], max_runs=shape[1])
    whole, parts, single = (ChangeDetector(cfg, native=True) for _ in range(3))
    hits = whole.update(x)
    found, pos = [], 0
    for chunk in _batches(x, cuts):
        found += [pos + h for h in parts.update(chunk)]
        pos += chunk.size
    flags = []
    for v in x.tolist():
        single.update(v)
        flags.append(single.drift_detected and math.isfinite(v))
    assert found == hits and np.flatnonzero(flags).tolist() == hits
    assert _bits(parts) == _bits(whole) == _bits(single)


_WEIGHTS = st.lists(st.one_of(st.floats(-60.0, 5.0), st.sampled_from([0.0, -1.5, -30.0]),
                              st.just(-math.inf), st.just(math.nan)), min_size=1, max_size=40)


@needs_core
@settings(max_examples=300, deadline=None)
@example(j_end=[-1.0, -2.0, -2.0, -3.0], born=1, max_runs=3)  # a tie across the cut
@example(j_end=[math.nan, -1.0, -2.0, math.nan, -0.5], born=2, max_runs=4)
@given(_WEIGHTS, st.integers(0, 2), st.integers(3, 30))
def test_pruning_equals_numpy(j_end: list[float], born: int, max_runs: int) -> None:
    """The core's boundary pruning against ChangeDetector._prune: the same survivors and, as
    the numpy path's prune runs on the C library's exp/log too, the same floats."""
    cfg = ChangeSettings(max_runs=max_runs)
    py = ChangeDetector(cfg, native=False)
    core = change_native.make_core(py, True)
    want = py._prune(list(j_end), list(range(len(j_end))), born)
    got = core._prune(list(j_end), born)
    assert got[0] == want[0]
    assert np.array(got[1]).tobytes() == np.array(want[1]).tobytes()


def test_fallback_when_the_extension_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "driftline.detectors._changecore", None)  # import fails
    monkeypatch.setattr(change_native, "_warned", False)
    with caplog.at_level(logging.WARNING, logger=change_native.__name__):
        first, second = ChangeDetector(), ChangeDetector()
    assert not first.native and not second.native
    assert len([r for r in caplog.records if "compiled core" in r.getMessage()]) == 1
    x = np.r_[np.zeros(300), np.ones(300) * 5]
    assert first.update(x) == ChangeDetector(native=False).update(x)


@needs_core
def test_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_NATIVE", "0")
    assert not ChangeDetector().native and ChangeDetector(native=True).native
    monkeypatch.setenv("DRIFTLINE_NATIVE", "1")
    assert ChangeDetector().native and not ChangeDetector(native=False).native


@needs_core
@pytest.mark.parametrize("values", [
    3.0, 2, [1.0, 2.0], np.arange(12, dtype=np.int32).reshape(3, 4), np.float32(1.5),
    np.arange(40.0)[::3], np.array([[1.0, np.nan], [3.0, 4.0]], order="F"), np.empty(0),
])
def test_any_input_numpy_accepts(values: object) -> None:
    new, old = ChangeDetector(native=True), ChangeDetector(native=False)
    assert new.update(values) == old.update(values)  # type: ignore[arg-type]
    assert new.state()["_recent"].tolist() == old.state()["_recent"].tolist()
    assert (new.n, new.n_invalid) == (old.n, old.n_invalid)


@needs_core
def test_errors_are_exceptions() -> None:
    det = ChangeDetector(native=True)
    with pytest.raises((ValueError, TypeError)):
        det.update("not a number")  # type: ignore[arg-type]
    core = change_native.make_core(det, True)
    with pytest.raises(TypeError):
        core.update(memoryview(b"12345678"))  # bytes, not float64
    with pytest.raises(TypeError):
        core.update(object())
    with pytest.raises(ValueError):
        core._prune([], 1)
    bare = type(core).__new__(type(core))  # never initialised
    with pytest.raises(RuntimeError):
        bare.update(np.arange(3.0))
    with pytest.raises(RuntimeError):
        bare.state()
    assert bare.detections == 0
    det.update(np.arange(100.0))  # still usable
    assert det.n == 100


@needs_core
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(set(_STREAMS) - {"overflowing"})),
       st.integers(1, 900), st.integers(0, 900), st.sampled_from(_SHAPES))
def test_pickle_and_copy_carry_on_bit_for_bit(seed: int, kind: str, n: int, at: int,
                                              shape: tuple[int, int]) -> None:
    """A core pickled mid-stream (or deep-copied) continues exactly as the original; unpickled
    where the extension is missing it continues on numpy, to 1e-12."""
    x = _stream(seed, kind, n, 0.01)
    at = min(at, n)
    cfg = ChangeSettings(block=shape[0], max_runs=shape[1])
    whole, first = ChangeDetector(cfg, native=True), ChangeDetector(cfg, native=True)
    hits = whole.update(x)
    found = first.update(x[:at])
    back = pickle.loads(pickle.dumps(first))
    twin = copy.deepcopy(first)
    assert back.native and twin.native and _bits(back) == _bits(first)
    rest = x[at:]
    assert found + [at + h for h in back.update(rest)] == hits
    assert found + [at + h for h in twin.update(rest)] == hits
    assert _bits(back) == _bits(whole) == _bits(twin)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "driftline.detectors._changecore", None)
        mp.setattr(change_native, "_warned", True)
        fallback = pickle.loads(pickle.dumps(first))
    assert not fallback.native
    assert found + [at + h for h in fallback.update(rest)] == hits
    a, b = fallback.state(), whole.state()
    for key in b:
        _close(a[key], b[key], key)


@needs_core
def test_load_rejects_a_bad_state() -> None:
    det = ChangeDetector(native=True)
    det.update(np.arange(50.0))
    core = change_native.make_core(det, True)
    good = det._core.state()
    with pytest.raises(KeyError):
        core.load({k: v for k, v in good.items() if k != "_J0"})
    with pytest.raises(ValueError):
        core.load({**good, "_J0": [1.0] * (len(good["_J0"]) + 1)})
    with pytest.raises(TypeError):
        core.load({**good, "_n": "x"})
    core.load(good)
    assert core.state() == good
