"""The Monitor: windows, drift decisions against scipy, counters, labels, thread safety."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.engine.monitor import DriftPolicy, Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.io.readers import discover
from driftline.labels import canonical_labels
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile, CategoricalFeature, NumericFeature

OFFLINE = dict(clock=None)


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> BaselineProfile:
    d = tmp_path_factory.mktemp("ref")
    t = reference_table(6000, seed=11)
    return build_profile(discover([str(write(t, d / "r.parquet"))]),
                         BuildOptions(prediction="pred", proba_binary="p", target="y"))


def batch_from(table: pa.Table) -> RecordBatch:
    p = table.column("p").to_numpy()
    return RecordBatch(
        {"x": table.column("x").to_numpy(), "z": table.column("z").to_numpy(),
         "c": np.asarray(table.column("c").to_pylist(), dtype=object)},
        prediction=canonical_labels(table.column("pred").to_numpy()),
        probabilities=np.column_stack([1 - p, p]),
        targets=canonical_labels(table.column("y").to_numpy()),
    )


def test_windows_close_by_count_and_flush(profile: BaselineProfile) -> None:
    mon = Monitor(profile, window=WindowPolicy(records=400, max_age=None), **OFFLINE)
    b = batch_from(reference_table(1000, seed=1))
    reports = mon.observe(b.slice(0, 150)) + mon.observe(b.slice(150, 1000))
    assert [r.records for r in reports] == [400, 400]
    assert [r.index for r in reports] == [0, 1]
    last = mon.flush()
    assert last is not None and last.records == 200 and mon.flush() is None
    assert all(r.start is None and r.end is None for r in [*reports, last])


def test_windows_close_by_age(profile: BaselineProfile) -> None:
    now = [1000.0]
    mon = Monitor(profile, window=WindowPolicy(records=10_000, max_age=60), clock=lambda: now[0])
    b = batch_from(reference_table(100, seed=2))
    assert mon.observe(b.slice(0, 50)) == []
    now[0] = 1059.0
    assert mon.tick() == []
    now[0] = 1060.0
    (r,) = mon.tick()
    assert r.records == 50 and (r.start, r.end) == (1000.0, 1060.0)
    # a batch arriving after the age limit first closes the old window
    mon.observe(b.slice(50, 60))
    now[0] = 2000.0
    (old,) = mon.observe(b.slice(60, 100))
    assert old.records == 10 and mon.buffered == 40


def test_shifted_feature_drifts_and_stats_match_scipy(profile: BaselineProfile) -> None:
    t = reference_table(3000, seed=5, shift=0.8)
    mon = Monitor(profile, window=WindowPolicy(records=3000, max_age=None), **OFFLINE)
    (r,) = mon.observe(batch_from(t))
    x = r.features["x"]
    assert x.drifted and r.drifted
    assert not r.features["z"].drifted
    spec = profile.features["x"]
    assert isinstance(spec, NumericFeature)
    values = t.column("x").to_numpy()
    scipy_ks = stats.ks_2samp(spec.summary_array, values)
    assert x.ks_statistic == pytest.approx(scipy_ks.statistic)
    assert x.ks_pvalue == pytest.approx(scipy_ks.pvalue, rel=1e-6, abs=1e-300)
    counts = np.bincount(np.searchsorted(spec.edges_array, values, side="right"),
                         minlength=len(spec.edges) + 1) / len(values)
    refp = np.maximum(spec.proportions_array, 1e-4)
    cur = np.maximum(counts, 1e-4)
    assert x.psi == pytest.approx(float(np.sum((cur - refp) * np.log(cur / refp))))
    w = stats.wasserstein_distance(spec.summary_array, values) / spec.std
    assert x.wasserstein == pytest.approx(w)
    c = r.features["c"]
    cspec = profile.features["c"]
    assert isinstance(cspec, CategoricalFeature)
    obs = np.array([np.sum(t.column("c").to_numpy(zero_copy_only=False) == k)
                    for k in cspec.categories] + [0])
    table = np.vstack([cspec.counts_array, obs])
    table = table[:, table.sum(axis=0) > 0]  # an unseen __other__ carries no information
    assert stats.contingency.expected_freq(table).min() >= 5  # nothing pooled
    want = stats.chi2_contingency(table, correction=False)
    assert c.chi2_statistic == pytest.approx(want.statistic)
    assert c.chi2_pvalue == pytest.approx(want.pvalue)


@pytest.mark.parametrize("shift", [0.0, 0.06, 0.12])
def test_exact_ks_policy_gives_scipys_pvalue_where_the_fast_one_approximates(
        profile: BaselineProfile, shift: float) -> None:
    """``DriftPolicy(exact_ks=True)`` (the default) is ``ks_2samp``'s p-value itself where
    ``exact_ks=False`` approximates it; that value stays within its stated bound."""
    t = reference_table(3000, seed=11, shift=shift)
    spec = profile.features["x"]
    assert isinstance(spec, NumericFeature)
    scipy_ks = stats.ks_2samp(spec.summary_array, t.column("x").to_numpy())
    got = {}
    for exact in (True, False):
        mon = Monitor(profile, window=WindowPolicy(records=3000, max_age=None),
                      drift=DriftPolicy(exact_ks=exact), **OFFLINE)
        (r,) = mon.observe(batch_from(t))
        got[exact] = r.features["x"].ks_pvalue
    assert got[True] == pytest.approx(scipy_ks.pvalue, rel=1e-9, abs=1e-300)
    bound = 0.003 if scipy_ks.pvalue < 0.1 else 0.01
    assert abs(got[False] - scipy_ks.pvalue) <= bound


def test_benjamini_hochberg_across_features(profile: BaselineProfile) -> None:
    mon = Monitor(profile, window=WindowPolicy(records=2000, max_age=None), **OFFLINE)
    (r,) = mon.observe(batch_from(reference_table(2000, seed=8, shift=0.1)))
    raw = [r.features[n].ks_pvalue if r.features[n].type == "numeric" else r.features[n].chi2_pvalue
           for n in profile.features]
    adjusted = stats.false_discovery_control(np.array(raw), method="bh")
    np.testing.assert_allclose([r.features[n].p_value_adjusted for n in profile.features], adjusted)


def test_negligible_shift_on_a_huge_window_is_not_drift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=200_000)
    spec = NumericFeature("x", tuple(np.quantile(ref, np.arange(1, 10) / 10)),
                          (0.1,) * 10, tuple(np.quantile(ref, (np.arange(20000) + 0.5) / 20000)),
                          False, len(ref), 0.0, ref.min(), ref.max(), ref.mean(), ref.std())
    from driftline.profile.format import Columns

    prof = BaselineProfile("m", "1", "", len(ref), {"x": spec}, Columns(), None)
    mon = Monitor(prof, window=WindowPolicy(records=400_000, max_age=None), **OFFLINE)
    (r,) = mon.observe(RecordBatch({"x": rng.normal(0.1, 1.0, 400_000)}))
    f = r.features["x"]
    assert f.ks_pvalue is not None and f.ks_pvalue < 1e-10  # significant ...
    assert f.psi < 0.1 and not f.drifted  # ... but too small to matter
    loose = Monitor(prof, window=WindowPolicy(records=400_000, max_age=None),
                    drift=DriftPolicy(psi_threshold=0.001), **OFFLINE)
    (r2,) = loose.observe(RecordBatch({"x": rng.normal(0.1, 1.0, 400_000)}))
    assert r2.features["x"].drifted


def test_nan_never_poisons(profile: BaselineProfile) -> None:
    t = reference_table(1000, seed=3)
    clean = batch_from(t)
    dirty = batch_from(t)
    x = dirty.features["x"].copy()
    x[::4] = np.nan
    x[1::9] = np.inf
    dirty.features["x"] = x
    dirty.features["c"] = dirty.features["c"].copy()
    dirty.features["c"][::5] = None
    mon = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), **OFFLINE)
    (r,) = mon.observe(dirty)
    finite = x[np.isfinite(x)]
    ref = Monitor(profile, window=WindowPolicy(records=len(finite), max_age=None), **OFFLINE)
    (r_ref,) = ref.observe(RecordBatch({"x": finite}))
    assert r.features["x"].psi == pytest.approx(r_ref.features["x"].psi)
    assert r.features["x"].ks_pvalue == pytest.approx(r_ref.features["x"].ks_pvalue)
    assert r.features["x"].missing_ratio == pytest.approx(1 - len(finite) / 1000)
    assert r.features["c"].n_missing == 200
    assert math.isfinite(r.features["c"].psi)
    # a window of nothing but missing values: undefined, not "no drift", never drifted
    empty = Monitor(profile, window=WindowPolicy(records=10, max_age=None), **OFFLINE)
    (e,) = empty.observe(RecordBatch({"x": np.full(10, np.nan)}))
    assert math.isnan(e.features["x"].psi) and not e.features["x"].drifted
    assert e.features["z"].missing_ratio == 1.0
    # and the next window is computed normally
    (after,) = empty.observe(clean.slice(0, 10))
    assert math.isfinite(after.features["x"].psi)
    snap = mon.snapshot()
    assert snap.quantile_rank["x"].count == len(finite)


def _reports(mon: Monitor, batch: RecordBatch, cuts: list[int]) -> list[dict[str, object]]:
    out = []
    edges = [0, *sorted(set(cuts)), len(batch)]
    for lo, hi in itertools.pairwise(edges):
        out += [r.to_dict() for r in mon.observe(batch.slice(lo, hi))]
    last = mon.flush()
    if last is not None:
        out.append(last.to_dict())
    return out


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(1, 1199), max_size=8), size=st.sampled_from([100, 250, 1200]))
def test_one_batch_equals_many_small_batches(profile: BaselineProfile, cuts: list[int],
                                             size: int) -> None:
    batch = batch_from(reference_table(1200, seed=21, shift=0.3))
    one = Monitor(profile, window=WindowPolicy(records=size, max_age=None), **OFFLINE)
    many = Monitor(profile, window=WindowPolicy(records=size, max_age=None), **OFFLINE)
    assert _reports(one, batch, []) == _reports(many, batch, cuts)
    a, b = one.snapshot(), many.snapshot()
    for name, h in a.quantile_rank.items():
        g = b.quantile_rank[name]
        assert (h.counts, h.count) == (g.counts, g.count) and h.sum == pytest.approx(g.sum)
    assert a.categories == b.categories
    assert a.prediction_classes == b.prediction_classes
    ca, cb = a.prediction_confidence, b.prediction_confidence
    assert ca is not None and cb is not None
    assert (ca.counts, ca.count) == (cb.counts, cb.count) and ca.sum == pytest.approx(cb.sum)
    assert a.change_detections == b.change_detections


def test_cumulative_counters(profile: BaselineProfile) -> None:
    t = reference_table(900, seed=4)
    mon = Monitor(profile, window=WindowPolicy(records=10_000, max_age=None), **OFFLINE)
    mon.observe(batch_from(t), source="proxy")
    mon.observe(batch_from(t).slice(0, 100), source="file")
    snap = mon.snapshot()
    assert snap.records_by_source == {"proxy": 900, "file": 100} and snap.records_sampled == 1000
    spec = profile.features["x"]
    assert isinstance(spec, NumericFeature)
    x = np.r_[t.column("x").to_numpy(), t.column("x").to_numpy()[:100]]
    ranks = np.searchsorted(np.sort(spec.summary_array), x, side="right") / len(spec.summary)
    expected = np.histogram(ranks, bins=[-1e-9, *np.arange(1, 11) / 10 + 1e-12])[0]
    assert list(snap.quantile_rank["x"].counts[:-1]) == list(expected)
    pred = np.r_[t.column("pred").to_numpy(), t.column("pred").to_numpy()[:100]]
    assert snap.prediction_classes == {"0": int((pred == 0).sum()), "1": int((pred == 1).sum()),
                                       "__other__": 0}
    c = np.r_[t.column("c").to_numpy(zero_copy_only=False),
              t.column("c").to_numpy(zero_copy_only=False)[:100]]
    assert snap.categories["c"]["red"] == int((c == "red").sum())
    conf = snap.prediction_confidence
    assert conf is not None and conf.count == 1000 and sum(conf.counts) == 1000
    assert snap.reference_categories["c"]["__other__"] == pytest.approx(0.0)


def test_offline_targets_give_realised_and_estimated_accuracy(profile: BaselineProfile) -> None:
    t = reference_table(20_000, seed=12)
    mon = Monitor(profile, window=WindowPolicy(records=20_000, max_age=None), **OFFLINE)
    (r,) = mon.observe(batch_from(t))
    y, pred = t.column("y").to_numpy(), t.column("pred").to_numpy()
    assert r.performance.accuracy == pytest.approx(float((y == pred).mean()))
    assert r.performance.labels == 20_000
    # same distribution as the reference: the calibrated estimate is close to the truth
    assert r.performance.estimated_accuracy == pytest.approx(r.performance.accuracy, abs=0.02)
    assert r.performance.estimated_f1 is not None
    assert mon.snapshot().accuracy == r.performance.accuracy


def test_labels_accuracy_over_the_last_n(profile: BaselineProfile) -> None:
    mon = Monitor(profile, window=WindowPolicy(records=4, max_age=None), **OFFLINE)
    mon.observe_labels(np.array(["1", "1", "0"], dtype=object), np.array(["1", "0", "0"], dtype=object))
    assert mon.snapshot().accuracy == pytest.approx(2 / 3)
    mon.observe_labels(np.array(["1", "1", "1"], dtype=object), np.array(["0", "0", "0"], dtype=object))
    # the last 4 outcomes: right, wrong, wrong, wrong
    assert mon.snapshot().accuracy == pytest.approx(1 / 4)
    mon.count_unmatched_labels(5)
    assert mon.snapshot().labels == {"true": 6, "false": 5}


def test_error_signal_change_is_detected_and_dated(profile: BaselineProfile) -> None:
    mon = Monitor(profile, **OFFLINE)
    rng = np.random.default_rng(0)
    right = rng.random(4000) < np.r_[np.full(2000, 0.9), np.full(2000, 0.4)]
    labels = np.where(right, "1", "0").astype(object)
    mon.observe_labels(np.full(4000, "1", dtype=object), labels)
    assert mon.snapshot().change_detections["error"] >= 1
    assert mon.snapshot().change_points == {}  # offline: no clock, no time to give
    now = [1000.0]
    live = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=lambda: now[0])
    for lo in range(0, 4000, 500):  # one batch of labels every 10 s
        live.observe_labels(np.full(500, "1", dtype=object), labels[lo:lo + 500])
        now[0] += 10.0
    snap = live.snapshot()
    assert snap.change_detections["error"] == 1
    assert snap.change_points["error"] in (1030.0, 1040.0)  # the batch holding index ≈ 2000


def test_snapshot_is_thread_safe(profile: BaselineProfile) -> None:
    mon = Monitor(profile, window=WindowPolicy(records=97, max_age=None), **OFFLINE)
    batch = batch_from(reference_table(3000, seed=6))
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: list[list[int]] = [[], [], []]

    def reader(mine: list[int]) -> None:
        try:
            while not stop.is_set():
                s = mon.snapshot()
                mine.append(s.records_sampled)
                assert sum(s.quantile_rank["x"].counts) == s.quantile_rank["x"].count
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(seen[i],)) for i in range(3)]
    for th in threads:
        th.start()
    for i in range(0, 3000, 50):
        mon.observe(batch.slice(i, i + 50))
    stop.set()
    for th in threads:
        th.join()
    assert not errors
    for mine in seen:  # every reader saw the counters only grow
        assert mine == sorted(mine)
    assert mon.snapshot().records_sampled == 3000
    assert mon.snapshot().windows_total == 3000 // 97


def test_missing_feature_in_batch_counts_as_missing(profile: BaselineProfile) -> None:
    mon = Monitor(profile, window=WindowPolicy(records=5, max_age=None), **OFFLINE)
    (r,) = mon.observe(RecordBatch({"x": np.arange(5.0)}))
    assert r.features["z"].n_missing == 5 and r.features["c"].missing_ratio == 1.0


def test_confidence_change_detection_runs_only_with_streams(profile: BaselineProfile) -> None:
    sure = batch_from(reference_table(3000, seed=30))
    sure.probabilities = np.tile([0.02, 0.98], (3000, 1))
    unsure = batch_from(reference_table(3000, seed=31))
    unsure.probabilities = np.tile([0.45, 0.55], (3000, 1))
    live = Monitor(profile, window=WindowPolicy(records=100_000, max_age=None), **OFFLINE)
    offline = Monitor(profile, window=WindowPolicy(records=100_000, max_age=None), streams=False,
                      **OFFLINE)
    for mon in (live, offline):
        mon.observe(sure)
        mon.observe(unsure)
    assert live.snapshot().change_detections["confidence"] >= 1
    assert "confidence" not in offline.snapshot().change_detections
    assert offline.snapshot().prediction_confidence == live.snapshot().prediction_confidence


def test_regression_prediction_drift(tmp_path_factory: pytest.TempPathFactory) -> None:
    rng = np.random.default_rng(40)
    d = tmp_path_factory.mktemp("reg")
    t = pa.table({"f": rng.normal(size=3000), "yhat": rng.normal(5, 2, 3000)})
    prof = build_profile(discover([str(write(t, d / "r.parquet"))]), BuildOptions(prediction="yhat"))
    mon = Monitor(prof, window=WindowPolicy(records=2000, max_age=None), **OFFLINE)
    (same,) = mon.observe(RecordBatch({"f": rng.normal(size=2000)},
                                      prediction=rng.normal(5, 2, 2000)))
    (moved,) = mon.observe(RecordBatch({"f": rng.normal(size=2000)},
                                       prediction=rng.normal(7, 2, 2000)))
    assert same.prediction is not None and not same.prediction.drifted
    assert moved.prediction is not None and moved.prediction.drifted and moved.drifted
    assert moved.performance.estimated_accuracy is None


def test_multiclass_estimated_accuracy(tmp_path_factory: pytest.TempPathFactory) -> None:
    rng = np.random.default_rng(41)
    d = tmp_path_factory.mktemp("multi")
    n = 20_000
    raw = rng.dirichlet([2, 2, 2], n)
    y = np.array(["a", "b", "c"])[(raw.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)]
    t = pa.table({"f": rng.normal(size=n), "pa": raw[:, 0], "pb": raw[:, 1], "pc": raw[:, 2],
                  "label": y})
    prof = build_profile(discover([str(write(t, d / "r.parquet"))]),
                         BuildOptions(proba={"a": "pa", "b": "pb", "c": "pc"}, target="label"))
    mon = Monitor(prof, window=WindowPolicy(records=n, max_age=None), **OFFLINE)
    (r,) = mon.observe(RecordBatch({"f": t.column("f").to_numpy()}, probabilities=raw,
                                   targets=y.astype(object)))
    argmax = np.array(["a", "b", "c"])[raw.argmax(axis=1)]
    assert r.performance.accuracy == pytest.approx(float((argmax == y).mean()))
    # labels drawn from the probabilities: calibrated estimate ≈ realised accuracy
    assert r.performance.estimated_accuracy == pytest.approx(r.performance.accuracy, abs=0.02)
    assert r.prediction is not None and set(r.prediction.class_shares) == {"a", "b", "c"}
    assert mon.snapshot().prediction_classes["a"] == int((argmax == "a").sum())


def test_snapshot_after_new_data_never_rehashes_the_baseline(
        profile: BaselineProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline id used to be recomputed (a hash of the whole baseline) on every snapshot
    after new data, under the monitor lock: seconds per scrape for a wide model."""
    import hashlib

    mon = Monitor(profile, window=WindowPolicy(records=500, max_age=None))
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    batch = batch_from(reference_table(300, seed=3))
    for _ in range(3):
        mon.observe(batch)
        assert mon.snapshot().baseline_id == profile.id
    assert calls == []


def _unbuffered(calls: list[tuple[np.ndarray, float | None]],
                kept: int) -> tuple[list[int], float | None]:
    # the stream before buffering: the detector fed on every call, dated at once
    import bisect

    from driftline.detectors.change import ChangeDetector

    det, firsts, times, began = ChangeDetector(), [], [], None
    for values, now in calls:
        if now is not None:
            firsts.append(det.n + det.n_invalid)
            times.append(now)
            if len(firsts) > 2 * kept:
                del firsts[:kept], times[:kept]
        if det.update(values) and times:
            began = times[max(bisect.bisect_right(firsts, det.change_point) - 1, 0)]
    return det.change_points, began


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), binary=st.booleans(), feed=st.sampled_from([1, 7, 300]),
       kept=st.sampled_from([2, 4096]),
       sizes=st.lists(st.integers(0, 400), min_size=1, max_size=12),
       flush_every=st.integers(1, 5), dated=st.booleans())
def test_buffered_change_stream_equals_feeding_every_call(
        seed: int, binary: bool, feed: int, kept: int, sizes: list[int], flush_every: int,
        dated: bool) -> None:
    # Buffering (FEED values at a time, or at a flush) gives the same detections, change
    # points, detector state and change time as feeding the detector on every call.
    from driftline.engine.monitor import ChangeStream

    rng = np.random.default_rng(seed)
    total = sum(sizes)
    # the step at a call's first value, where dating one batch off would show
    step = int(rng.choice(np.cumsum([0, *sizes])))
    if binary:
        x = (rng.random(total) < np.where(np.arange(total) < step, 0.05, 0.6)).astype(float)
    else:
        x = rng.normal(np.where(np.arange(total) < step, 0.0, 4.0), 1.0)
    x[rng.random(total) < 0.02] = np.nan
    calls, pos = [], 0
    for i, n in enumerate(sizes):
        calls.append((x[pos:pos + n], 100.0 + i if dated or i % 2 else None))
        pos += n
    stream = ChangeStream()
    stream.FEED, stream.TIMES_KEPT = feed, kept  # type: ignore[misc]
    for i, (values, now) in enumerate(calls):
        stream.update(values, now)
        if i % flush_every == 0:
            stream.flush()
    stream.flush()
    want_points, want_began = _unbuffered(calls, kept)
    assert stream.detector.change_points == want_points
    assert stream.began == want_began
    assert stream.detector.n + stream.detector.n_invalid == total


def test_labels_one_per_call_reach_the_error_stream_at_the_snapshot(
        profile: BaselineProfile) -> None:
    # one label per call is buffered, not lost: the snapshot flushes it into the detector
    now = [1000.0]
    mon = Monitor(profile, window=WindowPolicy(records=1000, max_age=None), clock=lambda: now[0])
    rng = np.random.default_rng(0)
    right = rng.random(2400) < np.r_[np.full(1200, 0.95), np.full(1200, 0.3)]
    for ok in right:
        mon.observe_labels(np.array(["1"], dtype=object),
                           np.array(["1" if ok else "0"], dtype=object))
        now[0] += 1.0
    det = mon._change["error"].detector
    assert det.n + mon._change["error"]._buffered == 2400
    snap = mon.snapshot()
    assert det.n == 2400 and snap.change_detections["error"] == 1
    assert 1000.0 + 1150 <= snap.change_points["error"] <= 1000.0 + 1300
