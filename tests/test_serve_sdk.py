"""driftline.sdk.Monitor: in-process logging that never blocks the model."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_serve_support import make_profile

import driftline.sdk
from driftline.collectors.sdk import _BATCH


@pytest.fixture()
def baseline(tmp_path: Path) -> Path:
    p = tmp_path / "baseline.json"
    make_profile(with_category=True).save(p)
    return p


def test_log_feedback_metrics_and_close(baseline: Path) -> None:
    mon = driftline.sdk.Monitor(baseline=baseline, window_records=100, metrics_port=0)
    try:
        rng = np.random.default_rng(0)
        preds = rng.integers(0, 2, 60)
        for i in range(60):
            assert mon.log(features={"f0": float(rng.normal()), "color": "red"},
                           prediction=int(preds[i]), probabilities=[0.4, 0.6], id=f"q{i}")
        x = rng.normal(loc=3.0, size=140)
        assert mon.log_batch(features={"f0": x, "f1": x, "color": ["blue"] * 140},
                             predictions=np.ones(140, dtype=int), ids=[f"b{i}" for i in range(140)])
        for i in range(60):
            mon.feedback(f"q{i}", int(preds[i]) if i < 45 else 1 - int(preds[i]))
        assert mon.flush()
        s = mon.snapshot()
        assert s.records_by_source == {"sdk": 200} and s.windows_total == 2
        assert s.labels["true"] == 60 and s.accuracy == pytest.approx(45 / 60)
        assert s.categories["color"]["red"] == 60 and s.categories["color"]["blue"] == 140
        w = s.last_window
        assert w is not None and w.records == 100
        # the second window holds only shifted f0 values: KS p-value as scipy computes it
        ref = np.asarray(mon.profile.features["f0"].summary)  # type: ignore[union-attr]
        assert w.features["f0"].ks_pvalue == pytest.approx(stats.ks_2samp(x[40:], ref).pvalue,
                                                            rel=1e-6)
        body = urllib.request.urlopen(f"http://127.0.0.1:{mon.metrics_port}/metrics",
                                      timeout=5).read().decode()
        assert 'source="sdk"} 200.0' in body
        mon.log(features={"f0": 0.0})
    finally:
        mon.close()
    s = mon.snapshot()
    assert s.windows_total == 3 and s.last_window is not None and s.last_window.records == 1


def test_full_buffer_drops_and_never_blocks(baseline: Path) -> None:
    mon = driftline.sdk.Monitor(baseline=baseline, queue_size=10)
    gate = threading.Event()
    handled: list[int] = []
    real = mon._worker.on_samples

    def slow(items: list) -> None:  # type: ignore[type-arg]
        gate.wait(30)
        # a log() record is a 6-tuple; a batch (_BATCH, columns, rows)
        handled.append(sum(1 if len(it) != 3 else it[2] if it[0] == _BATCH else 0
                           for it in items))
        assert real is not None
        real(items)

    mon._worker.on_samples = slow
    results: list[bool] = []

    def producer() -> None:
        for i in range(1000):
            results.append(mon.log(features={"f0": float(i)}))
        results.append(mon.log_batch(features={"f0": np.zeros(5)}))

    t = threading.Thread(target=producer)
    t.start()
    t.join(30)  # guard against a deadlock, not a speed assertion
    assert not t.is_alive(), "log() blocked on a full buffer"
    kept_logs, batch_kept = sum(results[:-1]), results[-1]
    assert 10 <= kept_logs < 1000  # the buffer holds 10 while the worker is stuck
    assert mon.dropped == (1000 - kept_logs) + (0 if batch_kept else 5)
    gate.set()
    mon.close()
    s = mon.snapshot()
    assert s.records_sampled == sum(handled) == kept_logs + (5 if batch_kept else 0)
    assert mon.sidecar.sidecar_stats().dropped[("car-loan", "queue_full")] == mon.dropped


def test_rows_form_of_log_batch_and_unmatched_feedback(baseline: Path) -> None:
    with driftline.sdk.Monitor(baseline=baseline, model_name="other", model_version="3") as mon:
        mon.log_batch([{"f0": 1.0}, {"f0": 2.0, "color": "green"}], predictions=[0, 1],
                      probabilities=[[0.9, 0.1], [0.2, 0.8]], ids=["a", "b"])
        mon.feedback("b", 1)
        mon.feedback("zzz", 0)
        assert mon.flush()
        assert mon.snapshot().labels == {"true": 1, "false": 0}  # "zzz" waits for its record
    s = mon.snapshot()  # closing gives up on it
    assert (s.model_name, s.model_version) == ("other", "3")
    assert s.labels == {"true": 1, "false": 1} and s.accuracy == 1.0
    assert s.prediction_confidence is not None and s.prediction_confidence.count == 2


def test_public_api_is_pinned() -> None:
    assert driftline.sdk.__all__ == ["Monitor"]
    for name in ("log", "log_batch", "feedback", "flush", "snapshot", "close", "metrics_port",
                 "dropped"):
        assert hasattr(driftline.sdk.Monitor, name), name


def test_configured_names_label_the_series_and_baseline_id_is_kept(baseline: Path) -> None:
    from driftline.profile.format import BaselineProfile

    with driftline.sdk.Monitor(baseline=baseline, model_name="renamed", model_version="9") as mon:
        s = mon.snapshot()
    assert (s.model_name, s.model_version) == ("renamed", "9")
    assert s.baseline_id == BaselineProfile.load(baseline).id


def _counters(s: object) -> tuple[object, ...]:
    return (s.records_by_source, s.quantile_rank, s.categories,  # type: ignore[attr-defined]
            s.prediction_classes, s.prediction_confidence)  # type: ignore[attr-defined]


def _table_data(n: int = 150) -> dict[str, object]:
    rng = np.random.default_rng(4)
    return {"f0": rng.normal(size=n), "f1": rng.normal(1.0, size=n),
            "color": rng.choice(["red", "green", "blue", "pink"], n).astype(object)}


class _ArrowStream:
    """A third-party table that only speaks the Arrow PyCapsule stream interface (as polars'
    DataFrame does)."""

    def __init__(self, table: object) -> None:
        self._t = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._t.__arrow_c_stream__(requested_schema)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["pandas", "pyarrow", "arrow-stream"])
def test_log_batch_accepts_tables_like_columns(baseline: Path, kind: str) -> None:
    """A pandas DataFrame used to be accepted, then fail in the background thread (counted as
    internal_error under model_name="") and make flush() wait its whole timeout."""
    import pandas as pd
    import pyarrow as pa

    data = _table_data()
    n = 150
    preds = np.arange(n) % 2
    proba = np.column_stack([1 - preds * 0.7, 0.3 + preds * 0.4])
    table = {"pandas": lambda: pd.DataFrame(data),
             "pyarrow": lambda: pa.table(data),
             "arrow-stream": lambda: _ArrowStream(pa.table(data))}[kind]()
    with driftline.sdk.Monitor(baseline=baseline, window_records=100) as by_table, \
            driftline.sdk.Monitor(baseline=baseline, window_records=100) as by_columns:
        assert by_table.log_batch(table, predictions=pd.Series(preds), probabilities=proba,
                                  ids=[f"r{i}" for i in range(n)])
        assert by_columns.log_batch(data, predictions=preds, probabilities=proba,
                                    ids=[f"r{i}" for i in range(n)])
        assert by_table.flush(timeout=10) and by_columns.flush(timeout=10)
        got, want = by_table.snapshot(), by_columns.snapshot()
        assert got.records_by_source == {"sdk": n}
        assert _counters(got) == _counters(want)
        assert got.categories["color"]["__other__"] == int((data["color"] == "pink").sum())
        assert by_table.sidecar.sidecar_stats().dropped == {}


@pytest.mark.parametrize(("args", "error", "words"), [
    ((object(),), TypeError, "DataFrame/Arrow table"),
    (("f0,f1",), TypeError, "got str"),
    (([[1.0, 2.0]],), TypeError, "row 0 is a list"),
    (({"f0": np.zeros(3), "f1": np.zeros(4)},), ValueError, "f0: 3, f1: 4"),
    (({"f0": np.zeros(3)}, [0, 1]), ValueError, "3 rows of features but 2 predictions"),
    (({"f0": np.zeros(3)}, None, None, ["a"]), ValueError, "but 1 ids"),
])
def test_log_batch_refuses_what_it_cannot_read_synchronously(
        baseline: Path, args: tuple[object, ...], error: type[Exception], words: str) -> None:
    with driftline.sdk.Monitor(baseline=baseline) as mon:
        with pytest.raises(error, match=words):
            mon.log_batch(*args)  # type: ignore[arg-type]
        assert mon.flush(timeout=10)
        assert mon.snapshot().records_sampled == 0
        assert mon.sidecar.sidecar_stats().dropped == {}


def test_log_refuses_a_non_mapping_record(baseline: Path) -> None:
    with driftline.sdk.Monitor(baseline=baseline) as mon, pytest.raises(TypeError, match="mapping"):
        mon.log(features=[1.0, 2.0])  # type: ignore[arg-type]


def test_a_batch_failing_in_the_background_is_counted_under_its_model(baseline: Path) -> None:
    """Values only the schema can judge (here predictions of a three-dimensional shape) are
    counted under the model's name, and flush() still returns at once."""
    with driftline.sdk.Monitor(baseline=baseline) as mon:
        assert mon.log_batch({"f0": np.zeros(4)}, predictions=np.zeros((4, 2, 2)))
        mon.log(features={"f0": 1.0})
        assert mon.flush(timeout=10)
        dropped = mon.sidecar.sidecar_stats().dropped
        assert mon.snapshot().records_sampled == 1
    assert dropped == {("car-loan", "schema_mismatch"): 4}


@pytest.mark.parametrize(("arg", "value"), [("endpoint", ["canary"]), ("endpoint", {"a": 1}),
                                            ("model_name", "bad name"), ("model_version", "x" * 200)])
def test_label_arguments_are_checked_at_construction(baseline: Path, arg: str, value: object) -> None:
    with pytest.raises(ValueError, match=arg):
        driftline.sdk.Monitor(baseline=baseline, **{arg: value})  # type: ignore[arg-type]


def test_an_integer_endpoint_becomes_its_string_and_scrapes_stay_valid(baseline: Path) -> None:
    with driftline.sdk.Monitor(baseline=baseline, endpoint=5, metrics_port=0,  # type: ignore[arg-type]
                               window_records=10) as mon:
        mon.log_batch(features={"f0": np.zeros(10), "color": ["red"] * 10})
        assert mon.flush()
        body = urllib.request.urlopen(f"http://127.0.0.1:{mon.metrics_port}/metrics",
                                      timeout=5).read().decode()
        assert 'endpoint="5"' in body


@pytest.mark.parametrize("native", ["1", "0"])
def test_an_integer_too_large_for_a_float_is_a_missing_value(
        baseline: Path, native: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``float(10**400)`` overflows: the value is missing (NaN), as any other value that is no
    finite number, and the records beside it are observed (the worker once dropped the whole
    flush as an internal error)."""
    monkeypatch.setenv("DRIFTLINE_NATIVE", native)
    with driftline.sdk.Monitor(baseline=baseline) as mon:
        mon.log(features={"f0": 1.0, "color": "red"}, probabilities=[0.4, 0.6])
        mon.log(features={"f0": 10**400, "color": "red"}, probabilities=[10**400, 0.6])
        mon.log_batch({"f0": [2.0, 10**400], "color": ["red", "red"]})
        assert mon.flush(timeout=10)
        s = mon.snapshot()
        dropped = mon.sidecar.sidecar_stats().dropped
    assert s.records_sampled == 4 and not dropped
    assert s.quantile_rank["f0"].count == 2  # the two finite values ranked, the others missing
