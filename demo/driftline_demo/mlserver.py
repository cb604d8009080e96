"""Optional: run the demo's model on a real MLServer (Seldon) instead of the built-in server.

MLServer is not a Driftline dependency (it pulls ~500 MB); point the demo at an existing install
with ``driftline demo --mlserver /path/to/venv/bin/mlserver`` (or ``DRIFTLINE_MLSERVER``). The
models are trained *inside MLServer's own interpreter* as scikit-learn pipelines (MLServer's
``mlserver_sklearn.SKLearnModel`` loads them with joblib and gets a pandas DataFrame from the
request's ``content_type: pd`` parameter), so nothing of Driftline has to be installed there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from driftline.errors import DriftlineError
from driftline_demo.data import CATEGORICAL, NUMERIC, TARGET

__all__ = ["mlserver_settings", "train_in_mlserver"]

# Runs in MLServer's interpreter (pandas and scikit-learn are there; Driftline is not).
_TRAIN = r'''
import json, sys
import joblib, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

root, numeric, categorical, target = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4]
train = pd.read_csv(f"{root}/train.csv")
features = numeric + categorical

def pipeline():
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    cat = OneHotEncoder(handle_unknown="ignore")
    cols = ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)])
    return make_pipeline(cols, LogisticRegression(max_iter=500))

out = {}
for name, y in (("car-loan", train[target]), ("car-loan-canary", 1 - train[target])):
    model = pipeline().fit(train[features], y)
    joblib.dump(model, f"{root}/models/{name}/model.joblib")
    with open(f"{root}/models/{name}/model-settings.json", "w") as f:
        json.dump({"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                   "parameters": {"uri": "./model.joblib", "version": "1"}}, f)
    for part in ("reference", "test"):
        frame = pd.read_csv(f"{root}/{part}.csv")
        proba = model.predict_proba(frame[features])
        pd.DataFrame({"prediction": model.classes_[proba.argmax(axis=1)],
                      "proba_default": proba[:, list(model.classes_).index(1)]}).to_csv(
            f"{root}/{name}-{part}-predictions.csv", index=False)
'''


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.table({k: pa.array(v.tolist() if v.dtype == object else v, from_pandas=True)
                      for k, v in columns.items() if v.ndim == 1})  # the model reads no embedding
    pacsv.write_csv(table, path)


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(path)
    return (np.asarray(t.column("prediction").to_numpy(), dtype=np.int64),
            np.asarray(t.column("proba_default").to_numpy(), dtype=np.float64))


def train_in_mlserver(mlserver: str, root: Path, train: dict[str, np.ndarray],
                      reference: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict[str, Any]:
    """Train both models with MLServer's Python; return the reference and test predictions."""
    python = Path(mlserver).with_name("python")
    if not python.exists():
        raise DriftlineError(f"no python beside {mlserver}; point --mlserver at <venv>/bin/mlserver")
    for name in ("car-loan", "car-loan-canary"):
        (root / "models" / name).mkdir(parents=True, exist_ok=True)
    _write_csv(root / "train.csv", train)
    _write_csv(root / "reference.csv", reference)
    _write_csv(root / "test.csv", test)
    done = subprocess.run([str(python), "-c", _TRAIN, str(root), ",".join(NUMERIC), ",".join(CATEGORICAL),
                           TARGET], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise DriftlineError(f"training in MLServer's environment failed:\n{done.stderr[-2000:]}")
    out: dict[str, Any] = {}
    for name in ("car-loan", "car-loan-canary"):
        for part in ("reference", "test"):
            out[f"{name}/{part}"] = _read_predictions(root / f"{name}-{part}-predictions.csv")
    return out


def mlserver_settings(models_dir: Path, *, http_port: int, grpc_port: int, metrics_port: int) -> Path:
    """Write MLServer's settings.json: loopback only, in-process inference (no worker pool)."""
    path = models_dir / "settings.json"
    path.write_text(json.dumps({"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
                                "metrics_port": metrics_port, "parallel_workers": 0,
                                "debug": False}))
    return path
