"""Embedding features: MMD against a direct O(n²) computation, its permutation p-value
calibrated under no drift, the baseline → analyze → monitor path, and bad vectors (an error
naming the column offline, a counted missing vector live, nothing else lost)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import write
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from driftline.cli import main
from driftline.detectors.mmd import (
    cosine_distance,
    median_bandwidth,
    mmd2,
    mmd_test,
    pooled_kernel,
    reference_kernel,
)
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import from_records, vector_column
from driftline.errors import InputError
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _direct_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD² by the definition, one pair at a time."""
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma * sigma))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@settings(max_examples=25)
@given(st.integers(2, 25), st.integers(2, 25), st.integers(1, 6), st.floats(0.0, 2.0),
       st.integers(0, 2**31 - 1))
def test_mmd2_equals_direct_pairwise_sum(m: int, n: int, d: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(m, d)), rng.normal(shift, 1.0, size=(n, d))
    sigma = median_bandwidth(np.vstack([x, y])) if m + n > 2 else 1.0
    expected = _direct_mmd2(x, y, sigma)
    assert mmd2(x, y, sigma) == pytest.approx(expected, abs=1e-10)
    res = mmd_test(x, y, sigma, permutations=20, seed=seed, kxx=reference_kernel(x, sigma))
    assert res.mmd2 == pytest.approx(expected, abs=1e-10)
    assert 1 / 21 <= res.pvalue <= 1.0
    # the pooled matrix holds the kernel of every pair with a zero diagonal
    k = pooled_kernel(reference_kernel(x, sigma), x, y, sigma)
    both = np.vstack([x, y])
    assert k[0, m + n - 1] == pytest.approx(
        math.exp(-float(np.sum((both[0] - both[-1]) ** 2)) / (2 * sigma * sigma)))
    assert np.all(np.diag(k) == 0)


def test_median_bandwidth_is_alibi_detects_heuristic() -> None:
    x = np.random.default_rng(4).normal(size=(60, 5))
    assert median_bandwidth(x) == pytest.approx(math.sqrt(np.median(pdist(x, "sqeuclidean")) / 2))
    assert median_bandwidth(np.ones((5, 3))) == 1.0


def test_permutation_pvalue_is_calibrated_without_drift() -> None:
    rng = np.random.default_rng(20260)
    trials, hits, low = 300, 0, 0
    for t in range(trials):
        x, y = rng.normal(size=(25, 3)), rng.normal(size=(20, 3))
        p = mmd_test(x, y, median_bandwidth(x), permutations=39, seed=t).pvalue
        hits += p <= 0.05
        low += p <= 0.25
    # level 0.05 and 0.25 (multiples of 1/40): binomial(300, p) within ~3.5 standard deviations
    assert abs(hits - 15) <= 3.5 * math.sqrt(300 * 0.05 * 0.95)
    assert abs(low - 75) <= 3.5 * math.sqrt(300 * 0.25 * 0.75)


def test_mmd_detects_a_shift_and_cosine_distance() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 16)), rng.normal(0.3, 1.0, size=(150, 16))
    assert mmd_test(x, y, median_bandwidth(x), permutations=100).pvalue < 0.02
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert cosine_distance(a, b) == pytest.approx(1.0)
    assert cosine_distance(a, 3 * a) == pytest.approx(0.0)
    assert math.isnan(cosine_distance(a, np.zeros(2)))


def _vectors(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(4, d))
    center = np.random.default_rng(98).normal(1.0, 1.0, size=d)  # embeddings are not centred
    moved = np.where(np.arange(d) % 2 == 0, shift, -shift)
    return rng.normal(size=(n, 4)) @ basis + rng.normal(0, 0.3, size=(n, d)) + center + moved


def _table(n: int, seed: int, shift: float = 0.0, fixed: bool = True) -> pa.Table:
    d = 16
    vec = _vectors(n, d, seed, shift)
    typ = pa.list_(pa.float32(), d) if fixed else pa.list_(pa.float64())
    x = np.random.default_rng(seed + 1).normal(size=n)
    return pa.table({"x": x, "emb": pa.array(list(vec), type=typ)})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BaselineProfile]:
    d = tmp_path_factory.mktemp("emb")
    ref = write(_table(6000, seed=1), d / "ref.parquet")
    prof = d / "p.json"
    assert main(["baseline", "build", str(ref), "-o", str(prof), "--no-progress",
                 "--mmd-sample", "400"]) == 0
    return d, BaselineProfile.load(prof)


def test_fixed_size_list_is_detected_and_profiled(built: tuple[Path, BaselineProfile]) -> None:
    _, prof = built
    e = prof.embeddings["emb"]
    assert e.dim == 16 and e.count == 6000 and len(e.components) == 5
    assert e.sample_array().shape == (400, 16)
    assert [n for n in prof.features if n.startswith("emb.")] == [f"emb.pc{i}" for i in range(1, 6)]
    assert prof.input_features == ("x",)
    assert prof.multivariate is None  # one tabular feature: nothing joint to model
    # the first component is the direction of the largest reference variance
    vec = _vectors(6000, 16, 1)
    top = np.linalg.eigh(np.cov(vec.T))[1][:, -1]
    assert abs(float(np.dot(top, e.components[0]))) == pytest.approx(1.0, abs=1e-3)
    assert e.bandwidth == pytest.approx(median_bandwidth(e.sample_array()))


def test_analyze_reports_embedding_drift(built: tuple[Path, BaselineProfile],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d, _ = built
    same = write(_table(2000, seed=5, fixed=False), d / "same.parquet")
    moved = write(_table(2000, seed=6, shift=0.4), d / "moved.parquet")
    docs = []
    for data in (same, moved):
        main(["analyze", "--baseline", str(d / "p.json"), str(data), "--window-size", "1000",
              "--format", "json"])
        docs.append(json.loads(capsys.readouterr().out))
    for w in docs[0]["windows"]:
        f = w["features"]["emb"]
        assert f["type"] == "embedding" and f["drifted"] is False and f["mmd_pvalue"] > 0.05
        assert f["mmd_window"] == 250 and f["mmd_reference"] == 400 and f["n"] == 1000
        assert not w["features"]["emb.pc1"]["drifted"]
    for w in docs[1]["windows"]:
        f = w["features"]["emb"]
        assert f["drifted"] is True and f["mmd_pvalue"] < 0.05
        assert f["cosine_distance"] > docs[0]["windows"][0]["features"]["emb"]["cosine_distance"]
        assert w["drifted"] is True


def test_bad_vectors_offline_are_errors_naming_the_column(tmp_path: Path,
                                                         built: tuple[Path, BaselineProfile]) -> None:
    rows = [[1.0, 2.0, 3.0], [1.0, 2.0], None]
    bad = write(pa.table({"x": [1.0, 2.0, 3.0], "emb": pa.array(rows, pa.list_(pa.float64()))}),
                tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="different lengths") as e:
        build_profile(discover([str(bad)]), BuildOptions(embeddings=("emb",)))
    assert e.value.column == "emb" and "same length" in str(e.value)
    nan = write(pa.table({"x": [1.0, 2.0], "emb": pa.array([[1.0, math.nan], [1.0, 2.0]],
                                                            pa.list_(pa.float64()))}),
                tmp_path / "nan.parquet")
    with pytest.raises(InputError, match="NaN") as e:
        build_profile(discover([str(nan)]), BuildOptions(embeddings=("emb",)))
    assert e.value.column == "emb"
    _, prof = built
    short = write(pa.table({"x": [1.0], "emb": pa.array([[0.0] * 15], pa.list_(pa.float64()))}),
                  tmp_path / "short.parquet")
    from driftline.analyze.offline import analyze

    with pytest.raises(InputError, match="15 elements") as e:
        list(analyze(prof, discover([str(short)]), window_size=10))
    assert e.value.column == "emb"


def test_live_bad_vectors_are_counted_missing_and_nothing_else_is_lost(
        built: tuple[Path, BaselineProfile]) -> None:
    _, prof = built
    good = _vectors(60, 16, 8)
    recs = [{"features": {"x": float(i), "emb": good[i].tolist()}} for i in range(60)]
    recs[3]["features"]["emb"] = [1.0] * 15              # wrong length
    recs[4]["features"]["emb"] = [math.nan] + [0.0] * 15  # NaN inside
    recs[5]["features"]["emb"] = "not a vector"
    recs[6]["features"]["emb"] = None                    # missing
    batch = from_records(prof, recs)
    assert batch.features["emb"].shape == (60, 16)
    mon = Monitor(prof, window=WindowPolicy(records=60, max_age=None), clock=None)
    (w,) = mon.observe(batch)
    e = w.embeddings["emb"]
    assert (e.n, e.n_missing) == (56, 4)
    assert w.features["x"].n == 60 and w.features["x"].n_missing == 0
    assert w.features["emb.pc1"].n == 56
    assert mon.snapshot().quantile_rank["emb.pc1"].count == 56
    mat, invalid = vector_column([[1.0, 2.0], [1.0], None, [math.inf, 0.0]], 2)
    assert invalid == 2 and np.isnan(mat[1:]).all() and mat[0].tolist() == [1.0, 2.0]


def test_profile_round_trip_keeps_the_embedding(built: tuple[Path, BaselineProfile],
                                                tmp_path: Path) -> None:
    _, prof = built
    prof.save(tmp_path / "again.json")
    back = BaselineProfile.load(tmp_path / "again.json")
    assert back == prof and back.id == prof.id
    np.testing.assert_array_equal(back.embeddings["emb"].sample_array(),
                                  prof.embeddings["emb"].sample_array())
