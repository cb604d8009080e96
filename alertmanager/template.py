"""A tiny, safe template language for action URLs, headers and bodies.

Targets need values from the alert (``{{ labels.model_name }}``) but a webhook receiver must never
evaluate code that arrives over the network, nor let a label value break out of a JSON string or a
URL path. So the language has exactly one construct — a dotted variable lookup with optional
filters — and nothing else::

    {{ labels.model_name }}                   label of the alert ("" when absent)
    {{ annotations.summary | default:"n/a" }} fallback when missing or empty
    {{ alert.fingerprint }}  {{ alert.startsAt }}  {{ alert.status }}  {{ alert.generatorURL }}
    {{ dedupe_key }}  {{ model_name }}  {{ model_version }}  {{ action }}  {{ receiver }}

Filters: ``lower``, ``upper``, ``json`` (JSON string literal), ``url`` (percent-encode everything),
``default:"text"``, ``truncate:N``. Structured bodies (YAML mappings/lists) are rendered leaf by
leaf and serialised afterwards, so a value can never change the JSON structure.

>>> t = Template("retrain-{{ labels.model_name | lower }}", where="targets.x.body")
>>> t.render({"labels": {"model_name": "Fraud"}})
'retrain-fraud'
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftline.errors import ConfigError

#: Top-level names a template may use; anything else is a config error at load time.
ROOTS: frozenset[str] = frozenset({
    "labels", "annotations", "alert", "dedupe_key", "model_name", "model_version", "action",
    "receiver", "group_key", "external_url", "target",
})
FILTERS: frozenset[str] = frozenset({"lower", "upper", "json", "url", "default", "truncate"})

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
_FILTER = re.compile(r'^(?P<name>[a-z]+)(?::(?P<arg>"[^"]*"|\d+))?$')


@dataclass(frozen=True)
class _Expr:
    path: tuple[str, ...]
    filters: tuple[tuple[str, str | None], ...]


def _parse_expr(text: str, where: str, path: str | None) -> _Expr:
    parts = [p.strip() for p in text.split("|")]
    dotted = parts[0]
    if not _PATH.match(dotted):
        raise ConfigError(f"template expression {{{{{text}}}}} is not a dotted name", key=where, path=path,
                          fix="use e.g. {{ labels.model_name }}; templates cannot run code")
    segments = tuple(dotted.split("."))
    if segments[0] not in ROOTS:
        raise ConfigError(f"unknown template variable {segments[0]!r}", key=where, path=path,
                          fix="use one of " + ", ".join(sorted(ROOTS)))
    filters: list[tuple[str, str | None]] = []
    for raw in parts[1:]:
        m = _FILTER.match(raw)
        if not m or m.group("name") not in FILTERS:
            raise ConfigError(f"unknown template filter {raw!r}", key=where, path=path,
                              fix="use one of " + ", ".join(sorted(FILTERS)))
        name, arg = m.group("name"), m.group("arg")
        if name == "default" and (arg is None or not arg.startswith('"')):
            raise ConfigError("filter default needs a quoted argument", key=where, path=path,
                              fix='write default:"value"')
        if name == "truncate" and (arg is None or not arg.isdigit()):
            raise ConfigError("filter truncate needs a length", key=where, path=path,
                              fix="write truncate:200")
        if arg is not None and arg.startswith('"'):
            arg = arg[1:-1]
        filters.append((name, arg))
    return _Expr(segments, tuple(filters))


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = context
    for segment in path:
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        else:
            return ""
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Template:
    """One compiled template string; parsing errors surface at config load, never at render."""

    def __init__(self, source: str, *, where: str, escape_url: bool = False,
                 path: str | None = None) -> None:
        self.source = source
        self.where = where
        self._escape_url = escape_url
        self._parts: list[str | _Expr] = []
        pos = 0
        for m in _TAG.finditer(source):
            self._parts.append(source[pos:m.start()])
            self._parts.append(_parse_expr(m.group(1).strip(), where, path))
            pos = m.end()
        self._parts.append(source[pos:])
        leftover = _TAG.sub("", source)
        if "{{" in leftover or "}}" in leftover:
            raise ConfigError("unbalanced '{{' in template", key=where, path=path,
                              fix="close it with '}}'")

    @property
    def is_static(self) -> bool:
        return all(isinstance(p, str) for p in self._parts)

    def render(self, context: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            text = _as_text(_lookup(context, part.path))
            for name, arg in part.filters:
                text = _apply(name, arg, text)
            if self._escape_url and not any(n == "url" for n, _ in part.filters):
                text = urllib.parse.quote(text, safe="")
            out.append(text)
        return "".join(out)


def _apply(name: str, arg: str | None, text: str) -> str:
    if name == "lower":
        return text.lower()
    if name == "upper":
        return text.upper()
    if name == "json":
        return json.dumps(text)
    if name == "url":
        return urllib.parse.quote(text, safe="")
    if name == "default":
        return text if text else (arg or "")
    if name == "truncate":
        return text[: int(arg or "0")]
    raise AssertionError(name)  # pragma: no cover - rejected at parse time


def compile_tree(value: Any, where: str, path: str | None = None) -> Any:
    """Compile every string inside a YAML value (mapping keys stay literal)."""
    if isinstance(value, str):
        return Template(value, where=where, path=path)
    if isinstance(value, Mapping):
        return {str(k): compile_tree(v, f"{where}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    return value


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """Render a compiled tree; the result is plain JSON-able data."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_tree(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, context) for v in value]
    return value
