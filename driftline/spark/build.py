"""``build_baseline``: a Spark DataFrame → a baseline profile, partial profiles merged in a tree.

Each partition's Arrow batches feed one :class:`~driftline.profile.partial.PartialProfile` on its
executor (``mapInArrow``); the states (bytes, see ``PartialProfile.to_bytes``) are merged by
``treeReduce`` on the executors, so only one state reaches the driver: its memory does not grow
with rows or partitions. An input error on an executor (a class column with too many classes)
travels back as a value and is raised on the driver as the same :class:`InputError`.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from driftline.errors import InputError
from driftline.profile.build import (
    BuildOptions,
    finish_profile,
    new_partial,
    plan_columns,
    read_columns,
)
from driftline.profile.format import BaselineProfile
from driftline.profile.partial import PartialProfile
from driftline.spark.source import arrow_schema, describe, require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_OK, _ERROR = b"S", b"E"


def build_baseline(df: DataFrame, opts: BuildOptions = BuildOptions(),  # noqa: B008
                   *, name: str | None = None, depth: int = 2) -> BaselineProfile:
    """The profile of every row of ``df`` with the options of ``driftline baseline build``
    (without the multivariate PCA model, and without embedding/text columns: not yet on Spark).

    ``name`` (a table name or path) is recorded as the profile's source and used in errors;
    ``depth`` is the depth of the merge tree (2 suits up to thousands of partitions)."""
    require_pyspark()
    sources = describe(df, name)
    where = name or sources[0]
    if opts.embeddings or opts.text:
        raise InputError("embedding and text columns are not profiled on Spark yet", path=where,
                         fix="build this baseline with --engine local, or leave out "
                         "--embedding/--text")
    # The PCA reconstruction model needs two more passes over the data; not on Spark yet.
    opts = dataclasses.replace(opts, multivariate=False)
    plan = plan_columns(opts, [(where, arrow_schema(df))])
    columns = read_columns(opts, plan)
    empty = new_partial(opts, plan)
    empty.path = where

    def profile_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        state = pickle.loads(pickle.dumps(empty))  # a fresh copy per partition
        try:
            for batch in batches:
                if batch.num_rows:
                    state.update(batch)
            payload = _OK + state.to_bytes()
        except InputError as exc:
            payload = _ERROR + pickle.dumps(str(exc))
        yield pa.RecordBatch.from_arrays([pa.array([payload], pa.binary())], names=["state"])

    states = df.select(*columns).mapInArrow(profile_partition, "state binary")
    merged = states.rdd.map(lambda row: bytes(row[0])).treeReduce(_merge_payloads, depth=depth) \
        if states.rdd.getNumPartitions() else _OK + empty.to_bytes()
    if merged.startswith(_ERROR):
        raise InputError(pickle.loads(merged[1:]))
    state = PartialProfile.from_bytes(merged[1:])
    if state.rows == 0:
        raise InputError("the data holds no rows", path=where, fix="give a non-empty table")
    return finish_profile(state, opts, plan, sources=sources)


def _merge_payloads(a: bytes, b: bytes) -> bytes:
    """Merge two executor payloads (errors win, so the first error reaches the driver)."""
    if a.startswith(_ERROR):
        return a
    if b.startswith(_ERROR):
        return b
    left = PartialProfile.from_bytes(a[1:])
    try:
        left.merge(PartialProfile.from_bytes(b[1:]))
    except InputError as exc:
        return _ERROR + pickle.dumps(str(exc))
    return _OK + left.to_bytes()
