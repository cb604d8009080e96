"""One sampled request/response exchange, copied once off the proxy's hot path.

The reverse proxy (:mod:`driftline.collectors.proxy`) builds a :class:`Sample` for each sampled
exchange after the response has been relayed, and offers it to a
:class:`~driftline.collectors.tee.SampleQueue`. The consumer thread parses the bodies (KServe v1,
Open Inference Protocol v2, ...); the proxy never does.

Bodies are raw bytes exactly as they crossed the wire after HTTP framing was removed: chunked
transfer coding is undone, but a ``Content-Encoding`` such as gzip is not (see
:meth:`Sample.header`).

>>> s = Sample("POST", "/v1/models/m:predict", "application/json", b'{"instances":[[1]]}',
...            200, "application/json", b'{"predictions":[0]}', 1.7e9, 0.002,
...            request_headers=(("x-request-id", "abc"),))
>>> s.header("X-Request-Id"), s.model_path
('abc', '/v1/models/m:predict')
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HEADER_CONTENT_LENGTH", "HEADER_CONTENT_TYPE", "HEADER_IGNORED", "HEADER_KEPT",
           "HEADER_TRANSFER_ENCODING", "KEPT_HEADERS", "KEPT_HEADER_PREFIXES", "Sample",
           "header_kind", "keep_header"]

#: Header names (lower case) copied into a sample besides the content type. They identify the
#: request (ids, CloudEvents attributes, routing) or are needed to decode the body.
KEPT_HEADERS: frozenset[bytes] = frozenset({
    b"x-request-id", b"traceparent", b"seldon-model", b"inference-header-content-length",
    b"content-encoding", b"x-b3-traceid",
})
#: Header name prefixes (lower case) copied into a sample: CloudEvents binary-mode attributes and
#: Driftline's own hints (e.g. ``x-driftline-model``).
KEPT_HEADER_PREFIXES: tuple[bytes, ...] = (b"ce-", b"x-driftline-")


def keep_header(lower_name: bytes) -> bool:
    """True when a (lower-cased) header name is copied into samples."""
    return lower_name in KEPT_HEADERS or lower_name.startswith(KEPT_HEADER_PREFIXES)


#: What the proxy does with a header, by :func:`header_kind`.
HEADER_IGNORED, HEADER_CONTENT_TYPE, HEADER_KEPT, HEADER_CONTENT_LENGTH, HEADER_TRANSFER_ENCODING = \
    range(5)
_KINDS: dict[bytes, int] = {}
_KINDS_MAX = 4096  # header names seen in their wire spelling; bounded against abuse


def header_kind(name: bytes) -> int:
    """Classify a header name as sent on the wire (any case), memoised: the proxy sees the same
    few spellings over and over, and one dict lookup beats lower-casing and comparing."""
    kind = _KINDS.get(name)
    if kind is None:
        low = name.lower()
        kind = (HEADER_CONTENT_TYPE if low == b"content-type"
                else HEADER_CONTENT_LENGTH if low == b"content-length"
                else HEADER_TRANSFER_ENCODING if low == b"transfer-encoding"
                else HEADER_KEPT if keep_header(low) else HEADER_IGNORED)
        if len(_KINDS) < _KINDS_MAX:
            _KINDS[name] = kind
    return kind


class Sample(NamedTuple):
    """A sampled exchange: the request as the client sent it and the upstream's response.

    Immutable and slot-free like a frozen dataclass, but a named tuple because the proxy builds
    one per sampled request and a tuple is several times cheaper to create.

    ``path`` is the raw request target (path and query string, still percent-encoded).
    ``received_at`` is Unix time when the request began; ``duration`` is seconds from then until
    the response was completely relayed. Header tuples hold ``(lower-case name, value)`` pairs of
    the headers selected by :func:`keep_header`, in wire order.
    """

    method: str
    path: str
    request_content_type: str
    request_body: bytes
    status: int
    response_content_type: str
    response_body: bytes
    received_at: float
    duration: float
    request_headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str, default: str | None = None) -> str | None:
        """First request header called ``name`` (case-insensitive) among the kept ones."""
        low = name.lower()
        for k, v in self.request_headers:
            if k == low:
                return v
        return default

    def response_header(self, name: str, default: str | None = None) -> str | None:
        """First response header called ``name`` (case-insensitive) among the kept ones."""
        low = name.lower()
        for k, v in self.response_headers:
            if k == low:
                return v
        return default

    @property
    def model_path(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]
