"""The model service without the web framework: predict, log to Driftline, take late labels.

Kept apart from ``app.py`` so the logic runs (and is tested) without FastAPI installed.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import driftline.sdk


class LoanService:
    """Scores applications and logs every one to Driftline without waiting for it."""

    def __init__(self, model_path: str | Path, baseline: str | Path, *, metrics_port: int | None = 9108,
                 window_records: int = 1000) -> None:
        self.model = pickle.loads(Path(model_path).read_bytes())
        # /metrics, /healthz and /feedback on metrics_port; the model's own port stays untouched.
        self.monitor = driftline.sdk.Monitor(baseline, metrics_port=metrics_port,
                                             window_records=window_records)

    def predict(self, features: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        rid = request_id or uuid.uuid4().hex
        columns = {k: [features.get(k)] for k in self.model.features}
        proba = self.model.predict_proba(columns)[0]
        prediction = int(self.model.classes[int(proba.argmax())])
        self.monitor.log(features=features, prediction=prediction, probabilities=proba.tolist(), id=rid)
        return {"id": rid, "prediction": prediction, "probability_default": float(proba[1])}

    def feedback(self, request_id: str, label: int) -> bool:
        return self.monitor.feedback(request_id, label)

    def close(self) -> None:
        self.monitor.close()
