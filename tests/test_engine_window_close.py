"""The window close (``compute_window``) against its definition, one feature at a time.

``compute_window`` shares work between features (one p-value evaluation, stacked PSI, counts
and χ² of every categorical feature at once) and builds each feature's report once. The
definition here is the plain per-feature composition of the detectors — the single-feature
kernel (itself tested against scipy), ``psi``, ``psi_corrected``, ``jensen_shannon``,
``chi2_two_sample``, Benjamini–Hochberg and the decision rule of ``DriftPolicy`` — and every
field must be the same float.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.chi2 import chi2_many, chi2_sf, chi2_sf_many, chi2_two_sample
from driftline.detectors.distances import jensen_shannon
from driftline.detectors.multiple_testing import benjamini_hochberg
from driftline.detectors.psi import psi, psi_corrected
from driftline.engine.kernels import numeric_window
from driftline.engine.monitor import DriftPolicy
from driftline.engine.snapshot import FeatureDrift
from driftline.engine.window_stats import (
    ReferenceArrays,
    WindowColumns,
    _performance,
    _prediction_drift,
    category_codes,
    code_counts,
    compute_window,
    predicted_labels,
)
from driftline.profile.format import (
    BaselineProfile,
    CategoricalFeature,
    Columns,
    NumericFeature,
    OutputProfile,
)
from driftline.profile.multivariate import Encoder

CATS = ("a", "b", "c", "d", "e")


def _numeric(name: str, v: np.ndarray, count: int | None) -> NumericFeature:
    v = np.sort(v)
    edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return NumericFeature(name, tuple(edges.tolist()), tuple((counts / len(v)).tolist()),
                          tuple(v.tolist()), True, count or len(v), 0.0, float(v[0]),
                          float(v[-1]), float(v.mean()), float(v.std()))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def _definition(ref: ReferenceArrays, cols: WindowColumns, policy: DriftPolicy,
                min_records: int) -> dict[str, FeatureDrift]:
    raw = {}
    for name, f in ref.profile.features.items():
        values = cols.features[name]
        if isinstance(f, NumericFeature):
            r = ref.numeric[name]
            finite = values[np.isfinite(values)]
            k = numeric_window(r.summary, r.edges, finite, r.count,
                               approximate=not policy.exact_ks)
            value = psi(r.proportions, k.counts)
            w = k.wasserstein / r.std if r.std > 0 and math.isfinite(r.std) else k.wasserstein
            n = len(finite)
            raw[name] = FeatureDrift(
                name, "numeric", value, jensen_shannon(r.proportions, k.counts),
                (len(values) - n) / len(values) if len(values) else math.nan, n,
                len(values) - n, False, ks_statistic=k.ks_statistic, ks_pvalue=k.ks_pvalue,
                wasserstein=w, window_counts=tuple(int(c) for c in k.counts),
                psi_corrected=psi_corrected(value, r.proportions, n, r.count))
        else:
            c = ref.categorical[name]
            counts = code_counts(category_codes(values, c), len(c.categories))
            valid = int(counts.sum())
            stat, p = chi2_two_sample(c.counts, counts)
            value = psi(c.proportions, counts)
            raw[name] = FeatureDrift(
                name, "categorical", value, jensen_shannon(c.proportions, counts),
                (len(values) - valid) / len(values) if len(values) else math.nan, valid,
                len(values) - valid, False, chi2_statistic=stat, chi2_pvalue=p,
                window_counts=tuple(int(x) for x in counts),
                psi_corrected=psi_corrected(value, c.proportions, valid,
                                            int(c.counts.sum())))
    pvals = [f.ks_pvalue if f.type == "numeric" else f.chi2_pvalue for f in raw.values()]
    adjusted = benjamini_hochberg(np.asarray(pvals, dtype=np.float64)).tolist()
    out = {}
    for (name, f), adj in zip(raw.items(), adjusted, strict=True):
        if f.n < min_records:
            out[name] = FeatureDrift(**{**f.__dict__, "p_value_adjusted": adj,
                                        "insufficient_data": True})
            continue
        gate = f.psi_corrected if policy.correct_psi else f.psi
        assert gate is not None
        big = math.isfinite(gate) and gate >= policy.psi_threshold
        sig = not policy.require_significance or (math.isfinite(adj) and adj < policy.alpha)
        out[name] = FeatureDrift(**{**f.__dict__, "p_value_adjusted": adj,
                                    "drifted": big and sig})
    return out


numeric_specs = st.lists(st.tuples(st.sampled_from([300, 2000, 5000]),
                                   st.sampled_from([0.0, 0.2, 1.0]), st.booleans(),
                                   st.sampled_from([0.0, 0.1, 1.0]), st.booleans()),
                         min_size=0, max_size=5)
categorical_specs = st.lists(st.tuples(st.integers(2, 5), st.sampled_from([0, 3, 40]),
                                       st.sampled_from([0.0, 0.05, 0.5]), st.booleans()),
                             min_size=0, max_size=4)


@settings(max_examples=30, deadline=None)
@given(numeric=numeric_specs, categorical=categorical_specs,
       records=st.sampled_from([0, 1, 150, 1000, 2500]), seed=st.integers(0, 2**32 - 1),
       exact=st.booleans(), correct=st.booleans(), significance=st.booleans())
def test_window_report_equals_the_per_feature_definition(
        numeric: list[tuple[int, float, bool, float, bool]],
        categorical: list[tuple[int, int, float, bool]], records: int, seed: int,
        exact: bool, correct: bool, significance: bool) -> None:
    # shifted and unshifted features, missing values, discrete data (ties), categories the
    # reference never or rarely saw (pooled χ²), thin windows (insufficient data), the exact
    # and the fast KS, and windows large enough for the feature pool (≥ 2000 records)
    rng = np.random.default_rng(seed)
    feats: dict[str, NumericFeature | CategoricalFeature] = {}
    cols: dict[str, np.ndarray] = {}
    for i, (n, shift, discrete, missing, larger) in enumerate(numeric):
        ref, cur = rng.normal(size=n), rng.normal(shift, 1.0, size=records)
        if discrete:
            ref, cur = np.round(ref * 2), np.round(cur * 2)
        cur[rng.random(records) < missing] = np.nan
        feats[f"x{i}"] = _numeric(f"x{i}", ref, 10 * n if larger else None)
        cols[f"x{i}"] = cur
    for i, (k, rare, shift, none) in enumerate(categorical):
        shares = np.full(k, 1.0 / k)
        counts = np.round(shares * 1000)
        counts[-1] = rare  # a sparse (or empty) reference category
        feats[f"c{i}"] = CategoricalFeature(f"c{i}", CATS[:k],
                                            (*(counts / counts.sum()).tolist(), 0.0),
                                            int(counts.sum()), 0.0,
                                            counts=(*(int(c) for c in counts), 0))
        probs = (1 - shift) * shares + shift * np.eye(k)[0]
        cur = rng.choice(np.array([*CATS[:k], "zzz"], dtype=object), size=records,
                         p=[*(probs * 0.98).tolist(), 0.02])
        if none:
            cur[rng.random(records) < 0.1] = None
        cols[f"c{i}"] = cur
    prof = BaselineProfile("m", "1", "", 1000, feats, Columns(), None)
    ref = ReferenceArrays(prof)
    window = WindowColumns(records, cols, None, None, None, None, None)
    policy = DriftPolicy(exact_ks=exact, correct_psi=correct, require_significance=significance)
    got = compute_window(ref, window, index=0, policy=policy, min_records=200).features
    want = _definition(ref, window, policy, 200)
    assert list(got) == list(want)
    for name in want:
        for field in FeatureDrift.__dataclass_fields__:
            a, b = getattr(got[name], field), getattr(want[name], field)
            assert _same(a, b), (name, field, a, b)
    # the codes kept for the multivariate encoder are the per-feature lookups
    for name, codes in window.codes.items():
        np.testing.assert_array_equal(codes, category_codes(cols[name], ref.categorical[name]))
    assert set(window.codes) == set(ref.categorical)


slot_rows = st.lists(st.lists(st.sampled_from([0, 0, 1, 3, 6, 40, 900]), min_size=4,
                              max_size=4), min_size=1, max_size=6)


@settings(max_examples=120, deadline=None)
@given(refs=slot_rows, curs=slot_rows, slots=st.integers(1, 4),
       least=st.sampled_from([5.0, 5.0, 0.0]))
def test_chi2_of_many_rows_equals_one_row_at_a_time(refs: list[list[int]],
                                                    curs: list[list[int]], slots: int,
                                                    least: float) -> None:
    # pooled rows (sparse or empty categories), empty samples, one slot, clean rows, and no
    # pooling threshold (an empty category must still be dropped)
    k = min(len(refs), len(curs))
    ref = np.array([r[:slots] for r in refs[:k]], dtype=np.float64)
    cur = np.array([c[:slots] for c in curs[:k]], dtype=np.float64)
    got = chi2_many(ref, cur, least)
    for (a, p), r, c in zip(got, ref, cur, strict=True):
        b, q = chi2_two_sample(r, c, least)
        assert _same(a, b) and _same(p, q), (r, c, (a, p), (b, q))


@settings(max_examples=60, deadline=None)
@given(stats=st.lists(st.one_of(st.floats(0.0, 5000.0), st.just(math.nan),
                                st.floats(-1.0, 0.0)), min_size=1, max_size=8),
       dof=st.integers(1, 40))
def test_chi2_sf_of_many_statistics_equals_one_at_a_time(stats: list[float], dof: int) -> None:
    got = chi2_sf_many(stats, dof)
    for a, x in zip(got, stats, strict=True):
        assert _same(a, chi2_sf(x, dof)), (x, dof)


def test_the_multivariate_encoder_reuses_the_window_codes_unchanged() -> None:
    # the encoder looks a categorical value up in the same categories as the window's χ²:
    # its matrix from the window's codes is the one from its own lookups
    rng = np.random.default_rng(5)
    f = CategoricalFeature("c", ("a", "b", "c"), (0.5, 0.3, 0.2, 0.0), 1000, 0.1)
    g = _numeric("x", rng.normal(size=500), None)
    enc = Encoder.fit({"c": f, "x": g})
    values = rng.choice(np.array(["a", "b", "c", "q", None], dtype=object), size=300)
    cols = {"c": values, "x": rng.normal(size=300)}
    ref = ReferenceArrays(BaselineProfile("m", "1", "", 1000, {"c": f, "x": g}, Columns(), None))
    codes = {"c": category_codes(values, ref.categorical["c"])}
    np.testing.assert_array_equal(enc.encode(cols, codes), enc.encode(cols))
    wrong = {"c": np.zeros(300, dtype=np.int64)}  # the codes are used, not recomputed
    assert not np.array_equal(enc.encode(cols, wrong), enc.encode(cols))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), records=st.sampled_from([50, 1000, 2500]),
       with_prediction=st.booleans(), with_targets=st.booleans(), reorder=st.booleans())
def test_the_shared_prediction_codes_change_no_output_statistic(
        seed: int, records: int, with_prediction: bool, with_targets: bool,
        reorder: bool) -> None:
    # the window looks the predicted classes up once for the prediction's drift, the estimated
    # and the realised performance; each equals its computation with its own lookups, also
    # when the prediction's reference categories are not the classes in their order
    rng = np.random.default_rng(seed)
    pred_cats = ("1", "0") if reorder else ("0", "1")
    out = OutputProfile("classification", "pred", {"1": "p"}, ("0", "1"), "1",
                        CategoricalFeature("pred", pred_cats, (0.6, 0.4, 0.0), 5000, 0.0),
                        None, 0.9)
    prof = BaselineProfile("m", "1", "", 5000, {"x": _numeric("x", rng.normal(size=500), None)},
                           Columns("pred", {"1": "p"}), out)
    ref = ReferenceArrays(prof)
    p = rng.uniform(size=records)
    labels = np.where(rng.random(records) < 0.05, None,
                      np.where(p > 0.5, "1", "0").astype(object))
    targets = np.where(rng.random(records) < p, "1", "0").astype(object)
    cols = WindowColumns(records, {"x": rng.normal(size=records)},
                         labels if with_prediction else None, np.column_stack([1 - p, p]),
                         targets if with_targets else None, None, None)
    policy = DriftPolicy()
    report = compute_window(ref, cols, index=0, policy=policy, min_records=200)
    predicted = predicted_labels(ref, cols)
    assert report.prediction == _prediction_drift(ref, cols, predicted, policy, 200)
    assert _same_floats(report.performance.__dict__,
                        _performance(ref, cols, predicted, (None, 0), {}).__dict__)


def _same_floats(a: dict[str, object], b: dict[str, object]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict) and isinstance(y, dict):
            if not _same_floats(x, y):
                return False
        elif not _same(x, y):
            return False
    return True


def _bits(a: object) -> object:
    """A value as compared bit for bit: a float by its IEEE bytes (signed zeros, NaN)."""
    if isinstance(a, float):
        return np.float64(a).tobytes()
    if isinstance(a, tuple):
        return tuple(_bits(x) for x in a)
    return a


@settings(max_examples=100, deadline=None)
@given(k=st.integers(2, 20), n=st.sampled_from([1, 7, 300, 5000]),
       records=st.sampled_from([2, 3, 40, 999, 1000, 2000]),
       discrete=st.sampled_from([0.0, 0.5, 1.0]), shift=st.sampled_from([0.0, 0.3, 2.0]),
       scale=st.sampled_from([1.0, 1e-6, 1e6]), larger=st.booleans(),
       bad=st.sampled_from([None, None, None, None, "nan", "inf", "int"]), exact=st.booleans(),
       mixed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_numeric_block_equals_the_per_feature_path(
        k: int, n: int, records: int, discrete: float, shift: float, scale: float,
        larger: bool, bad: str | None, exact: bool, mixed: bool, seed: int) -> None:
    # the window close's stacked path for the sidecar's usual window (every numeric feature
    # of one summary size, every value finite) against one feature at a time (the
    # single-feature kernel, psi, jensen_shannon): every field bit for bit, through the
    # binary-search and merge ranks, ties with the reference, the exact and fast KS, summaries
    # standing for larger references; and a window it does not take (a missing or infinite
    # value, integer columns) is left to the general path
    from driftline.engine.window_stats import _numeric_block, _numeric_fields

    rng = np.random.default_rng(seed)

    def sample(size: int) -> np.ndarray:
        x = rng.normal(rng.normal(0, 0.3), 1.0, size=size)
        if discrete:
            x = np.where(rng.random(size) < discrete, np.round(x * 2) / 2, x)
        return x * scale

    feats: dict[str, NumericFeature | CategoricalFeature] = {
        f"x{i}": _numeric(f"x{i}", sample(n), 10 * n if larger else None) for i in range(k)}
    if mixed:  # every other feature with quartile bins: stacks of two numbers of bins
        for i in range(1, k, 2):
            f = feats[f"x{i}"]
            assert isinstance(f, NumericFeature)
            v = f.summary_array
            edges = np.unique(np.quantile(v, [0.25, 0.5, 0.75]))
            props = np.bincount(np.searchsorted(edges, v, side="right"),
                                minlength=len(edges) + 1) / len(v)
            feats[f"x{i}"] = dataclasses.replace(f, edges=tuple(edges.tolist()),
                                                 proportions=tuple(props.tolist()))
    cols = {f"x{i}": sample(records) + shift * scale for i in range(k)}
    if bad == "nan":
        cols["x0"][0] = np.nan
    elif bad == "inf":
        cols[f"x{k - 1}"][-1] = -np.inf
    elif bad == "int":
        cols["x1"] = np.round(cols["x1"]).astype(np.int64)
    ref = ReferenceArrays(BaselineProfile("m", "1", "", 1000, feats, Columns(), None))
    window = WindowColumns(records, cols, None, None, None, None, None)
    rows = list(range(k))
    got = _numeric_block(ref, window, rows, approximate=not exact)
    sizes: dict[int, int] = {}
    for r in ref.numeric.values():  # a stack holds one summary size and number of edges
        sizes[len(r.edges)] = sizes.get(len(r.edges), 0) + 1
    if bad is not None or min(sizes.values()) < 2:  # (a lone feature is in no stack)
        assert got is None
        return
    assert got is not None
    want = [_numeric_fields(name, records, records,
                            numeric_window(r.summary, r.edges, cols[name], r.count,
                                           approximate=not exact), r)
            for name, r in ref.numeric.items()]
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert list(a) == list(b)
        for field in b:
            assert _bits(a[field]) == _bits(b[field]), (a["name"], field, a[field], b[field])


@settings(max_examples=40, deadline=None)
@given(numeric=numeric_specs, categorical=categorical_specs,
       records=st.sampled_from([0, 1, 150, 1000]), seed=st.integers(0, 2**32 - 1),
       drifted=st.booleans(), thin=st.booleans())
def test_a_feature_report_filled_in_directly_is_the_constructed_one(
        numeric: list[tuple[int, float, bool, float, bool]],
        categorical: list[tuple[int, int, float, bool]], records: int, seed: int,
        drifted: bool, thin: bool) -> None:
    # _feature_drift fills a FeatureDrift in without its __init__: for the fields the window
    # close makes (numeric and categorical, thin or decided) it is the constructor's object,
    # field for field, in the same order, equal and hashing alike
    from driftline.engine.window_stats import _categorical_part, _feature_drift, _numeric_part

    rng = np.random.default_rng(seed)
    feats: dict[str, NumericFeature | CategoricalFeature] = {}
    cols: dict[str, np.ndarray] = {}
    for i, (n, _, _, missing, _) in enumerate(numeric):
        feats[f"x{i}"] = _numeric(f"x{i}", rng.normal(size=n), None)
        cols[f"x{i}"] = np.where(rng.random(records) < missing, np.nan, rng.normal(size=records))
    for i, (k, _, _, _) in enumerate(categorical):
        feats[f"c{i}"] = CategoricalFeature(f"c{i}", CATS[:k], (*([1.0 / k] * k), 0.0), 1000,
                                            0.0)
        cols[f"c{i}"] = rng.choice(np.array(CATS[:k], dtype=object), size=records)
    ref = ReferenceArrays(BaselineProfile("m", "1", "", 1000, feats, Columns(), None))
    window = WindowColumns(records, cols, None, None, None, None, None)
    raw = (_numeric_part(ref, window, list(range(len(numeric))))
           + _categorical_part(ref, window, list(ref.categorical)))
    decision = {"drifted": drifted, "p_value_adjusted": float(rng.random())}
    if thin:
        decision["insufficient_data"] = True
    for f in raw:
        got, want = _feature_drift(f, **decision), FeatureDrift(**f, **decision)
        assert type(got) is FeatureDrift
        assert list(vars(got).items()) == list(vars(want).items())
        assert got == want and hash(got) == hash(want) and repr(got) == repr(want)


share_rows = st.lists(st.lists(st.sampled_from([0, 0, 1, 2, 7, 50, 999]), min_size=5,
                               max_size=5), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(refs=share_rows, curs=share_rows, as_shares=st.booleans())
def test_kept_reference_sides_give_psi_and_js_of_many_rows_bit_for_bit(
        refs: list[list[int]], curs: list[list[int]], as_shares: bool) -> None:
    # the window close's PSI and Jensen–Shannon against reference sides made once (and, when
    # no row is empty, without the empty-row guards) against psi_many and
    # jensen_shannon_many (each tested against the one-row functions): the same bits, empty
    # reference and window rows included
    from driftline.detectors.distances import jensen_shannon_many
    from driftline.detectors.psi import psi_many
    from driftline.engine.window_stats import _Shares

    k = min(len(refs), len(curs))
    ref = np.array(refs[:k], dtype=np.float64)
    if as_shares:  # proportions, as profiles hold them
        ref = ref / np.where(ref.sum(axis=1, keepdims=True) > 0, ref.sum(axis=1, keepdims=True),
                             1.0)
    cur = np.array(curs[:k], dtype=np.int64)
    psis, jss = _Shares.of(ref).psi_js(cur)
    for got, want in ((psis, psi_many(ref, cur)), (jss, jensen_shannon_many(ref, cur))):
        assert np.array(got).tobytes() == want.tobytes()
