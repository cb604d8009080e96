"""Domain-classifier drift score for ``driftline analyze`` (NannyML's and Alibi Detect's
classifier drift): how well can a classifier tell reference rows from window rows?

The score is the ROC AUC of out-of-fold predictions (stratified 5-fold cross-validation) of a
gradient-boosted tree classifier on the baseline's stored reference sample against a bounded
sample of the window, both as the multivariate encoding sees them (imputed, categories
frequency-encoded). 0.5 means indistinguishable; towards 1 the window is unlike the reference.
It needs scikit-learn, an optional extra used only here (``pip install 'driftline[analyze]'``);
without it the score is None and the report says why. The sidecar never computes it.

Differences from NannyML: NannyML trains LightGBM on the whole reference plus the chunk; this
trains scikit-learn's ``HistGradientBoostingClassifier`` on at most ``max_rows`` rows from each
side (the profile keeps 1000 reference rows), so the cost per window is bounded.
"""

from __future__ import annotations

import numpy as np

NOT_INSTALLED = ("domain_classifier_auc needs scikit-learn: pip install 'driftline[analyze]'")


def available() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def domain_classifier_auc(reference: np.ndarray, window: np.ndarray, *, folds: int = 5,
                          max_rows: int = 1000, seed: int = 0) -> tuple[float | None, str | None]:
    """(cross-validated AUC, None) or (None, why not)."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, NOT_INSTALLED
    ref = _cap(reference, max_rows)
    cur = _cap(window, max_rows)
    if len(ref) < folds or len(cur) < folds:
        return None, f"too few rows for {folds}-fold cross-validation"
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(len(ref)), np.ones(len(cur))])
    model = HistGradientBoostingClassifier(max_iter=30, learning_rate=0.1, max_leaf_nodes=15,
                                           early_stopping=False, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # one thread: OpenMP's spinning threads cost far more than they save on small fits, and
    # much more on a busy machine
    with threadpool_limits(1):
        proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba)), None


def _cap(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) <= k:
        return x
    return x[np.linspace(0, len(x) - 1, k).round().astype(np.int64)]


__all__ = ["NOT_INSTALLED", "available", "domain_classifier_auc"]
