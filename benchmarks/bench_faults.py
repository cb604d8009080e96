"""Faults: the proxy with its model server killed, slow, stalled and restarted, and the action
receiver killed with SIGKILL while a slow target call is in flight.

Proxy (a real ``driftline serve`` in front of a model server that this process starts, stops and
slows): every request must get the model's answer or a proxy-made 502/504 of the right kind,
never a hang, and the upstream error counters on ``/metrics`` must say which kind it was.

Receiver: ``cycles`` times, ``driftline actions serve`` gets one alert, its target (a fake
Airflow that takes 200 ms per call and knows the runs it created) sees the call arrive, and the
receiver is killed with SIGKILL before the answer. After a restart the job runs again. With the
``airflow2`` preset (``dag_run_id`` derived from the alert) the repeat gets 409: duplicate runs
must be 0. The same with an ``http`` target that takes no key shows what at-least-once costs
there. No action may be lost either way.

    python -m benchmarks faults                    # 24 receiver cycles per target
    python -m benchmarks.bench_faults --cycles 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from benchmarks.bench_fuzz import http, start_sidecar

TOKEN = "fault-bench-token"


# -- proxy faults --------------------------------------------------------------------------------
class _Model(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.0
    stall = False

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        time.sleep(type(self).delay)
        body = b'{"outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [1]}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).stall:  # headers, half the body, then silence
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(5)
            return
        self.wfile.write(body)


def _model(port: int) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Model)
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # type: ignore[method-assign]  # cut connections: expected
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _upstream_errors(metrics: int) -> dict[str, float]:
    _, text = http(metrics, "GET", "/metrics")
    out = {}
    for ln in text.decode().splitlines():
        if ln.startswith("driftline_proxy_upstream_errors_total{"):
            kind = ln.split('kind="', 1)[1].split('"', 1)[0]
            out[kind] = float(ln.rsplit(" ", 1)[1])
    return out


def proxy_faults() -> None:
    from driftline_demo.stack import free_port

    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64",
                                   "data": [0.1] * 20}]}).encode()
    up_port = free_port()
    model = _model(up_port)
    with tempfile.TemporaryDirectory(prefix="driftline-faults-") as tmp:
        work = Path(tmp)
        cfg_patch = {"proxy.timeout": "1s"}
        proc, metrics, proxy = start_sidecar(work, up_port, overrides=cfg_patch)
        rows = []

        def scenario(name: str, n: int = 20) -> None:
            before = _upstream_errors(metrics)
            statuses: dict[int, int] = {}
            t0 = time.monotonic()
            for _ in range(n):
                try:
                    st, _ = http(proxy, "POST", "/v2/models/fuzz/infer", body,
                                 {"Content-Type": "application/json"})
                except OSError:
                    st = 0
                statuses[st] = statuses.get(st, 0) + 1
            after = _upstream_errors(metrics)
            kinds = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after
                     if after.get(k, 0) != before.get(k, 0)}
            rows.append((name, statuses, kinds, (time.monotonic() - t0) / n))

        scenario("healthy")
        _Model.delay = 2.0
        scenario("slow (2 s > proxy.timeout 1 s)", 5)
        _Model.delay = 0.0
        _Model.stall = True
        scenario("stalled mid-response (cut)", 5)
        _Model.stall = False
        model.shutdown()
        model.server_close()
        scenario("killed")
        model = _model(up_port)
        scenario("restarted")
        # SIGTERM under load: clients keep sending while the sidecar drains and exits
        stop = threading.Event()
        sent = [0]

        def load() -> None:
            while not stop.is_set():
                try:
                    http(proxy, "POST", "/v2/models/fuzz/infer", body)
                    sent[0] += 1
                except OSError:
                    pass

        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        stop.set()
        for t in threads:
            t.join(15)
        log = (work / "serve.log").read_text()
        model.shutdown()
    print(f"{'proxy scenario':34} {'answers (status: count)':34} {'upstream errors counted':26} "
          "s/request")
    for name, statuses, kinds, per in rows:
        print(f"{name:34} {json.dumps(statuses):34} {json.dumps(kinds):26} {per:.3f}")
    print(f"SIGTERM under load ({sent[0]} requests sent): alive before {alive}, exit code {rc}, "
          f"tracebacks in the log {log.count('Traceback')}")


# -- receiver kill -9 ----------------------------------------------------------------------------
class _Airflow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    runs: ClassVar[dict[str, int]] = {}
    arrived = threading.Event()
    lock = threading.Lock()
    keyed = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(n) or b"{}")
        key = str(doc.get("dag_run_id") or doc.get("key"))
        cls = type(self)
        with cls.lock:
            repeat = cls.keyed and key in cls.runs
            if not repeat:  # a run is created as the call arrives
                cls.runs[key] = cls.runs.get(key, 0) + 1
        cls.arrived.set()
        time.sleep(0.2)
        status, body = (409, b'{"title": "DAGRun already exists"}') if repeat else \
            (200, b'{"state": "queued"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _alert(i: int) -> bytes:
    a = {"status": "firing", "labels": {"alertname": "DriftlineFeatureDrift", "model_name": "fraud",
                                        "model_version": "1", "action": "retrain"},
         "annotations": {}, "startsAt": f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}Z",
         "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"{i:016x}"}
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "groupKey": "g",
                       "alerts": [a]}).encode()


def _post(port: int, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/alertmanager", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def receiver_cycles(cycles: int, keyed: bool) -> tuple[int, int, int]:
    """Returns (alerts, duplicate runs, lost actions)."""
    import yaml

    from driftline.alertmanager import audit
    from driftline_demo.stack import free_port, start_process

    _Airflow.runs = {}
    _Airflow.keyed = keyed
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # type: ignore[method-assign]  # killed clients: expected
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="driftline-kill9-") as tmp:
        work = Path(tmp)
        (work / "token").write_text(TOKEN)
        target = ({"type": "airflow2", "server": url, "dag_id": "retrain"} if keyed else
                  {"type": "http", "url": url + "/run", "body": {"key": "{{ dedupe_key }}"}})
        cfg = {"listen": "127.0.0.1:0", "database": str(work / "actions.db"),
               "auth": {"bearer_token_file": str(work / "token")}, "cooldown": 0,
               "retry": {"max_attempts": 5, "initial_backoff": "50ms"},
               "targets": {"t": target}, "routes": [{"action": "retrain", "target": "t"}]}
        (work / "actions.yaml").write_text(yaml.safe_dump(cfg))
        port = free_port()

        def serve() -> Any:
            return start_process("receiver", [sys.executable, "-m", "driftline", "actions",
                                              "serve", "--config", str(work / "actions.yaml"),
                                              "--listen", f"127.0.0.1:{port}"],
                                 ready_url=f"http://127.0.0.1:{port}/healthz", timeout=30)

        for i in range(cycles):
            proc = serve()
            _Airflow.arrived.clear()
            assert _post(port, _alert(i)) == 200
            _Airflow.arrived.wait(20)
            os.kill(proc.pid, signal.SIGKILL)  # the call is in flight (200 ms)
            proc.popen.wait(10)
            proc.stop()
        proc = serve()  # one restart after the last kill: every requeued job runs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = {e.dedupe_key for e in audit.read(work / "actions.db", limit=100_000)
                    if e.decision in ("acted", "failed")}
            if len(done) >= cycles:
                break
            time.sleep(0.2)
        proc.stop()
    srv.shutdown()
    runs = _Airflow.runs
    dup = sum(n - 1 for n in runs.values() if n > 1)
    lost = cycles - len(runs)
    return cycles, dup, lost


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=24)
    ap.add_argument("--only", choices=["proxy", "receiver"], action="append")
    args = ap.parse_args(argv or [])
    only = set(args.only or ["proxy", "receiver"])
    if "proxy" in only:
        proxy_faults()
    if "receiver" in only:
        print(f"\n{'receiver kill -9 during a 200 ms call':40} {'alerts':>6} {'duplicate runs':>15} "
              f"{'lost actions':>13}")
        for keyed, name in ((True, "airflow2 (dag_run_id key)"), (False, "http (no key)")):
            alerts, dup, lost = receiver_cycles(args.cycles, keyed)
            print(f"{name:40} {alerts:>6} {dup:>15} {lost:>13}")


if __name__ == "__main__":
    main(sys.argv[1:])
