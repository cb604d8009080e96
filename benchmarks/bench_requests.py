"""Per-model request metrics on the proxy's hot path: the cost of one
``RequestMetrics.observe_path`` per exchange (path cache hit, the common case; a miss parses the
path with the v1/v2 route regexes), next to the status-class latency recorder the proxy already
ran, with the endpoint taken from a trusted ``x-driftline-endpoint`` header (cache keyed by
path and header), and with a flood of distinct model names (keys capped, path cache full).

Run: ``python -m benchmarks requests``.
"""

from __future__ import annotations

import time

from driftline.collectors.proxy_latency import LatencyRecorder
from driftline.collectors.request_metrics import RequestMetrics

N = 200_000


def _ns_per_call(fn: object, n: int = N) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter_ns()
        fn(n)  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> None:
    lat = LatencyRecorder()
    req = RequestMetrics()
    path = b"/v2/models/car-loan/versions/3/infer"

    def latency_only(n: int) -> None:
        for i in range(n):
            lat.observe(200, 0.004 + (i % 7) * 1e-4)

    def with_requests(n: int) -> None:
        for i in range(n):
            s = 0.004 + (i % 7) * 1e-4
            lat.observe(200, s)
            req.observe_path(path, 200, s, 512, 2048)

    def with_header(n: int) -> None:
        for i in range(n):
            s = 0.004 + (i % 7) * 1e-4
            lat.observe(200, s)
            req.observe_path(path, 200, s, 512, 2048, b"canary" if i % 2 else b"default")

    flood = RequestMetrics(max_keys=256, max_paths=4096)
    paths = [f"/v2/models/m{i}/infer".encode() for i in range(20_000)]

    def flooded(n: int) -> None:
        for i in range(n):
            flood.observe_path(paths[i % len(paths)], 200, 0.004, 512, 2048)

    a, b, h = _ns_per_call(latency_only), _ns_per_call(with_requests), _ns_per_call(with_header)
    c = _ns_per_call(flooded)
    print(f"latency recorder only:                 {a:7.0f} ns/exchange")
    print(f"latency + per-model request metrics:   {b:7.0f} ns/exchange (+{b - a:.0f} ns)")
    print(f"  … endpoint from a trusted header:    {h:7.0f} ns/exchange (+{h - a:.0f} ns)")
    print(f"flood of 20000 model names (capped):   {c:7.0f} ns/exchange; keys kept "
          f"{len({k[:3] for k in flood.stats().counts})}")


if __name__ == "__main__":
    main()
