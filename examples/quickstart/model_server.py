"""A stand-in model server for the quickstart: Open Inference Protocol v2 on 127.0.0.1:8080.

    python model_server.py [--port 8080]

``POST /v2/models/car-loan/infer`` with one tensor per feature answers ``predict`` (0/1) and
``predict_proba`` (``[P(0), P(1)]`` per row) from a fixed logistic score; ``GET
/v2/health/ready`` answers 200. Any KServe v1 / OIP v2 server (MLServer, KServe, Triton) takes
its place in a real setup. Standard library and numpy only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

FEATURES = ("age", "annual_income", "loan_amount", "credit_score", "debt_to_income")


def score(x: Mapping[str, np.ndarray]) -> np.ndarray:
    """P(default) of each application."""
    z = (-0.02 * (x["age"] - 42) - 1.2 * (np.log(x["annual_income"]) - 10.8)
         + 0.8 * (np.log(x["loan_amount"]) - 9.8) - 0.012 * (x["credit_score"] - 690)
         + 4.0 * (x["debt_to_income"] - 0.25) - 0.8)
    return 1.0 / (1.0 + np.exp(-z))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._send(200 if self.path.startswith("/v2/health") else 404, {})

    def do_POST(self) -> None:
        if self.path != "/v2/models/car-loan/infer":
            self._send(404, {"error": f"no route {self.path}"})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        cols = {t["name"]: np.asarray(t["data"], dtype=float) for t in body["inputs"]}
        missing = [f for f in FEATURES if f not in cols]
        if missing:
            self._send(400, {"error": f"missing inputs: {', '.join(missing)}"})
            return
        p = score(cols)
        n = len(p)
        self._send(200, {"model_name": "car-loan", "id": body.get("id"), "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": (p >= 0.5).astype(int).tolist()},
            {"name": "predict_proba", "shape": [n, 2], "datatype": "FP64",
             "data": np.column_stack([1 - p, p]).ravel().tolist()}]})

    def _send(self, status: int, doc: object) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), _Handler).serve_forever()


if __name__ == "__main__":
    main()
