"""ChangeDetector's compiled core against its numpy implementation: the same detections, change
points and ``drift_detected`` on any stream in any batches, the state equal to 1e-12 (the core's
exp/log are the C library's, numpy's may be its SIMD ones), a batch bit for bit the values one
at a time within the core, the boundary's pruning against ``ChangeDetector._prune`` (ties and
NaN included), the fallback when the extension is missing, and errors as exceptions."""

from __future__ import annotations

import copy
import logging
import math
import pickle
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.detectors import change_native
from driftline.detectors.change import ChangeDetector, ChangeSettings

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
@example(j_end=[-math.inf, math.nan], born=0, max_runs=3)  # numpy's NaN sign varies here
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
    # bit for bit, but a NaN's sign: numpy's own (SIMD or not, by alignment) varies run to run
    a, b = np.array(got[1]), np.array(want[1])
    assert np.isnan(a).tolist() == np.isnan(b).tolist()
    assert np.where(np.isnan(a), 0.0, a).tobytes() == np.where(np.isnan(b), 0.0, b).tobytes()


def test_fallback_when_the_extension_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "driftline.detectors._changecore", None)  # import fails
    monkeypatch.setattr(change_native, "_warned", False)
    monkeypatch.delenv("DRIFTLINE_NATIVE", raising=False)  # a run with it at 0 still tries
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


# --- hardening: what a hostile caller, state or callback must not be able to do ------------------

_RUN_KEYS = ("_start", "_J0", "_C", "_L0", "_S0", "_Q0", "_mu0", "_T0", "_slope", "_t1")


def _core_kwargs(det: ChangeDetector, **over: object) -> dict[str, object]:
    """Core(...)'s arguments for ``det``, as make_core gives them, with ``over`` replaced."""
    s = det.settings
    kw: dict[str, object] = dict(
        block=s.block, max_runs=s.max_runs, min_gap=s.min_gap, threshold=s.threshold,
        log_1mq=det._log_1mq, log_prune=det._log_prune, log_odds=det._log_odds, kk=det._kk,
        kb=det._kb, clip=s.clip, born_bin=det._log_q, born_l0=det._log_kinds[0] + det._log_q,
        born_l1=det._log_kinds[1] + det._log_q, prior_l0=det._log_kinds[0],
        prior_l1=det._log_kinds[1], log_2pi=math.log(2.0 * math.pi),
        sqrt_pi_2=math.sqrt(math.pi) / 2.0, keep=det._keep, tie=change_native._tie)
    kw.update(over)
    return kw


def _tied_state(copies: int = 60) -> dict[str, object]:
    """A state whose hypotheses are ``copies`` equal ones: the next boundary's prune has a tie
    across its cut, so it calls the tie helper."""
    det = ChangeDetector(native=True)
    det.update(np.random.default_rng(3).normal(0, 1, 40))
    raw = det._core.state()
    for key in _RUN_KEYS:
        raw[key] = raw[key][:1] * copies
    return raw


def _core_bits(core: object) -> dict[str, object]:
    return {k: np.array(v).tobytes() if isinstance(v, list) else v
            for k, v in core.state().items()}  # type: ignore[attr-defined]


@needs_core
@pytest.mark.parametrize("bad", [{"keep": 0}, {"block": 0, "max_runs": 1}, {"min_gap": 0},
                                 {"kk": "x"}, {"tie": 3}])
def test_a_failed_reinit_leaves_the_core_as_it_was(bad: dict[str, object]) -> None:
    """__init__ used to write the settings before checking them: a failed second __init__ left
    keep = 0 (or block = 0) on a live core and the next update overflowed the heap."""
    det = ChangeDetector(native=True)
    x = np.random.default_rng(0).normal(0, 1, 3000)
    det.update(x[:500])
    before = _core_bits(det._core)
    with pytest.raises((ValueError, TypeError)):
        det._core.__init__(**_core_kwargs(det, **bad))
    assert _core_bits(det._core) == before
    ref = ChangeDetector(native=True)
    ref.update(x[:500])
    assert det.update(x[500:]) == ref.update(x[500:])
    assert _bits(det) == _bits(ref)


@needs_core
@pytest.mark.parametrize("over", [{"max_runs": 2**31 - 1}, {"block": 2**31 - 1},
                                  {"keep": 2**62}])
def test_settings_too_large_for_the_core_raise(over: dict[str, object]) -> None:
    """max_runs + 4 overflowed an int (then nothing was allocated and update wrote through
    NULL); sizes derived from keep could overflow too."""
    mod = change_native._module()
    with pytest.raises(ValueError):
        mod.Core(**_core_kwargs(ChangeDetector(native=False), **over))


@needs_core
@pytest.mark.parametrize("method", ["update", "load", "reset", "state", "runs", "_prune",
                                    "change_points", "__init__"])
def test_a_callback_cannot_reenter_the_core(method: str) -> None:
    """Python code the core calls mid-update (here the tie helper) used to be able to call the
    same core: a load() there grew the arrays under the boundary (heap-use-after-free). Every
    method now refuses, and the update goes on as if the callback had not tried."""
    det = ChangeDetector(native=True)
    raised: list[BaseException] = []
    big = _tied_state(500)

    def tie(j_end: list[float], room: int) -> list[int]:
        calls = {"update": lambda: core.update(np.zeros(3)), "load": lambda: core.load(big),
                 "reset": core.reset, "state": core.state, "runs": core.runs,
                 "_prune": lambda: core._prune([0.0] * 5000, 1),
                 "change_points": lambda: core.change_points,
                 "__init__": lambda: core.__init__(**_core_kwargs(det))}
        try:
            calls[method]()
        except RuntimeError as exc:
            raised.append(exc)
        return change_native._tie(j_end, room)

    core = change_native._module().Core(**_core_kwargs(det, tie=tie))
    ref = change_native.make_core(det, True)
    state = _tied_state()
    core.load(state)
    ref.load(state)
    x = np.random.default_rng(1).normal(0, 1, 400)
    assert core.update(x) == ref.update(x)
    assert len(raised) >= 1 and "called back" in str(raised[0])
    assert _core_bits(core) == _core_bits(ref)


@needs_core
def test_a_failing_tie_helper_leaves_the_values_before_it() -> None:
    """The boundary used to fail after the value's recurrences were updated: _n ahead of _index
    and the value half fed. Now the state is that of the values before the one that failed, and
    the stream carries on from there."""
    calls = []

    def tie(j_end: list[float], room: int) -> list[int]:
        calls.append(room)
        if len(calls) == 1:
            raise ZeroDivisionError("helper failed")
        return change_native._tie(j_end, room)

    det = ChangeDetector(native=True)
    core = change_native._module().Core(**_core_kwargs(det, tie=tie))
    ref = change_native.make_core(det, True)
    state = _tied_state()
    core.load(state)
    ref.load(state)
    x = np.r_[np.nan, np.random.default_rng(2).normal(0, 1, 400)]
    with pytest.raises(ZeroDivisionError):
        core.update(x)
    got = core.state()
    fed = got["_index"] - state["_index"]
    assert got["_index"] == got["_n"] + got["_n_invalid"] and 0 < fed < x.size
    ref.update(x[:fed])
    assert _core_bits(core) == _core_bits(ref)
    assert core.update(x[fed:]) == ref.update(x[fed:])
    assert _core_bits(core) == _core_bits(ref)


def _tampered() -> list[tuple[str, object]]:
    n = 60  # _tied_state's hypotheses
    return [("_index", -1), ("_index", 2**63 - 5), ("_n", 10**9), ("_n_invalid", -3),
            ("_segment_start", 2**62), ("_segment_start", -1), ("_bl", 17), ("_bl", -1),
            ("_binary", 2), ("_last_detected", -1), ("_start", [-2**63] * n),
            ("_start", [10**6] * n), ("_buf_i", None), ("_change_points", [2**62]),
            ("_change_points", [-5]), ("_J0", [1.0] * (n + 1)), ("_slope", [np.arange(2)] * n),
            ("_recent", [0.0] * 6), ("_seg", (1.0, 2.0)), ("_J0", ["x"] * n), ("_n", 1.5),
            ("_J0", 7), ("_last", "nan"), ("_C", [[1.0]] * n)]


@needs_core
@pytest.mark.parametrize(("key", "value"), _tampered())
def test_load_rejects_a_tampered_state(key: str, value: object) -> None:
    """Indices out of range used to load, and then overflowed the core's signed arithmetic
    (undefined behaviour) or pointed anywhere; a failed load leaves a fresh, working core."""
    core = change_native.make_core(ChangeDetector(native=False), True)
    good = _tied_state()
    if key == "_buf_i":
        value = [-1] * len(good["_buf_x"])  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError, OverflowError)):
        core.load({**good, key: value})
    assert core.state()["_n"] == 0
    for missing in good:
        with pytest.raises(KeyError):
            core.load({k: v for k, v in good.items() if k != missing})
    core.load(good)
    assert core.state() == good
    core.update(np.arange(100.0))


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                  st.lists(st.one_of(st.integers(-2**64, 2**64), st.floats(), st.booleans()),
                           max_size=80),
                  st.tuples(st.floats(), st.floats(), st.floats()))


@needs_core
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_tied_state())), _JUNK, min_size=1, max_size=4),
       st.integers(0, 2**32 - 1))
def test_any_tampered_state_raises_or_runs(junk: dict[str, object], seed: int) -> None:
    """Random replacements in a good state: load raises, or the core loads and runs on."""
    core = change_native.make_core(ChangeDetector(native=False), True)
    try:
        core.load({**_tied_state(), **junk})
    except (ValueError, TypeError, OverflowError, KeyError):
        assert core.state()["_n"] == 0
    x = np.random.default_rng(seed).normal(0, 1, 300)
    with np.errstate(all="ignore"):
        core.update(x)
        core.state()
        core.runs()


class _Grows:
    """A number whose __float__ lengthens (or empties) the list it sits in."""

    def __init__(self, into: list[object], grow: bool) -> None:
        self.into, self.grow = into, grow

    def __float__(self) -> float:
        if self.grow:
            self.into.extend([1.0] * 5000)
        else:
            del self.into[1:]
        return 0.0


@needs_core
@pytest.mark.parametrize("grow", [True, False])
def test_load_and_prune_read_a_copy_of_their_lists(grow: bool) -> None:
    """load() and _prune() used to re-read the length of a list a __float__ could change: the
    load wrote past the arrays it had sized (heap overflow), _prune read past the list."""
    core = change_native.make_core(ChangeDetector(native=False), True)
    state = _tied_state()
    j0: list[object] = list(state["_J0"])  # type: ignore[call-overload]
    j0[0] = _Grows(j0, grow)
    core.load({**state, "_J0": j0})
    assert core.state()["_J0"] == [0.0, *state["_J0"][1:]]  # type: ignore[index]
    weights: list[object] = [0.0, -1.0, -2.0, -3.0, -4.0] * 4
    weights[0] = _Grows(weights, grow)
    assert core._prune(weights, 1) == core._prune([0.0, -1.0, -2.0, -3.0, -4.0] * 4, 1)


@needs_core
def test_a_cycle_through_the_tie_helper_is_collected() -> None:
    """The core holds a Python callable: it must take part in the garbage collector, or a cycle
    through the helper (an object whose method is the helper and that holds the core) leaks."""
    import gc
    import weakref

    class Owner:
        def tie(self, j_end: list[float], room: int) -> list[int]:
            return change_native._tie(j_end, room)

    owner = Owner()
    owner.core = change_native._module().Core(  # type: ignore[attr-defined]
        **_core_kwargs(ChangeDetector(native=False), tie=owner.tie))
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


_SPECIAL = [0.0, 1.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 2.2250738585072014e-308,
            1e308, -1e308, 1.7976931348623157e308, 1e-300, 0.5, -1.0, 2.0**53]


@needs_core
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["f8", "f4", "f2", "i1", "i8", "u2", "?", ">f8"]),
                          st.lists(st.one_of(st.sampled_from(_SPECIAL), st.floats(-1e6, 1e6)),
                                   max_size=60),
                          st.sampled_from(["flat", "0-d", "2-d", "strided", "fortran"])),
                max_size=25))
def test_hostile_batches_equal_numpy(batches: list[tuple[str, list[float], str]]) -> None:
    """Any dtype numpy casts, any shape, NaN/inf/denormals/1e308, empty and tiny batches: the
    core runs, and gives numpy's detections and counters."""
    new, old = ChangeDetector(native=True), ChangeDetector(native=False)
    with np.errstate(all="ignore"):
        for dtype, vals, shape in batches:
            a = np.array(vals, dtype=np.float64).astype(dtype)
            if shape == "0-d":
                a = a[:1].reshape(()) if a.size else a
            elif shape == "2-d":
                a = a[: a.size - a.size % 2].reshape(-1, 2)
            elif shape == "strided":
                a = a[::2]
            elif shape == "fortran":
                a = np.asfortranarray(a[: a.size - a.size % 3].reshape(-1, 3))
            assert new.update(a) == old.update(a)
            assert new.drift_detected == old.drift_detected
            assert (new.n, new.n_invalid, new.model) == (old.n, old.n_invalid, old.model)
    assert new.change_points == old.change_points


@needs_core
def test_settings_past_the_core_limits_run_on_numpy(caplog: pytest.LogCaptureFixture) -> None:
    """Such settings used to make ChangeDetector() raise (OverflowError) or, with max_runs just
    below 2**31, leave a core with nothing allocated; now the detector runs on numpy."""
    with caplog.at_level(logging.WARNING, logger=change_native.__name__):
        det = ChangeDetector(ChangeSettings(max_runs=2**31), native=True)
    assert not det.native and any("limits" in r.getMessage() for r in caplog.records)
    x = np.r_[np.zeros(300), np.ones(300) * 5]
    assert det.update(x) == ChangeDetector(native=False).update(x)


@needs_core
@pytest.mark.parametrize("fail_at", range(0, 90, 3))
def test_an_allocation_failure_leaves_the_values_before_it(fail_at: int) -> None:
    """Every allocation the core makes can fail (CPython's _testcapi.set_nomemory fails the
    ``fail_at``-th one): the update raises MemoryError or succeeds, never crashes, and leaves
    the state of the values fed before the failure. Growing the recent-values buffer, the
    change points or the refinement's scratch used to fail with the value half fed."""
    testcapi = pytest.importorskip("_testcapi")
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, 700), rng.normal(6, 1, 700), [np.nan] * 3]
    det = ChangeDetector(native=True)
    core, ref = det._core, change_native.make_core(det, True)
    testcapi.set_nomemory(fail_at, fail_at + 1)
    try:
        core.update(x)
    except MemoryError:
        pass
    finally:
        testcapi.remove_mem_hooks()
    got = core.state()
    assert got["_index"] == got["_n"] + got["_n_invalid"]
    ref.update(x[:got["_index"]])
    assert pickle.dumps(got) == pickle.dumps(ref.state())
    assert core.update(x) == ref.update(x)
    for method in (core.state, core.runs, lambda: core.load(ref.state())):
        testcapi.set_nomemory(fail_at % 7, fail_at % 7 + 1)
        try:
            method()
        except MemoryError:
            pass
        finally:
            testcapi.remove_mem_hooks()
