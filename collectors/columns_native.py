"""The feature columns of a batch of records built in C (``native/rowcore.c``), when it is built.

Why: the Python path (:func:`~driftline.collectors.ingest._matrix_columns`) gathers every value
of every record into an object matrix, converts the numeric block with one ``astype``, and
slices out each categorical column, which
:func:`~driftline.engine.records.categorical_column` then type-checks and copies; for a
25-feature record (20 numeric, 5 categorical) that was ≈ 1 µs of the ≈ 7 the record costs on
``/ingest`` and in the SDK's ``log()``. The compiled builder reads each value once and writes
it into its column: the numbers into one float64 matrix whose rows are the numeric columns,
the categorical values into one object array per feature, noting whether each column holds
only ``str`` (where ``categorical_column`` takes the values as they are; any other column is
read by :meth:`~driftline.collectors.payloads.ModelSchema.column` as before).

Identical or nothing: it takes a batch only where its columns are bit for bit the Python
path's (a float, None, an int or a bool as ``astype(float64)`` converts it; an exact dict with
exact-str keys holding every feature, or a typed decoder's Struct) and otherwise returns None,
and the caller runs the Python path unchanged (``tests/test_rowcore.py`` compares the two).
The extension is optional, as ChangeDetector's core is: without a C compiler, or with
``DRIFTLINE_NATIVE=0``, the columns are built in Python.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.detectors.change_native import native_wanted

if TYPE_CHECKING:
    from driftline.collectors.payloads import ModelSchema

__all__ = ["StructColumns", "core", "dict_columns", "native_available"]


@functools.cache
def _module() -> Any | None:
    try:
        return importlib.import_module("driftline.collectors._rowcore")
    except ImportError:
        return None


def native_available() -> bool:
    """Whether the compiled builder is importable (whatever ``DRIFTLINE_NATIVE`` says)."""
    return _module() is not None


def core() -> Any | None:
    """The compiled builder, or None when it is not built or ``DRIFTLINE_NATIVE`` is 0."""
    return _module() if native_wanted() else None


def _split(schema: ModelSchema, names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``names`` as (numeric, categorical), each in ``names``' order, as ``_matrix_columns``
    tells them apart."""
    cat = schema.categorical
    return (tuple(n for n in names if n not in cat), tuple(n for n in names if n in cat))


def _outputs(numeric: tuple[str, ...], categorical: tuple[str, ...],
             n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """What the builder fills: the numeric columns as the rows of one ``(k, n)`` matrix (as
    ``_matrix_columns`` gives them), one object array per categorical feature (each as
    ``categorical_column`` makes it: ``np.empty(n, object)``, None until filled)."""
    return (np.empty((len(numeric), n)),
            tuple(np.empty(n, dtype=object) for _ in categorical))


def _assemble(schema: ModelSchema, names: Sequence[str], numeric: tuple[str, ...],
              block: np.ndarray, categorical: tuple[str, ...], cats: tuple[np.ndarray, ...],
              all_str: list[bool]) -> dict[str, np.ndarray]:
    """The columns in ``names``' order: the numeric ones the rows of ``block``, a categorical
    one its array where every value is a ``str`` (``categorical_column`` would copy the
    values as they are into the same array), else :meth:`ModelSchema.column` of its values."""
    out: dict[str, np.ndarray] = dict(zip(numeric, block, strict=True))
    for name, col, plain in zip(categorical, cats, all_str, strict=True):
        out[name] = col if plain else schema.column(name, col.tolist())
    return {name: out[name] for name in names}


def dict_columns(schema: ModelSchema, names: Sequence[str],
                 rows: list[Any]) -> dict[str, np.ndarray] | None:
    """The columns of ``names`` from the records' ``features`` dicts, or None where the
    Python path must build them (the builder missing or switched off, no rows, a row it does
    not take)."""
    mod = core()
    if mod is None or not rows or not names:
        return None
    numeric, categorical = _split(schema, names)
    block, cats = _outputs(numeric, categorical, len(rows))
    all_str = mod.dict_columns(rows, numeric, categorical, block, cats, np.float64)
    if all_str is None:
        return None
    return _assemble(schema, names, numeric, block, categorical, cats, all_str)


class StructColumns:
    """The columns of ``names`` from a typed decoder's feature Structs (``cls``), each name
    read from its field (``fields[i]`` the field of ``names[i]``) through the member
    descriptors: one plan per decoder, made when the decoder is."""

    def __init__(self, schema: ModelSchema, names: Sequence[str], cls: type,
                 fields: Sequence[str]) -> None:
        self.schema, self.names, self.cls = schema, list(names), cls
        self.numeric, self.categorical = _split(schema, names)
        member = {name: cls.__dict__[field] for name, field in zip(names, fields, strict=True)}
        self._numeric = tuple(member[n] for n in self.numeric)
        self._categorical = tuple(member[n] for n in self.categorical)

    def __call__(self, rows: Sequence[Any]) -> dict[str, np.ndarray] | None:
        """The columns, or None where the Python path must build them."""
        mod = core()
        if mod is None or not rows or not self.names:
            return None
        block, cats = _outputs(self.numeric, self.categorical, len(rows))
        all_str = mod.struct_columns(rows, self.cls, self._numeric, self._categorical, block,
                                     cats, np.float64)
        if all_str is None:
            return None
        return _assemble(self.schema, self.names, self.numeric, block, self.categorical, cats,
                         all_str)
