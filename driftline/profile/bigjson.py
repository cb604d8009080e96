"""Profile JSON without a Python float per reference-summary value.

A wide baseline is mostly its numeric reference summaries: 400 features of a 20k-row reference
are 6.4M numbers, 142 MB of the file. Read through a generic JSON parser they become 6.4M
Python floats (≈ 32 bytes each, beside the bytes and the decoded text), and loading that file
peaked at 789 MB before any data was read; written through ``json.dumps(indent=1)`` (the pure
Python encoder, which collects every piece of the text in one list) they made the 1.45 GB peak of
a 400-feature build. The file format stays exactly the same; only the way it is read and written
changes:

* :func:`loads` cuts every ``"summary": [...]`` list of plain numbers out of the raw bytes,
  parses each alone into a read-only float64 array (orjson, one feature's list at a time, so the
  parse is exact and its Python floats short-lived), and parses what is left — a few MB — as
  usual. Anything unexpected (another layout, a ``null``, a match inside a string) falls back to
  parsing the whole file as before, so the result never differs from a plain parse.
* :func:`chunks` renders a document whose long float arrays were replaced by :func:`marker`
  strings (see ``format._plain``) as the text ``json.dumps`` gives the same document with the
  arrays as lists — byte for byte, with or without ``indent`` and ``sort_keys`` — a few thousand
  values at a time. Both the file and the profile id (the SHA-256 of the sorted-keys text) are
  made from it, so files and ids are unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_VALUES", "chunks", "loads", "marker"]

#: Arrays shorter than this stay plain lists (their Python floats cost nothing worth avoiding).
MIN_VALUES = 256
_PREFIX = "\x00driftline-array-"
_QUOTED = re.compile(r'"\\u0000driftline-array-(\d+)"')
_KEY = b'"summary": ['
_NUMBER_BYTES = b"0123456789eE+-., \n\r\t"
_CHUNK = 4096
_MIN_BYTES = 4096
_SLICE = 1 << 16


def marker(i: int) -> str:
    """The string standing in for array ``i`` in a document given to :func:`chunks`."""
    return f"{_PREFIX}{i}"


def chunks(doc: Any, arrays: Sequence[np.ndarray], *, indent: int | None = None,
           sort_keys: bool = False, allow_nan: bool = False) -> Iterator[str]:
    """``json.dumps(doc, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan)`` with each
    :func:`marker` replaced by its (finite, 1-D) array as a JSON list, in pieces."""
    text = json.dumps(doc, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan)
    found = list(_QUOTED.finditer(text))
    if len(found) != len(arrays) or sorted(int(m[1]) for m in found) != list(range(len(arrays))):
        raise ValueError("array markers do not match the arrays (a string holds one?)")
    pos = 0
    for m in found:
        yield text[pos:m.start()]
        arr = arrays[int(m[1])]
        if not len(arr):
            yield "[]"
        elif indent is None:
            yield "["
            yield from _values(arr, ", ")
            yield "]"
        else:  # json's layout: one value per line, one level deeper than the key's line
            line = text.rfind("\n", 0, m.start()) + 1
            depth = len(text[line:m.start()]) - len(text[line:m.start()].lstrip(" "))
            inner = "\n" + " " * (depth + indent)
            yield "[" + inner
            yield from _values(arr, "," + inner)
            yield "\n" + " " * depth + "]"
        pos = m.end()
    yield text[pos:]


def _values(arr: np.ndarray, sep: str) -> Iterator[str]:
    for start in range(0, len(arr), _CHUNK):
        part = arr[start:start + _CHUNK].tolist()
        if start:
            yield sep
        yield sep.join(map(float.__repr__, part))  # what json writes for a float


def loads(raw: bytes) -> Any:
    """``orjson.loads(raw)``, with every ``"summary"`` list of numbers a read-only float64 array
    (equal value for value to the floats a plain parse gives). Raises what orjson raises."""
    import orjson

    cut = _cut(raw)
    if cut is not None:
        skeleton, arrays = cut
        data = orjson.loads(skeleton)
        if _put_back(data, arrays):
            return data
    return orjson.loads(raw)


def _cut(raw: bytes) -> tuple[bytes, list[np.ndarray]] | None:
    import orjson

    pieces: list[bytes] = []
    arrays: list[np.ndarray] = []
    pos = search = 0  # copied up to, searched from
    while (start := raw.find(_KEY, search)) >= 0:
        open_ = start + len(_KEY) - 1
        close = raw.find(b"]", open_)
        if close < 0:
            return None
        body = raw[open_ + 1:close]
        if len(body) < _MIN_BYTES or body.translate(None, _NUMBER_BYTES):
            search = close  # short, or not plain numbers: parsed with the rest
            continue
        try:
            arr = _numbers(body)
        except (orjson.JSONDecodeError, TypeError, ValueError, OverflowError):
            return None
        pieces += (raw[pos:open_], b'"\\u0000driftline-array-%d"' % len(arrays))
        arrays.append(arr)
        pos = search = close + 1
    if not arrays:
        return None
    pieces.append(raw[pos:])
    return b"".join(pieces), arrays


def _numbers(body: bytes) -> np.ndarray:
    """The numbers of a list's inside, as a read-only float64 array. orjson is exact and fast
    but holds ≈ 13 bytes of scratch per input byte while it parses, so it is given slices of
    about :data:`_SLICE` bytes cut at commas."""
    import orjson

    parts: list[np.ndarray] = []
    start = 0
    while start < len(body):
        end = body.find(b",", start + _SLICE) if len(body) - start > _SLICE else -1
        end = len(body) if end < 0 else end
        parts.append(np.array(orjson.loads(b"[" + body[start:end] + b"]"), dtype=np.float64))
        start = end + 1
    arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
    arr.setflags(write=False)
    return arr


def _put_back(data: Any, arrays: list[np.ndarray]) -> bool:
    """Replace the markers by their arrays; False unless each was a ``summary`` value once."""
    used = [False] * len(arrays)
    ok = True

    def walk(node: Any) -> None:
        nonlocal ok
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and value.startswith(_PREFIX):
                    i = int(value[len(_PREFIX):]) if value[len(_PREFIX):].isdigit() else -1
                    if key != "summary" or not 0 <= i < len(arrays) or used[i]:
                        ok = False
                        return
                    used[i] = True
                    node[key] = arrays[i]
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, str) and value.startswith(_PREFIX):
                    ok = False
                    return
                walk(value)

    walk(data)
    return ok and all(used)
