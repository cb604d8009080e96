"""`driftline demo`: its generated configs pass promtool/amtool, its no-Prometheus fallback fires
the right alerts, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from driftline_demo.scenario import (
    MODEL,
    DemoSettings,
    _direct_alerts,
    actions_config,
    alertmanager_config,
    rules_config,
)


def _m(name: str, value: float, **labels: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], float]:
    lab = {"model_name": MODEL, "model_version": "1", **labels}
    return (name, tuple(sorted(lab.items()))), value


def test_direct_alerts_follow_the_sidecar_gauges() -> None:
    drifted = dict(_m("driftline_feature_drifted", 1.0, endpoint="default", feature=f)
                   for f in ("a", "b", "c"))
    calm = dict(_m("driftline_feature_drifted", 1.0 if f == "a" else 0.0, endpoint="default", feature=f)
                for f in ("a", "b", "c"))
    assert [n for n, _ in _direct_alerts(drifted, "retrain")] == ["DriftlineManyFeaturesDrifting"]
    assert _direct_alerts(calm, "retrain") == []
    def acc(default: float, canary: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return dict([_m("driftline_accuracy", default, endpoint="default"),
                     _m("driftline_accuracy", canary, endpoint="canary")])

    worse, close = acc(0.80, 0.30), acc(0.80, 0.79)
    assert [n for n, _ in _direct_alerts(worse, "rollback")] == ["DriftlineCanaryWorseThanDefault"]
    assert _direct_alerts(close, "rollback") == []


@pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("amtool")),
                    reason="needs promtool and amtool")
def test_demo_rules_and_routes_are_valid_and_route_actions_to_the_receiver(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(yaml.safe_dump(rules_config(DemoSettings(), receiver_url="http://127.0.0.1:9",
                                               token_file=token)))
    subprocess.run([sys.executable, "-m", "driftline", "rules", "generate", "--config", str(cfg),
                    "--output-dir", str(tmp_path / "out")], check=True, capture_output=True)
    rules = tmp_path / "out" / "driftline-rules.yaml"
    done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    groups = yaml.safe_load(rules.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    fors = {name: r["for"] for name, r in alerts.items()}
    assert fors["DriftlineManyFeaturesDrifting"] == "5s" and fors["DriftlineAccuracyDrop"] == "10s"
    assert fors["DriftlineCanaryWorseThanDefault"] == "3s"
    assert alerts["DriftlineManyFeaturesDrifting"]["labels"]["action"] == "retrain"
    assert alerts["DriftlineCanaryWorseThanDefault"]["labels"]["action"] == "rollback"
    assert alerts["DriftlineEstimatedAccuracyDrop"]["labels"]["action"] == "none"

    am = alertmanager_config(tmp_path / "out" / "alertmanager.yaml")
    assert am["route"]["group_wait"] == "1s"
    assert all(r["group_interval"] == "2s" for r in am["route"]["routes"])
    am_file = tmp_path / "am.yml"
    am_file.write_text(yaml.safe_dump(am))
    assert subprocess.run(["amtool", "check-config", str(am_file)], capture_output=True).returncode == 0
    hooks = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert hooks == ["http://127.0.0.1:9/alertmanager"]
    routed = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={am_file}",
                             "alertname=DriftlineManyFeaturesDrifting", "action=retrain"],
                            capture_output=True, text=True).stdout.strip().split(",")
    assert "driftline-actions" in routed


def test_demo_actions_config_loads(tmp_path: Path) -> None:
    from driftline.alertmanager.actions_config import load_config_dict

    for name in ("token", "argo"):
        (tmp_path / name).write_text("x")
    cfg = load_config_dict(actions_config(port=9, database=tmp_path / "a.db", token_file=tmp_path / "token",
                                          argo_url="http://127.0.0.1:1", kserve_url="http://127.0.0.1:2",
                                          argo_token_file=tmp_path / "argo"))
    assert cfg.route_for(MODEL, "retrain").target == "argo-retrain"
    assert cfg.route_for(MODEL, "rollback").target == "kserve-rollback"


def _children_using(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (p / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            pids.append(int(p.name))
    return pids


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-run"
    argv = [sys.executable, "-m", "driftline", "demo", "--no-prometheus", "--workdir", str(workdir)]
    # Ctrl-C as a terminal delivers it: with SIGINT's default action, whatever this test run
    # inherited (a shell starts background jobs with SIGINT ignored, and Python then keeps it so)
    proc = subprocess.Popen(argv,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, COLUMNS="200"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        # wait until the model server and the sidecar run (their command lines name the workdir)
        while len(_children_using(str(workdir))) < 2:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the demo did not start its servers"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert _children_using(str(workdir)) == []


@pytest.mark.skipif(not os.environ.get("DRIFTLINE_MLSERVER"),
                    reason="set DRIFTLINE_MLSERVER=<venv>/bin/mlserver (mlserver + mlserver-sklearn) to run")
def test_mlserver_serves_the_demo_models_in_the_demo_wire_format(tmp_path: Path) -> None:
    from driftline_demo import stack
    from driftline_demo.data import TARGET, generate, records
    from driftline_demo.mlserver import mlserver_settings, train_in_mlserver
    from driftline_demo.traffic import TrafficClient

    mls = os.environ["DRIFTLINE_MLSERVER"]
    test = generate(40, seed=5)
    preds = train_in_mlserver(mls, tmp_path, generate(2000, seed=3), generate(500, seed=4), test)
    port = stack.free_port()
    mlserver_settings(tmp_path / "models", http_port=port, grpc_port=stack.free_port(),
                      metrics_port=stack.free_port())
    with stack.start_process("mlserver", [mls, "start", str(tmp_path / "models")],
                             ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout=90):
        sent = TrafficClient(threads=2).infer_v2(f"http://127.0.0.1:{port}", MODEL, records(test))
    assert sent.errors == 0
    assert sent.predictions == preds[f"{MODEL}/test"][0].tolist()
    assert set(test[TARGET].tolist()) <= {0, 1}
