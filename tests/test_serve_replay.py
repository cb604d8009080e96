"""driftline replay: a data file into a running sidecar's /ingest, with back-pressure."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from test_serve_http import Stack

from driftline.cli import main as driftline_main
from driftline.collectors.replay import ReplayColumns, replay
from driftline.errors import InputError


def write_csv(path: Path, n: int) -> np.ndarray:
    x = np.random.default_rng(2).normal(size=(n, 4))
    lines = ["f0,f1,f2,f3,pred,proba,rid"]
    lines += [f"{a},{b},{c},{d},{i % 2},0.{i % 9 + 1},id{i}"
              for i, (a, b, c, d) in enumerate(x.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return x


def test_replay_with_back_pressure(tmp_path: Path) -> None:
    x = write_csv(tmp_path / "data.csv", 2300)
    # The queue holds one batch and the worker is not running: the second batch gets 429 and
    # replay must wait (the worker starts on the first wait) and retry, not lose it.
    stack = Stack(queue_size=600, start_worker=False)
    sleeps: list[float] = []
    gate = threading.Event()
    try:
        def sleep(s: float) -> None:
            sleeps.append(s)
            stack.worker.start()
            gate.wait(0.05)

        res = replay([str(tmp_path / "data.csv")], f"http://127.0.0.1:{stack.port}",
                     model_name="car-loan", batch_size=500, sleep=sleep,
                     columns=ReplayColumns(prediction="pred", probabilities=("proba",), id="rid"))
        assert (res.records, res.requests, res.rejected) == (2300, 5, 0)
        assert res.retries == len(sleeps) >= 1
    finally:
        stack.close()
    # every record arrived: none may count as dropped (they used to count as queue_full under
    # model_name="", and DriftlineRecordsDropped then fired at 100 %)
    assert stack.sidecar.dropped == {}
    snap = stack.sidecar.snapshots()[0]
    assert snap.records_by_source == {"ingest": 2300}
    assert sum(snap.prediction_classes.values()) == 2300
    assert snap.quantile_rank["f0"].sum == pytest.approx(
        float(np.searchsorted(np.asarray(stack.sidecar.entries[0].profile.features["f0"].summary),  # type: ignore[union-attr]
                              x[:, 0], side="right").sum()) / 2000, rel=0.05)
    assert stack.sidecar.store.pop("id17", stack.sidecar.clock()) == (("car-loan", "1", "default"),
                                                                       "1")


def test_replay_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "d.csv", 30)
    stack = Stack()
    try:
        rc = driftline_main(["replay", str(tmp_path / "d.csv"), "--url",
                             f"http://127.0.0.1:{stack.port}", "--model-name", "car-loan",
                             "--prediction", "pred", "--id", "rid", "--proba", "proba"])
        assert rc == 0 and "replayed 30 records in 1 requests" in capsys.readouterr().out
    finally:
        stack.close()
    with pytest.raises(InputError, match="cannot reach"):
        replay([str(tmp_path / "d.csv")], f"http://127.0.0.1:{stack.port}", model_name="m")
    with pytest.raises(InputError, match="http://"):
        replay([str(tmp_path / "d.csv")], "ftp://x", model_name="m")
