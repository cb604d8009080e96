"""Configuration of ``driftline serve`` and the SDK: YAML file, then environment, then defaults.

Every key can be set three ways; the first that is present wins:

1. an explicit argument (``load_config(path, overrides={"proxy.upstream": ...})``);
2. an environment variable: ``DRIFTLINE_`` + the dotted key in upper case with ``.`` → ``_``
   (``proxy.upstream`` → ``DRIFTLINE_PROXY_UPSTREAM``; models by index:
   ``DRIFTLINE_MODELS_0_BASELINE``);
3. the YAML file, then the defaults below.

Errors are :class:`~driftline.errors.ConfigError` naming the file (or variable), the key and the
fix, and are raised here, before anything listens: unknown keys (with a did-you-mean), bad
types, bad listen addresses, missing baseline files. The standard ``OTEL_*`` variables are left
to the OpenTelemetry SDK; only ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and its ``_METRICS_`` variant)
decide whether OTLP export is on by default.

>>> cfg = config_from_dict({"models": [{"name": "m", "baseline": "b.json"}]}, check_files=False)
>>> cfg.models[0].version, cfg.windows.records, cfg.proxy is None
('1', 1000, True)
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from driftline.errors import ConfigError
from driftline.io.storage import is_uri
from driftline.redact import redact_url

ENV_PREFIX = "DRIFTLINE_"


@dataclass(frozen=True)
class Listen:
    """A ``host:port`` to bind. Port 0 asks the OS for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EmbeddingInput:
    """A request field that carries one of the baseline's embedding features: an OIP v2 ``[n, d]``
    input tensor, an ``/ingest`` or SDK feature named ``input``, read as the baseline's embedding
    column ``column`` of dimension ``dim``. The name the model server uses for its input tensor
    rarely matches the column the reference data was stored under; ``dim`` is checked against
    the baseline when the sidecar starts, so a config written for another embedding model fails
    then instead of turning every vector into a missing one."""

    input: str
    column: str
    dim: int


@dataclass(frozen=True)
class ModelConfig:
    """One monitored model. ``features`` overrides the baseline's feature order for positional
    inputs (v1 ``instances`` lists, v2 2-D tensors); ``aliases`` are further names under which
    the model appears in request paths or CloudEvents; ``embeddings`` maps request fields onto
    the baseline's embedding columns."""

    name: str
    #: A local path, or an object-store URI (``s3://bucket/key``, see driftline.io.storage).
    baseline: Path | str
    version: str = "1"
    aliases: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    prediction_output: str = "predict"
    probabilities_output: str = "predict_proba"
    embeddings: tuple[EmbeddingInput, ...] = ()


#: Request headers a proxy client may use to choose the monitor, when the operator trusts them.
TRUSTABLE_HEADERS: tuple[str, ...] = ("x-driftline-model", "x-driftline-endpoint")


@dataclass(frozen=True)
class ProxyConfig:
    """``trusted_headers``: which of :data:`TRUSTABLE_HEADERS` proxied requests may use to pick
    the model or the endpoint label. None by default: whoever reaches the proxy could otherwise
    file records under another model or the canary, and so steer the canary comparison."""

    listen: Listen
    upstream: str
    timeout: float = 30.0
    trusted_headers: tuple[str, ...] = ()
    #: The endpoint label of what comes through this proxy (records and request metrics) when no
    #: trusted ``x-driftline-endpoint`` header says otherwise: ``canary`` in the pods of a KServe
    #: canary revision (``DRIFTLINE_PROXY_ENDPOINT=canary`` in its pod spec), else ``default``.
    endpoint: str = "default"


@dataclass(frozen=True)
class IngestConfig:
    """Who may write records (``/ingest``, ``/feedback``, ``/cloudevents``) and where.

    ``listen`` moves the write endpoints to a listener of their own, so the metrics port that
    Prometheus scrapes is read-only (``/metrics``, ``/healthz``, ``/readyz``) and the writers can
    be bound to loopback. ``bearer_token_file`` makes every write carry
    ``Authorization: Bearer <the file's content>`` (re-read when the file changes, for rotated
    secrets). ``tls_cert_file``/``tls_key_file`` serve that listener over TLS, and
    ``tls_client_ca_file`` requires client certificates signed by that CA (mutual TLS)."""

    listen: Listen | None = None
    bearer_token_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    @property
    def authenticated(self) -> bool:
        return self.bearer_token_file is not None or self.tls_client_ca_file is not None


@dataclass(frozen=True)
class SamplingConfig:
    """Share of proxied requests parsed (``rate``) and a ceiling per second (0: none)."""

    rate: float = 1.0
    max_per_second: float = 0.0


@dataclass(frozen=True)
class WindowsConfig:
    records: int = 1000
    max_age: float = 300.0
    #: below this many records a window reports "insufficient data" instead of a decision
    min_records: int = 200


@dataclass(frozen=True)
class DriftConfig:
    psi_threshold: float = 0.1
    correct_psi: bool = True
    alpha: float = 0.05
    require_significance: bool = True
    prediction_psi_threshold: float = 0.1
    #: per-record change detection (ChangeDetector) on every numeric feature too
    adwin_features: bool = False
    #: KS p-values exactly scipy's at every size; off: the fast approximation with a tested
    #: bound where the exact count is dear (small references; docs/statistics.md)
    exact_ks: bool = True
    #: bounds of the MMD test of an embedding feature: window vectors, reference vectors and
    #: permutations per test (cost O(N² d + N² permutations), N = the two samples together)
    embedding_window_sample: int = 250
    embedding_reference_sample: int = 500
    embedding_permutations: int = 100
    #: run the MMD test on every k-th window only; the windows between repeat its last result.
    #: The cheap signals (mean cosine distance, principal projections) run on every window.
    embedding_mmd_every: int = 1


@dataclass(frozen=True)
class QueueConfig:
    """Bounded queues in front of the worker thread: ``size`` records from the ingest
    endpoints, ``samples`` proxied exchanges (each holds its bodies, at most
    ``limits.max_sample_bytes`` each, so the proxy tee holds at most
    ``samples × 2 × max_sample_bytes``)."""

    size: int = 10000
    samples: int = 1000


@dataclass(frozen=True)
class LimitsConfig:
    """Memory and cardinality bounds. ``max_categories`` caps category label values per
    feature (the baseline's top-K plus ``__other__`` already bound them); ``max_model_labels``
    caps distinct unknown ``model_name`` values in the drop counter; proxied bodies larger than
    ``max_sample_bytes`` are relayed but not sampled (``too_large``)."""

    max_categories: int = 50
    max_model_labels: int = 32
    max_endpoints: int = 4
    max_body_bytes: int = 16 * 1024 * 1024
    max_sample_bytes: int = 1024 * 1024
    feedback_ttl: float = 3600.0
    feedback_max_ids: int = 200_000
    #: a label that arrives before its prediction waits this long (at most this many labels)
    feedback_wait: float = 10.0
    feedback_wait_max_ids: int = 10_000
    cloudevents_ttl: float = 10.0
    cloudevents_max_pending: int = 10_000


@dataclass(frozen=True)
class OtlpConfig:
    """OTLP metric export. ``enabled`` None means: on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set. ``protocol`` and ``interval`` None mean: not
    configured, so the standard ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL`` and
    ``OTEL_METRIC_EXPORT_INTERVAL`` apply, then ``http/protobuf`` and 60 s (explicit
    configuration > ``OTEL_*`` environment > defaults). With ``enabled`` None,
    ``OTEL_METRICS_EXPORTER=none`` (or ``prometheus``) turns export off and ``console`` on."""

    enabled: bool | None = None
    protocol: str | None = None
    interval: float | None = None

    def active(self, environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        if self.enabled is not None:
            return self.enabled
        from driftline.exporters.otel_env import metrics_exporter_from_env

        kind = metrics_exporter_from_env(env)  # OTEL_METRICS_EXPORTER=none turns it off
        if kind != "otlp":
            return kind == "console"
        return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                    env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


@dataclass(frozen=True)
class ServeConfig:
    models: tuple[ModelConfig, ...]
    metrics: Listen
    proxy: ProxyConfig | None = None
    ingest: IngestConfig = field(default_factory=IngestConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    tick_interval: float = 1.0
    log_level: str = "info"
    source: str = "<config>"


# --- schema -----------------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "sampling": SamplingConfig, "windows": WindowsConfig, "drift": DriftConfig,
    "queue": QueueConfig, "limits": LimitsConfig, "otlp": OtlpConfig,
}
_TOP_KEYS = ("models", "proxy", "metrics", "ingest", *_SECTIONS, "tick_interval", "log_level")
_MODEL_KEYS = ("name", "version", "baseline", "aliases", "features", "outputs", "embeddings")
_EMBEDDING_KEYS = ("input", "column", "dim")
_OUTPUT_KEYS = ("prediction", "probabilities")
_PROXY_KEYS = ("listen", "upstream", "timeout", "trusted_headers", "endpoint")
_INGEST_KEYS = ("listen", "bearer_token_file", "tls_cert_file", "tls_key_file",
                "tls_client_ca_file")
_METRICS_KEYS = ("listen",)
_DEFAULT_METRICS = "127.0.0.1:9108"


def _env_name(key: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def _suggest(word: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known keys: " + ", ".join(options)


class _Reader:
    """Walks the merged settings, remembering where each value came from for error messages."""

    def __init__(self, path: str, environ: Mapping[str, str], overrides: Mapping[str, Any]):
        self.path = path
        self.environ = environ
        self.overrides = overrides

    def where(self, key: str) -> str:
        if key in self.overrides:
            return "<argument>"
        env = _env_name(key)
        if env in self.environ:
            return f"environment {env}"
        return self.path

    def error(self, key: str, message: str, fix: str) -> ConfigError:
        return ConfigError(message, path=self.where(key), key=key, fix=fix)

    def get(self, key: str, raw: Mapping[str, Any], name: str) -> Any:
        if key in self.overrides:
            return self.overrides[key]
        env = _env_name(key)
        if env in self.environ:
            return _parse_env(self.environ[env])
        return raw.get(name)

    def check_keys(self, prefix: str, raw: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"expected a mapping, got {type(raw).__name__}", path=self.path,
                              key=prefix or "<top>", fix=f"write {prefix or 'the file'} as "
                              "key: value lines")
        for k in raw:
            if k not in allowed:
                key = f"{prefix}.{k}" if prefix else str(k)
                raise ConfigError(f"unknown key {k!r}", path=self.path, key=key,
                                  fix=_suggest(str(k), allowed))
        return raw


def _parse_env(text: str) -> Any:
    """Environment values are YAML scalars or flow collections: ``0.5``, ``true``, ``[a, b]``."""
    import yaml  # only for a config file or DRIFTLINE_* values: the SDK does not need it

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def _coerce(r: _Reader, key: str, value: Any, typ: Any) -> Any:
    type_name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            secs = _duration(value)
            if secs is not None:
                return secs
    elif typ is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise r.error(key, f"expected {type_name.get(typ, typ)}, got {value!r}",
                  f"set {key} to {type_name.get(typ, typ)}")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def _duration(text: str) -> float | None:
    """``"5m"`` → 300.0; Prometheus-style durations for the time keys."""
    m = _DURATION.match(text)
    if not m:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_listen(text: Any, *, what: str = "listen") -> Listen:
    """``host:port`` or ``:port`` (all interfaces) or ``[::1]:port``; raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = f":{text}"
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string like 127.0.0.1:9108, got {text!r}")
    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit():
        raise ValueError(f"{what} {text!r} is not host:port")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {text!r}: port out of range 0..65535")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, port)


def _section(r: _Reader, name: str, cls: type, raw: Any) -> Any:
    names = tuple(f.name for f in fields(cls))
    body = r.check_keys(name, raw, names)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        key = f"{name}.{f.name}"
        value = r.get(key, body, f.name)
        if value is None or (str(f.type) == "bool | None" and value == "auto"):
            continue
        typ = {"int": int, "float": float, "bool": bool, "str": str, "bool | None": bool,
               "float | None": float, "str | None": str}.get(str(f.type), str)
        kwargs[f.name] = _coerce(r, key, value, typ)
    obj = cls(**kwargs)
    _validate_section(r, name, obj)
    return obj


def _validate_section(r: _Reader, name: str, obj: Any) -> None:
    def bad(key: str, msg: str, fix: str) -> ConfigError:
        return r.error(f"{name}.{key}", msg, fix)

    if isinstance(obj, SamplingConfig):
        if not 0.0 <= obj.rate <= 1.0:
            raise bad("rate", f"rate {obj.rate} is outside [0, 1]", "use a share such as 0.1")
        if obj.max_per_second < 0:
            raise bad("max_per_second", "must not be negative", "use 0 for no ceiling")
    elif isinstance(obj, WindowsConfig):
        if obj.records < 1:
            raise bad("records", "a window needs at least 1 record", "use e.g. 1000")
        if obj.max_age <= 0:
            raise bad("max_age", "must be positive", "use e.g. 5m or 300")
        if obj.min_records < 1:
            raise bad("min_records", "must be at least 1", "use e.g. 200 (1 decides on any window)")
    elif isinstance(obj, QueueConfig):
        if obj.size < 1:
            raise bad("size", "the queue needs room for at least 1 record", "use e.g. 10000")
        if obj.samples < 1:
            raise bad("samples", "the proxy tee needs room for at least 1 exchange",
                      "use e.g. 1000")
    elif isinstance(obj, OtlpConfig):
        if obj.protocol is not None and obj.protocol not in ("http/protobuf", "grpc"):
            raise bad("protocol", f"unknown protocol {obj.protocol!r}",
                      "use http/protobuf or grpc")
        if obj.interval is not None and obj.interval <= 0:
            raise bad("interval", "must be positive", "use e.g. 60s")
    elif isinstance(obj, LimitsConfig):
        for f in fields(obj):
            if getattr(obj, f.name) <= 0:
                raise bad(f.name, "must be positive", "raise it or remove the key")
    elif isinstance(obj, DriftConfig):
        if not 0.0 < obj.alpha < 1.0:
            raise bad("alpha", f"alpha {obj.alpha} is outside (0, 1)", "use e.g. 0.05")
        for key, low, example in (("embedding_window_sample", 2, 250),
                                  ("embedding_reference_sample", 2, 500),
                                  ("embedding_permutations", 1, 100),
                                  ("embedding_mmd_every", 1, 10)):
            if getattr(obj, key) < low:
                raise bad(key, f"must be at least {low}", f"use e.g. {example}")


def _str_list(r: _Reader, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise r.error(key, f"expected a list of names, got {value!r}", f"write {key}: [a, b, c]")


def _model(r: _Reader, i: int, raw: Any, base_dir: Path, check_files: bool) -> ModelConfig:
    prefix = f"models.{i}"
    body = r.check_keys(prefix, raw, _MODEL_KEYS)
    name = r.get(f"{prefix}.name", body, "name")
    if name is None or name == "":
        raise r.error(f"{prefix}.name", "model has no name",
                      "add name: <model name as in the request path>")
    name = _coerce(r, f"{prefix}.name", name, str)
    baseline = r.get(f"{prefix}.baseline", body, "baseline")
    if not baseline:
        raise r.error(f"{prefix}.baseline", f"model {name!r} has no baseline",
                      "build one with `driftline baseline build DATA -o baseline.json` and add "
                      "baseline: baseline.json")
    btext = _coerce(r, f"{prefix}.baseline", baseline, str)
    bpath: Path | str
    if is_uri(btext):  # an object-store URI: read (and checked) when the sidecar loads it
        bpath = btext
    else:
        bpath = Path(btext)
        if not bpath.is_absolute():
            bpath = base_dir / bpath
    if check_files and isinstance(bpath, Path) and not bpath.is_file():
        raise r.error(f"{prefix}.baseline", f"baseline file {str(bpath)!r} not found",
                      f"build it with `driftline baseline build DATA -o {bpath}` or fix the path "
                      "(relative paths are relative to the config file)")
    version = r.get(f"{prefix}.version", body, "version")
    aliases = r.get(f"{prefix}.aliases", body, "aliases")
    feats = r.get(f"{prefix}.features", body, "features")
    outputs = r.check_keys(f"{prefix}.outputs", body.get("outputs"), _OUTPUT_KEYS)
    pred = r.get(f"{prefix}.outputs.prediction", outputs, "prediction")
    proba = r.get(f"{prefix}.outputs.probabilities", outputs, "probabilities")
    embeddings = _embedding_inputs(r, prefix, body.get("embeddings"))
    version_s = "1" if version is None else _coerce(r, f"{prefix}.version", version, str)
    if not version_s.strip():  # the model_version label: Prometheus would drop an empty one
        raise r.error(f"{prefix}.version", f"model {name!r} has an empty version",
                      'give it a version (e.g. version: "2") or leave the key out for the default 1')
    return ModelConfig(
        name=name, baseline=bpath,
        version=version_s,
        aliases=() if aliases is None else _str_list(r, f"{prefix}.aliases", aliases),
        features=None if feats is None else _str_list(r, f"{prefix}.features", feats),
        prediction_output="predict" if pred is None else
        _coerce(r, f"{prefix}.outputs.prediction", pred, str),
        probabilities_output="predict_proba" if proba is None else
        _coerce(r, f"{prefix}.outputs.probabilities", proba, str),
        embeddings=embeddings,
    )


def _embedding_inputs(r: _Reader, prefix: str, raw: Any) -> tuple[EmbeddingInput, ...]:
    """``embeddings: [{input: <tensor or field>, column: <baseline column>, dim: <d>}]``.

    Syntax only; whether ``column`` is an embedding of the baseline, and of dimension ``dim``,
    is checked against the loaded baseline (``collectors.sidecar.check_embedding_inputs``)."""
    if raw is None:
        return ()
    key = f"{prefix}.embeddings"
    if not isinstance(raw, list):
        raise r.error(key, f"expected a list, got {type(raw).__name__}",
                      f"write {key}: [{{input: <tensor name>, column: <baseline column>, "
                      "dim: <dimension>}]")
    out: list[EmbeddingInput] = []
    for j, item in enumerate(raw):
        at = f"{key}.{j}"
        body = r.check_keys(at, item, _EMBEDDING_KEYS)
        inp = r.get(f"{at}.input", body, "input")
        if inp is None or inp == "":
            raise r.error(f"{at}.input", "embedding input has no name",
                          "add input: <the request's tensor or feature name>")
        name = _coerce(r, f"{at}.input", inp, str)
        col = r.get(f"{at}.column", body, "column")
        column = name if col is None or col == "" else _coerce(r, f"{at}.column", col, str)
        dim_raw = r.get(f"{at}.dim", body, "dim")
        if dim_raw is None:
            raise r.error(f"{at}.dim", f"embedding input {name!r} has no dim",
                          "add dim: <the embedding's vector length, e.g. 384>")
        dim = _coerce(r, f"{at}.dim", dim_raw, int)
        if dim < 1:
            raise r.error(f"{at}.dim", f"dim {dim} is not a vector length",
                          "use the embedding's length, e.g. 384")
        for k, prev in enumerate(out):
            if name == prev.input:
                raise r.error(f"{at}.input", f"input {name!r} is declared twice (also {key}.{k})",
                              "declare each input once")
            if column == prev.column:
                raise r.error(f"{at}.column", f"column {column!r} is fed by two inputs "
                              f"({prev.input!r} in {key}.{k}, and {name!r})",
                              "map one input onto each embedding column")
        out.append(EmbeddingInput(name, column, dim))
    return tuple(out)


def _env_model_count(environ: Mapping[str, str]) -> int:
    n = 0
    pat = re.compile(rf"^{ENV_PREFIX}MODELS_(\d+)_")
    for k in environ:
        m = pat.match(k)
        if m:
            n = max(n, int(m.group(1)) + 1)
    return n


def config_from_dict(
    data: Any,
    *,
    path: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> ServeConfig:
    """Validate parsed YAML (plus environment and overrides) into a :class:`ServeConfig`."""
    env = dict(os.environ if environ is None else environ)
    r = _Reader(path, env, dict(overrides or {}))
    top = r.check_keys("", data, _TOP_KEYS)
    base = base_dir or Path(".")

    raw_models = top.get("models")
    if raw_models is not None and not isinstance(raw_models, list):
        raise ConfigError("expected a list of models", path=path, key="models",
                          fix="write models: followed by '- name: ...' items")
    raw_models = list(raw_models or [])
    for _ in range(len(raw_models), _env_model_count(env)):
        raw_models.append({})
    if not raw_models:
        raise ConfigError("no models configured", path=path, key="models",
                          fix="add models: [{name: my-model, baseline: baseline.json}]")
    models = tuple(_model(r, i, m, base, check_files) for i, m in enumerate(raw_models))
    seen: dict[tuple[str, str], int] = {}
    for i, m in enumerate(models):
        for nm in (m.name, *m.aliases):
            if (nm, m.version) in seen:
                raise r.error(f"models.{i}.name", f"model {nm!r} version {m.version!r} is "
                              f"configured twice (also models.{seen[(nm, m.version)]})",
                              "give each model name/version once")
            seen[(nm, m.version)] = i

    metrics_raw = r.check_keys("metrics", top.get("metrics"), _METRICS_KEYS)
    m_listen = r.get("metrics.listen", metrics_raw, "listen") or _DEFAULT_METRICS
    try:
        metrics = parse_listen(m_listen, what="metrics.listen")
    except ValueError as exc:
        raise r.error("metrics.listen", str(exc), "use host:port, e.g. 127.0.0.1:9108") from None

    proxy_raw = r.check_keys("proxy", top.get("proxy"), _PROXY_KEYS)
    p_listen = r.get("proxy.listen", proxy_raw, "listen")
    p_up = r.get("proxy.upstream", proxy_raw, "upstream")
    proxy = None
    if p_listen is not None or p_up is not None:
        if p_listen is None:
            raise r.error("proxy.listen", "proxy has an upstream but no listen address",
                          "add listen: 127.0.0.1:8081 (or remove proxy: for ingest-only mode)")
        if p_up is None:
            raise r.error("proxy.upstream", "proxy has no upstream",
                          "add upstream: http://127.0.0.1:8080 (the model server)")
        try:
            p_l = parse_listen(p_listen, what="proxy.listen")
        except ValueError as exc:
            raise r.error("proxy.listen", str(exc), "use host:port, e.g. 127.0.0.1:8081") from None
        up = _coerce(r, "proxy.upstream", p_up, str)
        parts = urlsplit(up)
        if parts.scheme not in ("http",) or not parts.hostname:
            raise r.error("proxy.upstream", f"upstream {redact_url(up)!r} is not an http:// URL",
                          "use e.g. http://127.0.0.1:8080")
        timeout = r.get("proxy.timeout", proxy_raw, "timeout")
        trusted_raw = r.get("proxy.trusted_headers", proxy_raw, "trusted_headers")
        trusted = () if trusted_raw is None else tuple(
            h.lower() for h in _str_list(r, "proxy.trusted_headers", trusted_raw))
        for h in trusted:
            if h not in TRUSTABLE_HEADERS:
                raise r.error("proxy.trusted_headers", f"{h!r} cannot be trusted",
                              "list only " + ", ".join(TRUSTABLE_HEADERS))
        endpoint_raw = r.get("proxy.endpoint", proxy_raw, "endpoint")
        endpoint = "default" if endpoint_raw is None else _coerce(r, "proxy.endpoint", endpoint_raw, str)
        from driftline.collectors.label_values import safe_label  # checked like every label value

        if safe_label(endpoint) != endpoint:
            raise r.error("proxy.endpoint", f"{endpoint[:40]!r} is not a valid endpoint label",
                          "use letters, digits and . _ - (e.g. default or canary)")
        proxy = ProxyConfig(p_l, up.rstrip("/"), 30.0 if timeout is None else
                            _coerce(r, "proxy.timeout", timeout, float), trusted, endpoint)
        if p_l.port != 0 and p_l.port == metrics.port and (
                p_l.host == metrics.host or "0.0.0.0" in (p_l.host, metrics.host)):
            raise r.error("proxy.listen", f"proxy and metrics both listen on port {p_l.port}",
                          "give them different ports")

    ingest = _ingest(r, top.get("ingest"), base, metrics, check_files)
    sections = {name: _section(r, name, cls, top.get(name)) for name, cls in _SECTIONS.items()}
    tick = r.get("tick_interval", top, "tick_interval")
    level = r.get("log_level", top, "log_level")
    level_s = "info" if level is None else _coerce(r, "log_level", level, str).lower()
    if level_s not in ("debug", "info", "warning", "error"):
        raise r.error("log_level", f"unknown level {level_s!r}", "use debug, info, warning or error")
    return ServeConfig(
        models=models, metrics=metrics, proxy=proxy, ingest=ingest,
        tick_interval=1.0 if tick is None else _coerce(r, "tick_interval", tick, float),
        log_level=level_s, source=path, **sections,
    )


def _ingest(r: _Reader, raw: Any, base: Path, metrics: Listen, check_files: bool
            ) -> IngestConfig:
    body = r.check_keys("ingest", raw, _INGEST_KEYS)
    listen_raw = r.get("ingest.listen", body, "listen")
    listen = None
    if listen_raw is not None:
        try:
            listen = parse_listen(listen_raw, what="ingest.listen")
        except ValueError as exc:
            raise r.error("ingest.listen", str(exc), "use host:port, e.g. 127.0.0.1:9109") from None
        if listen.port != 0 and listen.port == metrics.port:
            raise r.error("ingest.listen", f"ingest and metrics both listen on port {listen.port}",
                          "give them different ports, or remove ingest.listen to serve both "
                          "on the metrics port")
    files: dict[str, Path | None] = {}
    for name in _INGEST_KEYS[1:]:
        key = f"ingest.{name}"
        value = r.get(key, body, name)
        if value is None or value == "":
            files[name] = None
            continue
        path = Path(_coerce(r, key, value, str))
        if not path.is_absolute():
            path = base / path
        if check_files and not path.is_file():
            raise r.error(key, f"file {str(path)!r} not found",
                          "mount the secret there or fix the path (relative paths are relative "
                          "to the config file)")
        files[name] = path
    cert, key_file = files["tls_cert_file"], files["tls_key_file"]
    if (cert is None) != (key_file is None):
        raise r.error("ingest.tls_cert_file" if cert is None else "ingest.tls_key_file",
                      "TLS needs both a certificate and its key",
                      "set ingest.tls_cert_file and ingest.tls_key_file")
    if files["tls_client_ca_file"] is not None and cert is None:
        raise r.error("ingest.tls_client_ca_file", "client certificates need TLS",
                      "set ingest.tls_cert_file and ingest.tls_key_file too")
    if cert is not None and listen is None:
        raise r.error("ingest.tls_cert_file", "TLS is served on the ingest listener only",
                      "set ingest.listen (the metrics port stays plain HTTP for Prometheus)")
    return IngestConfig(listen, files["bearer_token_file"], cert, key_file,
                        files["tls_client_ca_file"])


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> ServeConfig:
    """Read a YAML config file (or none: environment only) and validate it."""
    if path is None:
        return config_from_dict({}, path="<environment>", environ=environ, overrides=overrides,
                                check_files=check_files)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(p),
                          fix="pass --config PATH to an existing YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(p)) from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML{where}", path=str(p),
                          fix="check indentation and quoting") from None
    return config_from_dict(data or {}, path=str(p), base_dir=p.parent, environ=environ,
                            overrides=overrides, check_files=check_files)
