"""Traffic the demo replays: OIP v2 requests through the sidecar's proxy, KServe-logger CloudEvents
for the canary, and late labels through ``/feedback``.

Requests carry one application each (as an online loan service would send them), each with its
own request id, so a label that arrives later can be joined to exactly one prediction. Several
client threads keep persistent connections, which is how a real client pool behaves.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from driftline_demo.data import EMBEDDING, FEATURES, NUMERIC

__all__ = ["Sent", "TrafficClient", "v2_request"]


@dataclass
class Sent:
    """What was sent: the ids (for feedback) and the model's answers."""

    ids: list[str] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    errors: int = 0


def v2_request(row: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """One application as an OIP v2 inference request: one named tensor per feature.

    ``content_type: pd`` lets MLServer hand a scikit-learn pipeline a DataFrame; the outputs
    are named so that both the class and the probabilities come back.
    """
    inputs: list[dict[str, Any]] = [
        {"name": k, "shape": [1], "datatype": "FP64" if k in NUMERIC else "BYTES",
         "data": [row[k]]} for k in FEATURES]
    vec = row.get(EMBEDDING)
    if isinstance(vec, list):  # an [n, d] tensor named as the baseline's embedding feature
        inputs.append({"name": EMBEDDING, "shape": [1, len(vec)], "datatype": "FP64",
                       "data": vec})
    return {"id": request_id, "parameters": {"content_type": "pd"}, "inputs": inputs,
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}


class _Conn(threading.local):
    def __init__(self) -> None:
        self.by_host: dict[str, http.client.HTTPConnection] = {}


class TrafficClient:
    """Keep-alive JSON client with one connection per (thread, host)."""

    def __init__(self, threads: int = 4, timeout: float = 10.0) -> None:
        self.threads = threads
        self.timeout = timeout
        self._local = _Conn()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        u = urllib.parse.urlsplit(url)
        path = u.path + (f"?{u.query}" if u.query else "")
        for attempt in range(2):
            conn = self._local.by_host.get(u.netloc)
            if conn is None:
                conn = http.client.HTTPConnection(u.netloc, timeout=self.timeout)
                self._local.by_host[u.netloc] = conn
            try:
                conn.request("POST", path, body=body, headers=dict(headers))
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                del self._local.by_host[u.netloc]
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post_json(self, url: str, doc: Any, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        status, raw = self.post(url, json.dumps(doc).encode(),
                                {"Content-Type": "application/json", **(headers or {})})
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    # ------------------------------------------------------------------------------ scenarios

    def infer_v2(self, base_url: str, model: str, rows: Sequence[Mapping[str, Any]], *,
                 id_prefix: str = "req", progress: Callable[[int], None] | None = None) -> Sent:
        """Send each row as one v2 request to ``base_url`` (the sidecar's proxy)."""
        url = f"{base_url}/v2/models/{model}/infer"
        ids = [f"{id_prefix}-{i}-{uuid.uuid4().hex[:8]}" for i in range(len(rows))]

        def one(i: int) -> int | None:
            status, doc = self.post_json(url, v2_request(rows[i], ids[i]), {"x-request-id": ids[i]})
            if progress:
                progress(1)
            if status != 200 or not isinstance(doc, dict):
                return None
            out = {o["name"]: o for o in doc.get("outputs", [])}
            return int(out["predict"]["data"][0]) if "predict" in out else None

        return self._run(one, ids)

    def infer_canary_cloudevents(self, model_url: str, model: str, sidecar_url: str, service: str,
                                 rows: Sequence[Mapping[str, Any]], *, endpoint: str = "canary",
                                 id_prefix: str = "canary",
                                 progress: Callable[[int], None] | None = None) -> Sent:
        """Call the canary model directly and log request and response to the sidecar's
        ``/cloudevents`` exactly as KServe's inference logger does (binary mode, shared ce-id)."""
        ids = [f"{id_prefix}-{i}-{uuid.uuid4().hex[:8]}" for i in range(len(rows))]
        infer = f"{model_url}/v2/models/{model}/infer"
        sink = f"{sidecar_url}/cloudevents"

        def ce_headers(ce_id: str, kind: str) -> dict[str, str]:
            return {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": ce_id,
                    "ce-type": f"org.kubeflow.serving.inference.{kind}",
                    "ce-source": "http://localhost:9081/", "ce-inferenceservicename": service,
                    "ce-namespace": "demo", "ce-component": "predictor", "ce-endpoint": endpoint}

        def one(i: int) -> int | None:
            req = json.dumps(v2_request(rows[i], ids[i])).encode()
            status, raw = self.post(infer, req, {"Content-Type": "application/json"})
            self.post(sink, req, ce_headers(ids[i], "request"))
            if status == 200:
                self.post(sink, raw, ce_headers(ids[i], "response"))
            if progress:
                progress(1)
            if status != 200:
                return None
            out = {o["name"]: o for o in json.loads(raw).get("outputs", [])}
            return int(out["predict"]["data"][0]) if "predict" in out else None

        return self._run(one, ids)

    def feedback(self, sidecar_url: str, ids: Sequence[str], labels: Sequence[Any], *,
                 batch: int = 200, progress: Callable[[int], None] | None = None) -> int:
        """Send late labels to ``/feedback`` in batches; returns how many were accepted (2xx)."""
        ok = 0
        for start in range(0, len(ids), batch):
            chunk = [{"id": i, "label": lab} for i, lab in
                     zip(ids[start:start + batch], labels[start:start + batch], strict=True)]
            status, _ = self.post_json(f"{sidecar_url}/feedback", chunk)
            if 200 <= status < 300:
                ok += len(chunk)
            if progress:
                progress(len(chunk))
        return ok

    def _run(self, one: Callable[[int], int | None], ids: list[str]) -> Sent:
        sent = Sent(ids=ids)
        with ThreadPoolExecutor(self.threads) as pool:
            results = list(pool.map(one, range(len(ids))))
        for r in results:
            if r is None:
                sent.errors += 1
                sent.predictions.append(-1)
            else:
                sent.predictions.append(r)
        return sent
