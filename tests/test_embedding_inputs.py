"""Embedding inputs of the sidecar: `models[].embeddings` maps a request field (OIP v2 tensor,
ingest or SDK feature) onto the baseline's embedding column, `drift.embedding_*` bound the MMD
test and run it on every k-th window only. Checked through a real `driftline serve` (a v2
`[n, d]` tensor under another name through the proxy, /ingest with bad vectors) and against the
same monitor without the option; bad config is an error naming file, key and fix."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _servers import LoopbackHTTPServer, QuietHandler
from engine_fixtures import write

from driftline.cli import main
from driftline.collectors.payloads import ModelSchema, parse_v2
from driftline.collectors.sidecar import Sidecar, load_models
from driftline.config import EmbeddingInput, config_from_dict, load_config
from driftline.engine.derived import EmbeddingPolicy
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import from_records
from driftline.errors import ConfigError, InputError
from driftline.profile.format import BaselineProfile
from driftline_demo.stack import free_port, start_process

D = 16
PCS = [f"emb.pc{i}" for i in range(1, 6)]


def _vectors(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(4, D))
    moved = np.where(np.arange(D) % 2 == 0, shift, -shift)  # not along the mean: cosine sees it
    return rng.normal(size=(n, 4)) @ basis + rng.normal(0, 0.3, size=(n, D)) + 1.0 + moved


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("embin")
    n = 3000
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(size=n), "pred": rng.integers(0, 2, n),
                      "emb": pa.array(list(_vectors(n, 1)), type=pa.list_(pa.float32(), D))})
    ref = write(table, d / "ref.parquet")
    out = d / "baseline.json"
    assert main(["baseline", "build", str(ref), "-o", str(out), "--prediction", "pred",
                 "--model-name", "ranker", "--no-progress", "--mmd-sample", "300"]) == 0
    return out


def _config(baseline: Path, extra: str = "", embeddings: str | None = None) -> str:
    emb = embeddings if embeddings is not None else (
        "    embeddings:\n      - input: query_vec\n        column: emb\n        dim: 16\n")
    return (f"models:\n  - name: ranker\n    baseline: {baseline}\n{emb}{extra}")


# --- config ------------------------------------------------------------------------------------

def test_config_keys_parse_and_reach_the_monitor(baseline: Path, tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(_config(baseline, "drift:\n  embedding_window_sample: 40\n"
                            "  embedding_reference_sample: 60\n  embedding_permutations: 30\n"
                            "  embedding_mmd_every: 3\n  alpha: 0.01\n"))
    cfg = load_config(path, environ={})
    assert cfg.models[0].embeddings == (EmbeddingInput("query_vec", "emb", 16),)
    sc = Sidecar.from_config(cfg)
    (mon,) = sc.monitors()
    assert isinstance(mon, Monitor) and mon._derived is not None
    assert mon._derived.policy == EmbeddingPolicy(40, 60, 30, 0.01, 3)
    assert len(mon._derived.embeddings["emb"].sample) == 60
    assert sc.entries[0].schema.inputs == {"query_vec": "emb"}
    # defaults when nothing is said; the environment can set each key
    cfg = load_config(path, environ={"DRIFTLINE_DRIFT_EMBEDDING_MMD_EVERY": "5",
                                     "DRIFTLINE_MODELS_0_EMBEDDINGS_0_DIM": "16"})
    assert cfg.drift.embedding_mmd_every == 5 and cfg.drift.embedding_window_sample == 40
    default = config_from_dict({"models": [{"name": "m", "baseline": "b.json"}]},
                               check_files=False, environ={})
    assert (default.drift.embedding_window_sample, default.drift.embedding_reference_sample,
            default.drift.embedding_permutations, default.drift.embedding_mmd_every) == (
                250, 500, 100, 1)
    assert default.models[0].embeddings == ()


@pytest.mark.parametrize(("embeddings", "extra", "key", "words"), [
    ("    embeddings:\n      - input: query_vec\n        column: emb\n        dim: 384\n", "",
     "models.0.embeddings.0.dim", ["dim 384", "16-dimensional", "set dim: 16"]),
    ("    embeddings:\n      - input: query_vec\n        column: embb\n        dim: 16\n", "",
     "models.0.embeddings.0.column", ["'embb'", "did you mean 'emb'", "columns of this baseline: emb"]),
    ("    embeddings:\n      - input: x\n        column: emb\n        dim: 16\n", "",
     "models.0.embeddings.0.input", ["'x' is also a feature"]),
    ("    embeddings:\n      - input: q\n        column: emb\n", "",
     "models.0.embeddings.0.dim", ["no dim", "add dim:"]),
    ("    embeddings:\n      - input: q\n        column: emb\n        dim: sixteen\n", "",
     "models.0.embeddings.0.dim", ["expected an integer"]),
    ("    embeddings:\n      - input: q\n        colum: emb\n        dim: 16\n", "",
     "models.0.embeddings.0.colum", ["unknown key", "did you mean 'column'"]),
    ("    embeddings:\n      - {input: q, column: emb, dim: 16}\n"
     "      - {input: q, column: emb, dim: 16}\n", "",
     "models.0.embeddings.1.input", ["declared twice"]),
    ("    embeddings: query_vec\n", "", "models.0.embeddings", ["expected a list"]),
    (None, "drift:\n  embedding_mmd_every: 0\n", "drift.embedding_mmd_every", ["at least 1"]),
    (None, "drift:\n  embedding_window_sample: 1\n", "drift.embedding_window_sample",
     ["at least 2"]),
])
def test_bad_embedding_config_names_file_key_and_fix(
        baseline: Path, tmp_path: Path, embeddings: str | None, extra: str, key: str,
        words: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_config(baseline, extra, embeddings))
    with pytest.raises(ConfigError) as e:
        load_models(load_config(path, environ={}))
    assert e.value.key == key, str(e.value)
    assert str(path) in str(e.value) and "fix:" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_cli_check_refuses_a_wrong_dimension(baseline: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_config(baseline).replace("dim: 16", "dim: 15"))
    r = subprocess.run([sys.executable, "-m", "driftline", "serve", "--config", str(path),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout
    assert "models.0.embeddings.0.dim" in r.stderr and "set dim: 16" in r.stderr


def test_renamed_tensor_and_field_feed_the_embedding(baseline: Path) -> None:
    prof = BaselineProfile.load(baseline)
    schema = ModelSchema(prof, embedding_inputs={"query_vec": "emb"})
    vec = _vectors(3, 5)
    req = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]},
                      {"name": "query_vec", "shape": [3, D], "datatype": "FP32",
                       "data": vec.ravel().tolist()}]}
    batch = parse_v2(schema, req)
    np.testing.assert_allclose(batch.features["emb"], vec)
    assert batch.features["x"].tolist() == [1.0, 2.0, 3.0]
    # the lone tensor, and the column's own name, still work
    alone = parse_v2(schema, {"inputs": [req["inputs"][1]]})
    np.testing.assert_allclose(alone.features["emb"], vec)
    own = parse_v2(schema, {"inputs": [dict(req["inputs"][1], name="emb")]})
    np.testing.assert_allclose(own.features["emb"], vec)
    # without the mapping the tensor feeds nothing (the monitor counts the embedding missing)
    plain = ModelSchema(prof)
    assert "emb" not in parse_v2(plain, req).features
    # row objects and v1 columnar inputs
    rows = schema.from_rows([{"x": 1.0, "query_vec": vec[0].tolist()}])
    np.testing.assert_allclose(rows["emb"][0], vec[0])
    cols, n = schema.from_columns({"x": [1.0, 2.0], "query_vec": vec[:2].tolist()})
    assert n == 2
    np.testing.assert_allclose(cols["emb"], vec[:2])
    with pytest.raises(ValueError, match="not embedding features"):
        ModelSchema(prof, embedding_inputs={"q": "x"})


# --- every k-th window ---------------------------------------------------------------------

def test_mmd_every_k_repeats_the_last_test_and_matches_the_full_run(baseline: Path) -> None:
    """Windows 0, 3, 6 are tested exactly as with the test on every window (same samples and
    seed); the ones between repeat the last result with its age, while the cosine distance and
    the projections are computed on every window."""
    prof = BaselineProfile.load(baseline)
    shifts = [0.0, 0.0, 0.6, 0.6, 0.0, 0.0, 0.6]
    xs = np.random.default_rng(2).normal(size=(len(shifts), 200))
    batches = [from_records(prof, [{"features": {"x": float(x), "emb": v.tolist()}}
                                   for x, v in zip(xs[i], _vectors(200, 10 + i, s), strict=True)])
               for i, s in enumerate(shifts)]
    reports = {}
    for k in (1, 3):
        mon = Monitor(prof, window=WindowPolicy(records=200, max_age=None, min_records=100),
                      clock=None, embedding=EmbeddingPolicy(mmd_every=k))
        reports[k] = [w for b in batches for w in mon.observe(b)]
    every, sparse = reports[1], reports[3]
    assert len(every) == len(sparse) == 7
    assert [w.embeddings["emb"].mmd_age for w in sparse] == [0, 1, 2, 0, 1, 2, 0]
    assert [w.embeddings["emb"].mmd_age for w in every] == [0] * 7
    drifted = [w.embeddings["emb"].drifted for w in every]
    assert not drifted[0] and all(d for d, s in zip(drifted, shifts, strict=True) if s > 0)
    for i, w in enumerate(sparse):
        e, full = w.embeddings["emb"], every[i].embeddings["emb"]
        tested = every[i - i % 3].embeddings["emb"]
        assert (e.mmd, e.mmd_pvalue, e.drifted) == (tested.mmd, tested.mmd_pvalue, tested.drifted)
        assert e.cosine_distance == full.cosine_distance and e.n == full.n
        for pc in PCS:
            assert w.features[pc].psi == every[i].features[pc].psi
        assert w.drifted == (e.drifted or any(f.drifted for f in w.features.values()))
    # window 2 moved but repeats window 0's test: only the cheap signals see it there
    assert not sparse[2].embeddings["emb"].drifted
    assert any(sparse[2].features[pc].drifted for pc in PCS)
    assert not any(sparse[1].features[pc].drifted for pc in PCS)
    assert sparse[3].embeddings["emb"].drifted and sparse[3].embeddings["emb"].mmd_age == 0
    assert json.loads(json.dumps(sparse[4].embeddings["emb"].to_dict()))["mmd_age"] == 1
    with pytest.raises(ValueError, match="at least 1"):
        EmbeddingPolicy(mmd_every=0)


# --- a real driftline serve ----------------------------------------------------------------------

class _Model:
    """An OIP v2 model server that predicts 0 for every row (loopback only)."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                doc = json.loads(self.body())
                n = doc["inputs"][0]["shape"][0]
                self.reply_json(200, {"outputs": [{"name": "predict", "shape": [n],
                                                   "datatype": "INT64", "data": [0] * n}]})

        self.server = LoopbackHTTPServer(Handler)
        self.port = self.server.port

    def close(self) -> None:
        self.server.stop()


def _post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def _series(text: str, name: str, feature: str) -> float | None:
    for ln in text.splitlines():
        if ln.startswith(name + "{") and f'feature="{feature}"' in ln:
            return float(ln.rsplit(" ", 1)[1])
    return None


def _scrape_until(base: str, windows: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        text = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()
        done = [ln for ln in text.splitlines() if ln.startswith("driftline_windows_total{")]
        if done and float(done[0].rsplit(" ", 1)[1]) >= windows:
            return text
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.1)


@pytest.mark.integration
def test_serve_reads_a_renamed_v2_tensor_and_runs_mmd_every_k(baseline: Path,
                                                               tmp_path: Path) -> None:
    model = _Model()
    metrics_port, proxy_port = free_port(), free_port()
    cfg = tmp_path / "driftline.yaml"
    cfg.write_text(_config(baseline, (
        f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n"
        f"proxy:\n  listen: 127.0.0.1:{proxy_port}\n  upstream: http://127.0.0.1:{model.port}\n"
        "windows:\n  records: 200\n  max_age: 1h\n  min_records: 100\n"
        "drift:\n  embedding_mmd_every: 2\n  embedding_window_sample: 150\n"
        "tick_interval: 0.2\n")))
    proc = start_process("driftline-serve", [sys.executable, "-m", "driftline", "serve",
                                             "--config", str(cfg)],
                         ready_url=f"http://127.0.0.1:{metrics_port}/readyz", timeout=60)
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        # window 0: stable vectors as a [n, 16] v2 tensor named query_vec, through the proxy
        vec = _vectors(200, 20)
        req = {"inputs": [
            {"name": "x", "shape": [200], "datatype": "FP64",
             "data": np.random.default_rng(4).normal(size=200).tolist()},
            {"name": "query_vec", "shape": [200, D], "datatype": "FP32",
             "data": vec.tolist()}]}
        assert _post(f"http://127.0.0.1:{proxy_port}/v2/models/ranker/infer", req)[0] == 200
        text = _scrape_until(base, 1)
        p0 = _series(text, "driftline_embedding_mmd_pvalue", "emb")
        c0 = _series(text, "driftline_embedding_cosine_distance", "emb")
        assert p0 is not None and c0 is not None and p0 > 0.05, text[-3000:]
        assert _series(text, "driftline_feature_missing_ratio", "emb") == 0.0
        assert _series(text, "driftline_feature_drifted", "emb") == 0.0
        # windows 1 and 2: moved vectors through /ingest under the same field name, with a
        # vector of the wrong length and one holding NaN: counted missing, nothing else lost
        moved = _vectors(400, 21, shift=0.6)
        recs = [{"model_name": "ranker", "prediction": 0,
                 "features": {"x": float(x), "query_vec": moved[i].tolist()}}
                for i, x in enumerate(np.random.default_rng(5).normal(size=400))]
        recs[5]["features"]["query_vec"] = moved[5, :15].tolist()
        recs[6]["features"]["query_vec"] = [math.nan, *moved[6, 1:].tolist()]
        assert _post(f"{base}/ingest", recs[:200]) == (202, {"accepted": 200})
        text = _scrape_until(base, 2)
        # window 1 skips the test: it repeats window 0's p-value; the cosine distance moved
        assert _series(text, "driftline_embedding_mmd_pvalue", "emb") == p0
        assert _series(text, "driftline_feature_drifted", "emb") == 0.0
        c1 = _series(text, "driftline_embedding_cosine_distance", "emb")
        assert c1 is not None and c1 > 5 * c0
        assert _series(text, "driftline_feature_missing_ratio", "emb") == pytest.approx(0.01)
        assert _series(text, "driftline_feature_missing_ratio", "x") == 0.0
        assert max(_series(text, "driftline_feature_drifted", pc) or 0.0 for pc in PCS) == 1.0
        assert _post(f"{base}/ingest", recs[200:]) == (202, {"accepted": 200})
        text = _scrape_until(base, 3)
        p2 = _series(text, "driftline_embedding_mmd_pvalue", "emb")
        assert p2 is not None and p2 < 0.05
        assert _series(text, "driftline_feature_drifted", "emb") == 1.0
        assert _series(text, "driftline_feature_missing_ratio", "emb") == 0.0
        log = proc.log_text()
    finally:
        rc = proc.stop(timeout=30)
        model.close()
    assert rc == 0, log


# --- bad vectors and text, offline and live ------------------------------------------------------

def test_bad_input_offline_names_column_and_file_row_live_counts_it(tmp_path: Path) -> None:
    """Offline: NaN, a null element or another length inside a vector, and non-UTF-8 text, stop
    analyze naming the file, the column and the file row; a null vector or text is missing. Live
    (the ingest path): the same values count as missing, and nothing else is lost."""
    import pyarrow.parquet as pq

    from driftline.analyze.offline import analyze
    from driftline.collectors.ingest import to_batch
    from driftline.io.readers import discover

    rng = np.random.default_rng(8)
    n = 400
    words = np.array(["good", "bad", "food", "slow"])
    ref = pa.table({"x": rng.normal(size=n),
                    "emb": pa.array(list(rng.normal(size=(n, 4))), pa.list_(pa.float64(), 4)),
                    "review": [" ".join(rng.choice(words, 3)) for _ in range(n)]})
    write(ref, tmp_path / "ref.parquet")
    assert main(["baseline", "build", str(tmp_path / "ref.parquet"), "-o", str(tmp_path / "p.json"),
                 "--no-progress", "--text", "review"]) == 0
    prof = BaselineProfile.load(tmp_path / "p.json")

    def data(vec57: list[float | None] | None, text57: Any, binary: bool = False) -> Path:
        vecs: list[Any] = [list(v) for v in rng.normal(size=(100, 4))]
        texts: list[Any] = ["good food"] * 100
        if binary:
            texts = [t.encode() for t in texts]
        vecs[57], texts[57] = vec57, text57
        t = pa.table({"x": rng.normal(size=100), "emb": pa.array(vecs, pa.list_(pa.float64())),
                      "review": pa.array(texts, pa.binary() if binary else pa.string())})
        path = tmp_path / f"d{len(list(tmp_path.iterdir()))}.parquet"
        pq.write_table(t, path, row_group_size=10)  # the bad row is in a later batch
        return path

    for vec, text, binary, words_ in [
            ([1.0, math.nan, 0.0, 0.0], "ok", False, ["NaN", "(row 57)"]),
            ([1.0, None, 0.0, 0.0], "ok", False, ["null element", "(row 57)"]),
            ([1.0, 2.0, 3.0], "ok", False, ["3 elements", "have 4", "(row 57)"]),
            ([1.0, 2.0, 3.0, 4.0], b"\xff\xfe", True, ["not UTF-8"])]:
        path = data(vec, text, binary)
        with pytest.raises(InputError) as e:
            list(analyze(prof, discover([str(path)]), window_size=50))
        msg = str(e.value)
        assert str(path) in msg and "fix:" in msg, msg
        assert ("'review'" if binary else "'emb'") in msg
        for w in words_:
            assert w in msg
    (w1, w2) = analyze(prof, discover([str(data(None, None))]), window_size=50)
    assert (w2.embeddings["emb"].n_missing, w2.features["review.length_chars"].n_missing) == (1, 1)
    assert w2.features["x"].n_missing == 0 and w1.embeddings["emb"].n_missing == 0
    # live: the same values in /ingest records are missing values of their feature only
    schema = ModelSchema(prof)
    feats: list[dict[str, Any]] = [
        {"x": 0.5, "emb": [1.0, 2.0, 3.0, 4.0], "review": "good"} for _ in range(8)]
    for i, (vec, text) in enumerate([([1.0, math.nan, 0.0, 0.0], None), ([1.0, 2.0], 42),
                                     ([1.0, None, 0.0, 0.0], b"\xff\xfe"), ("x", ["a"])]):
        feats[i] = {"x": 0.5, "emb": vec, "review": text}
    mon = Monitor(prof, window=WindowPolicy(records=8, max_age=None, min_records=1), clock=None)
    (w,) = mon.observe(to_batch(schema, [{"features": f} for f in feats]))
    assert (w.embeddings["emb"].n, w.embeddings["emb"].n_missing) == (4, 4)
    assert w.features["review.length_chars"].n_missing == 4
    assert w.features["x"].n == 8 and w.features["x"].n_missing == 0
