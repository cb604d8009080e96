"""Replays the demo's story against the compose stack, forever: stable applications for a few
minutes, then a downturn; labels arrive a little later through the sidecar's /feedback."""

from __future__ import annotations

import itertools
import os
import time

from driftline_demo.data import TARGET, generate, records
from driftline_demo.traffic import TrafficClient

PROXY = os.environ.get("PROXY_URL", "http://127.0.0.1:8081")
SIDECAR = os.environ.get("SIDECAR_URL", "http://127.0.0.1:9108")


def main() -> None:
    client = TrafficClient(threads=2)
    for cycle in itertools.count():
        for shift, minutes in ((0.0, 5), (0.8, 5)):
            end = time.monotonic() + 60 * minutes
            while time.monotonic() < end:
                batch = generate(100, seed=cycle * 1000 + int(time.time()) % 1000, shift=shift)
                sent = client.infer_v2(PROXY, "car-loan", records(batch), id_prefix=f"c{cycle}")
                client.feedback(SIDECAR, sent.ids, batch[TARGET].tolist())
                time.sleep(2)


if __name__ == "__main__":
    main()
