"""Spark engine in local mode against the single-machine build and analysis of the same data.

One SparkSession (local[2], 4 shuffle partitions) for the module. The reference has 40k rows in
4 partitions: more than the sketch's k = 16384 values per column, so both builds compact and the
merged sketch path is exercised, and more than ``summary_size`` so the KS summary is a grid."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_fixtures import assert_json_close
from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from driftline import spark as dlspark
from driftline.analyze.offline import analyze as analyze_files
from driftline.cli import main
from driftline.errors import InputError
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile, NumericFeature, decode_array

N = 40_000
OPTS = BuildOptions(prediction="pred", proba_binary="p", target="y", timestamp="ts",
                    summary_size=2_000, model_name="m")


def _table(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    z = rng.exponential(3.0, n)
    c = rng.choice(["red", "green", "blue", "teal"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    c[rng.random(n) < 0.01] = None
    p = 1 / (1 + np.exp(-2 * np.nan_to_num(x)))
    y = (rng.random(n) < p).astype(np.int64)
    pred = (p > 0.5).astype(np.int64)
    ts = pa.array((1_700_000_000 + np.arange(n) * 0.5 * 1e6).astype("int64") * 1,
                  pa.timestamp("us", tz="UTC"))
    return pa.table({"x": x, "z": z, "c": pa.array(c, pa.string()), "p": p, "y": y,
                     "pred": pred, "ts": ts})


def _start_spark(attempts: int = 3) -> SparkSession:
    """A local[2] session. Its JVM is started again (up to ``attempts`` times) when it exits
    before it answers: seen once on a loaded 2-core machine, with nothing printed, and the next
    start worked; a module-scoped fixture that fails errors every test of the file."""
    for attempt in range(1, attempts + 1):
        try:
            return (SparkSession.builder.master("local[2]").appName("driftline-tests")
                    .config("spark.sql.shuffle.partitions", "4")
                    .config("spark.ui.enabled", "false")
                    .config("spark.sql.session.timeZone", "UTC")
                    .config("spark.driver.memory", "1g")
                    .getOrCreate())
        except PySparkRuntimeError as exc:
            if "JAVA_GATEWAY_EXITED" not in str(exc) or attempt == attempts:
                raise
            print(f"Spark's JVM exited before it answered (attempt {attempt}); starting it again",
                  file=sys.stderr)
            time.sleep(2.0)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors: this venv
    session = _start_spark()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("spark")
    ref, cur = d / "ref.parquet", d / "cur.parquet"
    pq.write_table(_table(N, 1), ref, row_group_size=10_000)  # 4 row groups → 4 partitions
    current = _table(8_000, 2, shift=0.3)
    y = current.column("y").to_numpy().copy()
    y[3100:3110] = 7  # a label the reference never had: a data-quality note of its window
    current = current.set_column(current.schema.get_field_index("y"), "y", pa.array(y))
    pq.write_table(current, cur, row_group_size=2_000)
    return {"ref": ref, "cur": cur, "dir": d}


def test_spark_baseline_equals_the_single_machine_one(spark: SparkSession,
                                                      data: dict[str, Path]) -> None:
    spark.conf.set("spark.sql.files.maxPartitionBytes", "400000")  # parts in file order
    try:
        df = spark.read.parquet(str(data["ref"]))
        assert df.rdd.getNumPartitions() >= 3
        ours = dlspark.build_baseline(df, OPTS, name="ref")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    one = build_profile(discover([str(data["ref"])]), OPTS)
    # the PCA reconstruction model: the same rows in the same order give the same model,
    # block errors and sample (sums added in another order: float rounding only)
    ma, mb = ours.multivariate, one.multivariate
    assert ma is not None and mb is not None
    assert (ma.features, ma.block_size, ma.block_counts, ma.impute, ma.encodings) == \
        (mb.features, mb.block_size, mb.block_counts, mb.impute, mb.encodings)
    for x, y in ((ma.mean, mb.mean), (ma.scale, mb.scale), (ma.components, mb.components),
                 (ma.explained, mb.explained), (ma.block_errors, mb.block_errors)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(decode_array(ma.sample), decode_array(mb.sample))
    assert ours.n_records == one.n_records == N
    assert ours.sources == ("ref",)
    assert ours.provenance["content_hash"] == one.provenance["content_hash"]  # same rows
    eps = ours.settings["quantile_rank_error"]
    assert 0 < eps < 0.002
    ref = pq.read_table(data["ref"])
    for name in ("x", "z"):
        a, b = ours.features[name], one.features[name]
        assert isinstance(a, NumericFeature) and isinstance(b, NumericFeature)
        assert (a.count, a.missing_ratio, a.minimum, a.maximum) == \
            (b.count, b.missing_ratio, b.minimum, b.maximum)
        assert a.mean == pytest.approx(b.mean, rel=1e-12) and a.std == pytest.approx(b.std)
        values = ref.column(name).to_numpy(zero_copy_only=False)
        values = np.sort(values[np.isfinite(values)])
        for probs, got in ((np.arange(1, 10) / 10, a.edges),
                           ((np.arange(2000) + 0.5) / 2000, a.summary)):
            g = np.asarray(got)
            assert np.all(np.searchsorted(values, g, "left") / len(values) <= probs + eps)
            assert np.all(np.searchsorted(values, g, "right") / len(values) >= probs - eps)
    assert ours.features["c"] == one.features["c"]  # categories and missing ratio exactly
    assert ours.output is not None and one.output is not None
    assert ours.output.prediction == one.output.prediction
    assert ours.output.class_proportions == one.output.class_proportions
    assert ours.output.reference_accuracy == one.output.reference_accuracy


def test_tree_merge_combines_partitions_in_order(spark: SparkSession) -> None:
    """A merge that is not commutative (concatenation) gives the partition order at every
    tree depth: no level combines states in shuffle fetch order."""
    from driftline.spark.build import _tree_merge

    rdd = spark.sparkContext.parallelize([b"%d," % i for i in range(11)], 11)
    want = b"".join(b"%d," % i for i in range(11))
    for depth in (1, 2, 4):
        assert _tree_merge(rdd, depth, merge=lambda a, b: a + b) == want, depth


def test_partitionings_and_merge_trees_give_the_one_pass_profile(
        spark: SparkSession, tmp_path: Path) -> None:
    """More labelled rows than ``calibration_rows`` (the stride sample is thinned in each
    partition and in the merges) and few enough values for exact sketches: 1 partition, or 6
    merged by a tree of depth 1 or 3, all give the local profile (moments up to rounding)."""
    path = tmp_path / "small.parquet"
    pq.write_table(_table(9_000, 5), path, row_group_size=1_500)
    opts = BuildOptions(prediction="pred", proba_binary="p", target="y", model_name="m",
                        calibration_rows=700, multivariate=False)
    one = build_profile(discover([str(path)]), opts)
    builds = []
    for part_bytes, depth in (("64m", 2), ("20000", 1), ("20000", 3)):
        spark.conf.set("spark.sql.files.maxPartitionBytes", part_bytes)
        try:
            df = spark.read.parquet(str(path))
            builds.append((df.rdd.getNumPartitions(),
                           dlspark.build_baseline(df, opts, name="t", depth=depth)))
        finally:
            spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert builds[0][0] == 1 and builds[1][0] >= 4
    for _, ours in builds:
        assert ours.settings == one.settings and ours.settings["calibration_rows"] <= 700
        assert ours.output is not None and one.output is not None
        assert ours.output.calibration == one.output.calibration
        assert ours.output.reference_performance == one.output.reference_performance
        assert ours.output.prediction == one.output.prediction
        pairs = [(ours.features[n], f) for n, f in one.features.items()]
        for g, f in [*pairs, (ours.output.confidence, one.output.confidence)]:
            if isinstance(f, NumericFeature):
                assert isinstance(g, NumericFeature)
                assert (g.edges, g.proportions, g.count, g.minimum) == \
                    (f.edges, f.proportions, f.count, f.minimum)
                assert np.array_equal(g.summary, f.summary)
                assert g.mean == pytest.approx(f.mean, rel=1e-12)
                assert g.std == pytest.approx(f.std, rel=1e-12)
            else:
                assert g == f


def test_embedding_and_text_parts_equal_the_single_machine_build(
        spark: SparkSession, tmp_path: Path) -> None:
    """An embedding column (null vectors among them) and a text column (nulls too), 4 row
    groups read as several partitions: the same counts, vocabulary and MMD sample as one pass,
    the PCA of the vectors within 1e-9, the derived features' bins within 1e-9 (projections)
    or exactly (text descriptors: the same tokens and vocabulary)."""
    rng = np.random.default_rng(11)
    n = 6_000
    vecs = rng.normal(size=(n, 5)) * [3.0, 2.0, 1.5, 1.0, 0.5] + 4.0
    emb = pa.array([None if i % 37 == 5 else v.tolist() for i, v in enumerate(vecs)],
                   pa.list_(pa.float64()))
    words = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])
    txt = pa.array([None if i % 29 == 3 else " ".join(rng.choice(words, 1 + i % 6))
                    for i in range(n)], pa.string())
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"x": rng.normal(size=n), "emb": emb, "txt": txt}), path,
                   row_group_size=1_500)
    opts = BuildOptions(embeddings=("emb",), text=("txt",), mmd_sample=300, vocabulary=5,
                        embedding_components=3, multivariate=False)
    one = build_profile(discover([str(path)]), opts)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "30000")
    try:
        df = spark.read.parquet(str(path))
        assert df.rdd.getNumPartitions() >= 3
        ours = dlspark.build_baseline(df, opts, name="t")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    a, b = ours.embeddings["emb"], one.embeddings["emb"]
    assert (a.dim, a.count, a.missing_ratio) == (b.dim, b.count, b.missing_ratio)
    assert b.count == n - len(range(5, n, 37))
    for x, y in ((a.mean, b.mean), (a.components, b.components), (a.explained, b.explained)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(decode_array(a.sample), decode_array(b.sample))
    assert len(decode_array(a.sample)) == 300 and a.bandwidth == b.bandwidth
    assert ours.text == one.text and ours.text["txt"].vocabulary
    assert ours.features.keys() == one.features.keys()
    for name, f in one.features.items():
        g = ours.features[name]
        assert isinstance(f, NumericFeature) and isinstance(g, NumericFeature)
        assert (g.count, g.missing_ratio, len(g.edges)) == (f.count, f.missing_ratio,
                                                            len(f.edges)), name
        exact = name.startswith("txt.") or name == "x"
        tol = 0.0 if exact else 1e-9
        np.testing.assert_allclose(g.edges, f.edges, rtol=tol, atol=tol)
        np.testing.assert_allclose(g.proportions, f.proportions, rtol=tol, atol=tol)
        assert g.mean == pytest.approx(f.mean, rel=1e-9, abs=1e-12), name


def test_spark_windows_equal_the_single_machine_windows(spark: SparkSession,
                                                        data: dict[str, Path]) -> None:
    """Windows within a partition are computed where they are, windows straddling partitions
    (row groups of 2000 rows here) are shuffled: both must give the CLI's windows."""
    profile = build_profile(discover([str(data["ref"])]), OPTS)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "40000")  # one row group each
    try:
        cur = spark.read.parquet(str(data["cur"]))
        assert cur.rdd.getNumPartitions() > 2
        _same_windows(cur, profile, data)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def _same_windows(cur: object, profile: BaselineProfile, data: dict[str, Path]) -> None:
    for kwargs in ({"window_duration": 900.0, "window_size": 700}, {"window_size": 2500},
                   {"window_duration": 300.0}):
        ours = list(dlspark.analyze(cur, profile, **kwargs))  # type: ignore
        size = int(kwargs.get("window_size", 2**62))
        theirs = list(analyze_files(profile, discover([str(data["cur"])]), window_size=size,
                                    window_duration=kwargs.get("window_duration")))
        assert [w.records for w in ours] == [w.records for w in theirs], kwargs
        assert len(ours) > 2
        for a, b in zip(ours, theirs, strict=True):
            assert (a.index, a.start, a.end, a.drifted) == (b.index, b.start, b.end, b.drifted)
            assert a.data_quality == b.data_quality
            for name, fa in a.features.items():
                fb = b.features[name]
                assert fa.psi == pytest.approx(fb.psi, abs=1e-9), name
                assert fa.n == fb.n and fa.n_missing == fb.n_missing
                if fa.type == "numeric":
                    assert fa.ks_statistic == pytest.approx(fb.ks_statistic, abs=1e-9)
                else:
                    assert fa.chi2_statistic == pytest.approx(fb.chi2_statistic, abs=1e-9)
            assert a.performance.accuracy == b.performance.accuracy
            assert a.performance.estimated_accuracy == pytest.approx(
                b.performance.estimated_accuracy, abs=1e-9)


def test_window_id_column_cuts_windows(spark: SparkSession, data: dict[str, Path]) -> None:
    profile = build_profile(discover([str(data["ref"])]), OPTS)
    from pyspark.sql import functions as F

    cur = spark.read.parquet(str(data["cur"])).withColumn(
        "day", F.when(F.col("z") > 3, F.lit("b")).otherwise(F.lit("a")))
    ours = list(dlspark.analyze(cur, profile, window_column="day"))
    assert [w.index for w in ours] == [0, 1]
    z = pq.read_table(data["cur"]).column("z").to_numpy()
    assert ours[1].records == int(np.sum(z > 3))
    assert ours[0].records + ours[1].records == len(z)


def test_wrong_spark_column_type_names_the_column(spark: SparkSession,
                                                  data: dict[str, Path]) -> None:
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(data["ref"])).withColumn("p", F.col("p").cast("string"))
    with pytest.raises(InputError, match=r"column 'p'.*not a number.*fix"):
        dlspark.build_baseline(df, OPTS, name="tbl")
    profile = build_profile(discover([str(data["ref"])]), OPTS)
    bad = spark.read.parquet(str(data["cur"])).withColumn("x", F.col("x").cast("string"))
    with pytest.raises(InputError, match=r"tbl: column 'x'.*numeric.*fix"):
        list(dlspark.analyze(bad, profile, window_size=100, name="tbl"))


def test_cli_engine_spark_writes_the_same_files(spark: SparkSession, data: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = data["dir"]
    args = ["--prediction", "pred", "--proba", "p", "--target", "y", "--timestamp", "ts",
            "--summary-size", "2000", "--model-name", "m"]
    assert main(["baseline", "build", str(data["ref"]), "-o", str(d / "s.json"),
                 "--engine", "spark", *args]) == 0
    assert main(["baseline", "build", str(data["ref"]), "-o", str(d / "l.json"), *args]) == 0
    s, l_ = BaselineProfile.load(d / "s.json"), BaselineProfile.load(d / "l.json")
    assert s.features["c"] == l_.features["c"] and s.n_records == l_.n_records
    for engine in ("spark", "local"):
        assert main(["analyze", str(data["cur"]), "--baseline", str(d / "l.json"),
                     "--window-duration", "30m", "--engine", engine,
                     "-o", str(d / f"{engine}.json")]) == 0
    a = json.loads((d / "spark.json").read_text())
    b = json.loads((d / "local.json").read_text())
    assert a["baseline"] == b["baseline"]
    assert [w["records"] for w in a["windows"]] == [w["records"] for w in b["windows"]]
    assert a["windows"][0]["features"]["c"]["psi"] == pytest.approx(
        b["windows"][0]["features"]["c"]["psi"], abs=1e-9)


def test_cli_domain_classifier_on_spark_gives_the_cli_json(
        spark: SparkSession, data: dict[str, Path], tmp_path: Path) -> None:
    """``--domain-classifier`` with ``--engine spark``: each window's classifier is seeded by
    its global index, so time windows split by a size limit and windows shuffled across the
    partitions' boundaries give the CLI's AUC; the whole JSON equal within 1e-9."""
    base = tmp_path / "b.json"
    build_profile(discover([str(data["ref"])]), OPTS).save(base)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "40000")  # windows straddle partitions
    try:
        for engine in ("spark", "local"):
            assert main(["analyze", str(data["cur"]), "--baseline", str(base),
                         "--window-duration", "30m", "--window-size", "1500",
                         "--domain-classifier", "--engine", engine,
                         "-o", str(tmp_path / f"{engine}.json")]) == 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    a = json.loads((tmp_path / "spark.json").read_text())
    b = json.loads((tmp_path / "local.json").read_text())
    aucs = [w["multivariate"]["domain_classifier_auc"] for w in b["windows"]]
    assert len(aucs) >= 4 and all(0.4 < x <= 1.0 for x in aucs)
    assert_json_close(a, b, abs=1e-9)


def test_driver_receives_one_state_whatever_the_partitions(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every collect of a build (PCA model included) is counted in pickled bytes: from 1 to
    6+ partitions the driver receives one merged state per pass and a row count per partition,
    never a state per partition. Partitions of odd row counts: the multivariate model is still
    the one-pass one (even and odd rows counted from each partition's first global row)."""
    import pickle

    from pyspark import RDD
    from pyspark.sql import DataFrame

    collected: list[int] = []
    for cls in (RDD, DataFrame):
        def counting(self: object, _orig: object = cls.collect) -> list[object]:
            out = _orig(self)  # type: ignore[operator]
            collected.append(sum(len(pickle.dumps(r)) for r in out))
            return out
        monkeypatch.setattr(cls, "collect", counting)
    path = tmp_path / "odd.parquet"
    pq.write_table(_table(9_001, 6), path, row_group_size=1_501)  # odd-sized partitions
    opts = BuildOptions(prediction="pred", proba_binary="p", target="y", model_name="m",
                        multivariate=True)
    one = build_profile(discover([str(path)]), opts)
    received, builds = {}, []
    for part_bytes in ("64m", "20000"):
        spark.conf.set("spark.sql.files.maxPartitionBytes", part_bytes)
        try:
            df = spark.read.parquet(str(path))
            collected.clear()
            builds.append(dlspark.build_baseline(df, opts, name="t"))
            received[df.rdd.getNumPartitions()] = sum(collected)
        finally:
            spark.conf.unset("spark.sql.files.maxPartitionBytes")
    (p1, one_part), (pn, many) = sorted(received.items())
    assert p1 == 1 and pn >= 6
    # the row counts add ~40 bytes per partition; a state per partition would add kBs each
    assert many - one_part < 200 * pn, received
    for ours in builds:
        ma, mb = ours.multivariate, one.multivariate
        assert ma is not None and mb is not None
        for x, y in ((ma.components, mb.components), (ma.block_errors, mb.block_errors)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)
