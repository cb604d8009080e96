"""The baseline profile: what "normal" looks like, built once from reference data.

A profile is one self-describing, versioned JSON file (``"format": "driftline.baseline"``,
``"format_version": 2``). It holds, per feature, everything the detectors need so that no bin,
edge or reference summary is ever recomputed on live traffic:

* numeric: interior quantile bin edges and the reference share of each bin (PSI, Jensen–Shannon),
  a bounded sorted reference summary (KS, Wasserstein, quantile rank), missing ratio, min/max,
  mean and standard deviation;
* categorical: the top-K reference categories, their shares and counts, plus ``__other__``
  (the counts make the χ² test a two-sample contingency test against a finite reference);
* the model output: prediction distribution, class shares, confidence distribution, reference
  accuracy and one isotonic calibration map per class for label-free accuracy estimation;
  optionally (keys absent when empty, so older files load and keep their id) the realised
  performance metrics on the reference (``reference_performance``) and, for a regression model
  built with a target, the direct-loss-estimation model (``loss_model``: tree arrays, see
  :mod:`driftline.profile.trees`, validated on load — a baseline never executes code).

Bins are half-open ``[e_i, e_{i+1})`` with open-ended outer bins: with interior edges
``e_0 < … < e_{k-1}`` a value ``x`` falls in bin ``searchsorted(edges, x, side="right")``.

The KS reference summary is *exact* (the whole sorted non-missing reference) when the reference
holds at most ``summary_size`` values; otherwise it is the reference quantiles at the
probabilities ``(i + 0.5) / m`` for ``m = summary_size``. The KS statistic against such a grid
differs from the one against the full reference by at most ``1 / (2m)`` plus the rank error of
the bounded quantile sketch that produced it (recorded as ``settings.quantile_rank_error``; 0 when
the sketch was exact). A deterministic grid is preferred over a random sample: the same data
always gives the same profile, and the error bound holds for every run, not on average. The
p-value uses the real reference size ``count`` (a grid of ``m`` points stands in for the
``count`` values it summarises; using ``m`` would make the test conservative).

Versions. Version 2 added ``counts`` to categorical features. Version 1 files are still read:
their counts are reconstructed as ``round(share × count)`` and a :class:`ProfileFormatWarning`
says so (rebuilding the profile gives the exact counts). Readers ignore keys they do not know,
so optional fields can be added without a version bump; the version changes only when a reader
of the previous version would misread the file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import numpy as np

from driftline.errors import ProfileError
from driftline.io.atomic import atomic_write
from driftline.profile import bigjson
from driftline.profile.trees import PREDICTION_INPUT, LossModel


class ProfileFormatWarning(UserWarning):
    """An older profile format was read; what it lacks was reconstructed (the message says what)."""

FORMAT = "driftline.baseline"
FORMAT_VERSION = 2
#: Versions this reader understands (older ones with a :class:`ProfileFormatWarning`).
READABLE_VERSIONS = (1, 2)
OTHER = "__other__"


def frozen_floats(values: Any) -> np.ndarray:
    """``values`` as a read-only 1-D float64 array; an array that already is one is kept."""
    if (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1
            and not values.flags.writeable):
        return values
    arr = np.array(values, dtype=np.float64).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class NumericFeature:
    """Reference distribution of a numeric column.

    ``summary`` is a read-only float64 array (whatever sequence is passed in): it holds up to
    tens of thousands of values per feature, which as a tuple of Python floats took 4× the
    memory (≈ 19 MiB of a default 30-feature profile). Equality compares it by value, and it
    serialises, and hashes into :attr:`BaselineProfile.id`, exactly as the tuple did."""

    name: str
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    summary: np.ndarray
    summary_exact: bool
    count: int
    missing_ratio: float
    minimum: float
    maximum: float
    mean: float
    std: float
    type: Literal["numeric"] = "numeric"

    @property
    def edges_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    @property
    def proportions_array(self) -> np.ndarray:
        return np.asarray(self.proportions, dtype=np.float64)

    @property
    def summary_array(self) -> np.ndarray:
        return self.summary

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", frozen_floats(self.summary))

    def _scalars(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "summary")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, NumericFeature)
        return (self._scalars() == other._scalars()
                and np.array_equal(self.summary, other.summary))

    def __hash__(self) -> int:
        return hash((self._scalars(), len(self.summary)))

    def __reduce__(self) -> tuple[Any, ...]:  # unpickled through __init__: read-only again
        return (self.__class__, tuple(getattr(self, f.name) for f in fields(self)))


@dataclass(frozen=True)
class CategoricalFeature:
    """Reference distribution of a categorical column: top-K categories plus ``__other__``.

    ``proportions`` has ``len(categories) + 1`` entries, the last one for ``__other__``;
    ``counts`` the same number of reference counts (empty when unknown: then
    :attr:`counts_array` derives them from the shares and ``count``).
    """

    name: str
    categories: tuple[str, ...]
    proportions: tuple[float, ...]
    count: int
    missing_ratio: float
    type: Literal["categorical"] = "categorical"
    counts: tuple[int, ...] = ()

    @property
    def proportions_array(self) -> np.ndarray:
        return np.asarray(self.proportions, dtype=np.float64)

    @property
    def counts_array(self) -> np.ndarray:
        """Reference counts per slot (float64): stored ones, else ``round(share × count)``."""
        if self.counts:
            return np.asarray(self.counts, dtype=np.float64)
        return np.round(self.proportions_array * self.count)


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Calibration:
    """A monotone map from raw to calibrated probability (isotonic regression knots).

    Apply with ``np.interp(p, x, y)``; outside ``[x[0], x[-1]]`` the end values hold.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]

    def apply(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, np.asarray(self.x), np.asarray(self.y))


@dataclass(frozen=True)
class OutputProfile:
    """Reference behaviour of the model output.

    ``classes`` are canonical labels (see :mod:`driftline.labels`). For a binary model given one
    probability column, ``proba_columns`` maps only the positive class (``positive_class``) and
    the negative class gets ``1 - p``. ``prediction`` is the categorical distribution of the
    predicted class for a classifier, or the numeric distribution for a regressor.
    """

    task: Literal["classification", "regression"]
    prediction_column: str | None
    proba_columns: dict[str, str]
    classes: tuple[str, ...]
    positive_class: str | None
    prediction: Feature | None
    confidence: NumericFeature | None
    reference_accuracy: float | None
    calibration: dict[str, Calibration] = field(default_factory=dict)
    #: Shares of the true labels (target column) in the reference, when it had one.
    class_proportions: dict[str, float] = field(default_factory=dict)
    #: Realised metrics on the reference rows with a label (``accuracy``, ``f1``, ``mae``, …).
    reference_performance: dict[str, float] = field(default_factory=dict)
    #: Direct loss estimation of a regression model (estimated MAE and RMSE without labels).
    loss_model: LossModel | None = None


@dataclass(frozen=True)
class Columns:
    """Names of the special columns, found by the same names at analysis time."""

    prediction: str | None = None
    proba: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    id: str | None = None
    timestamp: str | None = None


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float array as JSON: ``{"dtype": "float32", "shape": [...], "base64": "..."}``.

    Large reference arrays (embedding samples) stay compact and exact to float32 this way; the
    bytes are little-endian, so the file reads the same on every platform. No pickle."""
    arr = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(arr.shape),
            "base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(d: Any) -> np.ndarray:
    """Inverse of :func:`encode_array` (float64 result); a plain nested list is accepted too."""
    if isinstance(d, dict):
        if d.get("dtype") != "float32":
            raise ValueError(f"unsupported array dtype {d.get('dtype')!r}")
        raw = np.frombuffer(base64.b64decode(d["base64"]), dtype="<f4")
        return raw.reshape(tuple(int(x) for x in d["shape"])).astype(np.float64)
    return np.asarray(d, dtype=np.float64)


@dataclass(frozen=True)
class MultivariateProfile:
    """The PCA reconstruction model of the tabular features (see
    :mod:`driftline.detectors.reconstruction` for the conventions).

    ``encodings[name]`` holds, for a categorical feature, the encoded value of each reference
    category slot (top-K then ``__other__``): its share of the imputed reference. ``impute`` is,
    per feature in ``features`` order, the value a missing entry takes *after* encoding (the
    numeric mean, or the most frequent category's share). ``components`` is ``k`` rows of ``d``.
    ``block_errors``/``block_counts`` are the mean reconstruction errors of consecutive reference
    blocks of ``block_size`` rows, from which the threshold band of any window size is derived.
    """

    features: tuple[str, ...]
    encodings: dict[str, tuple[float, ...]]
    impute: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    explained: tuple[float, ...]
    block_size: int
    block_errors: tuple[float, ...]
    block_counts: tuple[int, ...]
    #: A bounded stride sample of encoded reference rows for the domain classifier of analyze
    #: (:func:`encode_array` form, float32).
    sample: dict[str, Any] = field(default_factory=dict)

    def sample_array(self) -> np.ndarray:
        if not self.sample:
            return np.empty((0, len(self.features)))
        return decode_array(self.sample).reshape(-1, len(self.features))


@dataclass(frozen=True)
class EmbeddingProfile:
    """Reference of a vector feature (an embedding column, or a ``[n, d]`` input tensor).

    ``mean`` is the reference mean vector (``d`` values), ``components`` the top principal
    directions (``k`` rows of ``d``; the projections onto them are the derived numeric features
    ``<name>.pc1`` … ``<name>.pc<k>`` of :attr:`BaselineProfile.features`), ``sample`` a bounded
    stride sample of reference vectors (:func:`encode_array` form, float32) for the MMD test, and
    ``bandwidth`` the Gaussian kernel's ``sigma`` by the median heuristic on that sample.
    """

    name: str
    dim: int
    count: int
    missing_ratio: float
    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    explained: tuple[float, ...]
    bandwidth: float
    sample: dict[str, Any]
    type: Literal["embedding"] = "embedding"

    @property
    def projections(self) -> tuple[str, ...]:
        """Names of the derived projection features."""
        return tuple(f"{self.name}.pc{i + 1}" for i in range(len(self.components)))

    def sample_array(self) -> np.ndarray:
        return decode_array(self.sample)


@dataclass(frozen=True)
class TextProfile:
    """Reference of a text column: its descriptors are derived numeric features named
    ``<name>.<descriptor>`` in :attr:`BaselineProfile.features`; ``vocabulary`` holds the most
    frequent reference tokens (bounded) for the ``unseen_token_share`` descriptor."""

    name: str
    descriptors: tuple[str, ...]
    vocabulary: tuple[str, ...]
    count: int
    missing_ratio: float
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class BaselineProfile:
    """Everything Driftline knows about the reference data of one model version."""

    model_name: str
    model_version: str
    created_at: str
    n_records: int
    features: dict[str, Feature]
    columns: Columns
    output: OutputProfile | None
    sources: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    #: Optional (absent from profiles built without it): the multivariate reconstruction model.
    multivariate: MultivariateProfile | None = None
    #: Optional: vector features (embeddings) by name.
    embeddings: dict[str, EmbeddingProfile] = field(default_factory=dict)
    #: Optional: text columns by name (their descriptors are numeric features).
    text: dict[str, TextProfile] = field(default_factory=dict)
    #: Optional: the data it was built from — ``sources``, ``rows``, ``content_hash`` (an
    #: order-independent digest of the values read) and ``revision`` (``--source-revision``).
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def source_label(self) -> str:
        """A short, bounded name of the reference data for ``driftline_build_info``: the
        revision when one was given, else the first 12 hex digits of the content hash, else
        :data:`~driftline.catalogue.UNKNOWN_SOURCE` (never empty: see there)."""
        from driftline.catalogue import UNKNOWN_SOURCE

        rev = str(self.provenance.get("revision") or "").strip()
        if rev:
            return rev[:100]
        digest = str(self.provenance.get("content_hash") or "").split(":", 1)[-1].strip()
        return digest[:12] or UNKNOWN_SOURCE

    @property
    def feature_order(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def derived_features(self) -> frozenset[str]:
        """Numeric features computed from embedding and text columns, not read as inputs."""
        names = {p for e in self.embeddings.values() for p in e.projections}
        names.update(f"{t.name}.{d}" for t in self.text.values() for d in t.descriptors)
        return frozenset(names)

    @property
    def input_features(self) -> tuple[str, ...]:
        """Tabular input features, in order (without the derived ones)."""
        derived = self.derived_features
        return tuple(n for n in self.features if n not in derived)

    @functools.cached_property
    def id(self) -> str:
        """Content hash: two profiles with the same numbers have the same id.

        Hashing serialises the whole baseline (a second or more for a wide one), so it is
        computed once per profile object and kept (a profile is immutable, and the id is read on
        every snapshot); a loaded profile keeps the id recorded in its file, which ``save``
        computed from the same content.
        """
        arrays: list[np.ndarray] = []
        return _digest(_body(self, arrays), arrays)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self, with_id=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> BaselineProfile:
        return _from_jsonable(data, source)

    def json_chunks(self) -> Iterator[str]:
        """The profile's file text, ``json.dumps(self.to_dict(), indent=1)``, in pieces: the
        summaries are written from their arrays a few thousand values at a time, without a
        list of Python floats (at 400 features, ``json.dumps`` of ``to_dict()`` holds ≈ 1 GB)."""
        arrays: list[np.ndarray] = []
        doc = _to_jsonable(self, with_id=True, arrays=arrays)
        return bigjson.chunks(doc, arrays, indent=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, to a local path or an object-store URI (see
        :mod:`driftline.io.atomic`): a failure never leaves a half-written profile behind."""
        with atomic_write(path) as fh:  # mode from the umask, as any Unix tool
            for piece in self.json_chunks():
                fh.write(piece)
            fh.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaselineProfile:
        from driftline.errors import InputError
        from driftline.io.storage import read_bytes

        p = str(path)
        try:
            raw = read_bytes(p)
        except InputError as exc:  # an object store's error, naming the URI and the fix
            raise ProfileError(str(exc)) from None
        except FileNotFoundError:
            raise ProfileError(
                f"{p}: baseline profile not found (fix: build one with "
                f"`driftline baseline build DATA -o {p}`)"
            ) from None
        except OSError as exc:
            raise ProfileError(f"{p}: cannot read baseline profile: {exc}") from None
        try:
            data = _loads(raw)
        except UnicodeDecodeError as exc:
            raise ProfileError(f"{p}: cannot read baseline profile: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ProfileError(
                f"{p}: not a Driftline baseline profile (invalid JSON at line {exc.lineno}); "
                "fix: rebuild it with `driftline baseline build`"
            ) from None
        return _from_jsonable(data, str(p))


def _loads(raw: bytes) -> Any:
    """orjson (3–5× faster on the long summaries, a core dependency), the summaries parsed
    straight into arrays (:func:`bigjson.loads`), and json's error with its line number, or its
    reading of what orjson refuses (NaN literals, huge integers). The text is decoded only
    then: a wide profile's text is as large as its bytes."""
    import orjson

    try:
        return bigjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw.decode("utf-8"))


def _plain(value: Any, arrays: list[np.ndarray] | None = None) -> Any:
    """JSON-ready copy of a profile (what ``dataclasses.asdict`` and a NaN/inf → None pass
    would give), with a fast path for the long float tuples: the reference summaries hold
    tens of thousands of values per feature and this runs on every save. With ``arrays``, a
    long finite float64 array (a summary) is appended there and a :func:`bigjson.marker`
    stands in for it, for :func:`bigjson.chunks` to write without a Python float per value."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray) and value.dtype == np.float64 and value.ndim == 1:
        if np.isfinite(value).all():
            if arrays is not None and len(value) >= bigjson.MIN_VALUES:
                arrays.append(value)
                return bigjson.marker(len(arrays) - 1)
            return value.tolist()
        return [v if math.isfinite(v) else None for v in value.tolist()]
    if isinstance(value, tuple | list):
        if value and all(type(v) is float for v in value):
            if np.isfinite(np.asarray(value, dtype=np.float64)).all():
                return list(value)
            return [v if math.isfinite(v) else None for v in value]
        return [_plain(v, arrays) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, arrays) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), arrays) for f in fields(value)}
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):  # float subclasses
        return _plain(float(value))
    return value


def _digest(body: dict[str, Any], arrays: list[np.ndarray] | None = None) -> str:
    """The id: SHA-256 of the sorted-keys JSON of the body (the arrays behind its markers as
    the lists they are in the file), hashed piece by piece."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **body}
    payload.pop("created_at", None)
    h = hashlib.sha256()
    for piece in bigjson.chunks(payload, arrays or (), sort_keys=True, allow_nan=True):
        h.update(piece.encode())
    return h.hexdigest()[:12]


def _body(profile: BaselineProfile, arrays: list[np.ndarray] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = _plain(profile, arrays)
    for key in _OPTIONAL:  # optional keys are left out when unused: older ids stay the same
        if not body.get(key):
            body.pop(key, None)
    output = body.get("output")
    if isinstance(output, dict):  # optional keys: absent when empty (older ids stay the same)
        for key in ("reference_performance", "loss_model"):
            if not output.get(key):
                output.pop(key, None)
    return body


def _to_jsonable(profile: BaselineProfile, *, with_id: bool,
                 arrays: list[np.ndarray] | None = None) -> dict[str, Any]:
    body = _body(profile, arrays)
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    if with_id:
        if "id" not in profile.__dict__:  # not hashed yet: reuse this serialisation
            profile.__dict__["id"] = _digest(body, arrays)
        out["id"] = profile.id
    out.update(body)
    return out


_OPTIONAL = ("multivariate", "embeddings", "text", "provenance")


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _summary(v: Any) -> np.ndarray:
    """A summary as :func:`bigjson.loads` gives it (an array already), or a list of numbers."""
    if isinstance(v, np.ndarray):
        return frozen_floats(v)
    return frozen_floats(list(map(float, v)))


def _feature(d: dict[str, Any]) -> Feature:
    if d["type"] == "numeric":
        return NumericFeature(
            name=d["name"], edges=tuple(map(float, d["edges"])),
            proportions=tuple(map(float, d["proportions"])),
            summary=_summary(d["summary"]),
            summary_exact=bool(d["summary_exact"]),
            count=int(d["count"]), missing_ratio=float(d["missing_ratio"]),
            minimum=_num(d["minimum"]), maximum=_num(d["maximum"]), mean=_num(d["mean"]),
            std=_num(d["std"]),
        )
    if d["type"] == "categorical":
        return CategoricalFeature(
            name=d["name"], categories=tuple(str(c) for c in d["categories"]),
            proportions=tuple(float(x) for x in d["proportions"]), count=int(d["count"]),
            missing_ratio=float(d["missing_ratio"]),
            counts=tuple(int(x) for x in d.get("counts") or ()),
        )
    raise KeyError(f"unknown feature type {d['type']!r}")


def _floats(v: Any) -> tuple[float, ...]:
    return tuple(_num(x) for x in v)


def _array_field(v: Any) -> dict[str, Any]:
    """An encoded array as stored; a plain nested list (older files) is re-encoded."""
    if not v:
        return {}
    if isinstance(v, dict):
        decode_array(v)  # fail at load, not later
        return dict(v)
    return encode_array(np.asarray(v, dtype=np.float64))


def _multivariate(d: Any) -> MultivariateProfile | None:
    if not d:
        return None
    return MultivariateProfile(
        features=tuple(str(f) for f in d["features"]),
        encodings={str(k): _floats(v) for k, v in d["encodings"].items()},
        impute=_floats(d["impute"]), mean=_floats(d["mean"]), scale=_floats(d["scale"]),
        components=tuple(_floats(r) for r in d["components"]), explained=_floats(d["explained"]),
        block_size=int(d["block_size"]), block_errors=_floats(d["block_errors"]),
        block_counts=tuple(int(c) for c in d["block_counts"]),
        sample=_array_field(d.get("sample")),
    )


def _loss_model(d: Any, data: dict[str, Any], source: str) -> LossModel | None:
    """The stored DLE trees, checked: shapes, finite numbers, inputs the profile knows."""
    if d is None:
        return None
    try:
        model = LossModel.from_dict(d)
        features = data.get("features") or {}
        unknown = [n for n in model.inputs if n != PREDICTION_INPUT and n not in features]
        if unknown:
            raise ValueError(f"inputs {unknown} are not features of the baseline")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(
            f"{source}: output.loss_model is invalid ({exc}); fix: rebuild the baseline with "
            "`driftline baseline build --task regression --target COL`"
        ) from None
    return model


def _embedding(d: dict[str, Any]) -> EmbeddingProfile:
    e = EmbeddingProfile(
        name=str(d["name"]), dim=int(d["dim"]), count=int(d["count"]),
        missing_ratio=float(d["missing_ratio"]), mean=_floats(d["mean"]),
        components=tuple(_floats(r) for r in d["components"]), explained=_floats(d["explained"]),
        bandwidth=_num(d["bandwidth"]), sample=dict(d["sample"]),
    )
    e.sample_array()  # fail at load, not on the first window
    return e


def _text(d: dict[str, Any]) -> TextProfile:
    return TextProfile(
        name=str(d["name"]), descriptors=tuple(str(x) for x in d["descriptors"]),
        vocabulary=tuple(str(x) for x in d["vocabulary"]), count=int(d["count"]),
        missing_ratio=float(d["missing_ratio"]),
    )


def _from_jsonable(data: Any, source: str) -> BaselineProfile:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileError(
            f"{source}: not a Driftline baseline profile (no \"format\": \"{FORMAT}\"); "
            "fix: build one with `driftline baseline build`"
        )
    version = data.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ProfileError(
            f"{source}: baseline format_version {version!r} is not supported by this Driftline "
            f"(reads {', '.join(map(str, READABLE_VERSIONS))}); "
            "fix: rebuild it with `driftline baseline build`"
        )
    if version == 1:
        warnings.warn(
            f"{source}: baseline format_version 1 has no reference category counts; the χ² test "
            "uses share × count instead (fix: rebuild it with `driftline baseline build` for "
            "format_version 2)", ProfileFormatWarning, stacklevel=3)
    try:
        out = data.get("output")
        output = None
        if out is not None:
            pred = out.get("prediction")
            conf = out.get("confidence")
            output = OutputProfile(
                task=out["task"], prediction_column=out.get("prediction_column"),
                proba_columns=dict(out.get("proba_columns") or {}),
                classes=tuple(str(c) for c in out.get("classes") or ()),
                positive_class=out.get("positive_class"),
                prediction=_feature(pred) if pred else None,
                confidence=_feature(conf) if conf else None,  # type: ignore[arg-type]
                reference_accuracy=out.get("reference_accuracy"),
                calibration={
                    k: Calibration(tuple(v["x"]), tuple(v["y"]))
                    for k, v in (out.get("calibration") or {}).items()
                },
                class_proportions={str(k): float(v) for k, v in
                                   (out.get("class_proportions") or {}).items()},
                reference_performance={str(k): float(v) for k, v in
                                       (out.get("reference_performance") or {}).items()
                                       if v is not None},
                loss_model=_loss_model(out.get("loss_model"), data, source),
            )
        cols = data.get("columns") or {}
        profile = BaselineProfile(
            model_name=str(data["model_name"]), model_version=str(data["model_version"]),
            created_at=str(data.get("created_at", "")), n_records=int(data["n_records"]),
            features={f["name"]: _feature(f) for f in data["features"].values()},
            columns=Columns(
                prediction=cols.get("prediction"), proba=dict(cols.get("proba") or {}),
                target=cols.get("target"), id=cols.get("id"), timestamp=cols.get("timestamp"),
            ),
            output=output, sources=tuple(data.get("sources") or ()),
            settings=dict(data.get("settings") or {}),
            multivariate=_multivariate(data.get("multivariate")),
            embeddings={str(k): _embedding(v) for k, v in (data.get("embeddings") or {}).items()},
            text={str(k): _text(v) for k, v in (data.get("text") or {}).items()},
            provenance=dict(data.get("provenance") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(
            f"{source}: baseline profile is damaged or incomplete ({exc!r}); "
            "fix: rebuild it with `driftline baseline build`"
        ) from None
    stored = data.get("id")
    if isinstance(stored, str) and stored:
        profile.__dict__["id"] = stored  # written by save() from this content: no re-hash
    return profile
