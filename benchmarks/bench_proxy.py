"""Reverse proxy: throughput, added latency and memory, with 100 % sampling and a draining consumer.

Every party runs in its own process on this machine (2 cores shared by load generator, upstream
and proxy), as it would in a pod:

(b) ``wrk -t2 -c16`` against a trivial uvloop/httptools upstream answering a small KServe-v1-like
    JSON, direct vs through the proxy (saturation).
(a) the same in front of a real Python model server: MLServer + mlserver-sklearn serving a
    scikit-learn logistic regression through Open Inference Protocol v2 (its own virtualenv,
    default /tmp/mlsv, created with pip on first use; never a project dependency).
(c) added latency at a fixed 500 req/s from an open-loop generator (latency measured from the
    scheduled send time, so a stall is not hidden), direct vs proxy, p50/p90/p99.
(d) RSS of the proxy process after 1 minute and after ``--rss-minutes`` of saturating load.

Run: ``python -m benchmarks proxy`` (defaults) or
``python -m benchmarks.bench_proxy --duration 10 --rss-minutes 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KSERVE_BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
KSERVE_RESPONSE = b'{"predictions": [0], "model_name": "iris"}'
V2_BODY = (b'{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", '
           b'"data": [[5.1, 3.5, 1.4, 0.2]]}]}')


# -- child process roles -------------------------------------------------------------------------
def _run_upstream(port: int) -> None:
    """A trivial model server: httptools parses, every request gets a small JSON answer."""
    import httptools
    import uvloop

    resp = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(KSERVE_RESPONSE), KSERVE_RESPONSE))

    class Up(asyncio.Protocol):
        def connection_made(self, t: asyncio.BaseTransport) -> None:
            self.t = t
            self.p = httptools.HttpRequestParser(self)

        def data_received(self, d: bytes) -> None:
            self.p.feed_data(d)

        def on_message_complete(self) -> None:
            self.t.write(resp)  # type: ignore[attr-defined]

    async def serve() -> None:
        srv = await asyncio.get_running_loop().create_server(Up, "127.0.0.1", port, backlog=1024)
        await srv.serve_forever()

    uvloop.run(serve())


AIOHTTP_UPSTREAM = f"""
import sys
from aiohttp import web
BODY = {KSERVE_RESPONSE!r}
async def predict(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/models/{{name}}", predict)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _run_relay(port: int, upstream: str) -> None:
    """The floor for any Python proxy: relay bytes both ways, no parsing, no tee."""
    import uvloop

    host, up_port = upstream.removeprefix("http://").split(":")

    class Client(asyncio.Protocol):
        def connection_made(self, t: asyncio.BaseTransport) -> None:
            self.t: Any = t
            self.ut: Any = None
            self.buf: list[bytes] = []
            asyncio.get_running_loop().create_task(self.connect())

        async def connect(self) -> None:
            ut, _ = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self), host, int(up_port))
            self.ut = ut
            for b in self.buf:
                ut.write(b)

        def data_received(self, d: bytes) -> None:
            if self.ut is not None:
                self.ut.write(d)
            else:
                self.buf.append(d)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.ut is not None:
                self.ut.close()

    class Upstream(asyncio.Protocol):
        def __init__(self, c: Client) -> None:
            self.c = c

        def data_received(self, d: bytes) -> None:
            self.c.t.write(d)

        def connection_lost(self, exc: Exception | None) -> None:
            self.c.t.close()

    async def serve() -> None:
        srv = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port, backlog=1024)
        await srv.serve_forever()

    uvloop.run(serve())


def _run_proxy(port: int, upstream: str, rate: float) -> None:
    """The proxy as the sidecar runs it, plus a consumer thread that parses and discards."""
    import orjson

    from driftline.collectors.proxy import ProxyServer, new_event_loop
    from driftline.collectors.sampling import Sampler
    from driftline.collectors.tee import SampleQueue

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    queue = SampleQueue(10_000)
    server = ProxyServer("127.0.0.1", port, upstream, queue, Sampler(rate))
    stop = threading.Event()
    consumed = [0, 0]

    def consume() -> None:
        while not stop.is_set():
            for s in queue.drain(1024, 0.1):
                try:
                    orjson.loads(s.request_body)
                    orjson.loads(s.response_body)
                    consumed[0] += 1
                except orjson.JSONDecodeError:
                    consumed[1] += 1

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    loop.run_until_complete(server.start())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    stop.set()
    worker.join(2)
    st = server.stats()
    print(json.dumps({"requests": st.requests_total, "consumed": consumed[0],
                      "parse_errors": consumed[1], "dropped": queue.dropped,
                      "sampled": server.sampler.sampled}), flush=True)


def _run_openloop(url: str, rate: float, seconds: float, body_kind: str) -> None:
    """Open-loop load: request i is due at t0 + i/rate on any idle keep-alive connection."""
    from urllib.parse import urlsplit

    import httptools
    import uvloop

    u = urlsplit(url)
    body = KSERVE_BODY if body_kind == "kserve" else V2_BODY
    raw = (b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (u.path.encode(), len(body), body))
    lat: list[float] = []
    errors = [0]

    class Conn(asyncio.Protocol):
        def __init__(self, idle: asyncio.Queue[Conn]) -> None:
            self.idle = idle
            self.p = httptools.HttpResponseParser(self)
            self.due = 0.0

        def connection_made(self, t: asyncio.BaseTransport) -> None:
            self.t = t

        def data_received(self, d: bytes) -> None:
            self.p.feed_data(d)

        def on_message_complete(self) -> None:
            if self.p.get_status_code() != 200:
                errors[0] += 1
            lat.append(time.perf_counter() - self.due)
            self.idle.put_nowait(self)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        idle: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(32):
            _, conn = await loop.create_connection(lambda: Conn(idle), u.hostname, u.port)
            idle.put_nowait(conn)
        await asyncio.sleep(0.2)
        n = int(rate * seconds)
        t0 = time.perf_counter() + 0.05
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            c = await idle.get()
            c.due = due
            c.t.write(raw)  # type: ignore[attr-defined]
        while len(lat) < n and time.perf_counter() < t0 + seconds + 10:
            await asyncio.sleep(0.05)

    uvloop.run(go())
    lat.sort()
    warm = lat[len(lat) // 20:]  # not the first 5 %: connection warm-up
    warm.sort()

    def q(p: float) -> float:
        return warm[min(len(warm) - 1, int(p * len(warm)))] * 1000

    print(json.dumps({"n": len(lat), "errors": errors[0], "p50_ms": q(0.5), "p90_ms": q(0.9),
                      "p99_ms": q(0.99), "mean_ms": statistics.fmean(warm) * 1000}), flush=True)


# -- orchestration -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _self(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_proxy", *args]


@contextlib.contextmanager
def _process(cmd: list[str], port: int | None, *, env: dict[str, str] | None = None,
             cwd: str | None = None) -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         cwd=cwd or str(ROOT), env=env)
    try:
        if port is not None:
            _wait_port(port)
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _proxy_summary(p: subprocess.Popen[str]) -> dict[str, object]:
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=15)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _wrk(url: str, body: bytes, seconds: float, conns: int = 16) -> float:
    lua = _lua(body)
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds:g}s", "-s", lua, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        print(f"    warning: {non2xx.group(1)} non-2xx responses from {url}")
    return float(m.group(1)) if m else float("nan")


def _wrk_n(url: str, body: bytes, seconds: float) -> tuple[float, int]:
    """wrk -t2 -c16: (requests per second, requests completed)."""
    lua = _lua(body)
    try:
        out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds:g}s", "-s", lua, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    return (float(m.group(1)) if m else float("nan")), (int(n.group(1)) if n else 0)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (all threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
            todo += [c for c, (ppid, _) in stats.items() if ppid == p]
    return total


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _compare(upstream: str, path: str, body: bytes, seconds: float, repeats: int,
             upstream_pid: int, relay: bool = True
             ) -> tuple[dict[str, list[float]], dict[str, object]]:
    """wrk straight at ``upstream``, through a bare relay and through the Driftline proxy,
    interleaved ``repeats`` times so that drifting background load hits all alike. Also the CPU
    each process spends per request (``cpu:*`` entries, microseconds), which background load
    disturbs far less than throughput."""
    runs: dict[str, list[float]] = {"direct": [], "relay": [], "proxy": [], "cpu:upstream": [],
                                    "cpu:proxy": []}
    summary: dict[str, object] = {}
    _wrk(upstream + path, body, 2)  # warm-up
    for _ in range(repeats):
        c0 = _cpu_seconds(upstream_pid)
        rps, n = _wrk_n(upstream + path, body, seconds)
        runs["direct"].append(rps)
        runs["cpu:upstream"].append((_cpu_seconds(upstream_pid) - c0) * 1e6 / max(n, 1))
        if relay:
            px = _free_port()
            with _process(_self("_relay", str(px), upstream), px):
                runs["relay"].append(_wrk(f"http://127.0.0.1:{px}{path}", body, seconds))
        px = _free_port()
        with _process(_self("_proxy", str(px), upstream, "1.0"), px) as proxy:
            _wrk(f"http://127.0.0.1:{px}{path}", body, 1)
            c0 = _cpu_seconds(proxy.pid)
            rps, n = _wrk_n(f"http://127.0.0.1:{px}{path}", body, seconds)
            runs["proxy"].append(rps)
            runs["cpu:proxy"].append((_cpu_seconds(proxy.pid) - c0) * 1e6 / max(n, 1))
            summary = _proxy_summary(proxy)
    return {k: v for k, v in runs.items() if v}, summary


def _print_runs(runs: dict[str, list[float]], summary: dict[str, object]) -> None:
    print("    runs (req/s): " + "; ".join(f"{k} " + ", ".join(f"{v:,.0f}" for v in vs)
                                          for k, vs in runs.items() if not k.startswith("cpu:")))
    up, px = statistics.median(runs["cpu:upstream"]), statistics.median(runs["cpu:proxy"])
    print(f"    CPU per request (median): upstream {up:,.0f} us, proxy {px:,.0f} us "
          f"(proxy = {px / up:.0%} of the upstream's own CPU; 100 % sampled, consumer parsing)")
    print(f"    last proxy process: {summary}")


def _saturation(upstream_cmd: list[str], title: str, seconds: float, repeats: int) -> dict[str, float]:
    up = _free_port()
    with _process([*upstream_cmd, str(up)], up) as upstream:
        runs, summary = _compare(f"http://127.0.0.1:{up}", "/v1/models/iris:predict", KSERVE_BODY,
                                 seconds, repeats, upstream.pid)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"(b) {title}, wrk -t2 -c16 -d{seconds:g}s, median of {repeats}: "
          f"direct {med['direct']:,.0f} req/s; bare byte relay (no parsing, no tee) "
          f"{med['relay']:,.0f} ({med['relay'] / med['direct']:.2f}x); Driftline proxy "
          f"{med['proxy']:,.0f} ({med['proxy'] / med['direct']:.2f}x of direct, "
          f"{med['proxy'] / med['relay']:.2f}x of the bare relay)")
    _print_runs(runs, summary)
    return med


def bench_trivial(seconds: float, repeats: int, venv: Path) -> None:
    _saturation(_self("_upstream"), "minimal uvloop+httptools upstream", seconds, repeats)
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import aiohttp"],
                                          capture_output=True).returncode == 0:
        _saturation([str(python), "-c", AIOHTTP_UPSTREAM], "trivial aiohttp upstream "
                    "(the reference setup of docs/architecture.md)", seconds, repeats)
    else:
        print(f"(b') skipped: no aiohttp in {venv}")


def _mlserver_env(venv: Path) -> Path | None:
    exe = venv / "bin" / "mlserver"
    if exe.exists():
        return exe
    print(f"    creating {venv} with pip install mlserver mlserver-sklearn ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mlserver", "mlserver-sklearn"],
                       check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"    cannot create the MLServer environment: {e}")
        return None
    return exe if exe.exists() else None


@contextlib.contextmanager
def _mlserver(venv: Path) -> Iterator[tuple[str, int] | None]:
    exe = _mlserver_env(venv)
    if exe is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="driftline-mlserver-") as d:
        model_dir = Path(d) / "iris"
        model_dir.mkdir()
        train = ("import joblib,sys\nfrom sklearn.datasets import load_iris\n"
                 "from sklearn.linear_model import LogisticRegression\n"
                 "X,y=load_iris(return_X_y=True)\n"
                 "joblib.dump(LogisticRegression(max_iter=500).fit(X,y), sys.argv[1])\n")
        subprocess.run([str(venv / "bin" / "python"), "-c", train, str(model_dir / "model.joblib")],
                       check=True)
        (model_dir / "model-settings.json").write_text(json.dumps({
            "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"}}))
        http, grpc, metrics = _free_port(), _free_port(), _free_port()
        (Path(d) / "settings.json").write_text(json.dumps({
            "http_port": http, "grpc_port": grpc, "metrics_port": metrics, "host": "127.0.0.1",
            "parallel_workers": 0, "debug": False}))
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
        with _process([str(exe), "start", d], http, env=env, cwd=d) as server:
            url = f"http://127.0.0.1:{http}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until the model is loaded
                with contextlib.suppress(OSError):
                    import urllib.request
                    if urllib.request.urlopen(f"{url}/v2/models/iris/ready", timeout=2).status == 200:
                        break
                time.sleep(0.3)
            yield url, server.pid


def bench_mlserver(seconds: float, repeats: int, venv: Path) -> dict[str, float]:
    with _mlserver(venv) as server:
        if server is None:
            print("(a) skipped: no MLServer")
            return {}
        url, pid = server
        path = "/v2/models/iris/infer"
        runs, summary = _compare(url, path, V2_BODY, seconds, repeats, pid, relay=False)
        lat = _latency_pair(url, path, "v2", seconds, rate=200.0)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"(a) MLServer + mlserver-sklearn LogisticRegression (OIP v2), wrk -t2 -c16 -d{seconds:g}s, "
          f"median of {repeats}: direct {med['direct']:,.0f} req/s, proxy {med['proxy']:,.0f} req/s "
          f"-> {med['proxy'] / med['direct']:.1%}")
    _print_runs(runs, summary)
    _print_latency("(c') MLServer at 200 req/s (about a third of its capacity)", lat)
    return med


def _openloop(url: str, path: str, kind: str, seconds: float, rate: float) -> dict[str, float]:
    out = subprocess.run(_self("_openloop", url + path, str(rate), str(seconds), kind),
                         capture_output=True, text=True, cwd=str(ROOT), check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _latency_pair(upstream: str, path: str, kind: str, seconds: float,
                  rate: float) -> dict[str, dict[str, float]]:
    px = _free_port()
    direct = _openloop(upstream, path, kind, seconds, rate)
    with _process(_self("_proxy", str(px), upstream, "1.0"), px):
        proxied = _openloop(f"http://127.0.0.1:{px}", path, kind, seconds, rate)
    return {"direct": direct, "proxy": proxied}


def _print_latency(title: str, r: dict[str, dict[str, float]]) -> None:
    d, p = r["direct"], r["proxy"]
    print(f"{title} (open loop, {int(d['n'])} requests): "
          + ", ".join(f"{k[:-3]} {d[k]:.2f} -> {p[k]:.2f} ms (+{p[k] - d[k]:.2f})"
                      for k in ("p50_ms", "p90_ms", "p99_ms"))
          + f"; errors {int(d['errors'])}/{int(p['errors'])}")


def bench_latency(seconds: float) -> None:
    up = _free_port()
    with _process(_self("_upstream", str(up)), up):
        r = _latency_pair(f"http://127.0.0.1:{up}", "/v1/models/iris:predict", "kserve", seconds,
                          rate=500.0)
    _print_latency("(c) trivial upstream at 500 req/s", r)


def _lua(body: bytes, extra_headers: dict[str, str] | None = None) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body.decode())}\n")
        for k, v in (extra_headers or {}).items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        return f.name


def bench_rss(minutes: float, churn_seconds: float = 20.0) -> None:
    """Sustained saturating POST load on 16 keep-alive connections, then connection churn."""
    up, px = _free_port(), _free_port()
    url = f"http://127.0.0.1:{px}/v1/models/iris:predict"
    marks: list[tuple[str, int]] = []
    lua, churn_lua = _lua(KSERVE_BODY), _lua(KSERVE_BODY, {"Connection": "close"})
    try:
        with _process(_self("_upstream", str(up)), up), \
                _process(_self("_proxy", str(px), f"http://127.0.0.1:{up}", "1.0"), px) as proxy:
            marks.append(("start", _rss_kib(proxy.pid)))
            wrk = subprocess.Popen(["wrk", "-t2", "-c16", f"-d{minutes * 60 + 2:g}s", "-s", lua, url],
                                   stdout=subprocess.PIPE, text=True)
            t0 = time.monotonic()
            checkpoints = sorted({1.0, *(float(m) for m in range(2, int(minutes) + 1)), minutes})
            for cp in checkpoints:
                time.sleep(max(0.0, t0 + cp * 60 - time.monotonic()))
                marks.append((f"{cp:g} min", _rss_kib(proxy.pid)))
            out, _ = wrk.communicate()
            churn = subprocess.run(["wrk", "-t2", "-c16", f"-d{churn_seconds:g}s", "-s", churn_lua, url],
                                   capture_output=True, text=True).stdout
            marks.append((f"+{churn_seconds:g} s of one request per connection", _rss_kib(proxy.pid)))
            summary = _proxy_summary(proxy)
    finally:
        os.unlink(lua)
        os.unlink(churn_lua)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out or "")
    c = re.search(r"(\d+) requests in", churn or "")
    print(f"(d) proxy RSS under saturating POST load ({m.group(1) if m else '?'} req/s, 100 % sampled), "
          f"then {c.group(1) if c else '?'} new connections: "
          + ", ".join(f"{t} {kib / 1024:.1f} MiB" for t, kib in marks))
    print(f"    proxy process: {summary}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_proxy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--latency-seconds", type=float, default=20.0, help="seconds per open-loop run")
    ap.add_argument("--rss-minutes", type=float, default=1.0, help="minutes of sustained load (d)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats in (a) and (b)")
    ap.add_argument("--mlserver-venv", type=Path, default=Path("/tmp/mlsv"),
                    help="virtualenv with mlserver, mlserver-sklearn (and aiohttp); created if missing")
    ap.add_argument("--only", choices=["a", "b", "c", "d"], action="append")
    args = ap.parse_args(argv or [])
    only = set(args.only or "abcd")
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}", flush=True)
    if "b" in only:
        bench_trivial(args.duration, args.repeats, args.mlserver_venv)
    if "c" in only:
        bench_latency(args.latency_seconds)
    if "a" in only:
        bench_mlserver(args.duration, args.repeats, args.mlserver_venv)
    if "d" in only:
        bench_rss(args.rss_minutes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        _run_upstream(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_relay":
        _run_relay(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "_proxy":
        _run_proxy(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_openloop":
        _run_openloop(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        main(sys.argv[1:])
