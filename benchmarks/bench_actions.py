"""Webhook receiver: acknowledgement latency (durable, fsync'd enqueue) and action throughput.

Alertmanager 0.25 has no webhook timeout, so what matters is the time from POST to 200 —
which includes one SQLite commit with ``synchronous=FULL`` — and that re-sends stay cheap.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from driftline.alertmanager.actions_config import load_config_dict
from driftline.alertmanager.receiver import Receiver

TOKEN = "bench-token"


def _alert(i: int) -> dict[str, Any]:
    return {"status": "firing", "fingerprint": f"{i:016x}", "startsAt": "2026-11-22T19:07:58Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
            "labels": {"alertname": "DriftlineFeatureDriftHigh", "model_name": f"m{i}",
                       "model_version": "v1", "action": "retrain", "severity": "warning"},
            "annotations": {"summary": "PSI high"}}


def _payload(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps({"version": "4", "receiver": "r", "status": "firing", "alerts": alerts,
                       "groupKey": "{}:{}", "externalURL": "http://am"}).encode()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Sink.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _post(url: str, body: bytes) -> float:
    req = urllib.request.Request(f"{url}/alertmanager", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()
    return time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "token").write_text(TOKEN)
        cfg = load_config_dict({
            "listen": "127.0.0.1:0", "database": str(tmp / "q.db"),
            "auth": {"bearer_token_file": str(tmp / "token")}, "cooldown": 0,
            "targets": {"t": {"type": "airflow2", "server": f"http://127.0.0.1:{sink.server_port}",
                              "dag_id": "retrain"}},
            "routes": [{"action": "retrain", "target": "t"}]}, base=tmp)
        r = Receiver(cfg)
        r.start()
        try:
            n = 300
            start = time.perf_counter()
            new = [_post(r.url, _payload([_alert(i)])) for i in range(n)]
            dup = [_post(r.url, _payload([_alert(i)])) for i in range(n)]
            big = [_post(r.url, _payload([_alert(10_000 + 50 * k + j) for j in range(50)]))
                   for k in range(20)]
            t0 = time.perf_counter()
            total = n + 20 * 50
            while _Sink.count < total and time.perf_counter() - t0 < 120:
                time.sleep(0.01)
            drain = time.perf_counter() - t0
            elapsed = time.perf_counter() - start
        finally:
            r.stop()
            sink.shutdown()
    print(f"ack latency, 1 new alert (HTTP + fsync'd enqueue): p50 {_pct(new, .5):.2f} ms, "
          f"p99 {_pct(new, .99):.2f} ms, max {max(new) * 1000:.1f} ms over {n}")
    print(f"ack latency, duplicate re-send:                   p50 {_pct(dup, .5):.2f} ms, "
          f"p99 {_pct(dup, .99):.2f} ms")
    print(f"ack latency, 50 new alerts in one payload:        p50 {_pct(big, .5):.2f} ms, "
          f"p99 {_pct(big, .99):.2f} ms ({statistics.mean(big) / 50 * 1e6:.0f} µs per alert)")
    print(f"worker: {_Sink.count} actions sent to a loopback Airflow stub in {elapsed:.1f} s "
          f"({_Sink.count / elapsed:.0f} actions/s, one worker, 2 fsyncs each); backlog drained "
          f"{drain:.2f} s after the last ack")


if __name__ == "__main__":
    main()
