"""Mergeable baselines: profiles of disjoint parts, merged, against the one-pass profile of the
whole (exact for counts, within the stored rank bound for the sketch), and the byte transport."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.io.readers import discover
from driftline.profile.build import (
    BuildOptions,
    build_profile,
    finish_profile,
    new_partial,
    plan_columns,
)
from driftline.profile.format import BaselineProfile, NumericFeature
from driftline.profile.partial import PartialProfile
from driftline.profile.sketch import QuantileSketch

OPTS = BuildOptions(prediction="pred", proba_binary="p", target="y", model_name="m")


def _merged(table: pa.Table, cuts: list[int], opts: BuildOptions = OPTS, *,
            transport: bool = True) -> BaselineProfile:
    """Profile each slice between ``cuts`` on its own, merge left to right, finish."""
    plan = plan_columns(opts, [("mem", table.schema)])
    bounds = [0, *sorted(set(cuts)), table.num_rows]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        state = new_partial(opts, plan, offset=lo)
        for batch in table.slice(lo, hi - lo).to_batches(max_chunksize=4096):
            state.update(batch)
        parts.append(PartialProfile.from_bytes(state.to_bytes()) if transport else state)
    total = parts[0]
    for p in parts[1:]:
        total.merge(p)
    return finish_profile(total, opts, plan, sources=("mem",))


def _one_pass(table: pa.Table, tmp: Path, opts: BuildOptions = OPTS) -> BaselineProfile:
    return build_profile(discover([str(write(table, tmp / "all.parquet"))]), opts)


def _same_moments(a: NumericFeature, b: NumericFeature) -> None:
    """Min/max exactly; mean and std up to float rounding (the parts are summed in another
    grouping than one pass's batches)."""
    assert (a.count, a.minimum, a.maximum) == (b.count, b.minimum, b.maximum)
    assert a.mean == pytest.approx(b.mean, rel=1e-12, abs=1e-12)
    assert a.std == pytest.approx(b.std, rel=1e-12)


def _assert_same_counts(a: BaselineProfile, b: BaselineProfile) -> None:
    assert a.n_records == b.n_records
    assert a.features.keys() == b.features.keys()
    for name, fa in a.features.items():
        fb = b.features[name]
        assert fa.count == fb.count and fa.missing_ratio == fb.missing_ratio
        if isinstance(fa, NumericFeature):
            assert isinstance(fb, NumericFeature)
            _same_moments(fa, fb)
        else:
            assert fa == fb
    assert a.output is not None and b.output is not None
    assert a.output.classes == b.output.classes
    assert a.output.prediction == b.output.prediction
    assert a.output.reference_accuracy == b.output.reference_accuracy
    assert a.output.class_proportions == b.output.class_proportions


@settings(max_examples=12)
@given(cuts=st.lists(st.integers(1, 2999), max_size=4), seed=st.integers(0, 3))
def test_merged_parts_equal_one_pass_exactly_while_the_sketch_is_exact(
        tmp_path_factory: pytest.TempPathFactory, cuts: list[int], seed: int) -> None:
    table = reference_table(3000, seed=seed)
    whole = _one_pass(table, tmp_path_factory.mktemp("m"))
    merged = _merged(table, cuts)
    _assert_same_counts(merged, whole)
    for name in ("x", "z"):
        a, b = merged.features[name], whole.features[name]
        assert isinstance(a, NumericFeature) and isinstance(b, NumericFeature)
        assert a.edges == b.edges and a.proportions == b.proportions
        assert np.array_equal(a.summary, b.summary) and a.summary_exact
    assert merged.output is not None and whole.output is not None
    assert merged.output.calibration.keys() == whole.output.calibration.keys()
    for cls, cal in merged.output.calibration.items():
        np.testing.assert_allclose(cal.x, whole.output.calibration[cls].x)
        np.testing.assert_allclose(cal.y, whole.output.calibration[cls].y, atol=1e-12)


@settings(max_examples=10)
@given(cuts=st.lists(st.integers(1, 2999), max_size=5), capacity=st.sampled_from([97, 256, 1000]))
def test_merged_parts_keep_the_one_pass_calibration_sample_beyond_its_capacity(
        tmp_path_factory: pytest.TempPathFactory, cuts: list[int], capacity: int) -> None:
    """More labelled rows than ``calibration_rows``: the stride sample is thinned in every part
    and again when merging; with each part's first global row as its offset, the merged sample
    is the one-pass sample row for row (so the calibration maps and the sample metrics are
    bit-identical)."""
    table = reference_table(3000, seed=capacity)
    opts = dataclasses.replace(OPTS, calibration_rows=capacity)
    whole = _one_pass(table, tmp_path_factory.mktemp("s"), opts)
    merged = _merged(table, cuts, opts)
    assert merged.settings["calibration_rows"] == whole.settings["calibration_rows"] <= capacity
    assert merged.output is not None and whole.output is not None
    assert merged.output.calibration == whole.output.calibration
    assert merged.output.reference_performance == whole.output.reference_performance


def test_parts_that_are_not_consecutive_are_refused() -> None:
    table = reference_table(500, seed=1)
    plan = plan_columns(OPTS, [("mem", table.schema)])
    a, b = new_partial(OPTS, plan), new_partial(OPTS, plan)  # both claim to start at row 0
    a.update(table.slice(0, 200).to_batches()[0])
    b.update(table.slice(200).to_batches()[0])
    with pytest.raises(ValueError, match="not consecutive"):
        a.merge(b)


def test_merged_sketch_path_stays_within_the_stored_rank_bound(tmp_path: Path) -> None:
    """40k rows > k = 16384: both builds compact; every edge and every KS grid point of the
    merged profile has a true rank within ``quantile_rank_error`` of its probability."""
    n = 40_000
    table = reference_table(n, seed=7)
    opts = BuildOptions(prediction="pred", proba_binary="p", target="y", summary_size=500)
    whole = _one_pass(table, tmp_path, opts)
    merged = _merged(table, [9_000, 17_500, 31_000], opts)
    _assert_same_counts(merged, whole)
    eps = merged.settings["quantile_rank_error"]
    assert 0 < eps < 0.001
    for name in ("x", "z"):
        f = merged.features[name]
        assert isinstance(f, NumericFeature) and not f.summary_exact
        data = np.sort(table.column(name).to_numpy())
        probs = {"edges": np.arange(1, 10) / 10,
                 "summary": (np.arange(500) + 0.5) / 500}
        for what, values in (("edges", f.edges), ("summary", f.summary)):
            v = np.asarray(values)
            below = np.searchsorted(data, v, side="left") / n
            at_or_below = np.searchsorted(data, v, side="right") / n
            p = probs[what]
            assert np.all(below <= p + eps), (name, what)
            assert np.all(at_or_below >= p - eps), (name, what)


def test_sketch_merge_keeps_the_one_pass_bound_on_skewed_parts() -> None:
    """Parts of very different sizes and ranges: rank error of the merged sketch within
    ``rank_error_bound()`` at every probed quantile, and the bound no looser than one pass's."""
    rng = np.random.default_rng(3)
    parts = [rng.normal(0, 1, 50_000), rng.exponential(5, 7), rng.uniform(-3, 9, 23_456),
             np.full(12_000, 0.25)]
    merged = QuantileSketch(2048)
    for part in parts:
        s = QuantileSketch(2048)
        s.update(part)
        merged.merge(s)
    one = QuantileSketch(2048)
    for part in parts:
        one.update(part)
    data = np.sort(np.concatenate(parts))
    n = len(data)
    assert merged.n == n
    eps = merged.rank_error_bound()
    assert eps <= one.rank_error_bound() + 1 / 2048
    probs = np.linspace(0.001, 0.999, 400)
    q = merged.quantiles(probs)
    assert np.all(np.searchsorted(data, q, side="left") / n <= probs + eps)
    assert np.all(np.searchsorted(data, q, side="right") / n >= probs - eps)


def test_class_codes_differ_between_parts_and_still_merge(tmp_path: Path) -> None:
    """Multiclass labels first seen in different orders in different parts."""
    rng = np.random.default_rng(1)
    n = 2000
    labels = np.array(["cat", "dog", "eel"])
    y = labels[rng.integers(0, 3, n)]
    y[:700] = "eel"  # part one sees only eel
    pred = np.where(rng.random(n) < 0.8, y, labels[rng.integers(0, 3, n)])
    table = pa.table({"x": rng.normal(size=n), "pred": pred, "y": y})
    opts = BuildOptions(prediction="pred", target="y")
    whole = _one_pass(table, tmp_path, opts)
    merged = _merged(table, [700, 1300], opts)
    assert merged.output is not None and whole.output is not None
    assert merged.output.classes == whole.output.classes == ("cat", "dog", "eel")
    assert merged.output.prediction == whole.output.prediction
    assert merged.output.class_proportions == whole.output.class_proportions
    assert merged.output.reference_accuracy == whole.output.reference_accuracy


def test_a_part_that_finds_regression_outputs_decides_the_task(tmp_path: Path) -> None:
    """Float predictions: whole numbers in one part, real values in the other → regression,
    with the prediction distribution of every row, as in one pass."""
    rng = np.random.default_rng(2)
    pred = np.concatenate([rng.integers(0, 3, 1000).astype(float), rng.normal(size=1000)])
    table = pa.table({"x": rng.normal(size=2000), "pred": pred})
    opts = BuildOptions(prediction="pred")
    whole = _one_pass(table, tmp_path, opts)
    for cuts in ([1000], [500, 1500]):
        merged = _merged(table, cuts, opts)
        assert merged.output is not None and merged.output.task == "regression"
        a, b = merged.output.prediction, whole.output.prediction  # type: ignore[union-attr]
        assert isinstance(a, NumericFeature) and isinstance(b, NumericFeature)
        _same_moments(a, b)
        assert (a.edges, a.proportions) == (b.edges, b.proportions)
        assert np.array_equal(a.summary, b.summary)


def test_state_from_another_version_is_refused() -> None:
    import pickle

    with pytest.raises(ValueError, match="state version"):
        PartialProfile.from_bytes(pickle.dumps((999, {})))


def test_content_hash_ignores_order_and_split_and_sees_any_change(tmp_path: Path) -> None:
    """provenance.content_hash: same rows in another order or split → same digest (so Spark
    and local builds agree); one changed value, one dropped row → another digest."""
    table = reference_table(3000, seed=5)
    whole = _one_pass(table, tmp_path)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    merged = _merged(shuffled, [100, 2000])
    assert merged.provenance["content_hash"] == whole.provenance["content_hash"]
    assert whole.provenance["rows"] == 3000 and whole.provenance["sources"] == list(whole.sources)
    x = table.column("x").to_numpy().copy()
    x[1234] += 1e-9
    changed = table.set_column(0, "x", pa.array(x))
    assert _merged(changed, []).provenance["content_hash"] != whole.provenance["content_hash"]
    assert _merged(table.slice(1), []).provenance["content_hash"] != whole.provenance["content_hash"]


def test_source_revision_is_recorded_and_bounded(tmp_path: Path) -> None:
    from driftline.cli import main

    data = write(reference_table(500), tmp_path / "r.parquet")
    out = tmp_path / "b.json"
    assert main(["baseline", "build", str(data), "-o", str(out), "--source-revision",
                 "dvc:3f2a9c1"]) == 0
    prof = BaselineProfile.load(out)
    assert prof.provenance["revision"] == "dvc:3f2a9c1" and prof.source_label == "dvc:3f2a9c1"
    assert main(["baseline", "build", str(data), "-o", str(tmp_path / "c.json"),
                 "--source-revision", "two words"]) == 2
    assert not (tmp_path / "c.json").exists()


def test_empty_model_name_or_version_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """They become the model_name / model_version labels: an empty one would be no label on
    the scrape and an empty attribute in OTLP."""
    from driftline.cli import main
    from driftline.errors import InputError
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile

    data = write(reference_table(300), tmp_path / "r.parquet")
    for flag in ("--model-name", "--model-version"):
        out = tmp_path / f"{flag[2:]}.json"
        assert main(["baseline", "build", str(data), "-o", str(out), flag, " "]) == 2
        assert f"{flag} is empty" in capsys.readouterr().err and not out.exists()
    with pytest.raises(InputError, match=r"--model-version is empty.*fix"):
        build_profile(discover([str(data)]), BuildOptions(model_version=""))
