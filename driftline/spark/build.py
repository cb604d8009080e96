"""``build_baseline``: a Spark DataFrame → a baseline profile, partial profiles merged in a tree.

Each partition's Arrow batches feed one :class:`~driftline.profile.partial.PartialProfile` on its
executor (``mapInArrow``); the states (bytes, see ``PartialProfile.to_bytes``) are merged on the
executors by a tree of levels, each merging runs of consecutive partitions in partition order,
so only one state reaches the driver (its memory does not grow with rows or partitions) and the
result does not depend on the order shuffles fetch their blocks in. When the build keeps a row
sample (the calibration rows), a first pass counts each partition's rows, so every partition's
state starts at its first global row and the merged sample is the one-pass sample. Embedding
and text columns take two more passes, merged the same way. An input error on an executor (a
class column with too many classes) travels back as a value and is raised on the driver as the
same :class:`InputError`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import pickle
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from driftline.errors import InputError
from driftline.profile.build import (
    BuildOptions,
    derived_options,
    finish_profile,
    new_partial,
    plan_columns,
    read_columns,
    with_derived,
    with_detected_embeddings,
)
from driftline.profile.derived import Builder, Derived, derived_results, new_builders
from driftline.profile.format import BaselineProfile, Feature, MultivariateProfile
from driftline.profile.multivariate import (
    BlockErrors,
    Encoder,
    MomentParts,
    _numpy_columns,
    multivariate_profile,
)
from driftline.profile.partial import PartialProfile
from driftline.spark.source import arrow_schema, describe, partition_id, require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_OK, _ERROR = b"S", b"E"


def build_baseline(df: DataFrame, opts: BuildOptions = BuildOptions(),  # noqa: B008
                   *, name: str | None = None, depth: int = 2) -> BaselineProfile:
    """The profile of every row of ``df`` with the options of ``driftline baseline build``
    (the multivariate PCA model too: two more passes; embedding and text columns: two more).

    ``name`` (a table name or path) is recorded as the profile's source and used in errors;
    ``depth`` is the depth of the merge tree (2 suits up to thousands of partitions)."""
    require_pyspark()
    sources = describe(df, name)
    where = name or sources[0]
    schema = arrow_schema(df)
    opts = with_detected_embeddings(opts, schema)  # as the local build (fixed-size lists)
    plan = plan_columns(opts, [(where, schema)])
    columns = read_columns(opts, plan)
    empty = new_partial(opts, plan)
    starts, total = (_partition_starts(df.select(columns[0])) if columns and empty.samples_rows
                     else ({}, 0))

    def profile_part(part: int, batches: Iterator[pa.RecordBatch]) -> bytes:
        state = new_partial(opts, plan, offset=starts.get(part, 0))
        state.path = where
        for batch in batches:
            if batch.num_rows:
                state.update(batch)
        return state.to_bytes()

    def merge_states(a: bytes, b: bytes) -> bytes:
        return PartialProfile.from_bytes(a).merge(PartialProfile.from_bytes(b)).to_bytes()

    if columns:
        state = PartialProfile.from_bytes(merged_partitions(
            df.select(*columns), profile_part, merge_states, depth, empty=empty.to_bytes()))
    else:  # embedding and text columns only: count the rows
        state = empty
        state.rows = _partition_starts(df.select(df.columns[0]))[1]
    if state.rows == 0:
        raise InputError("the data holds no rows", path=where, fix="give a non-empty table")
    if starts and state.rows != total:
        raise _changed(total, state.rows)
    profile = finish_profile(state, opts, plan, sources=sources)
    if opts.multivariate:
        tabular = {c: profile.features[c] for c in [*plan.numeric, *plan.categorical]}
        profile = dataclasses.replace(
            profile, multivariate=_multivariate(df, tabular, profile.n_records, starts, depth))
    if opts.embeddings or opts.text:
        profile = with_derived(profile, _derived(df, opts, where, depth))
    return profile


def merged_partitions(df: DataFrame, fn: Callable[[int, Iterator[pa.RecordBatch]], Any],
                      merge: Callable[[Any, Any], Any], depth: int, *, empty: Any) -> Any:
    """``fn(partition, batches)`` of every partition of ``df``, merged on the executors in
    partition order (``merge(earlier, later)``, see :func:`_tree_merge`): one value reaches the
    driver (``empty`` when ``df`` has no partitions). An executor's InputError is raised here."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            payload = _OK + pickle.dumps(fn(partition_id(), batches), pickle.HIGHEST_PROTOCOL)
        except InputError as exc:
            payload = _ERROR + pickle.dumps(str(exc))
        yield pa.RecordBatch.from_arrays([pa.array([payload], pa.binary())], names=["state"])

    states = df.mapInArrow(run, "state binary").rdd
    if not states.getNumPartitions():
        return empty
    merged = _tree_merge(states.map(lambda row: bytes(row[0])), depth, _payloads(merge))
    if merged.startswith(_ERROR):
        raise InputError(pickle.loads(merged[1:]))
    return pickle.loads(merged[1:])


def per_partition(df: DataFrame, fn: Callable[[int, Iterator[pa.RecordBatch]], Any],
                  ) -> list[tuple[int, Any]]:
    """``(partition, fn(partition, batches))`` of every partition of ``df``, in partition order
    (one pickled value per partition reaches the driver: keep it to a few numbers, such as a
    row count; anything larger goes through :func:`merged_partitions`). An executor's
    InputError is raised here."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        part = partition_id()
        try:
            payload = _OK + pickle.dumps((part, fn(part, batches)))
        except InputError as exc:
            payload = _ERROR + pickle.dumps(str(exc))
        yield pa.RecordBatch.from_arrays([pa.array([payload], pa.binary())], names=["state"])

    found = [bytes(r[0]) for r in df.mapInArrow(run, "state binary").collect()]
    for p in found:
        if p.startswith(_ERROR):
            raise InputError(pickle.loads(p[1:]))
    return sorted((pickle.loads(p[1:]) for p in found), key=lambda t: t[0])


def _derived(df: DataFrame, opts: BuildOptions, where: str, depth: int) -> Derived:
    """:func:`~driftline.profile.derived.build_derived` on Spark: the first pass per partition
    merged in partition order (vector moment sums, token counts), ``prepare`` on the driver,
    then the second pass per partition from each partition's first vector (the first pass
    counts them) merged in order: the same sample, counts and vocabulary as one pass."""
    builders = new_builders(opts.embeddings, opts.text, derived_options(opts))
    rows = df.select(*(b.name for b in builders))

    def first(part: int, batches: Iterator[pa.RecordBatch]) -> tuple[dict[int, list[int]],
                                                                      list[Builder]]:
        own = copy.deepcopy(builders)
        for batch in batches:
            for b in own:
                b.first(batch.column(b.name), where)
        return {part: [getattr(b, "valid", 0) for b in own]}, own

    def merge_first(a: tuple[dict[int, list[int]], list[Builder]],
                    b: tuple[dict[int, list[int]], list[Builder]],
                    ) -> tuple[dict[int, list[int]], list[Builder]]:
        for x, y in zip(a[1], b[1], strict=True):
            x.merge_first(y)  # type: ignore[arg-type]  # same kinds, same order
        return {**a[0], **b[0]}, a[1]

    valid, prepared = merged_partitions(rows, first, merge_first, depth,
                                        empty=({}, builders))
    for b in prepared:
        b.prepare()
    before: dict[int, list[int]] = {}
    running = [0] * len(prepared)
    for part in sorted(valid):
        before[part] = list(running)
        running = [r + v for r, v in zip(running, valid[part], strict=True)]

    def second(part: int, batches: Iterator[pa.RecordBatch]) -> list[Builder]:
        own = copy.deepcopy(prepared)
        for b, start in zip(own, before.get(part, running), strict=True):
            b.start_second(start)
        for batch in batches:
            for b in own:
                b.second(batch.column(b.name), where)
        return own

    def merge_second(a: list[Builder], b: list[Builder]) -> list[Builder]:
        for x, y in zip(a, b, strict=True):
            x.merge_second(y)  # type: ignore[arg-type]
        return a

    return derived_results(merged_partitions(rows, second, merge_second, depth,
                                             empty=prepared))


def _multivariate(df: DataFrame, features: dict[str, Feature], n_rows: int,
                  starts: dict[int, int], depth: int) -> MultivariateProfile | None:
    """:func:`~driftline.profile.multivariate.fit_multivariate` on Spark: moment sums per
    partition, then block errors and the sample per partition, each part from its partition's
    first global row (so even and odd rows are the one-pass ones) and merged on the executors
    in partition order like the build's states: the driver receives one ``d × d`` sum and one
    block-error state, whatever the number of partitions (``starts``: the partitions' first
    rows when the build counted them, else they are counted here)."""
    if len(features) < 2 or n_rows < 2:
        return None
    enc = Encoder.fit(features)
    rows = df.select(*features)
    if not starts:
        starts = _partition_starts(rows)[0]

    def sums(part: int, batches: Iterator[pa.RecordBatch]) -> MomentParts:
        acc = MomentParts.empty(enc, offset=starts.get(part, 0))
        for b in batches:
            acc.update(enc.encode(_numpy_columns(b, features)))
        return acc

    merged_sums = merged_partitions(rows, sums, MomentParts.merge, depth,
                                    empty=MomentParts.empty(enc, offset=0))
    models = merged_sums.models(n_rows)

    def errors(part: int, batches: Iterator[pa.RecordBatch]) -> BlockErrors:
        blocks = BlockErrors.of(n_rows, offset=starts.get(part, 0))
        for b in batches:
            blocks.update(models, enc.encode(_numpy_columns(b, features)))
        return blocks

    merged = merged_partitions(rows, errors, BlockErrors.merge, depth,
                               empty=BlockErrors.of(n_rows, offset=0))
    if merged.seen != n_rows or int(merged.counts.sum()) != n_rows:
        raise _changed(n_rows, int(merged.counts.sum()))
    return multivariate_profile(enc, models[0], merged)


def _partition_starts(df: DataFrame) -> tuple[dict[int, int], int]:
    """Each partition's first global row (partition order is row order), and the rows."""
    starts: dict[int, int] = {}
    total = 0
    for part, rows in per_partition(df, lambda _, batches: sum(b.num_rows for b in batches)):
        starts[part], total = total, total + rows
    return starts, total


def _changed(before: int, after: int) -> InputError:
    return InputError(f"the data changed while it was profiled ({before} rows, then {after})",
                      fix="build from a table or files that do not change while the build runs")


def _tree_merge(payloads: Any, depth: int, merge: Callable[[bytes, bytes], bytes]) -> bytes:
    """One state from one per partition (in partition order), merged on the executors level by
    level: each level merges runs of ``width = P^(1/depth)`` consecutive states, in order, in
    one task per run (sorted by partition index, so a merge never sees its inputs in shuffle
    fetch order and the result is the same run after run), and the last level is one task: the
    driver receives exactly one state. (``RDD.treeReduce`` merges its last ~√P states on the
    driver, and ``reduceByKey`` combines a key's values in fetch order.)"""
    n = payloads.getNumPartitions()
    width = max(2, math.ceil(n ** (1.0 / max(depth, 1))))
    level = payloads.mapPartitionsWithIndex(lambda i, it: ((i, p) for p in it))
    while n > 1:
        n = math.ceil(n / width)
        level = (level.map(lambda kv, w=width: ((kv[0] // w, kv[0]), kv[1]))
                 .repartitionAndSortWithinPartitions(n, partitionFunc=lambda k: k[0])
                 .mapPartitions(functools.partial(_merge_runs, merge=merge)))
    out = [p for _, p in sorted(level.collect(), key=lambda kv: kv[0])]
    return out[0] if len(out) == 1 else functools.reduce(merge, out)


def _merge_runs(items: Iterator[tuple[tuple[int, int], bytes]],
                merge: Callable[[bytes, bytes], bytes]) -> Iterator[tuple[int, bytes]]:
    """``((run, index), state)`` sorted by run then index → ``(run, merged state)``."""
    run, acc = -1, b""
    for (r, _), state in items:
        if r != run:
            if run >= 0:
                yield run, acc
            run, acc = r, state
        else:
            acc = merge(acc, state)
    if run >= 0:
        yield run, acc


def _payloads(merge: Callable[[Any, Any], Any]) -> Callable[[bytes, bytes], bytes]:
    """``merge`` of two pickled executor payloads (errors win, so the first error in partition
    order reaches the driver; an InputError while merging travels the same way)."""
    def both(a: bytes, b: bytes) -> bytes:
        if a.startswith(_ERROR):
            return a
        if b.startswith(_ERROR):
            return b
        try:
            out = merge(pickle.loads(a[1:]), pickle.loads(b[1:]))
        except InputError as exc:
            return _ERROR + pickle.dumps(str(exc))
        return _OK + pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
    return both
