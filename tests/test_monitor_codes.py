"""Category codes looked up once, as the records arrive, for the counters and the window close.

A monitor looks up each categorical feature's codes (and the predicted classes') of a batch of
at least ``CODES_FROM`` records when it arrives and hands them to both the cumulative
counters and the window close. The definition is the old path, where each looked the values
up itself from its own block (``CODES_FROM`` out of reach): every window report and counter
must be the same, whatever the batch sizes, missing columns and values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from engine_fixtures import reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st

import driftline.engine.monitor as monitor
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.engine.window_stats import ReferenceArrays, category_codes
from driftline.io.readers import discover
from driftline.labels import canonical_labels
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> BaselineProfile:
    d = tmp_path_factory.mktemp("ref")
    return build_profile(discover([str(write(reference_table(3000, seed=5), d / "r.parquet"))]),
                         BuildOptions(prediction="pred", proba_binary="p"))


@contextmanager
def codes_from(n: int) -> Iterator[None]:
    old = monitor.CODES_FROM
    monitor.CODES_FROM = n
    try:
        yield
    finally:
        monitor.CODES_FROM = old


ODD = [None, float("nan"), 7, "purple", "red", "blue"]


def _batches(sizes: list[int], drops: list[int], seed: int) -> list[RecordBatch]:
    """Batches of ``sizes`` records; ``drops[i]`` 1 leaves out ``c``, 2 the prediction, 3
    both; some values of ``c`` are missing, numbers or unseen."""
    rng = np.random.default_rng(seed)
    t = reference_table(sum(sizes), seed=seed, shift=0.2)
    c = np.asarray(t.column("c").to_pylist(), dtype=object)
    odd = rng.random(len(c)) < 0.05
    c[odd] = [ODD[i] for i in rng.integers(0, len(ODD), int(odd.sum()))]
    p = t.column("p").to_numpy()
    pred = canonical_labels(t.column("pred").to_numpy())
    out, pos = [], 0
    for n, drop in zip(sizes, drops, strict=True):
        s = slice(pos, pos + n)
        feats = {"x": t.column("x").to_numpy()[s], "z": t.column("z").to_numpy()[s]}
        if not drop & 1:
            feats["c"] = c[s]
        out.append(RecordBatch(feats, None if drop & 2 else pred[s],
                               np.column_stack([1 - p[s], p[s]]), n=n))
        pos += n
    return out


def _run(profile: BaselineProfile, batches: list[RecordBatch], window: int,
         ) -> tuple[list[dict[str, object]], dict[str, object], dict[str, int]]:
    mon = Monitor(profile, window=WindowPolicy(records=window, max_age=None), clock=None)
    reports = [r.to_dict() for b in batches for r in mon.observe(b)]
    last = mon.flush()
    if last is not None:
        reports.append(last.to_dict())
    snap = mon.snapshot()
    return reports, snap.categories, snap.prediction_classes


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.sampled_from([1, 5, 63, 64, 100, 333, 700]), min_size=1, max_size=8),
       drops=st.lists(st.sampled_from([0, 0, 0, 1, 2, 3]), min_size=8, max_size=8),
       window=st.sampled_from([50, 400, 1000]), seed=st.integers(0, 2**16))
def test_codes_on_arrival_equal_looking_up_at_use(profile: BaselineProfile, sizes: list[int],
                                                  drops: list[int], window: int,
                                                  seed: int) -> None:
    batches = _batches(sizes, drops[:len(sizes)], seed)
    with codes_from(10**9):  # the old path: the counters and the close look up their own
        expected = _run(profile, batches, window)
    assert _run(profile, batches, window) == expected


def test_codes_are_looked_up_once_per_value(profile: BaselineProfile,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of large batches looks every categorical value up once: on arrival."""
    looked: list[int] = []

    def counting(values: np.ndarray, ref: object) -> np.ndarray:
        looked.append(len(values))
        return category_codes(values, ref)  # type: ignore[arg-type]

    batches = _batches([500, 500], [0, 0], 3)
    for mod in ("driftline.engine.monitor", "driftline.engine.window_stats"):
        monkeypatch.setattr(f"{mod}.category_codes", counting)
    mon = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=None)
    assert [r.records for b in batches for r in mon.observe(b)] == [1000]
    mon.snapshot()
    # per batch: c and the predicted classes; nothing more at the close or the count
    assert looked == [500, 500, 500, 500]
    ref = ReferenceArrays(profile)
    assert sorted(ref.categorical) == ["c"] and ref.classes


def _old_concat(chunks: list[RecordBatch]) -> RecordBatch:
    """The concatenation as it was written before its fast path (the definition)."""
    def cat(parts: list[np.ndarray | None]) -> np.ndarray | None:
        if all(p is None for p in parts):
            return None
        ref = next(p for p in parts if p is not None)
        return np.concatenate([
            p if p is not None else np.full((len(c), *ref.shape[1:]), None, dtype=object)
            if ref.dtype == object else np.full((len(c), *ref.shape[1:]), np.nan)
            for p, c in zip(parts, chunks, strict=True)])

    names = list(dict.fromkeys(k for c in chunks for k in c.features))
    return RecordBatch({n: cat([c.features.get(n) for c in chunks]) for n in names},  # type: ignore[misc]
                       cat([c.prediction for c in chunks]),
                       cat([c.probabilities for c in chunks]), cat([c.ids for c in chunks]),
                       cat([c.timestamps for c in chunks]), cat([c.targets for c in chunks]),
                       n=sum(len(c) for c in chunks))


def _column_sets(draw: st.DrawFn, n: int) -> RecordBatch:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    keys = draw(st.lists(st.sampled_from(["x", "z", "c"]), unique=True))
    feats = {k: (np.asarray(rng.choice(["a", "b", None], n), dtype=object) if k == "c"
                 else rng.normal(size=n)) for k in keys}

    def maybe(make: object) -> np.ndarray | None:
        return make() if draw(st.booleans()) else None  # type: ignore[operator]

    return RecordBatch(feats, maybe(lambda: np.asarray(rng.choice(["0", "1"], n), dtype=object)),
                       maybe(lambda: rng.random((n, 2))),
                       maybe(lambda: np.asarray([str(i) for i in range(n)], dtype=object)),
                       maybe(lambda: rng.random(n)), None, n=n)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), sizes=st.lists(st.integers(0, 5), min_size=1, max_size=4))
def test_concat_equals_its_definition(data: st.DataObject, sizes: list[int]) -> None:
    chunks = [_column_sets(data.draw, n) for n in sizes]
    got, want = monitor._concat(chunks), _old_concat(chunks)
    assert len(got) == len(want) and list(got.features) == list(want.features)
    pairs = [*((got.features[k], want.features[k]) for k in want.features),
             (got.prediction, want.prediction), (got.probabilities, want.probabilities),
             (got.ids, want.ids), (got.timestamps, want.timestamps), (got.targets, want.targets)]
    for a, b in pairs:
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            assert [repr(v) for v in a.ravel().tolist()] == [repr(v) for v in b.ravel().tolist()]
    assert monitor._concat(chunks, ids=False).ids is None or len(chunks) == 1
