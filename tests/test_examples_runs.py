"""The runnable examples run: the CI data gate's exit codes, and the FastAPI example's service
logging through the real in-process SDK (FastAPI itself only when installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from driftline_demo.data import CATEGORICAL, EMBEDDING, FEATURES, TARGET, generate, records, write_parquet

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def _features(cols: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cols.items() if k != TARGET}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gate")
    ref = write_parquet(d / "reference.parquet", _features(generate(8000, seed=31)))
    out = d / "baseline.json"
    subprocess.run([sys.executable, "-m", "driftline", "baseline", "build", str(ref), "-o", str(out),
                    "--categorical", ",".join(CATEGORICAL), "--model-name", "car-loan"], check=True,
                   capture_output=True)
    return out


def _gate(baseline: Path, data: Path, report_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               WINDOW_SIZE="2000", REPORT_DIR=str(report_dir))
    return subprocess.run(["bash", str(EX / "batch-ci" / "check_drift.sh"), str(baseline), str(data)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_data_gate_passes_a_stable_batch_and_fails_a_drifted_one(baseline: Path, tmp_path: Path) -> None:
    stable = write_parquet(tmp_path / "stable.parquet", _features(generate(4000, seed=32)))
    drifted = write_parquet(tmp_path / "drifted.parquet", _features(generate(4000, seed=33, shift=0.8)))
    ok = _gate(baseline, stable, tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    assert "no drift" in ok.stderr and not (tmp_path / "ok" / "drift-report.html").exists()
    bad = _gate(baseline, drifted, tmp_path / "bad")
    assert bad.returncode == 1, bad.stderr
    report = json.loads((tmp_path / "bad" / "drift-report.json").read_text())
    assert report["windows"] and all(w["drifted"] for w in report["windows"])
    html = (tmp_path / "bad" / "drift-report.html").read_text()
    assert "<svg" in html and "credit_score" in html


def test_data_gate_usage_and_input_errors(baseline: Path, tmp_path: Path) -> None:
    usage = subprocess.run(["bash", str(EX / "batch-ci" / "check_drift.sh")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
    missing = _gate(baseline, tmp_path / "nope.parquet", tmp_path / "x")
    assert missing.returncode == 2, missing.stderr


def _load(name: str, path: Path) -> ModuleType:
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(path.parent))


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_fastapi_example_service_logs_through_the_sdk(tmp_path: Path) -> None:
    train = _load("example_train", EX / "fastapi-sklearn" / "train.py")
    baseline = train.main(tmp_path, rows=4000)
    service_mod = _load("service", EX / "fastapi-sklearn" / "service.py")
    svc = service_mod.LoanService(tmp_path / "model.pkl", baseline, metrics_port=0, window_records=200)
    try:
        rows = records(generate(400, seed=34, shift=0.8))
        answers = [svc.predict(r) for r in rows]
        assert {a["prediction"] for a in answers} <= {0, 1}
        assert all(0.0 <= a["probability_default"] <= 1.0 for a in answers)
        truth = generate(400, seed=34, shift=0.8)[TARGET]
        for a, y in zip(answers, truth.tolist(), strict=True):
            assert svc.feedback(a["id"], y)
        assert svc.monitor.flush(30)
        port = svc.monitor.metrics_port
        deadline = time.monotonic() + 20
        while True:
            text = _scrape(port)
            if 'matched="true"' in text and "driftline_feature_psi{" in text:
                break
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.2)
        assert 'model_name="car-loan"' in text
        psi = {line.split('feature="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line.startswith("driftline_feature_psi{")}
        # the tabular features, plus the projections of the applicant-notes embedding
        assert set(psi) - set(FEATURES) == {f"{EMBEDDING}.pc{i}" for i in range(1, 6)}, sorted(psi)
        assert set(FEATURES) <= set(psi)
        assert psi["credit_score"] > 0.25  # the batch was drifted
    finally:
        svc.close()


def test_fastapi_app_imports_when_fastapi_is_installed() -> None:
    pytest.importorskip("fastapi")
    app = _load("example_app", EX / "fastapi-sklearn" / "app.py")
    paths = {r.path for r in app.app.routes}
    assert {"/predict", "/feedback"} <= paths
