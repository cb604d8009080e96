"""Replay a data file into a running sidecar's ``POST /ingest`` (``driftline replay``).

Reads Parquet, CSV, JSONL or Arrow files with the same streaming readers as
``driftline baseline build`` (memory bounded by one batch), turns each batch into one native
ingest body and posts it over one keep-alive connection. Every column that is not named as
prediction, probability, id, label or timestamp is a feature. A ``429`` (the sidecar's queue is
full) is honoured by waiting and retrying the same batch: replay applies back-pressure instead
of losing records. ``rate`` caps records per second, to replay at production speed.

>>> body = ingest_body([{"a": 1.0, "pred": 1}], model_name="m", columns=ReplayColumns("pred"))
>>> body["records"][0]
{'features': {'a': 1.0}, 'prediction': 1}
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from driftline.errors import InputError


@dataclass(frozen=True)
class ReplayColumns:
    """Which columns are not features."""

    prediction: str | None = None
    probabilities: tuple[str, ...] = ()
    id: str | None = None
    label: str | None = None
    timestamp: str | None = None
    #: (class, column) pairs: sent as ``{class: p}``, which the sidecar maps to its class order
    probability_map: tuple[tuple[str, str], ...] = ()

    def special(self) -> set[str]:
        return {c for c in (self.prediction, self.id, self.label, self.timestamp) if c} | set(
            self.probabilities) | {col for _, col in self.probability_map}


@dataclass
class ReplayResult:
    records: int = 0
    requests: int = 0
    retries: int = 0
    rejected: int = 0


def ingest_body(rows: Sequence[Mapping[str, Any]], *, model_name: str,
                model_version: str | None = None,
                columns: ReplayColumns = ReplayColumns()) -> dict[str, Any]:
    """One ``/ingest`` body from row mappings."""
    special = columns.special()
    records = []
    for row in rows:
        rec: dict[str, Any] = {"features": {k: v for k, v in row.items() if k not in special}}
        if columns.prediction:
            rec["prediction"] = row.get(columns.prediction)
        if columns.probabilities:
            probs = [row.get(c) for c in columns.probabilities]
            rec["probabilities"] = probs[0] if len(probs) == 1 else probs
        elif columns.probability_map:
            rec["probabilities"] = {cls: row.get(col) for cls, col in columns.probability_map}
        for key, col in (("id", columns.id), ("label", columns.label),
                         ("timestamp", columns.timestamp)):
            if col and row.get(col) is not None:
                rec[key] = row[col]
        records.append(rec)
    body: dict[str, Any] = {"model_name": model_name, "records": records}
    if model_version is not None:
        body["model_version"] = model_version
    return body


def iter_rows(paths: Sequence[str], batch_size: int, *, progress: bool = False,
              console: Any = None) -> Iterator[list[dict[str, Any]]]:
    """Row mappings from data files, ``batch_size`` rows at a time; with ``progress``, a bar
    over the rows/bytes read on ``console`` (rich's stderr console by default)."""
    from driftline.io.progress import read_progress
    from driftline.io.readers import discover, iter_batches

    files = discover(list(paths))
    bar = read_progress(progress, files, description="replaying", console=console)
    try:
        for n, f in enumerate(files):
            on_read = bar.file(n) if bar is not None else None
            for batch in iter_batches(f, batch_rows=batch_size, progress=on_read):
                rows = batch.to_pylist()
                for i in range(0, len(rows), batch_size):
                    yield rows[i:i + batch_size]
                    if bar is not None:
                        bar.rows(len(rows[i:i + batch_size]))
    finally:
        if bar is not None:
            bar.close()


def replay(paths: Sequence[str], url: str, *, model_name: str, model_version: str | None = None,
           columns: ReplayColumns = ReplayColumns(), batch_size: int = 500,
           rate: float | None = None, max_wait: float = 60.0,
           sleep: Callable[[float], None] = time.sleep, progress: bool = False,
           console: Any = None) -> ReplayResult:
    """Post every row of ``paths`` to ``url`` (the sidecar's metrics port, e.g.
    ``http://127.0.0.1:9108``); ``progress`` draws a bar on ``console`` (see :func:`iter_rows`)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise InputError(f"{url!r} is not an http:// URL", fix="use e.g. http://127.0.0.1:9108")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    target = (parts.path.rstrip("/") or "") + "/ingest"
    result = ReplayResult()
    started = time.monotonic()
    try:
        for rows in iter_rows(paths, batch_size, progress=progress, console=console):
            payload = orjson.dumps(ingest_body(rows, model_name=model_name,
                                               model_version=model_version, columns=columns),
                                   option=orjson.OPT_SERIALIZE_NUMPY)
            waited = 0.0
            while True:
                conn.request("POST", target, payload, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                text = resp.read()
                if resp.status != 429 or waited >= max_wait:
                    break
                result.retries += 1
                sleep(0.05)
                waited += 0.05
            result.requests += 1
            if resp.status == 202:
                result.records += len(rows)
            else:
                result.rejected += len(rows)
                if resp.status == 400 and result.records == 0:
                    raise InputError(f"the sidecar rejected the first batch: {text[:300]!r}",
                                     fix="check --model-name and the feature columns")
            if rate:
                ahead = result.records / rate - (time.monotonic() - started)
                if ahead > 0:
                    sleep(ahead)
    except (ConnectionError, OSError) as exc:
        raise InputError(f"cannot reach the sidecar at {url}: {exc}",
                         fix="start `driftline serve` or fix --to") from None
    finally:
        conn.close()
    return result
