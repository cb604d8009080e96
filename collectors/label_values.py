"""Checks on values that become metric labels (model name, version, endpoint), at the edge.

A model name, version or endpoint from a request ends up as a label value on every series of
its monitor and on the drop counter. Series are sorted and compared by label value, so one
integer endpoint (``{"endpoint": 5}``) used to make every later ``/metrics`` answer 500, and a
list raised ``TypeError`` in the worker. Every collector therefore passes such values through
:func:`label_value` before anything is queued: strings of printable label characters, at most
:data:`MAX_LABEL_LENGTH` long, pass; integers (``"model_version": 2``) become their decimal
string; ``None`` and ``""`` mean absent; anything else is refused with :data:`BAD_LABEL`,
which the caller counts as a drop.

>>> label_value("car-loan", "model_name"), label_value(2, "model_version"), label_value("", "x")
('car-loan', '2', None)
>>> label_value(["a"], "endpoint")
Traceback (most recent call last):
...
driftline.collectors.payloads.PayloadError: endpoint must be a string, got a list
"""

from __future__ import annotations

import re
from typing import Any

from driftline.collectors.payloads import PayloadError

#: Drop reason of a record whose model name, version or endpoint cannot be a label value.
BAD_LABEL = "bad_label"
MAX_LABEL_LENGTH = 128
# Kubernetes names, semantic versions, registry tags: letters, digits and . _ - : @ + /
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]*")


def label_value(value: Any, what: str) -> str | None:
    """``value`` as a label string, None when absent; raises PayloadError(BAD_LABEL)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(BAD_LABEL, f"{what} must be a string, got a "
                           f"{_type_name(value)}")
    if len(value) > MAX_LABEL_LENGTH:
        raise PayloadError(BAD_LABEL, f"{what} is {len(value)} characters long; at most "
                           f"{MAX_LABEL_LENGTH} are allowed")
    if not _LABEL.fullmatch(value):
        raise PayloadError(BAD_LABEL, f"{what} {value[:40]!r} has characters outside "
                           "letters, digits and . _ - : @ + / (or does not start with a letter "
                           "or digit)")
    return value


def safe_label(value: Any) -> str | None:
    """``value`` when it is a valid label, else None: for counting a refusal against a model
    without trusting the name it claims."""
    try:
        return label_value(value, "label")
    except PayloadError:
        return None


def _type_name(value: Any) -> str:
    return {list: "list", dict: "object", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__)
