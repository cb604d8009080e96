"""driftline_demo.stack: real Prometheus and Alertmanager on 127.0.0.1, process-group cleanup."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import LoopbackHTTPServer, QuietHandler

from driftline_demo import stack

HAVE_PROM = shutil.which("prometheus") is not None or os.path.exists("/usr/bin/prometheus")
HAVE_AM = shutil.which("prometheus-alertmanager") is not None or os.path.exists(
    "/usr/bin/prometheus-alertmanager")
needs_stack = pytest.mark.skipif(not (HAVE_PROM and HAVE_AM),
                                 reason="needs prometheus and prometheus-alertmanager (Debian)")


class _Metrics(QuietHandler):
    METRICS = b"# TYPE demo_value gauge\ndemo_value{feature=\"amount\"} 0.42\n"

    def do_GET(self) -> None:
        self.reply(200, self.METRICS, content_type="text/plain; version=0.0.4")


@pytest.fixture
def exporter() -> Iterator[str]:
    with LoopbackHTTPServer(_Metrics) as srv:
        yield srv.target


def test_prometheus_config_groups_targets_and_alertmanager() -> None:
    cfg = stack.prometheus_config(
        ["127.0.0.1:1", "http://127.0.0.1:2/metrics", "http://127.0.0.1:3/other"],
        rule_files=["r.yaml"], alertmanager_url="http://127.0.0.1:9/am", extra_labels={"namespace": "ns"})
    jobs = cfg["scrape_configs"]
    assert [j["job_name"] for j in jobs] == ["driftline", "driftline-2"]
    assert jobs[0]["static_configs"][0]["targets"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert jobs[0]["static_configs"][0]["labels"] == {"namespace": "ns"}
    assert jobs[1]["metrics_path"] == "/other"
    assert cfg["rule_files"] == [str(Path("r.yaml").resolve())]
    am = cfg["alerting"]["alertmanagers"][0]
    assert am["static_configs"][0]["targets"] == ["127.0.0.1:9"] and am["path_prefix"] == "/am"


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(stack.StackError, match="apt-get install prometheus prometheus-alertmanager"):
        stack.find_binary("driftline-no-such-binary")


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = ("import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(c.pid))\n"
            "time.sleep(120)\n")
    with stack.ManagedProcess("sleeper", [sys.executable, "-c", code]) as proc:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert proc.running()
    assert not proc.running()
    deadline = time.monotonic() + 5
    while True:  # the grandchild was in the same group and must be gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # reaped by init eventually; a zombie counts as gone once it is not runnable
        if time.monotonic() > deadline:
            status = Path(f"/proc/{child}/status").read_text() if Path(f"/proc/{child}").exists() else ""
            assert "zombie" in status.lower() or not status
            break
        time.sleep(0.05)
    proc.stop()  # idempotent


def test_start_process_reports_early_exit() -> None:
    with pytest.raises(stack.StackError, match="exited with code 3"):
        stack.start_process("broken", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                            ready_url="http://127.0.0.1:9/", timeout=10)


@needs_stack
@pytest.mark.integration
def test_prometheus_scrapes_fires_rule_and_alertmanager_receives(exporter: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n- name: t\n  rules:\n  - alert: DemoHigh\n    expr: demo_value > 0.4\n"
        "    labels: {severity: warning}\n")
    am_cfg = "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n- name: blackhole\n"
    with stack.start_alertmanager(am_cfg) as am, stack.start_prometheus(
            [exporter], rule_files=[rules], alertmanager_url=am.url) as prom:
        assert am.url.startswith("http://127.0.0.1:") and prom.url.startswith("http://127.0.0.1:")
        res = prom.wait_for('demo_value{feature="amount"}', lambda r: len(r) == 1, timeout=30)
        assert float(res[0]["value"][1]) == pytest.approx(0.42)
        assert prom.values("up")[0][1] == 1.0
        assert [t["health"] for t in prom.targets()] == ["up"]
        assert prom.rules()[0]["rules"][0]["name"] == "DemoHigh"
        alert = am.wait_for_alert(lambda a: a["labels"].get("alertname") == "DemoHigh", timeout=30)
        assert alert["labels"]["feature"] == "amount"
        assert any(a["labels"]["alertname"] == "DemoHigh" for a in prom.alerts())
        with pytest.raises(TimeoutError, match="absent_metric"):
            prom.wait_for("absent_metric", timeout=1.5)
    assert not prom.running() and not am.running()
    assert not prom.workdir.exists() and not am.workdir.exists()


@needs_stack
@pytest.mark.integration
def test_bad_rule_file_fails_with_prometheus_message(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("groups:\n- name: t\n  rules:\n  - alert: X\n    expr: 'sum(('\n")
    with pytest.raises(stack.StackError, match="prometheus exited"):
        stack.start_prometheus(["127.0.0.1:1"], rule_files=[rules], timeout=20)


@needs_stack
@pytest.mark.integration
def test_alertmanager_accepts_posted_alerts_and_path_config(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: x\nreceivers:\n- name: x\n")
    with stack.start_alertmanager(str(cfg)) as am:
        am.post_alerts([{"labels": {"alertname": "Posted", "model_name": "m"}}])
        got = am.wait_for_alert(lambda a: a["labels"]["alertname"] == "Posted", timeout=10)
        assert got["labels"]["model_name"] == "m"
