"""The sidecar's core: one monitor per (model, version, endpoint), fed by every collector.

:class:`Sidecar` routes parsed records to monitors, keeps the process-wide counters (drops by
reason, folded label values) and is the :class:`~driftline.engine.snapshot.SnapshotSource` that the
Prometheus and OTLP exporters read. Its ``handle_*`` methods run on ONE thread, the collector
worker (:mod:`driftline.collectors.worker`), so monitors, the CloudEvents pairer and the
prediction store need no locks; ``drop`` and the ``SnapshotSource`` methods are safe from any
thread.

Monitors exist only for configured models (each needs its baseline), so an unknown model name
never creates state: its records are dropped as ``unknown_model``. The drop counter's
``model_name`` label admits at most ``limits.max_model_labels`` unknown names; the rest are
counted under ``__other__``. Endpoints (KServe ``default``/``canary``) are capped per model.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from driftline.catalogue import PROXY_ERROR_KINDS
from driftline.collectors.cloudevents import CloudEvent, Exchange, Pairer
from driftline.collectors.feedback import Feedback, PendingLabels, PredictionStore
from driftline.collectors.ingest import (
    FEATURES_OF,
    IngestGroups,
    TypedSplit,
    split_records,
    to_batch,
)
from driftline.collectors.label_values import BAD_LABEL, label_value
from driftline.collectors.payloads import ModelSchema, PayloadError, decode_binary, parse, route
from driftline.collectors.request_metrics import RequestMetrics
from driftline.collectors.request_metrics import merge as merge_requests
from driftline.config import DriftConfig, LimitsConfig, ModelConfig, ServeConfig, WindowsConfig
from driftline.engine.derived import EmbeddingPolicy
from driftline.engine.monitor import DriftPolicy, WindowPolicy
from driftline.engine.records import RecordBatch, numeric_column
from driftline.engine.snapshot import Histogram, ModelSnapshot, SidecarStats, SnapshotSource
from driftline.errors import ConfigError, ProfileError, did_you_mean
from driftline.labels import canonical_labels
from driftline.profile.format import BaselineProfile

if TYPE_CHECKING:
    from driftline.collectors.ingest_typed import TypedIngest

_log = logging.getLogger("driftline.serve")

OTHER = "__other__"
DEFAULT_ENDPOINT = "default"

# Drop reasons (the ``reason`` label of driftline_records_dropped_total).
PARSE_ERROR = "parse_error"
SCHEMA_MISMATCH = "schema_mismatch"
UNKNOWN_MODEL = "unknown_model"
UNKNOWN_ENDPOINT = "unknown_endpoint"
QUEUE_FULL = "queue_full"
UNPAIRED_RESPONSE = "unpaired_response"
UNMATCHED_LABEL = "unmatched_label"
INVALID_LABEL = "invalid_label"
INVALID_PROBABILITY = "invalid_probability"
UNSUPPORTED = "unsupported_encoding"
INTERNAL_ERROR = "internal_error"


class MonitorLike(Protocol):
    """The engine's ``driftline.engine.monitor.Monitor`` as the collectors use it."""

    def observe(self, batch: RecordBatch, *, source: str = ..., now: float | None = ...) -> Any: ...
    def observe_labels(self, predicted: np.ndarray, labels: np.ndarray,
                       scores: np.ndarray | None = None) -> Any: ...
    def count_unmatched_labels(self, n: int) -> Any: ...
    def tick(self, now: float) -> Any: ...
    def flush(self) -> Any: ...
    def snapshot(self) -> ModelSnapshot: ...


MonitorFactory = Callable[[BaselineProfile, str, ModelConfig], MonitorLike]


def window_policy(cfg: WindowsConfig) -> WindowPolicy:
    return WindowPolicy(records=cfg.records, max_age=cfg.max_age, min_records=cfg.min_records)


def drift_policy(cfg: DriftConfig) -> DriftPolicy:
    return DriftPolicy(psi_threshold=cfg.psi_threshold, correct_psi=cfg.correct_psi, alpha=cfg.alpha,
                       require_significance=cfg.require_significance,
                       prediction_psi_threshold=cfg.prediction_psi_threshold,
                       adwin_features=cfg.adwin_features, exact_ks=cfg.exact_ks)


def embedding_policy(cfg: DriftConfig) -> EmbeddingPolicy:
    return EmbeddingPolicy(window_sample=cfg.embedding_window_sample,
                           reference_sample=cfg.embedding_reference_sample,
                           permutations=cfg.embedding_permutations, alpha=cfg.alpha,
                           mmd_every=cfg.embedding_mmd_every)


def engine_factory(window: WindowPolicy, drift: DriftPolicy,
                   embedding: EmbeddingPolicy | None = None) -> MonitorFactory:
    """Monitors from the engine (imported late: ``driftline serve --help`` stays fast)."""
    monitor_cls = importlib.import_module("driftline.engine.monitor").Monitor
    emb = embedding or EmbeddingPolicy()

    def make(profile: BaselineProfile, endpoint: str, cfg: ModelConfig) -> MonitorLike:
        # The configured name and version label the series, whatever the baseline was built as.
        if (profile.model_name, profile.model_version) != (cfg.name, cfg.version):
            profile = _Relabelled(**{f.name: getattr(profile, f.name)
                                     for f in dataclasses.fields(profile)},
                                  source_id=profile.id)
            profile = dataclasses.replace(profile, model_name=cfg.name, model_version=cfg.version)
        mon: MonitorLike = monitor_cls(profile, endpoint=endpoint, window=window, drift=drift,
                                       embedding=emb)
        return mon

    return make


@dataclass(frozen=True)
class _Relabelled(BaselineProfile):
    """A profile under the configured model name/version that keeps the id of its file, so
    ``driftline_build_info{baseline_id}`` matches ``driftline baseline show``."""

    source_id: str = ""

    @property
    def id(self) -> str:
        return self.source_id


@dataclass
class ModelEntry:
    """A configured model: its baseline, parser schema and monitors by endpoint."""

    config: ModelConfig
    profile: BaselineProfile
    schema: ModelSchema
    monitors: dict[str, MonitorLike] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> str:
        return self.config.version


def load_models(cfg: ServeConfig) -> list[tuple[ModelConfig, BaselineProfile]]:
    """Load every baseline; errors name the config key (before anything listens)."""
    out = []
    for i, m in enumerate(cfg.models):
        try:
            profile = BaselineProfile.load(m.baseline)
        except ProfileError as exc:
            raise ConfigError(str(exc), path=cfg.source, key=f"models.{i}.baseline",
                              fix="point baseline at a file from `driftline baseline build`"
                              ) from None
        if m.features is not None:
            unknown = [f for f in m.features if f not in profile.features]
            if unknown:
                raise ConfigError(
                    f"features {unknown} are not in baseline {m.baseline}",
                    path=cfg.source, key=f"models.{i}.features",
                    fix="list baseline features only: " + ", ".join(profile.feature_order))
        check_embedding_inputs(m, profile, source=cfg.source, key=f"models.{i}.embeddings")
        out.append((m, profile))
    return out


def check_embedding_inputs(m: ModelConfig, profile: BaselineProfile, *, source: str,
                           key: str) -> None:
    """Each declared embedding input must name an embedding column of the baseline, with the
    baseline's dimension, and must not shadow another baseline feature (a request field would
    then feed two features)."""
    known = tuple(profile.embeddings)
    for j, e in enumerate(m.embeddings):
        at = f"{key}.{j}"
        ref = profile.embeddings.get(e.column)
        if ref is None:
            fix = ("embedding columns of this baseline: " + ", ".join(known) if known else
                   "this baseline has no embedding column; rebuild it with "
                   "`driftline baseline build --embedding COL`")
            raise ConfigError(f"column {e.column!r} is not an embedding feature of baseline "
                              f"{m.baseline}{did_you_mean(e.column, known)}", path=source,
                              key=f"{at}.column", fix=fix)
        if e.dim != ref.dim:
            raise ConfigError(f"dim {e.dim} does not match the baseline: {e.column!r} has "
                              f"{ref.dim}-dimensional vectors", path=source, key=f"{at}.dim",
                              fix=f"set dim: {ref.dim}, or rebuild the baseline from embeddings "
                              "of the model that serves this input")
        if e.input != e.column and (e.input in profile.features or e.input in profile.embeddings
                                    or e.input in profile.text):
            raise ConfigError(f"input {e.input!r} is also a feature of the baseline",
                              path=source, key=f"{at}.input",
                              fix="map a request field that is not a baseline feature, or "
                              "remove this entry")


class Sidecar(SnapshotSource):
    """Routing, counters and monitors of one sidecar process (or one SDK instance)."""

    def __init__(self, models: Sequence[tuple[ModelConfig, BaselineProfile]], *,
                 limits: LimitsConfig | None = None,
                 monitor_factory: MonitorFactory | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or LimitsConfig()
        self.clock = clock
        #: Which ``x-driftline-model``/``x-driftline-endpoint`` request headers of proxied
        #: requests are believed (``proxy.trusted_headers``; none by default).
        self.trusted_headers: frozenset[str] = frozenset()
        #: The endpoint of proxied records without a trusted header (``proxy.endpoint``).
        self.proxy_endpoint: str | None = None
        self._factory = monitor_factory or engine_factory(WindowPolicy(), DriftPolicy())
        self.entries: list[ModelEntry] = []
        self._by_name: dict[str, list[ModelEntry]] = {}
        for mc, profile in models:
            entry = ModelEntry(mc, profile, ModelSchema(
                profile, feature_order=mc.features, prediction_output=mc.prediction_output,
                probabilities_output=mc.probabilities_output,
                embedding_inputs={e.input: e.column for e in mc.embeddings}))
            self.entries.append(entry)
            for nm in (mc.name, *mc.aliases):
                self._by_name.setdefault(nm, []).append(entry)
            self.monitor_for(entry, DEFAULT_ENDPOINT)
        self.pairer = Pairer(self.limits.cloudevents_ttl, self.limits.cloudevents_max_pending)
        self.store = PredictionStore(self.limits.feedback_ttl, self.limits.feedback_max_ids)
        self.pending_labels = PendingLabels(self.limits.feedback_wait,
                                            self.limits.feedback_wait_max_ids)
        self._lock = threading.Lock()
        self._dropped: dict[tuple[str, str], int] = {}
        self._known_names: set[str] = {*self._by_name, ""}
        self._unknown_names: set[str] = set()
        self._capped: dict[str, int] = {}
        #: Extra stats providers wired in by the service: queue depths and capacities, drops
        #: counted elsewhere (proxy tee), proxy latency, OTLP export errors.
        self.queue_stats: list[Callable[[], tuple[int, int]]] = []
        self.drop_stats: list[Callable[[], Mapping[tuple[str, str], int]]] = []
        self.latency_stats: Callable[[], dict[str, Histogram]] | None = None
        self.export_error_stats: list[Callable[[], Mapping[str, int]]] = []
        #: The reverse proxy's counters (``ProxyServer.stats``), when a proxy runs.
        self.proxy_stats: Callable[[], Any] | None = None
        #: Per-model requests and payload sizes seen by the payload logger; the proxy's own
        #: recorder (requests, latency, sizes) joins ``request_sources`` when a proxy runs.
        self.requests = RequestMetrics()
        self.request_sources: list[RequestMetrics] = [self.requests]
        self._typed: TypedIngest | None = None

    def typed_split(self) -> TypedSplit | None:
        """The typed ``/ingest`` decoder (:mod:`driftline.collectors.ingest_typed`) of a
        sidecar watching one model without embedding or text features, for
        :func:`split_records` (``typed=``, as the service reads ``/ingest``); None
        otherwise. Rebuilt when the model's schema is replaced."""
        if len(self.entries) != 1 or self.entries[0].schema.extra:
            return None
        schema = self.entries[0].schema
        typed = self._typed
        if typed is None or typed.schema is not schema:
            # imported here: only a service reading /ingest needs msgspec (not the SDK, not
            # `import driftline.sdk`)
            from driftline.collectors.ingest_typed import TypedIngest
            self._typed = typed = TypedIngest(schema)
        return typed.split

    @classmethod
    def from_config(cls, cfg: ServeConfig, *,
                    monitor_factory: MonitorFactory | None = None) -> Sidecar:
        factory = monitor_factory or engine_factory(window_policy(cfg.windows),
                                                    drift_policy(cfg.drift),
                                                    embedding_policy(cfg.drift))
        sc = cls(load_models(cfg), limits=cfg.limits, monitor_factory=factory)
        if cfg.proxy is not None:
            sc.trusted_headers = frozenset(cfg.proxy.trusted_headers)
            sc.proxy_endpoint = cfg.proxy.endpoint
        return sc

    # -- routing ---------------------------------------------------------------------------

    def resolve(self, name: str | None, version: str | None = None) -> ModelEntry | None:
        """The configured model for a name (or alias) and optional version."""
        if name is None:
            return self.entries[0] if len(self.entries) == 1 else None
        cands = self._by_name.get(name)
        if not cands:
            return None
        if version is None:
            return cands[0]
        for e in cands:
            if e.version == version:
                return e
        return None

    def monitor_for(self, entry: ModelEntry, endpoint: str | None) -> MonitorLike | None:
        ep = endpoint or DEFAULT_ENDPOINT
        mon = entry.monitors.get(ep)
        if mon is None:
            if len(entry.monitors) >= self.limits.max_endpoints:
                return None
            mon = self._factory(entry.profile, ep, entry.config)
            entry.monitors[ep] = mon
        return mon

    def monitors(self) -> list[MonitorLike]:
        return [m for e in self.entries for m in list(e.monitors.values())]

    # -- counters (any thread) -------------------------------------------------------------

    def drop(self, model: str | None, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        # Callers pass checked label values; anything else is counted, never trusted or raised.
        name = model if isinstance(model, str) else ""
        with self._lock:
            if name not in self._known_names and name not in self._unknown_names:
                if len(self._unknown_names) < self.limits.max_model_labels:
                    self._unknown_names.add(name)
                else:
                    name = OTHER
                    self._capped["model_name"] = self._capped.get("model_name", 0) + 1
            key = (name, reason)
            self._dropped[key] = self._dropped.get(key, 0) + n

    @property
    def dropped(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._dropped)

    # -- handlers (worker thread) ----------------------------------------------------------

    def observe(self, entry: ModelEntry, endpoint: str | None, batch: RecordBatch,
                source: str, now: float) -> bool:
        mon = self.monitor_for(entry, endpoint)
        if mon is None:
            self.drop(entry.name, UNKNOWN_ENDPOINT, batch.n)
            return False
        if batch.probabilities is not None and not _in_unit_interval(batch.probabilities):
            with np.errstate(invalid="ignore"):  # a score outside [0, 1] is not a probability
                p = batch.probabilities
                bad = (np.isfinite(p) & ((p < 0.0) | (p > 1.0))).any(axis=1)
            if bad.any():
                self.drop(entry.name, INVALID_PROBABILITY, int(bad.sum()))
                batch = batch.select(~bad)
        if batch.n == 0:
            return True
        mon.observe(batch, source=source, now=now)
        if batch.ids is not None and batch.prediction is not None:
            self.store.put((entry.name, entry.version, endpoint or DEFAULT_ENDPOINT),
                           batch.ids, batch.prediction, now, batch.probabilities)
            if len(self.pending_labels):  # labels that arrived first join now
                waiting = self.pending_labels.take(batch.ids.tolist())
                if waiting:
                    self.handle_feedback(waiting, now, hold=False)
        return True

    def handle_exchange(self, model: str | None, version: str | None, endpoint: str | None,
                        request: Any, response: Any, *, protocol: Any = None,
                        request_id: str | None = None, source: str = "proxy",
                        now: float | None = None) -> int:
        """Parse one request/response pair and feed its monitor; returns records observed."""
        t = self.clock() if now is None else now
        entry = self.resolve(model, version)
        if entry is None:
            self.drop(model, UNKNOWN_MODEL)
            return 0
        try:
            batch = parse(entry.schema, protocol, request, response, request_id)
        except PayloadError as exc:
            self.drop(entry.name, exc.reason)
            _log.debug("dropped %s payload for %s: %s", source, entry.name, exc)
            return 0
        return batch.n if self.observe(entry, endpoint, batch, source, t) else 0

    def handle_sample(self, sample: Any, now: float | None = None) -> int:
        """One proxied exchange (:class:`driftline.collectors.sample.Sample`)."""
        r = route(sample.model_path)
        if r is None or sample.method != "POST":
            return 0  # health checks, metadata: not model inputs
        try:
            trusted = self.trusted_headers
            hinted = sample.header("x-driftline-model") if "x-driftline-model" in trusted else None
            model = label_value(hinted or r.model, "model name")
            version = label_value(r.version, "model version")
            endpoint = label_value(sample.header("x-driftline-endpoint")
                                   if "x-driftline-endpoint" in trusted else None,
                                   "endpoint") or self.proxy_endpoint
        except PayloadError:
            self.drop(None, BAD_LABEL)
            return 0
        try:
            limit = self.limits.max_body_bytes
            req: Any = _decoded(sample.request_body, sample.header("content-encoding"), limit)
            bin_len = sample.header("inference-header-content-length")
            if bin_len is not None:
                req = decode_binary(req, bin_len)
            resp: Any = None
            if 200 <= sample.status < 300:
                resp = _decoded(sample.response_body, sample.response_header("content-encoding"),
                                limit)
                bin_len = sample.response_header("inference-header-content-length")
                if bin_len is not None:
                    resp = decode_binary(resp, bin_len)
        except PayloadError as exc:
            self.drop(model, exc.reason)
            return 0
        return self.handle_exchange(
            model, version, endpoint, req, resp,
            protocol=r.protocol, request_id=sample.header("x-request-id"), source="proxy",
            now=sample.received_at if now is None else now)

    def handle_cloudevents(self, events: Iterable[CloudEvent], now: float | None = None) -> int:
        t = self.clock() if now is None else now
        n = 0
        for ev in events:
            try:
                done = self.pairer.add(ev, t)
            except PayloadError as exc:
                self.drop(ev.model, exc.reason)
                continue
            n += self._exchanges(done, t)
        return n

    def _exchanges(self, done: Iterable[Exchange], now: float) -> int:
        """Feed released exchanges; one that fails is counted and the rest still run."""
        n = 0
        for ex in done:
            if ex.request is None:
                self.drop(ex.model, UNPAIRED_RESPONSE)
                continue
            n += self._isolated(ex.model, 1, self._exchange, ex, now)
        return n

    def _exchange(self, ex: Exchange, now: float) -> int:
        if ex.model:
            # KServe logs a response only for a 200; a request alone had some other outcome.
            self.requests.observe(ex.model, "", ex.endpoint, "2xx" if ex.response is not None
                                  else "unknown", None, _size(ex.request), _size(ex.response))
        return self.handle_exchange(ex.model, None, ex.endpoint, ex.request, ex.response,
                                    request_id=ex.request_id or ex.id, source="cloudevents",
                                    now=now)

    def _isolated(self, model: str | None, n: int, work: Callable[..., Any], *args: Any) -> int:
        """Run one model's share of a job; an exception is counted as ``internal_error`` on
        that model (``n`` records) and logged, so it cannot stop the other models' work."""
        try:
            return int(work(*args) or 0)
        except Exception:
            self.drop(model, INTERNAL_ERROR, n)
            _log.exception("collector work for model %r failed", model)
            return 0

    def handle_ingest(self, groups: IngestGroups, *, source: str = "ingest",
                      now: float | None = None) -> int:
        t = self.clock() if now is None else now
        for name, count in groups.bad_models.items():
            self.drop(name, SCHEMA_MISMATCH, count)
        anonymous_bad = groups.bad - sum(groups.bad_models.values())
        self.drop(None, SCHEMA_MISMATCH, anonymous_bad)
        for label_name, count in groups.bad_labels.items():
            self.drop(label_name, BAD_LABEL, count)
        n = 0
        for key, records in groups.groups.items():
            name, version = key
            entry = self.resolve(name, version)
            if entry is None:
                self.drop(name, UNKNOWN_MODEL, len(records))
                continue
            names = entry.profile.features.keys()
            by_endpoint: dict[str | None, list[Any]] = {}
            fields = None  # the group's fields, read once by split_records, when it goes whole
            mismatched = 0
            endpoints = groups.endpoints.get(key) or [None] * len(records)
            distinct = set(endpoints)
            typed = groups.columns.get(key)
            if typed is not None:  # a typed decoder's group: every record has every feature
                if typed[0] is not entry.schema:  # read for another schema: read it again
                    return n + self.handle_ingest(split_records(groups.body), source=source,
                                                  now=t)
                n += self._isolated(entry.name, len(records), self._ingest_batch, entry,
                                    distinct.pop(), records, source, t, groups.fields[key],
                                    typed[1])
                continue
            if len(distinct) == 1 and not any(map(names.isdisjoint, map(FEATURES_OF, records))):
                by_endpoint[distinct.pop()] = list(records)  # the usual body: checks in C
                fields = groups.fields.get(key)
            else:
                for r, ep in zip(records, endpoints, strict=True):
                    if names.isdisjoint(r["features"]):
                        mismatched += 1
                    else:
                        by_endpoint.setdefault(ep, []).append(r)
            self.drop(entry.name, SCHEMA_MISMATCH, mismatched)
            for ep, recs in by_endpoint.items():
                n += self._isolated(entry.name, len(recs), self._ingest_batch, entry, ep, recs,
                                    source, t, fields)
        return n

    def _ingest_batch(self, entry: ModelEntry, endpoint: str | None,
                      records: Sequence[Any], source: str, now: float,
                      fields: dict[str, list[Any]] | None = None,
                      columns: dict[str, np.ndarray] | None = None) -> int:
        try:
            batch = to_batch(entry.schema, records, fields, columns)
        except PayloadError as exc:
            self.drop(entry.name, exc.reason, len(records))
            return 0
        return batch.n if self.observe(entry, endpoint, batch, source, now) else 0

    def handle_feedback(self, items: Sequence[Feedback], now: float | None = None, *,
                        hold: bool = True) -> int:
        """Join labels to stored predictions; returns how many matched. A label whose
        prediction is not stored (yet) waits for it in ``pending_labels`` when ``hold``."""
        t = self.clock() if now is None else now
        matched: dict[Any, tuple[list[str | float], list[Any], list[np.ndarray | None]]] = {}
        given_up: list[Feedback] = []
        for fb in items:
            hit = self.store.pop_scored(fb.id, t)
            if hit is None:
                if hold:
                    given_up += self.pending_labels.hold(fb, t)
                else:
                    given_up.append(fb)
                continue
            key, pred, scores = hit
            preds_, labels_, scores_ = matched.setdefault(key, ([], [], []))
            preds_.append(pred)
            labels_.append(fb.label)
            scores_.append(scores)
        n = 0
        for (name, version, ep), (preds, labels, scores) in matched.items():
            entry = self.resolve(name, version)
            mon = entry.monitors.get(ep) if entry is not None else None
            if mon is None:
                continue
            out = entry.profile.output if entry is not None else None
            if out is not None and out.task == "regression":
                n += self._isolated(name, len(preds), self._values, name, mon, preds, labels)
            else:
                n += self._isolated(name, len(preds), self._labels, mon, preds, labels,
                                    _score_matrix(scores))
        self._unmatched(given_up)
        return n

    def _unmatched(self, labels: Sequence[Feedback]) -> None:
        unmatched: dict[str | None, int] = {}
        for fb in labels:
            unmatched[fb.model_name] = unmatched.get(fb.model_name, 0) + 1
        for model, count in unmatched.items():
            entry = self.resolve(model)
            mon = entry.monitors.get(DEFAULT_ENDPOINT) if entry is not None else None
            if mon is None:
                self.drop(model, UNMATCHED_LABEL, count)
            else:
                mon.count_unmatched_labels(count)

    @staticmethod
    def _labels(mon: MonitorLike, preds: list[str | float], labels: list[Any],
                scores: np.ndarray | None) -> int:
        mon.observe_labels(np.array(preds, dtype=object),
                           canonical_labels(np.array(labels, dtype=object)), scores)
        return len(preds)

    def _values(self, model: str, mon: MonitorLike, preds: list[str | float],
                labels: list[Any]) -> int:
        """A regressor's labels must be numbers: anything else is counted (``invalid_label``)
        and dropped, the rest joined."""
        values = numeric_column(labels)
        good = np.isfinite(values)
        self.drop(model, INVALID_LABEL, int((~good).sum()))
        mon.observe_labels(np.asarray(preds, dtype=np.float64)[good], values[good])
        return int(good.sum())

    def tick(self, now: float | None = None) -> None:
        """Timer work: release expired CloudEvents, forget old predictions, age out windows.
        Each exchange and each monitor runs isolated: one failure skips only itself."""
        t = self.clock() if now is None else now
        self._exchanges(self.pairer.expire(t), t)
        self.store.expire(t)
        self._unmatched(self.pending_labels.expire(t))
        for entry in self.entries:
            for mon in list(entry.monitors.values()):
                self._isolated(entry.name, 1, _done, mon.tick, t)

    def flush(self) -> None:
        """Shutdown: release pending CloudEvents, then close every open window."""
        t = self.clock()
        self._exchanges(self.pairer.drain(), t)
        self._unmatched(self.pending_labels.drain())
        for entry in self.entries:
            for mon in list(entry.monitors.values()):
                self._isolated(entry.name, 1, _done, mon.flush)

    # -- SnapshotSource (any thread) -------------------------------------------------------

    def snapshots(self) -> list[ModelSnapshot]:
        """What the exporters read: each monitor's :meth:`~driftline.engine.monitor.Monitor.scrape_snapshot`
        (a scrape never counts records the tick counts: it never makes ingest wait)."""
        return [_scrape_snapshot(m) for m in self.monitors()]

    def sidecar_stats(self) -> SidecarStats:
        depth = cap = 0
        for fn in self.queue_stats:
            d, c = fn()
            depth += d
            cap += c
        dropped = self.dropped
        for dfn in self.drop_stats:
            for k, v in dfn().items():
                dropped[k] = dropped.get(k, 0) + v
        errors: dict[str, int] = {}
        for fn2 in self.export_error_stats:
            for k2, v2 in fn2().items():
                errors[k2] = errors.get(k2, 0) + v2
        with self._lock:
            capped = dict(self._capped)
        proxy = self.proxy_stats() if self.proxy_stats is not None else None
        proxy_errors: dict[str, int] = {}
        if proxy is not None:  # every kind from start, so rate() and alerts see the first one
            proxy_errors = {k: 0 for k in PROXY_ERROR_KINDS} | dict(proxy.upstream_errors)
        return SidecarStats(
            queue_depth=depth, queue_capacity=cap, dropped=dropped,
            proxy_latency=self.latency_stats() if self.latency_stats is not None else {},
            series_capped=capped, export_errors=errors, proxy_errors=proxy_errors,
            proxy_tunnelled=None if proxy is None else int(proxy.tunnelled),
            proxy_tee_errors=None if proxy is None else int(proxy.tee_errors),
            requests=merge_requests(r.stats() for r in self.request_sources))


def _in_unit_interval(p: np.ndarray) -> bool:
    """Every probability in [0, 1] (none missing): the usual batch, then no row is looked at.
    Why: two reductions instead of the row check's six numpy calls and an ``errstate``
    (≈ 3 against 9 µs a batch). A NaN makes min and max NaN and an infinity fails the bounds:
    both send the batch to the row check, which decides as before."""
    return not p.size or bool(p.min() >= 0.0 and p.max() <= 1.0)


def _scrape_snapshot(mon: MonitorLike) -> ModelSnapshot:
    scrape = getattr(mon, "scrape_snapshot", None)  # a custom MonitorLike may not have one
    return scrape() if scrape is not None else mon.snapshot()


def _size(payload: Any) -> int | None:
    """Body size of a CloudEvent payload when it arrived as bytes (decoded JSON: unknown)."""
    return len(payload) if isinstance(payload, bytes | bytearray) else None


def _done(work: Callable[..., Any], *args: Any) -> int:
    """Work that observes no records (ticks, flushes) counts 0 when it succeeds."""
    work(*args)
    return 0


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo gzip content coding, refusing to inflate past ``limit`` bytes (zip bombs)."""
    if not encoding or encoding.lower() == "identity":
        return body
    if encoding.lower() in ("gzip", "x-gzip"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(body, limit)
        except zlib.error as exc:
            raise PayloadError(PARSE_ERROR, f"bad gzip body: {exc}") from None
        if d.unconsumed_tail:
            raise PayloadError("too_large", f"gzip body inflates past {limit} bytes")
        return out
    raise PayloadError(UNSUPPORTED, f"content-encoding {encoding!r} is not supported")


def _score_matrix(rows: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The stored probabilities of joined records as one ``(n, k)`` matrix, a row of NaN for a
    record stored without them; None when none had any."""
    k = next((len(r) for r in rows if r is not None), 0)
    if not k:
        return None
    out = np.full((len(rows), k), np.nan)
    for i, r in enumerate(rows):
        if r is not None and len(r) == k:
            out[i] = r
    return out
