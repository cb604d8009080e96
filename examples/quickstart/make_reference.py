"""Write the quickstart's sample data: ``reference.parquet`` (what the model was validated on),
``incoming.parquet`` (a later batch, for the offline gate) and ``request.json`` (one Open
Inference Protocol v2 request of 200 applications). The later data are shifted (lower incomes,
more debt) so that there is drift to show. ``request.json`` is committed; the script rewrites
it identically.

    python make_reference.py            # in examples/quickstart; needs only numpy and pyarrow

The model is the logistic score of :mod:`model_server`, so the reference's predictions and
probabilities are what the stand-in server answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from model_server import FEATURES, score

HERE = Path(__file__).resolve().parent


def applications(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Car-loan applications; ``shift`` moves income down and debt up (a recession)."""
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(42, 11, n).clip(18, 80).round(),
        "annual_income": rng.lognormal(10.8 - shift * 0.3, 0.4, n).round(-2),
        "loan_amount": rng.lognormal(9.8, 0.5, n).round(-2),
        "credit_score": rng.normal(690 - shift * 40, 60, n).clip(300, 850).round(),
        "debt_to_income": rng.beta(2 + shift * 2, 6, n).round(3),
    }


def main() -> None:
    ref = applications(5000, seed=1)
    proba = score(ref)
    rng = np.random.default_rng(2)
    table = {**ref, "proba_default": proba, "prediction": (proba >= 0.5).astype(np.int64),
             "defaulted": (rng.random(len(proba)) < proba).astype(np.int64)}
    pq.write_table(pa.table(table), HERE / "reference.parquet")
    later = applications(2000, seed=4, shift=1.0)
    p_later = score(later)
    pq.write_table(pa.table({**later, "proba_default": p_later,
                             "prediction": (p_later >= 0.5).astype(np.int64)}), HERE / "incoming.parquet")
    now = applications(200, seed=3, shift=1.0)
    request = {"id": "loan-0001", "inputs": [
        {"name": f, "shape": [200], "datatype": "FP64", "data": now[f].tolist()} for f in FEATURES]}
    (HERE / "request.json").write_text(json.dumps(request) + "\n")
    print("wrote reference.parquet (5000 rows), incoming.parquet (2000) and request.json (200)")


if __name__ == "__main__":
    main()
