"""Bounded fuzz of every collector edge (hypothesis, fixed seed, 1200 cases in all): whatever
arrives, parsers raise only PayloadError, the sidecar's handlers never raise, nothing is counted
as ``internal_error`` (a crash we did not foresee), and ``/metrics`` still renders.

The long run with the proxy, the metrics port, faults and RSS is ``python -m benchmarks fuzz``.
Also: Triton binary bodies that used to raise ValueError/AttributeError/TypeError are counted
payload errors, and ``-o`` into a missing directory or onto a directory is a clear CLI error."""

from __future__ import annotations

import contextlib
import gzip
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from test_collectors_sidecar import T0, make_sidecar, sample

from driftline.collectors.cloudevents import from_http
from driftline.collectors.feedback import parse_feedback
from driftline.collectors.ingest import split_records
from driftline.collectors.payloads import PayloadError
from driftline.collectors.sidecar import Sidecar
from driftline.exporters.prometheus import new_registry, render

FEATURES = ["f0", "f1", "f2", "f3", "color", "x"]
DTYPES = ["FP32", "FP64", "INT64", "BYTES", "BF16", "BOOL", "UINT8", "fp32", "NOPE", ""]

leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                 st.sampled_from(FEATURES))
json_value = st.recursive(leaf, lambda c: st.one_of(
    st.lists(c, max_size=5), st.dictionaries(st.one_of(st.sampled_from(FEATURES),
                                                       st.text(max_size=6)), c, max_size=5)),
    max_leaves=20)
shape = st.one_of(st.lists(st.integers(-2, 6), max_size=3), json_value)
tensor = st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(["x", "predict", "predict_proba", *FEATURES]), json_value),
    "shape": shape, "datatype": st.one_of(st.sampled_from(DTYPES), json_value),
    "data": json_value}, optional={"parameters": st.one_of(
        json_value, st.fixed_dictionaries({"binary_data_size": st.one_of(
            st.integers(-1, 64), json_value)}))})
v2_doc = st.fixed_dictionaries({"inputs": st.one_of(st.lists(tensor, max_size=3), json_value)},
                               optional={"id": json_value})
v2_resp = st.fixed_dictionaries({"outputs": st.one_of(st.lists(tensor, max_size=3), json_value)})
v1_doc = st.one_of(st.fixed_dictionaries({"instances": json_value}),
                   st.fixed_dictionaries({"inputs": json_value}))
v1_resp = st.fixed_dictionaries({"predictions": json_value})


def _dumps(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # 2**70 and friends: Python's encoder
        import json
        return json.dumps(doc).encode()


body = st.one_of(st.binary(max_size=64), st.builds(_dumps, json_value),
                 st.builds(_dumps, v1_doc), st.builds(_dumps, v2_doc))
paths = st.sampled_from(["/v2/models/car-loan/infer", "/v2/models/car-loan/versions/1/infer",
                         "/v1/models/car-loan:predict", "/v1/models/loan:predict",
                         "/v2/models/other/infer", "/v2/models/%00/infer", "/health"])
header_values = st.one_of(st.text(max_size=20), st.sampled_from(["canary", "car-loan", "-1", "0",
                                                                 "99999999999999999999"]))


def _clean(sc: Sidecar) -> None:
    """No unforeseen failure was counted, and the exporters still render."""
    assert not [k for k in sc.dropped if k[1] == "internal_error"], sc.dropped
    registry, _ = new_registry(sc)
    text, _ = render(registry, None)
    assert b'model_name=""' not in text
    named = any(m for m, _ in sc.dropped)
    assert b"driftline_records_dropped_total" in text or not named
    assert b"driftline_unattributed_drops_total" in text or all(m for m, _ in sc.dropped)


@seed(20261201)
@settings(max_examples=400)
@given(path=paths, req=body, resp=st.one_of(body, st.builds(_dumps, v2_resp),
                                             st.builds(_dumps, v1_resp)),
       status=st.sampled_from([200, 201, 400, 500]),
       triton=st.one_of(st.none(), st.integers(-5, 200), st.text(max_size=5)),
       gz=st.booleans(), hints=st.lists(st.tuples(
           st.sampled_from(["x-driftline-model", "x-driftline-endpoint", "x-request-id"]),
           header_values), max_size=3))
def test_proxied_exchanges_never_crash_the_sidecar(path: str, req: bytes, resp: bytes,
                                                   status: int, triton: Any, gz: bool,
                                                   hints: list[tuple[str, str]]) -> None:
    sc = make_sidecar(window=3)
    sc.trusted_headers = frozenset({"x-driftline-model", "x-driftline-endpoint"})
    headers = list(hints)
    if triton is not None:
        headers.append(("inference-header-content-length", str(triton)))
    if gz:
        req = gzip.compress(req) if len(req) % 2 else req  # valid and invalid gzip alike
        headers.append(("content-encoding", "gzip"))
    sc.handle_sample(sample(path, req, resp, status, tuple(headers)))
    sc.tick(T0 + 1000)
    sc.flush()
    _clean(sc)


ingest_record = st.fixed_dictionaries({}, optional={
    "model_name": st.one_of(st.sampled_from(["car-loan", "loan", "nope"]), json_value),
    "model_version": json_value, "endpoint": json_value, "id": json_value,
    "features": st.one_of(st.dictionaries(st.sampled_from(FEATURES), json_value, max_size=6),
                          json_value),
    "prediction": json_value, "probabilities": json_value, "label": json_value,
    "timestamp": json_value})


@seed(20261202)
@settings(max_examples=400)
@given(doc=st.one_of(ingest_record, st.lists(ingest_record, max_size=4),
                     st.fixed_dictionaries({"records": st.one_of(
                         st.lists(ingest_record, max_size=4), json_value)},
                         optional={"model_name": json_value, "model_version": json_value}),
                     json_value),
       raw=st.one_of(st.none(), st.binary(max_size=32)))
def test_ingest_and_feedback_bodies_never_crash_the_sidecar(doc: Any, raw: bytes | None) -> None:
    sc = make_sidecar(window=2)
    data = raw if raw is not None else _dumps(doc)
    with contextlib.suppress(PayloadError):
        sc.handle_ingest(split_records(data), now=T0)
    with contextlib.suppress(PayloadError):
        sc.handle_feedback(parse_feedback(data), now=T0)
    sc.tick(T0 + 1000)
    _clean(sc)


ce_headers = st.fixed_dictionaries({
    "ce-id": st.one_of(st.sampled_from(["a", "b"]), st.text(max_size=8)),
    "ce-type": st.sampled_from(["org.kubeflow.serving.inference.request",
                                "org.kubeflow.serving.inference.response",
                                "io.seldon.serving.inference.request", "x", ""]),
    "content-type": st.sampled_from(["application/json", "application/cloudevents+json",
                                     "application/cloudevents-batch+json", ""])},
    optional={"ce-inferenceservicename": header_values, "ce-endpoint": header_values,
              "ce-metadata": st.one_of(st.text(max_size=20), st.builds(_dumps, json_value))})


structured_event = st.builds(_dumps, st.fixed_dictionaries(
    {"id": json_value, "type": json_value}, optional={
        "data": st.one_of(v1_doc, v2_doc, json_value), "data_base64": json_value,
        "inferenceservicename": json_value, "endpoint": json_value, "metadata": json_value}))


@seed(20261203)
@settings(max_examples=400)
@given(events=st.lists(st.tuples(ce_headers, st.one_of(body, structured_event)),
                       min_size=1, max_size=4))
def test_cloudevents_never_crash_the_sidecar(events: list[tuple[dict[str, str], bytes]]) -> None:
    sc = make_sidecar(window=2, cloudevents_ttl=5.0, cloudevents_max_pending=2)
    for headers, data in events:
        with contextlib.suppress(PayloadError):
            sc.handle_cloudevents(from_http(headers, data), now=T0)
    sc.tick(T0 + 10)
    sc.flush()
    _clean(sc)


# --- regressions found by the fuzzer ------------------------------------------------------------

def _triton(head: Any, tail: bytes, length: int | None = None) -> tuple[bytes, str]:
    h = orjson.dumps(head)
    return h + tail, str(len(h) if length is None else length)


@pytest.mark.parametrize("head,tail", [
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                  "parameters": {"binary_data_size": 3}}]}, b"abc"),         # ValueError
    ({"inputs": [{"name": "x", "datatype": "BF16", "shape": [1, 4],
                  "parameters": {"binary_data_size": 3}}]}, b"abc"),         # ValueError
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                  "parameters": [1, 2]}]}, b""),                             # AttributeError
    ({"inputs": 7}, b""),                                                     # TypeError
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                  "parameters": {"binary_data_size": True}}]}, b"abcd"),
])
def test_hostile_triton_binary_bodies_are_counted_payload_errors(head: Any, tail: bytes) -> None:
    sc = make_sidecar()
    req, length = _triton(head, tail)
    assert sc.handle_sample(sample("/v2/models/car-loan/infer", req, b"",
                                   headers=(("inference-header-content-length", length),))) == 0
    assert sc.dropped in ({("car-loan", "parse_error"): 1}, {("car-loan", "schema_mismatch"): 1})


@pytest.mark.parametrize("command", ["baseline", "analyze"])
@pytest.mark.parametrize("where", ["missing-dir", "a-dir"])
def test_output_into_a_missing_dir_or_onto_a_dir_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, where: str) -> None:
    from driftline.cli import main

    data = tmp_path / "data.csv"
    data.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(50)))
    base = tmp_path / "base.json"
    assert main(["baseline", "build", str(data), "-o", str(base)]) == 0
    target = tmp_path / "nowhere" / "out.json" if where == "missing-dir" else tmp_path
    argv = (["baseline", "build", str(data), "-o", str(target)] if command == "baseline"
            else ["analyze", str(data), "--baseline", str(base), "-o", str(target)])
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftline: error:") and "Traceback" not in err
    assert ("does not exist" in err) if where == "missing-dir" else ("is a directory" in err)
    assert "fix:" in err


def test_nan_probability_rows_do_not_count_as_confident() -> None:
    """A sanity property the fuzzer leans on: NaN confidences never reach the histogram sum."""
    sc = make_sidecar(window=2)
    req = b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ' \
          b'[1, 2, 3, 4, 5, 6, 7, 8]}]}'
    resp = b'{"outputs": [{"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", ' \
           b'"data": [NaN, NaN, 0.2, 0.8]}]}'
    sc.handle_sample(sample("/v2/models/car-loan/infer", req, resp))
    s = sc.snapshots()[0]
    assert s.prediction_confidence is not None and math.isfinite(s.prediction_confidence.sum)
