"""`driftline serve` as a real subprocess: a real Prometheus scrapes it while traffic flows through
its proxy to a real scikit-learn model server; SIGTERM closes the open window and flushes OTLP."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _servers import LoopbackHTTPServer, OtlpReceiver, QuietHandler
from sklearn.linear_model import LogisticRegression

from driftline.cli import main as driftline_main
from driftline_demo.stack import find_binary, free_port, start_process, start_prometheus

FEATURES = ("f0", "f1", "f2", "f3")


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


class SklearnServer:
    """A tiny OIP v2 model server around a fitted LogisticRegression (loopback only)."""

    def __init__(self, model: LogisticRegression) -> None:
        model_ref = model

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                doc = json.loads(self.body())
                t = doc["inputs"][0]
                x = np.asarray(t["data"], dtype=float).reshape(t["shape"])
                proba = model_ref.predict_proba(x)
                out = {"model_name": "car-loan", "id": doc.get("id", ""), "outputs": [
                    {"name": "predict", "shape": [len(x)], "datatype": "INT64",
                     "data": proba.argmax(axis=1).tolist()},
                    {"name": "predict_proba", "shape": list(proba.shape), "datatype": "FP64",
                     "data": proba.ravel().tolist()}]}
                self.reply_json(200, out)

        self.server = LoopbackHTTPServer(Handler, start=False)
        self.port = self.server.port

    def __enter__(self) -> SklearnServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogisticRegression, Path]:
    """A model and its baseline, built with `driftline baseline build` from reference data."""
    d = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    proba = model.predict_proba(x)[:, 1]
    rows = ["f0,f1,f2,f3,pred,proba,label"]
    rows += [f"{a},{b},{c},{e},{int(p > 0.5)},{p},{t}"
             for (a, b, c, e), p, t in zip(x.tolist(), proba.tolist(), y.tolist(), strict=True)]
    (d / "ref.csv").write_text("\n".join(rows) + "\n")
    rc = driftline_main(["baseline", "build", str(d / "ref.csv"), "-o", str(d / "baseline.json"),
                         "--prediction", "pred", "--proba", "proba", "--target", "label",
                         "--model-name", "car-loan", "--model-version", "1", "--no-progress"])
    assert rc == 0
    return model, d / "baseline.json"


def write_config(d: Path, baseline: Path, metrics_port: int, proxy_port: int | None,
                 upstream: int | None, records: int, max_age: str) -> Path:
    text = (f"models:\n  - name: car-loan\n    version: \"1\"\n    baseline: {baseline}\n"
            f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n"
            f"windows:\n  records: {records}\n  max_age: {max_age}\n"
            "tick_interval: 0.2\n")
    if proxy_port is not None:
        text += (f"proxy:\n  listen: 127.0.0.1:{proxy_port}\n"
                 f"  upstream: http://127.0.0.1:{upstream}\n")
    path = d / "driftline.yaml"
    path.write_text(text)
    return path


def serve_argv(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "driftline", "serve", "--config", str(cfg)]


def requires(binary: str) -> None:
    try:
        find_binary(binary)
    except Exception as exc:  # the stack helper explains how to install it
        pytest.skip(str(exc))


@pytest.mark.integration
def test_prometheus_scrapes_drift_from_proxied_traffic(
        trained: tuple[LogisticRegression, Path], tmp_path: Path) -> None:
    requires("prometheus")
    model, baseline = trained
    metrics_port, proxy_port = free_port(), free_port()
    with SklearnServer(model) as upstream:
        cfg = write_config(tmp_path, baseline, metrics_port, proxy_port, upstream.port,
                           records=500, max_age="60s")
        sidecar = start_process("driftline-serve", serve_argv(cfg),
                                ready_url=f"http://127.0.0.1:{metrics_port}/readyz", timeout=60)
        try:
            with start_prometheus([f"127.0.0.1:{metrics_port}"]) as prom:
                rng = np.random.default_rng(11)
                for i in range(40):  # 40 requests x 50 records = 2000 records = 4 windows
                    x = rng.normal(size=(50, 4))
                    x[:, 0] += 2.0  # drift in f0 only
                    status, doc = post(
                        f"http://127.0.0.1:{proxy_port}/v2/models/car-loan/infer",
                        {"id": f"r{i}", "inputs": [{"name": "x", "shape": [50, 4],
                                                    "datatype": "FP64",
                                                    "data": x.ravel().tolist()}]})
                    assert status == 200 and doc["outputs"][0]["shape"] == [50]
                prom.wait_for('driftline_windows_total{model_name="car-loan"} >= 4', timeout=60)
                psi = dict((m["feature"], v) for m, v in
                           prom.values('driftline_feature_psi{model_name="car-loan"}'))
                assert set(psi) == set(FEATURES)
                assert psi["f0"] > 0.25, psi  # major drift
                assert max(psi["f1"], psi["f2"], psi["f3"]) < 0.1, psi
                ks = dict((m["feature"], v) for m, v in
                          prom.values('driftline_feature_ks_pvalue{model_name="car-loan"}'))
                assert ks["f0"] < 1e-6
                prom.wait_for('sum(driftline_records_total{source="proxy"}) == 2000', timeout=30)
                buckets = {m["le"]: v for m, v in prom.values(
                    'sum by (le)(driftline_feature_quantile_rank_bucket{feature="f0"})')}
                assert buckets["+Inf"] == 2000
                # shifted by 2 sd: about 76 % of values rank above the reference 90th percentile
                assert buckets["0.9"] / buckets["+Inf"] < 0.4, buckets
                even = {m["le"]: v for m, v in prom.values(
                    'sum by (le)(driftline_feature_quantile_rank_bucket{feature="f1"})')}
                assert 0.44 < even["0.5"] / even["+Inf"] < 0.56, even
                acc = prom.values('driftline_estimated_accuracy{model_name="car-loan"}')
                assert acc and 0.5 <= acc[0][1] <= 1.0
                assert prom.values("driftline_queue_capacity")[0][1] > 0
        finally:
            assert sidecar.stop() == 0, sidecar.log_text()


@pytest.mark.integration
def test_sigterm_closes_window_and_flushes_otlp(trained: tuple[LogisticRegression, Path],
                                                tmp_path: Path) -> None:
    _, baseline = trained
    sink = OtlpReceiver()
    metrics_port = free_port()
    try:
        cfg = write_config(tmp_path, baseline, metrics_port, None, None, records=1000,
                           max_age="1h")
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
               "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
        proc = start_process("driftline-serve", serve_argv(cfg), env=env,
                             ready_url=f"http://127.0.0.1:{metrics_port}/readyz", timeout=60)
        try:
            base = f"http://127.0.0.1:{metrics_port}"
            recs = [{"model_name": "car-loan", "id": f"x{i}", "features": dict(
                zip(FEATURES, np.random.default_rng(i).normal(size=4).tolist(), strict=True)),
                "prediction": i % 2, "probabilities": [0.3, 0.7]} for i in range(37)]
            assert post(f"{base}/ingest", recs) == (202, {"accepted": 37})
            deadline = time.monotonic() + 30
            while True:  # wait until the worker has observed them (records counter)
                text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
                if 'source="ingest"} 37.0' in text:
                    break
                assert time.monotonic() < deadline, text[-2000:]
                time.sleep(0.1)
            windows = [ln for ln in text.splitlines() if ln.startswith("driftline_windows_total{")]
            assert windows and all(ln.endswith(" 0.0") for ln in windows), windows  # still open
            assert max(sink.values("driftline.windows"), default=0) == 0
            log = proc.log_text()
        finally:
            rc = proc.stop(timeout=30)
        assert rc == 0, log
        # the final export carries the window that SIGTERM closed
        assert max(sink.values("driftline.windows")) == 1
        assert sink.values("driftline.window.records")[-1] == 37
    finally:
        sink.stop()
