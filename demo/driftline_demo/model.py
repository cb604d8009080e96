"""The demo's model: a scikit-learn classifier and a small real model server for it.

Why a stdlib server and not MLServer: ``pip install mlserver mlserver-sklearn`` does work here,
but it pulls about 500 MB (gRPC, FastAPI, uvicorn, pandas, ...) into the environment, needs pandas
codecs to feed a mixed numeric/categorical model, and takes seconds to start its worker pool.
The demo must install from the project's own files and start in well under a minute, so it
serves the model with :class:`ModelServer` (``http.server.ThreadingHTTPServer``) speaking the same
wire formats Driftline parses in production: Open Inference Protocol v2
(``/v2/health/ready``, ``/v2/models/<m>[/versions/<v>]/infer``, model metadata and readiness) and
KServe v1 (``/v1/models/<m>:predict``).

Run it on its own::

    python -m driftline_demo.model --models DIR --port 8080   # DIR holds <name>.pkl files

:class:`LoanModel` wraps ``LogisticRegression`` behind a tiny encoder (median imputation,
standardisation, one-hot categories) so that it takes columns, not a pandas DataFrame.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from driftline_demo.data import CATEGORICAL, NUMERIC

__all__ = ["LoanModel", "ModelServer", "load_models", "save_model"]


@dataclass
class LoanModel:
    """A binary classifier over named columns: encoder + scikit-learn logistic regression."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    categories: dict[str, tuple[str, ...]]
    estimator: Any
    classes: tuple[str, ...] = ("0", "1")

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    @classmethod
    def fit(cls, columns: Mapping[str, np.ndarray], target: np.ndarray, *,
            numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = CATEGORICAL,
            c: float = 1.0) -> LoanModel:
        """Fit on columns; categories are learned from the training data (unknown ones → zeros)."""
        from sklearn.linear_model import LogisticRegression

        num = [np.asarray(columns[k], dtype=np.float64) for k in numeric]
        medians = tuple(float(np.nanmedian(v)) for v in num)
        filled = [np.where(np.isfinite(v), v, m) for v, m in zip(num, medians, strict=True)]
        means = tuple(float(v.mean()) for v in filled)
        stds = tuple(float(v.std()) or 1.0 for v in filled)
        cats = {k: tuple(sorted({str(x) for x in columns[k].tolist() if x is not None})) for k in categorical}
        model = cls(tuple(numeric), tuple(categorical), medians, means, stds, cats, None)
        est = LogisticRegression(C=c, max_iter=500)
        est.fit(model.transform(columns), np.asarray(target).astype(np.int64))
        model.estimator = est
        model.classes = tuple(str(int(x)) for x in est.classes_)
        return model

    def transform(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Columns (lists or arrays) → the float design matrix."""
        parts: list[np.ndarray] = []
        for k, med, mu, sd in zip(self.numeric, self.medians, self.means, self.stds, strict=True):
            v = np.array([np.nan if x is None else x for x in np.asarray(columns[k], dtype=object).tolist()],
                         dtype=np.float64)
            v = np.where(np.isfinite(v), v, med)
            parts.append(((v - mu) / sd)[:, None])
        for k in self.categorical:
            vals = np.asarray(columns[k], dtype=object)
            cats = np.array(self.categories[k], dtype=object)
            parts.append((vals[:, None] == cats[None, :]).astype(np.float64))
        return np.hstack(parts)

    def predict_proba(self, columns: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self.transform(columns)), dtype=np.float64)

    def predict(self, columns: Mapping[str, Any]) -> np.ndarray:
        proba = self.predict_proba(columns)
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]


def save_model(model: LoanModel, path: str | Path) -> Path:
    p = Path(path)
    p.write_bytes(pickle.dumps(model))
    return p


def load_models(directory: str | Path) -> dict[str, LoanModel]:
    """Every ``<name>.pkl`` in ``directory``, keyed by name (the files are the demo's own)."""
    out: dict[str, LoanModel] = {}
    for f in sorted(Path(directory).glob("*.pkl")):
        out[f.stem] = pickle.loads(f.read_bytes())  # the demo's own files
    return out


# ------------------------------------------------------------------------------------- server

_V2_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_V2_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready)?$")
_V1_PREDICT = re.compile(r"^/v1/models/([^/:]+):predict$")
_V1_MODEL = re.compile(r"^/v1/models/([^/:]+)$")


class _BadRequest(Exception):
    pass


def _v2_columns(model: LoanModel, inputs: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """OIP v2 inputs → columns: one [n, k] tensor in feature order, or one tensor per feature."""
    features = model.features
    if len(inputs) == 1 and inputs[0].get("name") not in features:
        t = inputs[0]
        shape = t.get("shape") or []
        data = np.asarray(t.get("data", []), dtype=object).reshape(-1)
        if len(shape) != 2 or shape[1] != len(features) or data.size != shape[0] * shape[1]:
            raise _BadRequest(f"expected one [n, {len(features)}] tensor in the order {list(features)}")
        rows = data.reshape(shape[0], shape[1])
        return {k: rows[:, j] for j, k in enumerate(features)}, int(shape[0])
    by_name = {t.get("name"): t for t in inputs}
    missing = [k for k in features if k not in by_name]
    if missing:
        raise _BadRequest(f"missing input tensors {missing}")
    cols = {k: np.asarray(by_name[k].get("data", []), dtype=object).reshape(-1) for k in features}
    sizes = {v.size for v in cols.values()}
    if len(sizes) != 1:
        raise _BadRequest("input tensors differ in length")
    return cols, sizes.pop()


def _v1_columns(model: LoanModel, instances: list[Any]) -> dict[str, Any]:
    features = model.features
    if instances and isinstance(instances[0], dict):
        return {k: [row.get(k) for row in instances] for k in features}
    if instances and any(len(row) != len(features) for row in instances):
        raise _BadRequest(f"each instance needs {len(features)} values in the order {list(features)}")
    return {k: [row[j] for row in instances] for j, k in enumerate(features)}


class _Handler(BaseHTTPRequestHandler):
    server_version = "driftline-demo-model/1"
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise headers and body leave in two segments and
    # delayed ACKs cap a keep-alive client at ~25 requests/s per connection.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    models: ClassVar[dict[str, LoanModel]] = {}
    version = "1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints its own progress
        pass

    def _reply(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get("x-request-id")
        if rid:
            self.send_header("x-request-id", rid)
        self.end_headers()
        self.wfile.write(body)

    def _model(self, name: str) -> LoanModel:
        model = self.models.get(name)
        if model is None:
            raise LookupError(name)
        return model

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/v2/health/live", "/v2/health/ready", "/healthz"):
            self._reply(200, {"live": True, "ready": True})
            return
        if path == "/v2":
            self._reply(200, {"name": "driftline-demo-model", "version": "1", "extensions": []})
            return
        m = _V2_MODEL.match(path) or _V1_MODEL.match(path)
        if m and m.group(1) in self.models:
            model = self.models[m.group(1)]
            if path.startswith("/v1/") or m.group(3):
                self._reply(200, {"name": m.group(1), "ready": True})
            else:
                self._reply(200, {
                    "name": m.group(1), "versions": [self.version], "platform": "scikit-learn",
                    "inputs": [{"name": k, "datatype": "FP64" if k in model.numeric else "BYTES",
                                "shape": [-1]} for k in model.features],
                    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                {"name": "predict_proba", "datatype": "FP64",
                                 "shape": [-1, len(model.classes)]}],
                })
            return
        self._reply(404, {"error": f"not found: {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            doc = json.loads(raw or b"null")
            if (m := _V2_INFER.match(path)) is not None:
                self._reply(200, self._infer_v2(m.group(1), doc))
            elif (m := _V1_PREDICT.match(path)) is not None:
                model = self._model(m.group(1))
                if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
                    raise _BadRequest('expected {"instances": [...]}')
                pred = model.predict(_v1_columns(model, doc["instances"]))
                self._reply(200, {"predictions": [int(p) for p in pred]})
            else:
                self._reply(404, {"error": f"not found: {path}"})
        except LookupError as exc:
            self._reply(404, {"error": f"model {exc.args[0]!r} is not loaded"})
        except (_BadRequest, ValueError, TypeError, KeyError) as exc:
            self._reply(400, {"error": str(exc)})

    def _infer_v2(self, name: str, doc: Any) -> dict[str, Any]:
        model = self._model(name)
        if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
            raise _BadRequest('expected {"inputs": [...]}')
        cols, n = _v2_columns(model, doc["inputs"])
        proba = model.predict_proba(cols)
        labels = np.asarray([int(c) for c in model.classes])[proba.argmax(axis=1)]
        wanted = [o.get("name") for o in doc.get("outputs") or []] or ["predict", "predict_proba"]
        outputs = []
        for o in wanted:
            if o == "predict":
                outputs.append({"name": "predict", "datatype": "INT64", "shape": [n],
                                "data": labels.tolist()})
            elif o == "predict_proba":
                outputs.append({"name": "predict_proba", "datatype": "FP64",
                                "shape": [n, len(model.classes)], "data": proba.reshape(-1).tolist()})
            else:
                raise _BadRequest(f"unknown output {o!r} (predict, predict_proba)")
        out: dict[str, Any] = {"model_name": name, "model_version": self.version, "outputs": outputs}
        if doc.get("id") is not None:
            out["id"] = doc["id"]
        return out


class ModelServer:
    """A threaded OIP v2 / KServe v1 server for :class:`LoanModel` objects on 127.0.0.1."""

    def __init__(self, models: Mapping[str, LoanModel], host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"models": dict(models)})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="demo-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m driftline_demo.model", description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True, help="directory of <name>.pkl LoanModel files")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    models = load_models(args.models)
    if not models:
        print(f"no *.pkl models in {args.models}", file=sys.stderr)
        return 2
    server = ModelServer(models, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown).start())
    print(f"serving {sorted(models)} on http://{args.host}:{server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()
    server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
