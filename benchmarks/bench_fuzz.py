"""Hostile traffic through a real ``driftline serve``: the proxy must not alter a response, the
metrics port must never answer 5xx, nothing may crash, no accepted record may be lost, and the
series count and RSS must stay bounded.

Everything runs on 127.0.0.1: a deterministic model server (httptools, one thread of this
process), ``driftline serve`` as a child process in front of it, and a seeded generator of
hostile requests. Each proxy case is sent twice on fresh connections, once straight to the model
server and once through the proxy, and the two byte streams must be equal (the model server
writes no Date header, so they can be). Proxy cases: random bytes, malformed HTTP, pipelined
requests behind ``Connection: close``, bodies up to 20 MB, deep JSON, NaN literals, wrong
tensor shapes and datatypes, Triton binary headers with wrong lengths, bad gzip, 5000 model
names, hint headers. Metrics-port cases: the same bodies against ``/ingest``, ``/feedback`` and
``/cloudevents`` with hostile label values and 263k-value categories, plus a ``GET /metrics``
every 200 cases. Interleaved valid ``/ingest`` records of model ``bench`` are counted and must
all reach ``driftline_records_total``.

    python -m benchmarks fuzz                                  # 20 000 cases (about 2 minutes)
    python -m benchmarks.bench_fuzz --cases 100000             # the full run
    python -m benchmarks.bench_fuzz --soak 30                  # 30 minutes, RSS every minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_ingest import FEATURES, profile

MODEL_PATHS = ["/v2/models/fuzz/infer", "/v1/models/fuzz:predict",
               "/v2/models/fuzz/versions/1/infer"]
UP_BODY = (b'{"model_name":"fuzz","outputs":[{"name":"predict","shape":[1],"datatype":"INT64",'
           b'"data":[1]},{"name":"predict_proba","shape":[1,2],"datatype":"FP64",'
           b'"data":[0.3,0.7]}]}')


# -- the model server ----------------------------------------------------------------------------
def _upstream(port_box: list[int], ready: threading.Event) -> None:
    """Answers every request with the same JSON (``Connection: close`` when the request or its
    path asks for it), a parse error with 400 and a close: deterministic, so direct and proxied
    bytes match."""
    import httptools

    class Up(asyncio.Protocol):
        def connection_made(self, t: Any) -> None:
            self.t = t
            self.p = httptools.HttpRequestParser(self)
            self.url = b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_message_complete(self) -> None:
            close = b"close" in self.url or not self.p.should_keep_alive()
            self.url = b""
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n%s\r\n%s" % (
                             len(UP_BODY), b"Connection: close\r\n" if close else b"", UP_BODY))
            if close:
                self.t.close()

        def data_received(self, d: bytes) -> None:
            try:
                self.p.feed_data(d)
            except httptools.HttpParserUpgrade:
                self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                self.t.close()
            except httptools.HttpParserError:
                self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                self.t.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Up, "127.0.0.1", 0))
    port_box.append(server.sockets[0].getsockname()[1])
    ready.set()
    loop.run_forever()


# -- hostile cases -------------------------------------------------------------------------------
def _json_junk(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice([None, True, 0, -1, 2**63, 1e308, "", "x" * rng.randint(0, 50),
                           "é\u0000", rng.random(), float("nan")])
    if r < 0.65:
        return [_json_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice([*FEATURES[:3], "inputs", "instances", "data", "shape", "x"]):
            _json_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # writes NaN literals, as clients' json.dumps does


def hostile_body(rng: random.Random) -> bytes:
    k = rng.randrange(12)
    n = rng.randint(0, 5)
    if k == 0:
        return rng.randbytes(rng.randint(0, 300))
    if k == 1:
        d = rng.randint(100, 5000)
        return b"[" * d + b"]" * d
    if k == 2:  # a v2 tensor whose data does not fit its shape / datatype
        return _dumps({"inputs": [{"name": rng.choice(["x", *FEATURES[:2]]),
                                   "shape": rng.choice([[n, len(FEATURES)], [-1], [n], "x"]),
                                   "datatype": rng.choice(["FP32", "BYTES", "BF16", "NOPE", 3]),
                                   "data": _json_junk(rng)}]})
    if k == 3:
        return _dumps({"instances": [[rng.choice([float("nan"), float("inf"), 1.0, "a", None])
                                      for _ in range(len(FEATURES))] for _ in range(n)]})
    if k == 4:
        return _dumps(_json_junk(rng))
    if k == 5:
        return gzip.compress(_dumps(_json_junk(rng)))[: rng.randint(0, 60)]
    if k == 6:  # Triton binary: a JSON header, then raw bytes of the wrong length
        head = _dumps({"inputs": [{"name": "x", "shape": [1, len(FEATURES)], "datatype":
                                   rng.choice(["FP32", "BF16", "BYTES", "INT64"]),
                                   "parameters": {"binary_data_size": rng.randint(-1, 200)}}]})
        return head + rng.randbytes(rng.randint(0, 100))
    if k == 7:  # a valid request
        return _dumps({"inputs": [{"name": "x", "shape": [1, len(FEATURES)], "datatype": "FP64",
                                   "data": [rng.gauss(0, 1) for _ in FEATURES]}]})
    if k == 8:
        return b'{"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [' + \
            b",".join(rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1.5"])
                      for _ in range(20)) + b"]}]}"
    if k == 9:
        return _dumps({"id": _json_junk(rng), "inputs": _json_junk(rng)})
    if k == 10:
        return b"\xff\xfe" + _dumps({"instances": []})
    return b""


def _request(path: str, body: bytes, headers: dict[str, str], close: bool) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: fuzz", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def proxy_case(rng: random.Random, i: int) -> bytes:
    """Raw bytes of one connection; the last request closes it (or the bytes are not HTTP)."""
    k = rng.randrange(20)
    if k == 0:
        return rng.randbytes(rng.randint(1, 200)) + b"\r\n\r\n"
    if k == 1:  # malformed HTTP
        return b"POST /v2/models/fuzz/infer HTTP/1.1\r\nContent-Length: x\r\n\r\n"
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if rng.random() < 0.2:
        headers["Content-Encoding"] = "gzip"
    if rng.random() < 0.2:
        headers["Inference-Header-Content-Length"] = str(rng.randint(-2, 400))
    if rng.random() < 0.1:
        headers["x-driftline-model"] = rng.choice(["bench", "fuzz", "x" * 300, "a b"])
        headers["x-driftline-endpoint"] = rng.choice(["canary", "5", "\u00e9"])
    path = rng.choice(MODEL_PATHS)
    if rng.random() < 0.15:
        path = f"/v2/models/m{rng.randrange(5000)}/infer"  # 5000 model names
    # every 5000th body is 20 MB: relayed, not sampled
    body = rng.randbytes(20 * 1024 * 1024) if i % 5000 == 4999 else hostile_body(rng)
    if k == 2:  # pipelined behind a response that closes the connection
        return (_request("/close" + path, body, headers, False)
                + _request(path, hostile_body(rng), headers, False)
                + _request(path, b"{}", headers, True))
    if k == 3:
        return _request(path, body, headers, False) + _request(path, hostile_body(rng), headers,
                                                                True)
    return _request(path, body, headers, True)


def ingest_case(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    k = rng.randrange(8)
    label = rng.choice(["fuzz", 5, ["fuzz"], {"a": 1}, "x" * 200, "fuzz\n", None, True])
    endpoint = rng.choice([None, "canary", 7, [1], "", "a,b"])
    feats = {f: rng.choice([rng.gauss(0, 1), None, "s", [1], float("nan")]) for f in FEATURES[:5]}
    if k == 0:  # a category column with a new value every time
        feats[FEATURES[0]] = f"cat-{rng.randrange(263_000)}"
    rec = {"model_name": label, "endpoint": endpoint, "features": feats,
           "prediction": _json_junk(rng), "id": _json_junk(rng)}
    if k <= 2:
        return "/ingest", _dumps(rng.choice([rec, [rec] * rng.randint(0, 3), {"records": rec}])), {}
    if k == 3:
        return "/feedback", _dumps(rng.choice([{"id": _json_junk(rng), "label": _json_junk(rng),
                                                "model_name": label}, _json_junk(rng)])), {}
    if k == 4:
        return "/cloudevents", hostile_body(rng), {
            "ce-id": str(rng.randrange(50)), "ce-type": rng.choice(
                ["org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response",
                 "x"]), "ce-inferenceservicename": rng.choice(["fuzz", "x" * 300, "é", "m1"]),
            "Content-Type": "application/json"}
    if k == 5:
        return "/cloudevents", _dumps([{"id": "1", "type": "x.request", "data": _json_junk(rng),
                                        "inferenceservicename": label}]), {
            "Content-Type": "application/cloudevents-batch+json"}
    return rng.choice(["/ingest", "/feedback", "/cloudevents"]), hostile_body(rng), {}


# -- the run -------------------------------------------------------------------------------------
def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            s.sendall(raw)
        out = []
        try:
            while chunk := s.recv(65536):
                out.append(chunk)
        except OSError:
            pass
    return b"".join(out)


def http(port: int, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    h = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    raw = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{h}"
           "Connection: close\r\n\r\n").encode("latin-1") + body
    resp = exchange(port, raw)
    m = re.match(rb"HTTP/1\.1 (\d{3})", resp)
    rest = resp.partition(b"\r\n\r\n")[2]
    return (int(m.group(1)) if m else 0), rest


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def series(text: bytes) -> int:
    return sum(1 for ln in text.splitlines() if ln and not ln.startswith(b"#"))


def records_total(text: bytes, model: str, source: str) -> float:
    total = 0.0
    for ln in text.decode().splitlines():
        if ln.startswith("driftline_records_total{") and f'model_name="{model}"' in ln \
                and f'source="{source}"' in ln:
            total += float(ln.rsplit(" ", 1)[1])
    return total


@dataclass
class Tally:
    cases: int = 0
    proxy_cases: int = 0
    altered: int = 0
    proxy_made_5xx: int = 0
    metrics_cases: int = 0
    metrics_5xx: int = 0
    scrapes: int = 0
    scrape_failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    accepted: int = 0
    examples: list[str] = field(default_factory=list)


def start_sidecar(work: Path, upstream_port: int, overrides: dict[str, Any] | None = None
                  ) -> tuple[subprocess.Popen[bytes], int, int]:
    from driftline_demo.stack import free_port

    prof = profile()
    prof.save(work / "bench.json")
    metrics, proxy = free_port(), free_port()
    cfg = {"models": [{"name": "bench", "baseline": "bench.json"},
                      {"name": "fuzz", "baseline": "bench.json"}],
           "proxy": {"listen": f"127.0.0.1:{proxy}", "upstream": f"http://127.0.0.1:{upstream_port}",
                     "trusted_headers": ["x-driftline-model", "x-driftline-endpoint"]},
           "metrics": {"listen": f"127.0.0.1:{metrics}"},
           "windows": {"records": 500, "max_age": "10s"}, "log_level": "error"}
    for key, value in (overrides or {}).items():
        section, name = key.split(".")
        cfg[section][name] = value  # type: ignore[index]
    (work / "driftline.yaml").write_text(json.dumps(cfg))
    with open(work / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "driftline", "serve", "--config",
                                 str(work / "driftline.yaml")], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http(metrics, "GET", "/readyz")[0] == 200:
                return proc, metrics, proxy
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("driftline serve did not become ready:\n" + (work / "serve.log").read_text())


def run(cases: int, seed: int, soak_minutes: float = 0.0) -> Tally:
    port_box: list[int] = []
    ready = threading.Event()
    threading.Thread(target=_upstream, args=(port_box, ready), daemon=True).start()
    ready.wait(10)
    up = port_box[0]
    rng = random.Random(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="driftline-fuzz-") as tmp:
        work = Path(tmp)
        proc, metrics, proxy = start_sidecar(work, up)
        http(metrics, "GET", "/metrics")
        rss0 = rss_kib(proc.pid)
        t0 = time.monotonic()
        next_report = t0 + 60
        i = 0
        while (i < cases) if not soak_minutes else (time.monotonic() - t0 < soak_minutes * 60):
            if i % 2 == 0:
                raw = proxy_case(rng, i)
                direct, proxied = exchange(up, raw), exchange(proxy, raw)
                tally.proxy_cases += 1
                if b"X-Driftline-Proxy-Error" in proxied:
                    tally.proxy_made_5xx += 1
                if direct != proxied:
                    tally.altered += 1
                    if len(tally.examples) < 5:
                        tally.examples.append(f"case {i}: {raw[:120]!r} direct={direct[:80]!r} "
                                              f"proxy={proxied[:80]!r}")
            else:
                path, body, headers = ingest_case(rng)
                status, _ = http(metrics, "POST", path, body, headers)
                tally.metrics_cases += 1
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                if status >= 500 or status == 0:
                    tally.metrics_5xx += 1
                if i % 10 == 1:  # a valid, tracked record
                    rec = {"model_name": "bench",
                           "features": {f: rng.gauss(0, 1) for f in FEATURES}}
                    st, _ = http(metrics, "POST", "/ingest", _dumps(rec))
                    tally.accepted += st == 202
            if i % 200 == 0:
                st, _ = http(metrics, "GET", "/metrics")
                tally.scrapes += 1
                tally.scrape_failures += st != 200
            i += 1
            if soak_minutes and time.monotonic() >= next_report:
                next_report += 60
                print(f"  minute {round((time.monotonic() - t0) / 60)}: {i} cases, RSS "
                      f"{rss_kib(proc.pid) / 1024:.0f} MiB", flush=True)
        tally.cases = i
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + 60
        seen = 0.0
        while time.monotonic() < deadline:  # the worker drains the queue
            _, text = http(metrics, "GET", "/metrics")
            seen = records_total(text, "bench", "ingest")
            if seen >= tally.accepted:
                break
            time.sleep(0.2)
        _, text = http(metrics, "GET", "/metrics")
        rss1 = rss_kib(proc.pid)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        log = (work / "serve.log").read_text()
    tracebacks = log.count("Traceback")
    print(f"cases tried                     {tally.cases} ({tally.proxy_cases} through the proxy, "
          f"{tally.metrics_cases} to the metrics port, {tally.scrapes} scrapes) in {elapsed:.0f}s")
    print(f"responses altered by the proxy  {tally.altered}")
    print(f"proxy-made 5xx (healthy model)  {tally.proxy_made_5xx}")
    print(f"Driftline 5xx on metrics port   {tally.metrics_5xx} (write endpoints) / "
          f"{tally.scrape_failures} (GET /metrics)")
    print(f"crashes                         {0 if alive and rc == 0 else 1} (alive at the end: "
          f"{alive}, exit code after SIGTERM: {rc}, tracebacks in the log: {tracebacks})")
    print(f"records lost                    {max(0, int(tally.accepted - seen))} of "
          f"{tally.accepted} accepted")
    print(f"RSS                             {rss0 / 1024:.0f} MiB before, {rss1 / 1024:.0f} MiB after")
    print(f"series on /metrics              {series(text)}")
    print(f"metrics-port answers            {dict(sorted(tally.statuses.items()))}")
    for ex in tally.examples:
        print("  altered:", ex)
    return tally


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                    help="run for this long instead of --cases, printing RSS every minute")
    args = ap.parse_args(argv or [])
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, seed {args.seed}", flush=True)
    run(args.cases, args.seed, args.soak)


if __name__ == "__main__":
    main(sys.argv[1:])
