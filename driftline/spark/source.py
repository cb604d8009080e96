"""Spark input: a table name or a path Spark can read, and the DataFrame's Arrow schema."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from driftline.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Suffix → Spark reader format, for paths given on the command line.
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "json",
            ".jsonl": "json", ".ndjson": "json", ".orc": "orc"}


def require_pyspark() -> Any:
    try:
        import pyspark
    except ImportError:
        raise InputError("the Spark engine needs PySpark",
                         fix="pip install 'driftline[spark]' (and a Java 17 runtime)") from None
    return pyspark


def session() -> SparkSession:
    """The active SparkSession, or a local one (``spark.master`` from the environment)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Local mode: executors run this interpreter (where Driftline is installed) unless the
    # user's Spark configuration names another.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return SparkSession.builder.appName("driftline").getOrCreate()


def partition_id() -> int:
    """The Spark partition an executor task runs on (0 outside a task)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return ctx.partitionId() if ctx is not None else 0


def read_table(spark: SparkSession, source: str, *, fmt: str | None = None) -> DataFrame:
    """A table name (``db.table``), or a file/directory path or URI Spark can read (Parquet,
    CSV, JSON, ORC, Delta when the session has it)."""
    looks_like_path = "/" in source or "://" in source or os.path.splitext(source)[1] in _FORMATS
    try:
        if not looks_like_path:
            return spark.table(source)
        kind = fmt or _guess_format(source)
        reader = spark.read.format(kind)
        if kind == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        return reader.load(source)
    except Exception as exc:  # AnalysisException and friends: name the source and the fix
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InputError(f"Spark cannot read it: {first}", path=source,
                         fix="give a table name or a Parquet/CSV/JSON/ORC/Delta path Spark can "
                         "reach (for s3a:// paths, the cluster's S3 connector and credentials)",
                         ) from None


def _guess_format(path: str) -> str:
    base = path.rstrip("/")
    ext = os.path.splitext(base)[1].lower()
    if ext in _FORMATS:
        return _FORMATS[ext]
    if os.path.isdir(os.path.join(base, "_delta_log")):
        return "delta"
    return "parquet"


def arrow_schema(df: DataFrame) -> pa.Schema:
    """The Arrow schema of the batches ``mapInArrow`` hands to executors."""
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        return to_arrow_schema(df.schema, timezone="UTC")
    except TypeError as exc:  # a column type Arrow cannot carry: name it
        bad = next((f.name for f in df.schema.fields if not _arrow_ok(f)), None)
        raise InputError(f"Spark column type is not supported: {exc}", column=bad,
                         fix="cast it to a number or a string, or leave it out") from None


def _arrow_ok(field: Any) -> bool:
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        to_arrow_type(field.dataType, timezone="UTC")
    except TypeError:
        return False
    return True


def describe(df: DataFrame, name: str | None) -> tuple[str, ...]:
    """What the data is called in the profile's ``sources`` and in errors."""
    if name:
        return (name,)
    try:
        files = tuple(sorted(df.inputFiles()))
    except Exception:  # not every plan has files (a query over an in-memory table)
        files = ()
    return files or ("<spark dataframe>",)
