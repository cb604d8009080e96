"""KServe payload logger: CloudEvents in, paired request/response exchanges out.

Model names and endpoints are checked label values (:mod:`~driftline.collectors.label_values`):
an event that names its model with a list or a 5 kB string is refused as ``bad_label``.

KServe's agent posts every logged request and response as a CloudEvent 1.0 in *binary* mode:
the body is the raw payload and the attributes are ``ce-*`` headers; request and response share
one ``ce-id`` and may arrive in either order. *Structured* mode
(``application/cloudevents+json``, ``data`` or ``data_base64``) and batches
(``application/cloudevents-batch+json``) are accepted too, as are Seldon's
``io.seldon.serving.inference.*`` types.

:class:`Pairer` holds one side of an exchange until the other arrives, for at most ``ttl``
seconds and at most ``max_pending`` ids. A request whose response never comes (logger
``mode: request``, or a failed model call, which KServe does not log) is still worth its
features: on expiry or eviction it is released alone. A response without its request carries no
features and is released with ``request=None`` so the caller can count it as dropped.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from driftline.collectors.label_values import label_value
from driftline.collectors.payloads import PayloadError, loads

Kind = Literal["request", "response", "unknown"]
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class CloudEvent:
    """The attributes Driftline uses, plus the payload (bytes or already-decoded JSON)."""

    id: str
    type: str
    model: str | None
    endpoint: str | None
    data: Any
    request_id: str | None = None

    @property
    def kind(self) -> Kind:
        t = self.type.lower()
        if t.endswith(".request") or t.endswith("request"):
            return "request"
        if t.endswith(".response") or t.endswith("response"):
            return "response"
        return "unknown"


@dataclass(frozen=True)
class Exchange:
    """A paired (or lone) request/response for one ce-id."""

    id: str
    model: str | None
    endpoint: str | None
    request: Any
    response: Any
    request_id: str | None = None


def _metadata_request_id(raw: Any) -> str | None:
    """``x-request-id`` from ``ce-metadata`` (KServe's JSON of ``metadataHeaders``)."""
    if not raw:
        return None
    try:
        meta = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        return None
    if not isinstance(meta, Mapping):
        return None
    for k, v in meta.items():
        if str(k).lower() == "x-request-id":
            if isinstance(v, list):
                v = v[0] if v else None
            return None if v is None else str(v)
    return None


def from_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Binary mode: attributes in ``ce-*`` headers (keys lower-cased by the caller)."""
    ce_id = headers.get("ce-id")
    ce_type = headers.get("ce-type")
    if not ce_id or not ce_type:
        raise PayloadError("parse_error", "a binary-mode CloudEvent needs ce-id and ce-type")
    request_id = _metadata_request_id(headers.get("ce-metadata")) or headers.get("x-request-id")
    model = label_value(headers.get("ce-inferenceservicename") or headers.get("ce-modelid"),
                        "ce-inferenceservicename")
    return CloudEvent(ce_id, ce_type, model, label_value(headers.get("ce-endpoint"),
                                                         "ce-endpoint"),
                      body, request_id or headers.get("ce-requestid"))


def _structured_one(ev: Any) -> CloudEvent:
    if not isinstance(ev, Mapping) or not ev.get("id") or not ev.get("type"):
        raise PayloadError("parse_error", "a structured CloudEvent needs id and type")
    if "data_base64" in ev:
        try:
            data: Any = base64.b64decode(ev["data_base64"], validate=True)
        except (ValueError, TypeError):
            raise PayloadError("parse_error", "data_base64 is not base64") from None
    else:
        data = ev.get("data")
        if isinstance(data, str):
            data = data.encode()
    request_id = _metadata_request_id(ev.get("metadata")) or ev.get("requestid")
    return CloudEvent(str(ev["id"]), str(ev["type"]),
                      label_value(ev.get("inferenceservicename") or ev.get("modelid"),
                                  "inferenceservicename"),
                      label_value(ev.get("endpoint"), "endpoint"), data,
                      None if request_id is None else str(request_id))


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_structured(headers: Mapping[str, str]) -> bool:
    """Structured or batched mode: the events' attributes (model included) are in the body."""
    return _content_type(headers) in (STRUCTURED, BATCH)


def from_http(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """All events in one HTTP request, whichever content mode it uses."""
    ctype = _content_type(headers)
    if ctype in (STRUCTURED, BATCH):
        try:
            doc = loads(body)
        except PayloadError as exc:
            raise PayloadError("parse_error", f"invalid CloudEvent JSON: {exc}") from None
        if ctype == BATCH:
            if not isinstance(doc, list):
                raise PayloadError("parse_error", "a CloudEvents batch is a JSON array")
            return [_structured_one(e) for e in doc]
        return [_structured_one(doc)]
    return [from_binary(headers, body)]


@dataclass
class _Pending:
    model: str | None
    endpoint: str | None
    request: Any
    response: Any
    request_id: str | None
    since: float


class Pairer:
    """Bounded, TTL'd pairing of request and response events by ``ce-id``.

    Single-threaded: the collector worker owns it.
    """

    def __init__(self, ttl: float = 10.0, max_pending: int = 10_000) -> None:
        self.ttl = ttl
        self.max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ev: CloudEvent, now: float) -> list[Exchange]:
        """Add one event; returns the exchanges it completes or forces out (eviction)."""
        out: list[Exchange] = []
        kind = ev.kind
        if kind == "unknown":
            raise PayloadError("parse_error", f"CloudEvent type {ev.type!r} is neither an "
                               "inference request nor a response")
        p = self._pending.get(ev.id)
        if p is None:
            while len(self._pending) >= self.max_pending:
                out.append(self._release(*self._pending.popitem(last=False)))
            p = _Pending(ev.model, ev.endpoint, None, None, ev.request_id, now)
            self._pending[ev.id] = p
        if kind == "request":
            p.request = ev.data
        else:
            p.response = ev.data
        p.model = p.model or ev.model
        p.endpoint = p.endpoint or ev.endpoint
        p.request_id = p.request_id or ev.request_id
        if p.request is not None and p.response is not None:
            del self._pending[ev.id]
            out.append(self._release(ev.id, p))
        return out

    def expire(self, now: float) -> list[Exchange]:
        """Release everything older than ``ttl`` (oldest first)."""
        out = []
        while self._pending:
            ce_id, p = next(iter(self._pending.items()))
            if now - p.since < self.ttl:
                break
            del self._pending[ce_id]
            out.append(self._release(ce_id, p))
        return out

    def drain(self) -> list[Exchange]:
        """Release everything (shutdown)."""
        out = [self._release(k, p) for k, p in self._pending.items()]
        self._pending.clear()
        return out

    @staticmethod
    def _release(ce_id: str, p: _Pending) -> Exchange:
        return Exchange(ce_id, p.model, p.endpoint, p.request, p.response, p.request_id)
