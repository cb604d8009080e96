"""The demo's regression model: how much of a car loan an applicant will have repaid after a
year, scored without labels (direct loss estimation) and with them (labels joined by id).

The model is a linear regression on the applicants' numbers; its error is small for salaried
applicants with good credit and large for contract workers and the unemployed, so the size of
the error is learnable from the inputs. The baseline is built with ``--task regression
--target``, which fits the DLE trees; the downturn population (more contract work, lower
scores) is then logged through the SDK exactly as a model server would, the labels follow by id,
and the summary shows the estimated MAE/RMSE of the last window beside the realised values.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftline_demo.data import generate, write_parquet

#: Inputs of the regression model (numeric, NaN-free after imputation) and the categorical
#: features the baseline also watches.
NUMERIC = ("age", "annual_income", "loan_amount", "term_months", "credit_score", "debt_to_income")
CATEGORICAL = ("employment", "region")
TARGET = "repaid_share"


def repaid_share(cols: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Share of the loan repaid after a year: grows with the credit score, falls with the
    debt-to-income ratio; its noise is several times larger for unstable employment."""
    rng = np.random.default_rng(seed)
    mean = 0.2 + 0.0004 * (cols["credit_score"] - 690.0) - 0.15 * (cols["debt_to_income"] - 0.23)
    spread = np.select([cols["employment"] == "unemployed", cols["employment"] == "contract",
                        cols["employment"] == "self_employed"], [0.09, 0.06, 0.04], 0.015)
    return np.asarray(mean + rng.normal(0.0, 1.0, len(mean)) * spread)


def _matrix(cols: dict[str, np.ndarray], medians: np.ndarray) -> np.ndarray:
    x = np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in NUMERIC])
    return np.where(np.isnan(x), medians, x)


@dataclass(frozen=True)
class RegressionResult:
    """Last window of the downturn traffic: estimated (no labels) and realised (labels by id)."""

    reference: dict[str, float]
    estimated: dict[str, float]
    realised: dict[str, float]
    labels: int
    records: int


def run_regression(seed: int = 0, rows: int = 3000, workdir: Path | None = None) -> RegressionResult:
    from sklearn.linear_model import LinearRegression

    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile
    from driftline.sdk import Monitor

    train = generate(rows, seed=seed + 100)
    ref = generate(rows, seed=seed + 101)
    medians = np.nanmedian(_matrix(train, np.zeros(len(NUMERIC))), axis=0)
    model = LinearRegression().fit(_matrix(train, medians), repaid_share(train, seed + 200))
    ref_cols = {k: ref[k] for k in (*NUMERIC, *CATEGORICAL)}
    ref_cols["prediction"] = model.predict(_matrix(ref, medians))
    ref_cols[TARGET] = repaid_share(ref, seed + 201)
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        path = write_parquet(Path(d) / "regression-reference.parquet", ref_cols)
        profile = build_profile(discover([str(path)]), BuildOptions(
            prediction="prediction", target=TARGET, task="regression", model_name="repayment",
            multivariate=False), progress=False)
    live = generate(rows, seed=seed + 102, shift=0.8)  # the downturn: more unstable employment
    pred = model.predict(_matrix(live, medians))
    labels = repaid_share(live, seed + 202)
    ids = [f"repay-{i}" for i in range(rows)]
    mon = Monitor(profile, window_records=rows // 2, window_max_age=3600.0)
    try:
        mon.log_batch({k: live[k] for k in (*NUMERIC, *CATEGORICAL)}, predictions=pred.tolist(),
                      ids=ids)
        mon.flush()
        for i, y in zip(ids, labels.tolist(), strict=True):  # the labels arrive later, by id
            mon.feedback(i, y)
        mon.flush()
        snap = mon.snapshot()
    finally:
        mon.close()
    out = profile.output
    assert out is not None
    last = snap.last_window
    return RegressionResult(reference=dict(out.reference_performance),
                            estimated=dict(snap.estimated_performance),
                            realised=dict(snap.performance), labels=snap.labels.get("true", 0),
                            records=last.records if last is not None else 0)
