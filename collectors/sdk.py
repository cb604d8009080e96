"""In-process monitoring for a Python model server: log without blocking the request.

::

    import driftline.sdk

    mon = driftline.sdk.Monitor(baseline="baseline.json", metrics_port=9108)
    ...
    mon.log(features={"amount": 120.0, "country": "DE"}, prediction=1,
            probabilities=[0.3, 0.7], id=request_id)
    mon.log_batch(features={"amount": amounts, "country": countries}, predictions=preds)
    ...
    mon.feedback(request_id, label=0)          # when the ground truth arrives
    mon.close()                                # drain, close the open window, flush OTLP

``log`` appends one plain tuple to a bounded buffer (no lock) and returns; a background thread
turns buffered records into columnar batches and feeds the same monitor, detectors and exporters
that ``driftline serve`` uses. When the buffer is full the record is dropped and counted
(``driftline_records_dropped_total{reason="queue_full"}``): the model never waits for monitoring.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.collectors.feedback import Feedback
from driftline.collectors.ingest import columns_batch, present
from driftline.collectors.label_values import label_value
from driftline.collectors.payloads import ModelSchema, PayloadError
from driftline.collectors.sidecar import (
    INTERNAL_ERROR,
    QUEUE_FULL,
    ModelEntry,
    Sidecar,
    check_embedding_inputs,
    engine_factory,
)
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import EmbeddingInput, LimitsConfig, ModelConfig
from driftline.engine.derived import EmbeddingPolicy
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.engine.records import RecordBatch, from_records, probability_matrix
from driftline.engine.snapshot import ModelSnapshot
from driftline.profile.format import BaselineProfile

if TYPE_CHECKING:  # the HTTP service (asyncio, TLS, httptools) loads only with a metrics_port
    from driftline.collectors.service import ServiceThread

__all__ = ["Monitor"]

_log = logging.getLogger("driftline.sdk")

_BATCH, _FEEDBACK, _MARK = 1, 2, 3


class _Buffer:
    """Bounded, never-blocking hand-off from the model's threads to the worker.

    ``log()`` is on the model's request path, so a record costs one ``deque.append`` of a
    plain tuple (atomic under the GIL): no lock, no condition, no dict. Only batches,
    feedback and flush marks (rare next to records) take the lock, to keep the weight of the
    queued batches. The bound is checked without the lock, so concurrent ``log()`` calls can
    pass it by at most one record each; the worker wakes on an event once ``wake_at`` records
    wait (or at its poll timeout). Records and control items keep their order: one deque.
    """

    def __init__(self, capacity: int, wake_at: int = 256) -> None:
        self.capacity = capacity
        self.wake_at = wake_at
        # records: (features, prediction, probabilities, id, label, timestamp);
        # anything else: (kind, item, weight)
        self._items: deque[tuple[Any, ...]] = deque()
        self._extra = 0  # sum of (weight - 1) of the queued control items, under _lock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.dropped = 0

    @property
    def depth(self) -> int:
        """Records (and batches' records) waiting."""
        return len(self._items) + self._extra

    def record(self, features: Any, prediction: Any, probabilities: Any, id: Any, label: Any,
               timestamp: Any) -> bool:
        items = self._items
        if len(items) + self._extra >= self.capacity:
            with self._lock:
                self.dropped += 1
            return False
        items.append((features, prediction, probabilities, id, label, timestamp))
        if len(items) >= self.wake_at and not self._wake.is_set():
            self._wake.set()
        return True

    def offer(self, kind: int, item: Any, weight: int = 1) -> bool:
        with self._lock:
            items = self._items
            if items and len(items) + self._extra + weight > self.capacity:
                self.dropped += weight
                return False
            items.append((kind, item, weight))
            self._extra += weight - 1
            depth = len(items) + self._extra
        if depth >= self.wake_at or kind == _MARK:
            self._wake.set()
        return True

    def drain(self, max_items: int = 1 << 30, timeout: float | None = 0.05
              ) -> list[tuple[Any, ...]]:
        items = self._items
        if len(items) + self._extra < self.wake_at and timeout != 0:
            self._wake.wait(timeout)
        self._wake.clear()
        popleft = items.popleft
        out = [popleft() for _ in range(min(max_items, len(items)))]
        extra = sum(it[2] - 1 for it in out if len(it) == 3)
        if extra:
            with self._lock:
                self._extra -= extra
        return out


class Monitor:
    """Drift and accuracy monitoring of one model, inside the model's own process.

    ``baseline`` is a profile file from ``driftline baseline build`` (or a loaded
    :class:`~driftline.profile.format.BaselineProfile`). ``metrics_port`` (0 for a free port) serves
    ``/metrics``, ``/healthz``, ``/readyz`` and the ingest/feedback endpoints on
    ``metrics_host``; ``otlp`` pushes OTLP (default: on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
    set). ``queue_size`` bounds the records waiting for the background thread.
    ``embeddings`` maps logged feature names onto the baseline's embedding columns
    (``{"query_vec": "query_embedding"}``, like ``models[].embeddings`` of ``driftline serve``);
    ``embedding_policy`` bounds their MMD test (samples, permutations, every k-th window).
    """

    def __init__(self, baseline: str | os.PathLike[str] | BaselineProfile, *,
                 model_name: str | None = None, model_version: str | None = None,
                 endpoint: str = "default", window_records: int = 1000,
                 window_max_age: float = 300.0, drift: DriftPolicy | None = None,
                 queue_size: int = 10_000, metrics_port: int | None = None,
                 metrics_host: str = "127.0.0.1", otlp: bool | None = None,
                 tick_interval: float = 1.0, limits: LimitsConfig | None = None,
                 embeddings: Mapping[str, str] | None = None,
                 embedding_policy: EmbeddingPolicy | None = None) -> None:
        profile = (baseline if isinstance(baseline, BaselineProfile)
                   else BaselineProfile.load(baseline))
        name = str(_label_argument(model_name or profile.model_name, "model_name"))
        version = str(_label_argument(model_version or profile.model_version, "model_version"))
        endpoint = _label_argument(endpoint, "endpoint") or "default"
        mc = ModelConfig(name=name, version=version,
                         baseline=Path(str(baseline)) if not isinstance(
                             baseline, BaselineProfile) else Path("<in-memory>"),
                         embeddings=_embedding_inputs(embeddings, profile))
        check_embedding_inputs(mc, profile, source="<argument>", key="embeddings")
        factory = engine_factory(WindowPolicy(records=window_records, max_age=window_max_age),
                                 drift or DriftPolicy(), embedding_policy)
        self.sidecar = Sidecar([(mc, profile)], limits=limits, monitor_factory=factory)
        self.endpoint = endpoint
        self._entry: ModelEntry = self.sidecar.entries[0]
        self.profile = profile
        self._buffer = _Buffer(queue_size)
        self._queue = WorkQueue(queue_size)
        self.sidecar.queue_stats.append(lambda: (self._buffer.depth + self._queue.depth,
                                                 self._buffer.capacity + self._queue.capacity))
        self.sidecar.drop_stats.append(lambda: {(name, QUEUE_FULL): self._buffer.dropped}
                                       if self._buffer.dropped else {})
        self._worker = Worker(self.sidecar, self._queue, samples=self._buffer,
                              on_samples=self._handle, tick_interval=tick_interval)
        self._worker.start()
        self._closed = False
        self._otlp: Any = None
        self._service: ServiceThread | None = None
        try:
            if otlp or (otlp is None and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                                          os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))):
                from driftline.exporters.otlp import OtlpMetricsExporter

                self._otlp = OtlpMetricsExporter(self.sidecar)
                otlp_exp = self._otlp
                self.sidecar.export_error_stats.append(
                    lambda: {"otlp": int(otlp_exp.export_errors)})
                self._otlp.start()
            if metrics_port is not None:
                from driftline.collectors.service import App, HttpServer, ServiceThread
                from driftline.exporters.prometheus import new_registry, render

                registry, _ = new_registry(self.sidecar)
                app = App(self.sidecar, self._queue, lambda accept: render(registry, accept),
                          ready_checks={"worker_running": lambda: self._worker.alive})
                self._service = ServiceThread(HttpServer(app, metrics_host, metrics_port)).start()
        except BaseException:
            self.close()
            raise

    # -- logging (any thread, never blocks) ----------------------------------------------------

    def log(self, features: Mapping[str, Any], prediction: Any = None,
            probabilities: Any = None, id: Any = None, label: Any = None,
            timestamp: float | None = None) -> bool:
        """Queue one record; False when it was dropped because the buffer is full."""
        if type(features) is not dict and not isinstance(features, Mapping):
            raise TypeError(f"log: features must be a mapping {{name: value}}, got "
                            f"{type(features).__name__}; fix: pass a dict, or use log_batch "
                            "for a table of rows")
        # the values as they are: columns (and ``str`` of ids) are built on the worker
        return self._buffer.record(features, prediction, probabilities, id, label, timestamp)

    def log_batch(self, features: Any, predictions: Sequence[Any] | None = None,
                  probabilities: Sequence[Any] | None = None,
                  ids: Sequence[Any] | None = None) -> bool:
        """Queue many records at once: ``features`` as columns ``{name: values}`` (numpy
        arrays welcome), as a list of row mappings, or as a table: a pandas or polars DataFrame
        or a pyarrow Table / RecordBatch (anything with the Arrow PyCapsule stream interface).

        The shape is checked here, in the caller's thread: a batch that cannot be read raises
        ``TypeError``/``ValueError`` at once instead of being accepted and then dropped.
        Returns False only when the buffer is full (the batch is dropped and counted)."""
        features, n = _batch_features(features)
        for what, col in (("predictions", predictions), ("probabilities", probabilities),
                          ("ids", ids)):
            if col is not None:
                m = _length(col, what)
                if m != n:
                    raise ValueError(f"log_batch: {n} rows of features but {m} {what}; "
                                     f"fix: pass one {what[:-1]} per row")
        if n == 0:
            return True
        return self._buffer.offer(_BATCH, (features, predictions, probabilities, ids), n)

    def feedback(self, id: Any, label: Any) -> bool:
        """The true label of an earlier logged record (joined by ``id``)."""
        return self._buffer.offer(_FEEDBACK, Feedback(str(id), label))

    # -- worker side ---------------------------------------------------------------------------

    def _handle(self, items: list[tuple[Any, ...]]) -> None:
        sc, entry = self.sidecar, self._entry
        records: list[tuple[Any, ...]] = []

        def flush_records() -> None:
            if records:
                try:
                    batch = logged_batch(entry.schema, records)
                except PayloadError as exc:
                    sc.drop(entry.name, exc.reason, len(records))
                else:
                    sc.observe(entry, self.endpoint, batch, "sdk", sc.clock())
                records.clear()

        for it in items:
            if len(it) != 3:  # a log() record
                records.append(it)
                continue
            kind, item, n_items = it
            flush_records()
            if kind == _BATCH:
                try:
                    batch = self._columns(*item)
                except PayloadError as exc:  # values the schema refuses (shape checked earlier)
                    sc.drop(entry.name, exc.reason, n_items)
                    continue
                except Exception:
                    _log.exception("reading an SDK batch of %d records failed", n_items)
                    sc.drop(entry.name, INTERNAL_ERROR, n_items)
                    continue
                sc.observe(entry, self.endpoint, batch, "sdk", sc.clock())
            elif kind == _FEEDBACK:
                sc.handle_feedback([item])
            elif kind == _MARK:
                item.set()
        flush_records()

    def _columns(self, features: Any, predictions: Any, probabilities: Any, ids: Any
                 ) -> RecordBatch:
        if not isinstance(features, Mapping):
            recs: list[dict[str, Any]] = [{"features": f} for f in features]
            for col, key in ((predictions, "prediction"), (probabilities, "probabilities"),
                             (ids, "id")):
                if col is not None:
                    for r, v in zip(recs, col, strict=True):
                        r[key] = v
            if self._entry.schema.inputs:  # fields named as models[].embeddings maps them
                rename = self._entry.schema.inputs
                for r in recs:
                    r["features"] = {rename.get(k, k): v for k, v in r["features"].items()}
            return from_records(self.profile, recs)
        schema = self._entry.schema
        n = len(next(iter(features.values())))
        cols = {}
        for name in (*self.profile.input_features, *schema.extra):
            vals = schema.field(features, name)
            if name in schema.extra and vals is not None:
                cols[name] = schema.column(name, vals if isinstance(vals, np.ndarray)
                                           else list(vals))
                continue
            cols[name] = schema.column(name, np.asarray(vals) if vals is not None
                                       else [None] * n)
        pred = proba = None
        if predictions is not None or probabilities is not None:
            pred, proba = schema.outputs(predictions, probabilities, n)
            if proba is None and probabilities is not None:
                proba = probability_matrix(self.profile, list(probabilities))
        id_col = None if ids is None else np.array([str(i) for i in ids], dtype=object)
        return RecordBatch(cols, pred, proba, id_col, n=n)

    # -- control -------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything logged so far has reached the monitor (not the window close)."""
        done = threading.Event()
        deadline = time.monotonic() + timeout
        while not self._buffer.offer(_MARK, done, 0):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return done.wait(max(0.0, deadline - time.monotonic()))

    def snapshot(self) -> ModelSnapshot:
        mon = self._entry.monitors.get(self.endpoint)
        if mon is None:
            mon = self.sidecar.monitor_for(self._entry, self.endpoint)
        assert mon is not None
        return mon.snapshot()

    @property
    def metrics_port(self) -> int | None:
        return None if self._service is None else self._service.port

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full."""
        return self._buffer.dropped

    def close(self) -> None:
        """Drain what is queued, close the open window, final OTLP export, stop the server."""
        if self._closed:
            return
        self._closed = True
        if self._service is not None:
            self._service.stop()
        self._worker.stop()
        if self._otlp is not None:
            self._otlp.shutdown()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def logged_batch(schema: ModelSchema, records: list[tuple[Any, ...]]) -> RecordBatch:
    """The columns of consecutive ``log()`` records (buffered as ``(features, prediction,
    probabilities, id, label, timestamp)`` tuples): one transpose, then the ingest path's
    column builder, so a logged record reads exactly as the same record sent to
    ``/ingest``."""
    feats, preds, probas, ids, labels, stamps = map(list, zip(*records, strict=True))
    return columns_batch(schema, feats, present(preds), present(probas), present(ids),
                         present(stamps), present(labels), by_position=False)


def _length(col: Any, what: str) -> int:
    try:
        return len(col)
    except TypeError:
        raise TypeError(f"log_batch: {what} must be a sequence or array, got "
                        f"{type(col).__name__}") from None


def _is_table(obj: Any) -> bool:
    """A DataFrame or Arrow table, recognised without importing pandas or polars."""
    if hasattr(obj, "__arrow_c_stream__"):
        return True
    module = type(obj).__module__.split(".")[0]
    return module in ("pandas", "polars", "pyarrow") and hasattr(obj, "columns")


def _batch_features(features: Any) -> tuple[Mapping[str, Any] | list[Mapping[str, Any]], int]:
    """``log_batch``'s features as columns or rows, and the row count; raises on a shape the
    background thread could not read."""
    if _is_table(features):
        import pyarrow as pa

        try:
            table = pa.table(features)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise TypeError(f"log_batch: cannot read {type(features).__name__} as a table "
                            f"({exc}); fix: pass {{name: numpy array}} columns") from None
        cols = {name: table.column(name).to_numpy(zero_copy_only=False)
                for name in table.column_names}
        return cols, table.num_rows
    if isinstance(features, Mapping):
        lengths = {str(k): _length(v, f"feature column {k!r}") for k, v in features.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError("log_batch: feature columns differ in length (" + ", ".join(
                f"{k}: {v}" for k, v in lengths.items()) + "); fix: one value per row in each")
        return features, next(iter(lengths.values()), 0)
    if isinstance(features, str | bytes) or not isinstance(features, Sequence | np.ndarray):
        raise TypeError(f"log_batch: features must be columns {{name: values}}, a list of row "
                        f"mappings or a DataFrame/Arrow table, got {type(features).__name__}")
    rows = list(features)
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise TypeError(f"log_batch: row {bad} is a {type(rows[bad]).__name__}, not a mapping "
                        "{name: value}; fix: pass a list of dicts, or columns {name: values}")
    return rows, len(rows)


def _embedding_inputs(embeddings: Mapping[str, str] | None, profile: BaselineProfile
                      ) -> tuple[EmbeddingInput, ...]:
    """``{field: embedding column}`` → config entries (the dimension is the baseline's; an
    unknown column is refused by ``check_embedding_inputs``)."""
    if embeddings is None:
        return ()
    if not isinstance(embeddings, Mapping):
        raise TypeError("embeddings must map a logged field name onto a baseline embedding "
                        f"column, got {type(embeddings).__name__}; fix: pass "
                        "embeddings={'field': 'column'}")
    out = []
    for field_name, column in embeddings.items():
        ref = profile.embeddings.get(str(column))
        out.append(EmbeddingInput(str(field_name), str(column), ref.dim if ref else 0))
    return tuple(out)


def _label_argument(value: Any, what: str) -> str:
    """A constructor argument that becomes a label value, checked at set-up like every edge
    value (an integer endpoint once made every later scrape fail)."""
    try:
        checked = label_value(value, what)
    except PayloadError as exc:
        raise ValueError(f"driftline.sdk.Monitor: {exc}; pass a short string of letters, "
                         "digits and . _ - : @ + /") from None
    return value if checked is None else checked
