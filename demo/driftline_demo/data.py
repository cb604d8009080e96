"""A synthetic, deterministic "car-loan" credit dataset for the demo and the end-to-end test.

No download, no file shipped: the same seed always gives the same rows. Each row is a car-loan
application (numeric and categorical features) and ``defaulted`` (1 when the borrower defaulted).
``shift`` in [0, 1] moves the population towards an economic downturn: lower credit scores and
incomes, higher debt-to-income, more unemployed and contract workers, a different regional mix,
and — the part a label-free monitor cannot see from features alone — a higher default rate at the
same features (concept drift), so realised accuracy drops as well.

>>> cols = generate(1000, seed=1)
>>> sorted(cols) == sorted([*FEATURES, TARGET])
True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "CATEGORICAL",
    "EMBEDDING",
    "EMBEDDING_DIM",
    "FEATURES",
    "NUMERIC",
    "TARGET",
    "generate",
    "records",
    "write_parquet",
]

NUMERIC: tuple[str, ...] = (
    "age", "annual_income", "loan_amount", "term_months", "credit_score", "debt_to_income",
    "vehicle_age",
)
CATEGORICAL: tuple[str, ...] = ("employment", "vehicle_type", "region")
FEATURES: tuple[str, ...] = (*NUMERIC, *CATEGORICAL)
TARGET = "defaulted"
#: A 16-d embedding of the applicant's free-text notes, as an upstream text encoder would give
#: it (generated: a fixed random projection of the applicant's situation plus noise). The model
#: does not read it; Driftline monitors it as an embedding feature (MMD, cosine distance).
EMBEDDING = "notes_embedding"
EMBEDDING_DIM = 16

_EMPLOYMENT = ("salaried", "self_employed", "contract", "unemployed")
_REGIONS = ("north", "south", "east", "west", "central")


def _mix(p0: np.ndarray, p1: np.ndarray, shift: float) -> np.ndarray:
    p = (1.0 - shift) * p0 + shift * p1
    return np.asarray(p / p.sum())


def generate(n: int, *, seed: int = 0, shift: float = 0.0,
             missing_rate: float = 0.01) -> dict[str, np.ndarray]:
    """``n`` applications as columns (numpy arrays; categorical columns are object arrays of str).

    ``shift`` = 0 is the reference population; 1 is a full downturn. ``missing_rate`` of
    ``annual_income`` is NaN (income not declared), so the missing ratio has something to show.
    """
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be in [0, 1], got {shift}")
    rng = np.random.default_rng(seed)
    s = float(shift)
    age = np.clip(rng.normal(42.0 - 4.0 * s, 12.0, n), 21, 75).round()
    income = np.exp(rng.normal(np.log(56_000.0 * (1.0 - 0.3 * s)), 0.45, n)).round(-2)
    used = rng.random(n) < (0.55 + 0.25 * s)
    vehicle_type = np.where(used, "used", "new").astype(object)
    loan = np.where(used, np.exp(rng.normal(np.log(15_000.0), 0.40, n)),
                    np.exp(rng.normal(np.log(28_000.0), 0.35, n))).round(-1)
    terms = np.array([24, 36, 48, 60, 72], dtype=np.float64)
    term = rng.choice(terms, n, p=_mix(np.array([.10, .20, .25, .30, .15]),
                                       np.array([.03, .10, .20, .35, .32]), s))
    score = np.clip(rng.normal(690.0 - 70.0 * s, 60.0, n), 300, 850).round()
    dti = np.clip(rng.beta(2.0, 5.0, n) * 0.8 + 0.15 * s, 0.0, 1.2).round(3)
    vehicle_age = np.where(used, rng.integers(1, 13, n), 0).astype(np.float64)
    employment = rng.choice(np.array(_EMPLOYMENT, dtype=object), n,
                            p=_mix(np.array([.60, .18, .14, .08]), np.array([.38, .17, .25, .20]), s))
    region = rng.choice(np.array(_REGIONS, dtype=object), n,
                        p=_mix(np.array([.22, .24, .18, .20, .16]), np.array([.10, .40, .10, .10, .30]), s))
    emp_effect = np.select([employment == "unemployed", employment == "contract",
                            employment == "self_employed"], [1.5, 0.6, 0.35], 0.0)
    logit = (-1.9 - 0.014 * (score - 690.0) + 4.5 * (dti - 0.23) + 1.2 * (loan / income - 0.35)
             + emp_effect + 0.35 * used + 0.02 * (term - 48.0) - 0.01 * (age - 42.0)
             + 1.0 * s)  # concept drift: more defaults at the same features
    defaulted = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    if missing_rate > 0:
        income = income.copy()
        income[rng.random(n) < missing_rate] = np.nan
    situation = np.column_stack([(score - 690.0) / 60.0, (dti - 0.23) / 0.15, used.astype(float),
                                 (age - 42.0) / 12.0, np.full(n, s)])
    proj = np.random.default_rng(1234).normal(size=(situation.shape[1], EMBEDDING_DIM))
    embedding = np.tanh(situation @ proj / 2.0 + 0.8 + rng.normal(0.0, 0.25, (n, EMBEDDING_DIM)))
    return {
        EMBEDDING: embedding,
        "age": age, "annual_income": income, "loan_amount": loan, "term_months": term,
        "credit_score": score, "debt_to_income": dti, "vehicle_age": vehicle_age,
        "employment": employment, "vehicle_type": vehicle_type, "region": region,
        TARGET: defaulted,
    }


def records(columns: Mapping[str, np.ndarray], names: tuple[str, ...] = FEATURES) -> list[dict[str, object]]:
    """Row dicts of ``names`` (JSON-ready: NaN → None) — the shape a client sends; the
    embedding (a list of floats) comes along when ``columns`` has it."""
    out: list[dict[str, object]] = []
    if EMBEDDING in columns and EMBEDDING not in names:
        names = (*names, EMBEDDING)
    cols = [(k, columns[k].tolist()) for k in names]
    n = len(cols[0][1]) if cols else 0
    for i in range(n):
        row: dict[str, object] = {}
        for k, vals in cols:
            v = vals[i]
            row[k] = None if isinstance(v, float) and v != v else v
        out.append(row)
    return out


def write_parquet(path: str | Path, columns: Mapping[str, np.ndarray]) -> Path:
    """Write columns to a Parquet file (pyarrow), e.g. as the reference set for the baseline."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for k, v in columns.items():
        if v.ndim == 2:  # an embedding: a fixed-size-list column
            arrays[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
            continue
        arrays[k] = pa.array(v.tolist() if v.dtype == object else v, from_pandas=True)
    p = Path(path)
    pq.write_table(pa.table(arrays), p)
    return p
