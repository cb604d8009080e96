"""Multivariate drift (PCA reconstruction error): against numpy and scikit-learn PCA, the
threshold band against hand-cut reference chunks, and a correlation flip with unchanged
marginals that only the multivariate signal sees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import write
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.cli import main
from driftline.detectors.reconstruction import (
    ErrorMap,
    MomentSums,
    components_for,
    fit_pca,
    row_errors,
    threshold_band,
)
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _table(n: int, rho: float, seed: int) -> pa.Table:
    """Standard normal a, b with correlation ``rho``, an independent c, a categorical k whose
    level depends on a, and a few missing values."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    c = rng.normal(2.0, 3.0, size=n)
    k = np.where(a + 0.5 * rng.normal(size=n) > 0, "hi", "lo").astype(object)
    c[rng.random(n) < 0.02] = np.nan
    k[rng.random(n) < 0.02] = None
    return pa.table({"a": a, "b": b, "c": c, "k": pa.array(list(k), pa.string())})


def _reference_encoding(t: pa.Table) -> np.ndarray:
    """NannyML's preprocessing by hand: mean / most-frequent imputation, then frequency encoding."""
    cols = []
    for name in ("a", "b", "c"):
        x = t.column(name).to_numpy(zero_copy_only=False).astype(float)
        cols.append(np.where(np.isnan(x), np.nanmean(x), x))
    k = np.array(t.column("k").to_pylist(), dtype=object)
    values, counts = np.unique(k[k != None], return_counts=True)  # noqa: E711
    mode = values[np.argmax(counts)]
    k = np.where(k == None, mode, k)  # noqa: E711
    values, counts = np.unique(k, return_counts=True)
    share = dict(zip(values, counts / len(k), strict=True))
    cols.append(np.array([share[v] for v in k]))
    return np.column_stack(cols)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table, BaselineProfile]:
    d = tmp_path_factory.mktemp("mv")
    t = _table(20_000, 0.8, seed=1)
    path = write(t, d / "ref.parquet")
    prof = build_profile(discover([str(path)]), BuildOptions(), progress=False)
    return path, t, prof


def test_reconstruction_error_equals_numpy_and_sklearn_pca(reference) -> None:  # type: ignore[no-untyped-def]
    _, t, prof = reference
    mv = prof.multivariate
    assert mv is not None and mv.features == ("a", "b", "c", "k")
    x = _reference_encoding(t)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    ratio = s**2 / (s**2).sum()
    k = int(np.searchsorted(np.cumsum(ratio), 0.65, side="right") + 1)
    assert len(mv.components) == k
    p = vt[:k].T
    expected = np.linalg.norm(z - z @ p @ p.T, axis=1)
    from driftline.engine.multivariate import MultivariateRef

    ref = MultivariateRef(prof)
    cols = {n: (t.column(n).to_numpy(zero_copy_only=False) if n != "k"
                else np.array(t.column(n).to_pylist(), dtype=object)) for n in mv.features}
    got = row_errors(ref.model, ref.encoder.encode(cols))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # the monitor's one-product form gives the same window value as the definition
    total, n = ref.error_sum(cols)
    assert n == len(got) and abs(total - got.sum()) <= 1e-12 * got.sum()

    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(x)
    pca = PCA(n_components=0.65).fit(scaled)
    assert pca.n_components_ == k
    sk = np.linalg.norm(scaled - pca.inverse_transform(pca.transform(scaled)), axis=1)
    np.testing.assert_allclose(got, sk, rtol=1e-7, atol=1e-9)
    # the stored reference blocks are means of consecutive row errors, each row's error from
    # the model fitted on the other half of the rows (even / odd positions)
    def errors(fit: np.ndarray, rows: np.ndarray) -> np.ndarray:
        mu, sd = fit.mean(axis=0), fit.std(axis=0)
        zf = (fit - mu) / sd
        _, sv, v = np.linalg.svd(zf, full_matrices=False)
        kk = int(np.searchsorted(np.cumsum(sv**2 / (sv**2).sum()), 0.65, side="right") + 1)
        zr = (rows - mu) / sd
        return np.linalg.norm(zr - zr @ v[:kk].T @ v[:kk], axis=1)

    crossed = np.empty(len(x))
    crossed[0::2] = errors(x[1::2], x[0::2])
    crossed[1::2] = errors(x[0::2], x[1::2])
    assert mv.block_size == 2
    np.testing.assert_allclose(mv.block_errors[:50], crossed[:100].reshape(50, 2).mean(axis=1),
                               rtol=1e-9)
    # in-sample errors would be optimistic: below the errors of the rows left out of the fit
    assert float(np.mean(mv.block_errors)) > float(expected.mean())


def test_threshold_band_is_mean_three_std_of_reference_chunks() -> None:
    rng = np.random.default_rng(3)
    e = rng.gamma(2.0, 1.0, 12_000)
    blocks = e.reshape(-1, 10).mean(axis=1)
    lo, hi = threshold_band(blocks, np.full(len(blocks), 10), 1000)
    chunks = e.reshape(12, 1000).mean(axis=1)
    # the chunks' std, floored by the spread independent rows give (the blocks' spread × √size
    # for the rows' σ, then σ·√(1/window + 1/reference rows))
    floor = blocks.std() * np.sqrt(10) * np.sqrt(1 / 1000 + 1 / e.size)
    sd = max(chunks.std(ddof=0), floor)
    assert hi == pytest.approx(chunks.mean() + 3 * sd)
    assert lo == pytest.approx(max(0.0, chunks.mean() - 3 * sd))
    # chunks that vary more than independent rows (a drifting reference) widen the band
    trend = blocks + np.repeat(np.linspace(0, 1, 12), 100)
    lo3, hi3 = threshold_band(trend, np.full(len(blocks), 10), 1000)
    tchunks = trend.reshape(12, 100).mean(axis=1)
    assert hi3 == pytest.approx(tchunks.mean() + 3 * tchunks.std(ddof=0))
    assert lo3 == pytest.approx(max(0.0, tchunks.mean() - 3 * tchunks.std(ddof=0)))
    assert tchunks.std(ddof=0) > 2 * floor
    # too few chunks of the window's size: the spread of the difference of the window's mean
    # and the reference's, rows' spread × sqrt(1/window + 1/reference rows)
    lo2, hi2 = threshold_band(blocks, np.full(len(blocks), 10), 4000)
    width = 3 * e.std() * np.sqrt(1 / 4000 + 1 / e.size)
    assert hi2 == pytest.approx(e.mean() + width, rel=0.05)
    assert lo2 == pytest.approx(e.mean() - width, rel=0.05)


def test_components_rule_matches_sklearn_float_n_components() -> None:
    assert components_for(np.array([0.65, 0.2, 0.15])) == 2  # strictly more than 65 %
    assert components_for(np.array([0.7, 0.2, 0.1])) == 1
    assert components_for(np.array([0.3, 0.3, 0.2, 0.2])) == 3


@settings(max_examples=30)
@given(st.integers(2, 6), st.integers(3, 60), st.integers(0, 2**31 - 1), st.integers(1, 59))
def test_moment_sums_merge_equals_one_pass(d: int, n: int, seed: int, cut: int) -> None:
    x = np.random.default_rng(seed).normal(size=(n, d)) * 10 + 5
    cut = min(cut, n - 1)
    one = MomentSums.empty(d, np.full(d, 5.0))
    one.update(x)
    a, b = MomentSums.empty(d, np.full(d, 5.0)), MomentSums.empty(d, np.full(d, 5.0))
    a.update(x[:cut])
    b.update(x[cut:])
    m1, c1 = one.mean_cov()
    m2, c2 = a.merge(b).mean_cov()
    np.testing.assert_allclose(m1, x.mean(axis=0))
    np.testing.assert_allclose(c1, np.cov(x.T, ddof=0), atol=1e-9)
    np.testing.assert_allclose(m2, m1)
    np.testing.assert_allclose(c2, c1, atol=1e-9)
    assert fit_pca(one).n_components == fit_pca(a.merge(b)).n_components


@settings(max_examples=20)
@given(st.integers(2, 5), st.integers(3, 50), st.integers(0, 2**31 - 1), st.integers(1, 49))
def test_moment_sums_with_their_own_shifts_merge_like_numpy(d: int, n: int, seed: int,
                                                            cut: int) -> None:
    """Parts shifted by their own first row (an embedding's partitions) merge to numpy's mean
    and covariance of all rows."""
    x = np.random.default_rng(seed).normal(size=(n, d)) * 3 + 100
    cut = min(cut, n - 1)
    a, b = MomentSums.empty(d, x[0]), MomentSums.empty(d, x[cut])
    a.update(x[:cut])
    b.update(x[cut:])
    m, c = a.merge(b).mean_cov()
    np.testing.assert_allclose(m, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(c, np.cov(x.T, ddof=0), atol=1e-8)
    np.testing.assert_allclose(b.merge(a).mean_cov()[1], c, atol=1e-8)


def test_correlation_flip_seen_by_multivariate_not_univariate(
        reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    ref_path, _, _ = reference
    prof = tmp_path / "p.json"
    assert main(["baseline", "build", str(ref_path), "-o", str(prof), "--no-progress"]) == 0
    same = write(_table(4000, 0.8, seed=7), tmp_path / "same.parquet")
    flipped = write(_table(4000, -0.8, seed=8), tmp_path / "flip.parquet")
    docs = []
    for data in (same, flipped):
        assert main(["analyze", "--baseline", str(prof), str(data), "--window-size", "2000",
                     "--format", "json", "--domain-classifier"]) in (0, 1)
        docs.append(json.loads(capsys.readouterr().out))
    for w in docs[0]["windows"]:
        mv = w["multivariate"]
        assert mv["lower_threshold"] <= mv["reconstruction_error"] <= mv["upper_threshold"]
        assert mv["drifted"] is False
        assert 0.35 < mv["domain_classifier_auc"] < 0.65  # indistinguishable
    for w in docs[1]["windows"]:
        mv = w["multivariate"]
        assert mv["reconstruction_error"] > mv["upper_threshold"] and mv["drifted"] is True
        assert mv["domain_classifier_auc"] > 0.75
        assert not w["features"]["a"]["drifted"] and not w["features"]["b"]["drifted"]
        assert w["drifted"] is True


def test_no_multivariate_flag_and_profile_round_trip(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref_path, _, prof = reference
    out = tmp_path / "p.json"
    prof.save(out)
    back = BaselineProfile.load(out)
    assert back == prof and back.id == prof.id
    plain = tmp_path / "plain.json"
    assert main(["baseline", "build", str(ref_path), "-o", str(plain), "--no-progress",
                 "--no-multivariate"]) == 0
    doc = json.loads(plain.read_text())
    assert "multivariate" not in doc
    assert BaselineProfile.load(plain).multivariate is None


def test_domain_classifier_without_scikit_learn_is_null_with_a_note(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from driftline.analyze import domain

    real = builtins.__import__

    def no_sklearn(name: str, *a: object, **k: object) -> object:
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    x = np.zeros((50, 3))
    assert domain.domain_classifier_auc(x, x) == (None, domain.NOT_INSTALLED)
    assert not domain.available()


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 30), frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       spread=st.floats(-6, 6), n=st.integers(0, 1300))
def test_error_map_equals_row_errors(d: int, frac: float, seed: int, spread: float,
                                     n: int) -> None:
    """The folded product x A - b is the standardise-project-reconstruct definition within
    1e-12 (relative to the row's size), every component count from none to all, constant
    columns (scale 1) and rows far from the mean included; rows in blocks (BLOCK_ROWS) give
    what one product of all rows gives."""
    rng = np.random.default_rng(seed)
    k = round(frac * d)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scale = np.exp(rng.normal(size=d) * 3)
    scale[rng.random(d) < 0.2] = 1.0
    mean = rng.normal(size=d) * 10.0**spread
    from driftline.detectors.reconstruction import PCAModel

    model = PCAModel(mean, scale, q[:, :k], np.full(d, 1.0 / d))
    x = mean + rng.normal(size=(n, d)) * scale * rng.choice([1e-3, 1.0, 1e3], size=(n, 1))
    want = row_errors(model, x)
    emap = ErrorMap.of(model)
    got = emap.errors(x)
    size = np.linalg.norm((x - mean) / scale, axis=1)
    assert got.shape == (n,)
    assert np.all(np.abs(got - want) <= 1e-12 * np.maximum(size, 1.0))
    resid = (x - emap.mean) @ emap.a  # all rows in one product
    whole = np.sqrt(np.einsum("ij,ij->i", resid, resid))
    assert np.all(np.abs(got - whole) <= 1e-13 * np.maximum(size, 1.0))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), seed=st.integers(0, 2**32 - 1), with_codes=st.booleans())
def test_encode_equals_the_stacked_columns(n: int, seed: int, with_codes: bool) -> None:
    """The encoder's matrix, written column by column, is the stack of its per-column
    definitions bit for bit: non-finite numbers imputed (NaN, ±inf; -0.0 kept), missing and
    unseen categories, with and without the window's codes."""
    from driftline.engine.window_stats import category_codes
    from driftline.profile.format import CategoricalFeature, NumericFeature
    from driftline.profile.multivariate import Encoder

    rng = np.random.default_rng(seed)
    feats = {"x": NumericFeature("x", (0.0,), (0.5, 0.5), (-1.0, 1.0), True, 2, 0.0, -1.0, 1.0,
                                 0.25, 1.0),
             "c": CategoricalFeature("c", ("a", "b"), (0.6, 0.3, 0.1), 10, 0.2)}
    enc = Encoder.fit(feats)
    x = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.0]), n)
    c = rng.choice(np.array(["a", "b", "zz", None], dtype=object), n)
    cols = {"x": x, "c": c}
    ref, e, missing = enc.categorical["c"]
    codes = category_codes(c, ref)
    want = np.column_stack([np.where(np.isfinite(x), x, enc.numeric_impute["x"]),
                            np.where(codes < 0, missing, e[np.maximum(codes, 0)])])
    got = enc.encode(cols, {"c": codes} if with_codes else None)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
