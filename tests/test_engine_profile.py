"""Baseline building: formats, sketch error bounds, labels, round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import assert_json_close, reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.errors import ProfileError
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import (
    FORMAT_VERSION,
    BaselineProfile,
    CategoricalFeature,
    NumericFeature,
    ProfileFormatWarning,
    decode_array,
)
from driftline.profile.sketch import FrequentItems, Moments, QuantileSketch

OPTS = BuildOptions(prediction="pred", proba_binary="p", target="y", model_name="m")


def _numbers(p: BaselineProfile) -> dict[str, object]:
    d = p.to_dict()
    for key in ("id", "created_at", "sources", "provenance"):  # provenance: the files' digest
        d.pop(key)
    return d


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".arrow", ".arrows"])
def test_every_format_gives_the_same_profile(tmp_path: Path, suffix: str) -> None:
    table = reference_table(3000)
    ref = build_profile(discover([str(write(table, tmp_path / "ref.parquet"))]), OPTS)
    other = build_profile(discover([str(write(table, tmp_path / f"ref{suffix}"))]), OPTS)
    a, b = _numbers(ref), _numbers(other)
    # CSV/JSON round-trip floats through text: compare numbers with a tolerance
    fa, fb = a.pop("features"), b.pop("features")
    ma, mb = a.pop("multivariate"), b.pop("multivariate")
    # batch sizes differ between formats: sums are added in another order, so floats built from
    # running sums (the confidence's mean and std, the multivariate moments) may differ in the
    # last bits; everything else is equal
    assert_json_close(a, b, rel=1e-12, abs=0.0)
    assert ma["features"] == mb["features"] and ma["block_counts"] == mb["block_counts"]
    for key in ("mean", "scale", "components", "explained", "block_errors"):
        np.testing.assert_allclose(ma[key], mb[key], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(decode_array(ma["sample"]), decode_array(mb["sample"]), rtol=1e-6)
    for name in ("x", "z"):
        np.testing.assert_allclose(fa[name]["summary"], fb[name]["summary"], rtol=1e-12)
        np.testing.assert_allclose(fa[name]["proportions"], fb[name]["proportions"])
    assert fa["c"] == fb["c"]


def test_directories_and_globs_read_every_file_once(tmp_path: Path) -> None:
    t = reference_table(2000)
    (tmp_path / "d").mkdir()
    write(t.slice(0, 1000), tmp_path / "d" / "a.parquet")
    write(t.slice(1000), tmp_path / "d" / "b.csv")
    (tmp_path / "d" / "README").write_text("not data")
    whole = build_profile(discover([str(write(t, tmp_path / "all.parquet"))]), OPTS)
    by_dir = build_profile(discover([str(tmp_path / "d")]), OPTS)
    by_glob = build_profile(discover([str(tmp_path / "d" / "*.*"), str(tmp_path / "d")]), OPTS)
    assert by_dir.n_records == by_glob.n_records == whole.n_records == 2000
    assert by_dir.features["c"] == whole.features["c"]
    np.testing.assert_allclose(by_glob.features["x"].summary, whole.features["x"].summary)


def test_numeric_feature_matches_numpy_when_exact(tmp_path: Path) -> None:
    t = reference_table(5000, seed=4)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    x = t.column("x").to_numpy()
    f = prof.features["x"]
    assert isinstance(f, NumericFeature) and f.summary_exact
    np.testing.assert_array_equal(f.summary_array, np.sort(x))
    edges = np.unique(np.quantile(x, np.arange(1, 10) / 10, method="inverted_cdf"))
    np.testing.assert_array_equal(f.edges_array, edges)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    np.testing.assert_allclose(f.proportions_array, counts / len(x))
    assert f.mean == pytest.approx(x.mean()) and f.std == pytest.approx(x.std())
    assert (f.minimum, f.maximum) == (x.min(), x.max())


def test_categorical_top_k_and_other(tmp_path: Path) -> None:
    t = reference_table(3000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]),
                         BuildOptions(top_k=2, features=("c",)))
    f = prof.features["c"]
    assert isinstance(f, CategoricalFeature)
    values, counts = np.unique(t.column("c").to_numpy(zero_copy_only=False), return_counts=True)
    order = np.argsort(-counts)
    assert f.categories == tuple(values[order][:2])
    np.testing.assert_allclose(f.proportions, [*(counts[order][:2] / 3000),
                                               counts[order][2:].sum() / 3000])
    assert f.counts == (*counts[order][:2].tolist(), int(counts[order][2:].sum()))


def test_version_1_profiles_are_read_with_a_note(tmp_path: Path) -> None:
    t = reference_table(2000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    data = prof.to_dict()
    assert data["format_version"] == 2
    data["format_version"] = 1
    for f in data["features"].values():
        f.pop("counts", None)
    with pytest.warns(ProfileFormatWarning, match=r"format_version 1.*rebuild"):
        old = BaselineProfile.from_dict(data, source="old.json")
    for name, f in prof.features.items():
        g = old.features[name]
        if isinstance(f, CategoricalFeature):
            assert isinstance(g, CategoricalFeature) and g.counts == ()
            np.testing.assert_array_equal(g.counts_array, f.counts_array)  # share × count
        else:
            assert g == f


def test_unknown_optional_keys_are_ignored_and_future_versions_refused(tmp_path: Path) -> None:
    t = reference_table(500)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    data = prof.to_dict()
    data["provenance"] = {"engine": "x"}
    for f in data["features"].values():
        f["extra_sketch"] = [1, 2, 3]
    assert BaselineProfile.from_dict(data).features == prof.features
    data["format_version"] = 3
    with pytest.raises(ProfileError, match=r"format_version 3.*reads 1, 2.*rebuild"):
        BaselineProfile.from_dict(data, source="new.json")


def test_labels_are_canonical_and_accuracy_is_counted(tmp_path: Path) -> None:
    t = reference_table(3000, seed=2)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    out = prof.output
    assert out is not None
    assert out.classes == ("0", "1") and out.positive_class == "1"
    y = t.column("y").to_numpy()
    pred = t.column("pred").to_numpy()
    assert out.reference_accuracy == pytest.approx(float((y == pred).mean()))
    pred_share = np.bincount(pred, minlength=2) / len(pred)
    assert isinstance(out.prediction, CategoricalFeature)
    np.testing.assert_allclose(out.prediction.proportions[:2], pred_share)
    assert set(out.calibration) == {"0", "1"}
    assert out.class_proportions == pytest.approx({"0": float((y == 0).mean()),
                                                   "1": float((y == 1).mean())})
    conf = np.maximum(t.column("p").to_numpy(), 1 - t.column("p").to_numpy())
    assert out.confidence is not None
    assert out.confidence.mean == pytest.approx(conf.mean())


def test_binary_probability_without_prediction_column(tmp_path: Path) -> None:
    t = reference_table(3000, seed=5)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]),
                         BuildOptions(proba_binary="p", target="y", exclude=("pred",)))
    p = t.column("p").to_numpy()
    y = t.column("y").to_numpy()
    assert prof.output is not None
    assert prof.output.reference_accuracy == pytest.approx(float(((p > 0.5) == (y == 1)).mean()))
    assert "pred" not in prof.features


def test_multiclass_probabilities(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    raw = rng.dirichlet([1, 1, 1], 2000)
    y = np.array(["a", "b", "c"])[np.array([rng.choice(3, p=r) for r in raw])]
    t = pa.table({"f": rng.normal(size=2000), "pa": raw[:, 0], "pb": raw[:, 1], "pc": raw[:, 2],
                  "label": y})
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]),
                         BuildOptions(proba={"a": "pa", "b": "pb", "c": "pc"}, target="label"))
    assert prof.output is not None and prof.output.classes == ("a", "b", "c")
    argmax = np.array(["a", "b", "c"])[raw.argmax(axis=1)]
    assert prof.output.reference_accuracy == pytest.approx(float((argmax == y).mean()))
    assert list(prof.features) == ["f"]


def test_regression_output(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = pa.table({"f": rng.normal(size=1000), "yhat": rng.normal(5, 2, 1000)})
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]),
                         BuildOptions(prediction="yhat"))
    assert prof.output is not None and prof.output.task == "regression"
    assert isinstance(prof.output.prediction, NumericFeature)


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = reference_table(2000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    prof.save(tmp_path / "p.json")
    back = BaselineProfile.load(tmp_path / "p.json")
    assert back == prof and back.id == prof.id


def test_large_reference_uses_bounded_summary(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=60_000)
    t = pa.table({"x": x})
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]),
                         BuildOptions(summary_size=500))
    f = prof.features["x"]
    assert isinstance(f, NumericFeature) and not f.summary_exact and len(f.summary) == 500
    window = rng.normal(0.1, 1, 3000)
    d_full = stats.ks_2samp(x, window).statistic
    d_grid = stats.ks_2samp(f.summary_array, window).statistic
    eps = prof.settings["quantile_rank_error"]
    assert abs(d_grid - d_full) <= 1 / (2 * 500) + eps + 1e-12


# --- sketches -------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6000), k=st.sampled_from([8, 32, 100]), seed=st.integers(0, 2**16),
       batch=st.integers(1, 700))
def test_quantile_sketch_rank_error_is_within_its_bound(n: int, k: int, seed: int,
                                                        batch: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.round(rng.standard_t(3, n), 1)  # ties on purpose
    s = QuantileSketch(k)
    for i in range(0, n, batch):
        s.update(data[i:i + batch])
    v, w = s.weighted()
    assert w.sum() == n
    assert len(v) <= (len(s._levels)) * k + len(s._levels)
    srt = np.sort(data)
    # estimated vs true count of values < q, for every distinct data value
    q = np.unique(data)
    est = np.concatenate([[0.0], np.cumsum(w)])[np.searchsorted(v, q, side="left")]
    true = np.searchsorted(srt, q, side="left")
    assert np.max(np.abs(est - true)) / n <= s.rank_error_bound() + 1e-12
    if s.exact:
        np.testing.assert_array_equal(s.sorted_values(), srt)


def test_frequent_items_exact_below_capacity_and_bounded_above() -> None:
    f = FrequentItems(capacity=3)
    f.update(["a", "b"], [5, 3])
    assert f.counts == {"a": 5, "b": 3} and f.error_bound() == 0
    f.update(["c", "d", "e"], [2, 1, 1])
    assert len(f.counts) <= 3
    true = {"a": 5, "b": 3, "c": 2, "d": 1, "e": 1}
    for key, count in true.items():
        assert true[key] - f.error_bound() <= f.counts.get(key, 0) <= count


def test_moments_merge_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(1e6, 3, 10_000)
    m = Moments()
    for part in np.array_split(x, 7):
        m.update(part)
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.std == pytest.approx(x.std(), rel=1e-9)


def test_task_guess_for_float_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 70_000  # several batches: the guess must hold across them
    classes = pa.table({"f": rng.normal(size=n), "pred": rng.integers(0, 3, n).astype(float),
                        "y": rng.integers(0, 3, n)})
    prof = build_profile(discover([str(write(classes, tmp_path / "c.parquet"))]),
                         BuildOptions(prediction="pred", target="y"))
    assert prof.output is not None and prof.output.task == "classification"
    assert prof.output.classes == ("0", "1", "2")
    values = pa.table({"f": rng.normal(size=n), "pred": rng.normal(size=n) * 100,
                       "y": rng.normal(size=n)})
    prof = build_profile(discover([str(write(values, tmp_path / "v.parquet"))]),
                         BuildOptions(prediction="pred", target="y"))
    assert prof.output is not None and prof.output.task == "regression"
    pred = prof.output.prediction
    assert isinstance(pred, NumericFeature) and pred.count == n


@pytest.mark.parametrize("values", [
    [1.0, 2.5, None, float("nan"), float("inf")],
    [1, None, 30, -2],
    [True, None, False],
    ["a", None, " b", ""],
])
def test_categories_are_spelled_like_live_records(values: list[object]) -> None:
    from driftline.engine.records import categorical_column
    from driftline.io.readers import to_strings

    assert to_strings(pa.array(values)).tolist() == categorical_column(values).tolist()


def _reference_id(p: BaselineProfile) -> str:
    """The id as the format defines it, computed the slow, obvious way (asdict + NaN → None)."""
    import dataclasses
    import hashlib
    import json

    def clean(v: object) -> object:
        if isinstance(v, np.ndarray):  # a summary: the list of its floats, as a tuple gave
            return [clean(float(x)) for x in v]
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    body = {"format": "driftline.baseline", "format_version": FORMAT_VERSION,
            **clean(dataclasses.asdict(p))}  # type: ignore[dict-item]
    body.pop("created_at")
    for key in ("multivariate", "embeddings", "text", "provenance"):  # optional: left out unused
        if not body.get(key):
            body.pop(key, None)
    for key in ("reference_performance", "loss_model"):
        if isinstance(body.get("output"), dict) and not body["output"].get(key):
            body["output"].pop(key, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def test_id_is_the_content_hash_computed_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    t = reference_table(2000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    assert prof.id == _reference_id(prof)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert prof.id == prof.id == _reference_id(prof)
    assert len(calls) == 1  # only the reference above: the profile keeps its id
    # a NaN statistic serialises as null in both
    nan = _with_nan_std(prof)
    assert nan.id == _reference_id(nan) != prof.id


def _with_nan_std(prof: BaselineProfile) -> BaselineProfile:
    import dataclasses

    x = prof.features["x"]
    assert isinstance(x, NumericFeature)
    return dataclasses.replace(prof, features={**prof.features,
                                               "x": dataclasses.replace(x, std=float("nan"))})


def test_loaded_profile_keeps_the_id_its_file_records(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    t = reference_table(2000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    prof.save(tmp_path / "p.json")
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    back = BaselineProfile.load(tmp_path / "p.json")
    assert back.id == prof.id and calls == []  # loading a wide baseline hashes nothing


FIXTURE = Path(__file__).parent / "data" / "baseline-tuple-summaries.json"


def test_files_written_when_summaries_were_tuples_keep_their_id_and_bytes(tmp_path: Path) -> None:
    """tests/data/baseline-tuple-summaries.json was saved by the release whose summaries were
    tuples of Python floats (summaries with ties, -0.0, 1e-300 and 1e12): read with array
    summaries, its content hash is the id it records, and saving it again writes the same
    bytes."""
    import json

    from driftline.profile import format as fmt

    recorded = json.loads(FIXTURE.read_text())["id"]
    back = BaselineProfile.load(FIXTURE)
    assert fmt._digest(fmt._body(back)) == _reference_id(back) == recorded
    back.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == FIXTURE.read_bytes()


def test_summary_is_a_read_only_float64_array_compared_by_value(tmp_path: Path) -> None:
    import dataclasses
    import pickle

    back = BaselineProfile.load(FIXTURE)
    t = reference_table(2000)
    built = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    for f in (back.features["amount"], built.features["x"]):
        assert isinstance(f, NumericFeature)
        copies = (dataclasses.replace(f), pickle.loads(pickle.dumps(f)),
                  dataclasses.replace(f, summary=tuple(f.summary.tolist())))
        for g in (f, *copies):
            assert isinstance(g.summary, np.ndarray) and g.summary.dtype == np.float64
            assert not g.summary.flags.writeable
            with pytest.raises(ValueError):
                g.summary[0] = 1.0
            assert g == f and hash(g) == hash(f)
        changed = f.summary.copy()
        changed[len(changed) // 2] += 1e-9
        assert dataclasses.replace(f, summary=changed) != f
        assert dataclasses.replace(f, summary=f.summary[:-1]) != f
        assert dataclasses.replace(f, std=f.std + 1) != f
    assert BaselineProfile.load(FIXTURE) == back  # whole profiles compare by value too
