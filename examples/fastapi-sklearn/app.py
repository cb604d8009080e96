"""A FastAPI model server monitored in-process by Driftline.

    pip install -r requirements.txt     # in this folder: Driftline and its demo package from the repo
    python train.py && uvicorn app:app --port 8080
    curl -s localhost:8080/predict -H 'content-type: application/json' -d '{"features": {...}}'
    curl -s localhost:9108/metrics | grep driftline_feature_psi
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header
from pydantic import BaseModel
from service import LoanService

HERE = Path(__file__).resolve().parent
_service: LoanService | None = None


class Application(BaseModel):
    features: dict[str, Any]


class Label(BaseModel):
    id: str
    label: int


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global _service
    _service = LoanService(os.environ.get("MODEL_PATH", HERE / "model.pkl"),
                           os.environ.get("BASELINE_PATH", HERE / "baseline.json"),
                           metrics_port=int(os.environ.get("DRIFTLINE_METRICS_PORT", "9108")))
    yield
    _service.close()  # drains the buffer and closes the open window


app = FastAPI(title="car-loan", lifespan=lifespan)


@app.post("/predict")
def predict(body: Application, x_request_id: str | None = Header(default=None)) -> dict[str, Any]:
    assert _service is not None
    return _service.predict(body.features, x_request_id)


@app.post("/feedback")
def feedback(body: Label) -> dict[str, bool]:
    assert _service is not None
    return {"accepted": _service.feedback(body.id, body.label)}
