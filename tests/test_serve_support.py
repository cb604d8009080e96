"""Shared helpers for the serve/collector tests: small baseline profiles built by hand with numpy,
so the collector tests do not depend on the baseline builder's defaults."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftline.profile.format import (
    BaselineProfile,
    CategoricalFeature,
    Columns,
    NumericFeature,
    OutputProfile,
)


def numeric_feature(name: str, values: np.ndarray) -> NumericFeature:
    v = np.sort(np.asarray(values, dtype=np.float64))
    edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return NumericFeature(
        name=name, edges=tuple(edges.tolist()), proportions=tuple((counts / len(v)).tolist()),
        summary=tuple(v.tolist()), summary_exact=True, count=len(v), missing_ratio=0.0,
        minimum=float(v[0]), maximum=float(v[-1]), mean=float(v.mean()), std=float(v.std()),
    )


def categorical_feature(name: str, categories: Sequence[str], shares: Sequence[float]
                        ) -> CategoricalFeature:
    return CategoricalFeature(name=name, categories=tuple(categories),
                              proportions=(*shares, 0.0), count=1000, missing_ratio=0.0)


def make_profile(name: str = "car-loan", version: str = "1", n_numeric: int = 4,
                 with_category: bool = False, seed: int = 0,
                 task: str = "classification") -> BaselineProfile:
    """``n_numeric`` standard-normal features ``f0..``, optionally a categorical ``color``, and a
    binary classifier output (classes "0", "1") or a regressor."""
    rng = np.random.default_rng(seed)
    feats: dict[str, NumericFeature | CategoricalFeature] = {
        f"f{i}": numeric_feature(f"f{i}", rng.normal(size=2000)) for i in range(n_numeric)
    }
    if with_category:
        feats["color"] = categorical_feature("color", ["red", "green", "blue"], [0.5, 0.3, 0.2])
    if task == "classification":
        output = OutputProfile(
            task="classification", prediction_column="prediction",
            proba_columns={"1": "proba"}, classes=("0", "1"), positive_class="1",
            prediction=categorical_feature("prediction", ["0", "1"], [0.5, 0.5]),
            confidence=numeric_feature("confidence", rng.uniform(0.5, 1.0, 2000)),
            reference_accuracy=0.9,
        )
    else:
        output = OutputProfile(
            task="regression", prediction_column="prediction", proba_columns={}, classes=(),
            positive_class=None, prediction=numeric_feature("prediction", rng.normal(size=2000)),
            confidence=None, reference_accuracy=None,
        )
    return BaselineProfile(
        model_name=name, model_version=version, created_at="2026-11-22T00:00:00Z",
        n_records=2000, features=feats,
        columns=Columns(prediction="prediction", proba={"1": "proba"}, target="label"),
        output=output,
    )
