"""Realised error metrics of a regression model: MAE, RMSE, MAPE and R².

Conventions are those of ``sklearn.metrics`` (the tests compare them on the same rows): MAPE is
a fraction, not a percentage, and divides by ``max(|y|, ε)`` with ``ε`` the float64 machine
epsilon, so a zero label gives a huge but finite term; R² is ``1 − SS_res / SS_tot``. Rows where
the prediction or the label is missing are skipped. R² needs at least two rows and labels that
are not all equal; otherwise (and for every metric without rows) the value is NaN, reported as
null — the window cannot have one.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["REGRESSION_METRICS", "realised_regression"]

#: Metric names of a regressor, in the order dashboards show them.
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "mape", "r2")

_EPS = float(np.finfo(np.float64).eps)


def realised_regression(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE and R² of ``predicted`` against ``labels``.

    >>> {k: round(v, 4) for k, v in realised_regression(np.array([1.0, 2.0]),
    ...                                                  np.array([2.0, 2.0])).items()}
    {'mae': 0.5, 'rmse': 0.7071, 'mape': 0.25, 'r2': nan}
    """
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions but {y.size} labels")
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    if p.size == 0:
        return dict.fromkeys(REGRESSION_METRICS, math.nan)
    err = y - p
    ss_res = float(np.dot(err, err))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": math.sqrt(ss_res / p.size),
        "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(y), _EPS))),
        "r2": 1.0 - ss_res / ss_tot if p.size >= 2 and ss_tot > 0 else math.nan,
    }
