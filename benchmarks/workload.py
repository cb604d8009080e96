"""The analyze workload of the speed benchmarks: 20 numeric features of mixed shapes and 5
categorical ones, written to Parquet in 100k-row chunks (the generator's memory stays small).

Shapes cycle through normal, lognormal, small integers (many ties), a bimodal mixture and a
heavy-tailed Student t; categorical features have 3–40 levels with uneven shares. With
``drift_after`` the first three numeric and the first categorical feature shift from that
fraction of the rows on, so every contender must find the same injected change.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_NUMERIC = 20
N_CATEGORICAL = 5
LEVELS = (3, 5, 8, 20, 40)


def names(n_numeric: int = N_NUMERIC, n_categorical: int = N_CATEGORICAL) -> list[str]:
    return [f"n{i:02d}" for i in range(n_numeric)] + [f"c{j}" for j in range(n_categorical)]


def _numeric(rng: np.random.Generator, i: int, n: int) -> np.ndarray:
    kind = i % 5
    if kind == 0:
        return rng.normal(0, 1, n)
    if kind == 1:
        return rng.lognormal(0, 0.5, n)
    if kind == 2:
        return rng.integers(0, 20, n).astype(np.float64)
    if kind == 3:
        return np.where(rng.uniform(size=n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(1, 1, n))
    return rng.standard_t(3, n)


def _categorical(rng: np.random.Generator, j: int, n: int) -> pa.Array:
    k = LEVELS[j % len(LEVELS)]
    p = 1.0 / np.arange(1, k + 1)
    levels = np.array([f"v{v}" for v in range(k)], dtype=object)
    return pa.array(levels[rng.choice(k, size=n, p=p / p.sum())], type=pa.string())


def generate(path: Path, rows: int, seed: int, drift_after: float | None = None,
             n_numeric: int = N_NUMERIC, n_categorical: int = N_CATEGORICAL) -> None:
    """Write ``rows`` rows of the workload to ``path``."""
    rng = np.random.default_rng(seed)
    cols = names(n_numeric, n_categorical)
    schema = pa.schema([(c, pa.float64() if c.startswith("n") else pa.string()) for c in cols])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            shifted = (np.arange(start, start + n) >= drift_after * rows
                       if drift_after is not None else np.zeros(n, dtype=bool))
            data: dict[str, object] = {}
            for i in range(n_numeric):
                x = _numeric(rng, i, n)
                data[cols[i]] = x + np.where(shifted, 0.5, 0.0) if i < 3 else x
            for j in range(n_categorical):
                a = _categorical(rng, j, n)
                if j == 0 and shifted.any():
                    v = np.asarray(a.to_pylist(), dtype=object)
                    v[shifted & (rng.uniform(size=n) < 0.3)] = "v0"
                    a = pa.array(v.tolist(), type=pa.string())
                data[cols[n_numeric + j]] = a
            w.write_table(pa.table(data, schema=schema))


#: Driftline's packages with their own source folders (pyproject's ``package-dir``).
PACKAGES = ("driftline", "driftline.detectors", "driftline.collectors", "driftline.exporters",
            "driftline.dashboards", "driftline.alertmanager")


def compile_bytecode() -> None:
    """Driftline's modules compiled to bytecode, as pip compiles an installed wheel's (and the
    peers' packages are, in their environments). A development install run with
    ``PYTHONDONTWRITEBYTECODE=1`` (as CI and many shells set it) would otherwise compile every
    module from source in every process: ≈ 0.15 s of CPU per ``driftline analyze`` process
    that no installed copy pays."""
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            compileall.compile_dir(folder, quiet=1)
