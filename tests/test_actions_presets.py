"""Each action preset's request shape (method, path, headers, body) against the targets'
documented APIs (docs/actions.md), checked on a loopback HTTP server, plus the multi-step
rollbacks (Kubernetes rollout undo, MLflow alias switch) against small fake APIs."""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receiver_support import Seen, Target, target

from driftline.alertmanager.actions import HttpClient, Outcome, build_http, plan, run_action
from driftline.alertmanager.actions_config import TargetConfig, load_config_dict
from driftline.alertmanager.receiver import alert_context
from driftline.alertmanager.store import dedupe_key


def make_target(tmp: Path, spec: dict[str, Any]) -> TargetConfig:
    cfg = load_config_dict({"auth": {"allow_unauthenticated": True}, "targets": {"x": spec}},
                           base=tmp)
    return cfg.targets["x"]


def ctx(model: str = "fraud", version: str = "v3", action: str = "retrain", **labels: str) -> dict[str, Any]:
    alert = {"status": "firing", "fingerprint": "5241ef666c4f3c81", "startsAt": "2026-11-22T19:07:58Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
             "labels": {"alertname": "DriftlineFeatureDriftHigh", "model_name": model,
                        "model_version": version, "action": action, "namespace": "ml", **labels},
             "annotations": {"summary": "PSI high on amount"}}
    return alert_context({"receiver": "r", "groupKey": "g", "externalURL": "http://am"}, alert,
                         dedupe_key(alert["fingerprint"], alert["startsAt"]))


def run(t: TargetConfig, c: dict[str, Any] | None = None, memo: dict[str, Any] | None = None) -> Outcome:
    return run_action(t, c or ctx(), HttpClient(t), memo)


def test_http_preset_templates_method_headers_and_body(tmp_path: Path) -> None:
    with target(default=(202, {"accepted": True})) as srv:
        t = make_target(tmp_path, {
            "type": "http", "method": "put",
            "url": srv.url + "/models/{{ model_name }}/retrain?v={{ model_version }}",
            "headers": {"X-Key": "{{ dedupe_key }}", "X-Summary": "{{ annotations.summary | upper }}"},
            "body": {"model": "{{ model_name }}", "why": ["{{ labels.alertname }}", 3, True]},
        })
        out = run(t)
        assert out.ok, out.detail
        seen = srv.seen[0]
        assert (seen.method, seen.path) == ("PUT", "/models/fraud/retrain?v=v3")
        assert seen.headers["X-Key"] == ctx()["dedupe_key"]
        assert seen.headers["X-Summary"] == "PSI HIGH ON AMOUNT"
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.json() == {"model": "fraud", "why": ["DriftlineFeatureDriftHigh", 3, True]}


def test_http_string_body_and_custom_success_status(tmp_path: Path) -> None:
    with target(default=(299, None)) as srv:
        t = make_target(tmp_path, {"type": "http", "url": srv.url, "content_type": "text/plain",
                                   "body": "retrain {{ model_name | json }}", "success_statuses": [299]})
        assert run(t).ok
        assert srv.seen[0].body == b'retrain "fraud"'
        assert srv.seen[0].headers["Content-Type"] == "text/plain"


def test_argo_workflows_submit(tmp_path: Path) -> None:
    (tmp_path / "sa").write_text("argo-token\n")
    with target() as srv:
        t = make_target(tmp_path, {"type": "argo_workflows", "server": srv.url + "/", "namespace": "ml",
                                   "template": "retrain-{{ model_name }}",
                                   "parameters": {"model": "{{ model_name }}", "epochs": 3},
                                   "auth": {"bearer_token_file": "sa"}})
        assert run(t).ok
        seen = srv.seen[0]
        assert (seen.method, seen.path) == ("POST", "/api/v1/workflows/ml/submit")
        assert seen.headers["Authorization"] == "Bearer argo-token"
        body = seen.json()
        labels = f"driftline/trigger=alert,driftline/dedupe-key={ctx()['dedupe_key']}"
        assert body == {
            "resourceKind": "WorkflowTemplate", "resourceName": "retrain-fraud",
            "submitOptions": {"name": f"driftline-{ctx()['dedupe_key']}",
                              "parameters": ["model=fraud", "epochs=3"], "labels": labels}}


def test_kubeflow_pipelines_v2_run(tmp_path: Path) -> None:
    with target() as srv:
        t = make_target(tmp_path, {"type": "kubeflow_pipelines", "server": srv.url + "/pipeline",
                                   "pipeline_id": "p-1", "pipeline_version_id": "v-2",
                                   "experiment_id": "e-3", "parameters": {"model_name": "{{ model_name }}"}})
        assert run(t).ok
        seen = srv.seen[0]
        assert (seen.method, seen.path) == ("POST", "/pipeline/apis/v2beta1/runs")
        body = seen.json()
        assert body["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "v-2"}
        assert body["experiment_id"] == "e-3"
        assert body["runtime_config"] == {"parameters": {"model_name": "fraud"}}
        assert body["display_name"] == f"driftline-retrain-fraud-{ctx()['dedupe_key']}"


@pytest.mark.parametrize(("kind", "path", "version_keys"), [
    ("airflow2", "/api/v1/dags/retrain_model/dagRuns", {"dag_run_id", "conf"}),
    ("airflow3", "/api/v2/dags/retrain_model/dagRuns", {"dag_run_id", "conf", "logical_date"}),
])
def test_airflow_dag_run_and_409_is_success(tmp_path: Path, kind: str, path: str,
                                            version_keys: set[str]) -> None:
    (tmp_path / "pw").write_text("pw\n")
    with target(script=[(200, {"state": "queued"}), (409, {"title": "exists"})]) as srv:
        t = make_target(tmp_path, {"type": kind, "server": srv.url, "dag_id": "retrain_model",
                                   "auth": {"basic": {"username": "u", "password_file": "pw"}}})
        first, second = run(t), run(t)
        assert first.ok and second.ok and "already triggered" in second.detail
        a, b = srv.seen
        assert (a.method, a.path) == ("POST", path)
        assert a.headers["Authorization"] == "Basic " + base64.b64encode(b"u:pw").decode()
        body = a.json()
        assert set(body) == version_keys
        assert body["dag_run_id"] == f"driftline-{ctx()['dedupe_key']}" == b.json()["dag_run_id"]
        assert body["conf"]["model_name"] == "fraud" and body["conf"]["fingerprint"] == "5241ef666c4f3c81"
        if kind == "airflow3":
            assert body["logical_date"] is None


def test_airflow3_jwt_exchange(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")

    def api(seen: Seen) -> tuple[int, Any]:
        if seen.path == "/auth/token":
            return 201, {"access_token": "jwt-abc"}
        return 200, {}

    with target(responder=api) as srv:
        t = make_target(tmp_path, {"type": "airflow3", "server": srv.url, "dag_id": "d",
                                   "auth": {"airflow_jwt": {"username": "admin", "password_file": "pw"}}})
        assert run(t).ok
        token, trigger = srv.seen
        assert token.json() == {"username": "admin", "password": "secret"}
        assert "Authorization" not in token.headers
        assert trigger.headers["Authorization"] == "Bearer jwt-abc"


def test_github_workflow_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DL_TEST_GH", "ghp_x")
    with target(default=(204, None)) as srv:
        t = make_target(tmp_path, {"type": "github_workflow", "api_url": srv.url, "owner": "acme",
                                   "repo": "models", "workflow": "retrain.yml", "ref": "release",
                                   "inputs": {"model_name": "{{ model_name }}", "n": 5},
                                   "auth": {"bearer_token_env": "DL_TEST_GH"}})
        assert run(t).ok
        seen = srv.seen[0]
        assert (seen.method, seen.path) == (
            "POST", "/repos/acme/models/actions/workflows/retrain.yml/dispatches")
        assert seen.headers["Accept"] == "application/vnd.github+json"
        assert seen.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert seen.headers["Authorization"] == "Bearer ghp_x"
        assert seen.json() == {"ref": "release", "inputs": {"model_name": "fraud", "n": "5"}}


def test_kserve_canary_rollback_merge_patch(tmp_path: Path) -> None:
    with target() as srv:
        t = make_target(tmp_path, {"type": "kserve_canary_rollback", "server": srv.url,
                                   "namespace": "{{ labels.namespace }}"})
        assert run(t, ctx(action="rollback")).ok
        seen = srv.seen[0]
        assert (seen.method, seen.path) == (
            "PATCH", "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/fraud")
        assert seen.headers["Content-Type"] == "application/merge-patch+json"
        assert seen.json() == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}


def test_label_values_cannot_add_path_segments(tmp_path: Path) -> None:
    with target() as srv:
        t = make_target(tmp_path, {"type": "kserve_canary_rollback", "server": srv.url,
                                   "namespace": "ml"})
        assert run(t, ctx(model="../../../api/v1/secrets")).ok
        assert srv.seen[0].path.endswith("/inferenceservices/..%2F..%2F..%2Fapi%2Fv1%2Fsecrets")


def test_header_injection_is_refused(tmp_path: Path) -> None:
    with target() as srv:
        t = make_target(tmp_path, {"type": "http", "url": srv.url,
                                   "headers": {"X-Model": "{{ model_name }}"}})
        out = run(t, ctx(model="a\r\nX-Evil: 1"))
        assert not out.ok and not out.retryable and "line break" in out.detail
        assert srv.seen == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=40))
def test_structured_body_keeps_any_label_value_as_a_string(tmp_path: Path, value: str) -> None:
    t = make_target(tmp_path, {"type": "http", "url": "http://127.0.0.1:1/x",
                               "body": {"a": "{{ labels.model_name }}",
                                        "b": ["pre-{{ labels.model_name }}"]}})
    c = ctx()
    c["labels"]["model_name"] = value
    assert json.loads(build_http(t, c).body or b"") == {"a": value, "b": [f"pre-{value}"]}


# ------------------------------------------------------------------- Kubernetes rollout undo

UID = "dep-uid-1"


def _rs(name: str, revision: int, image: str, owner: str = UID, cause: str = "") -> dict[str, Any]:
    ann = {"deployment.kubernetes.io/revision": str(revision),
           "deployment.kubernetes.io/desired-replicas": "2"}
    if cause:
        ann["kubernetes.io/change-cause"] = cause
    return {"metadata": {"name": name, "annotations": ann,
                         "ownerReferences": [{"kind": "Deployment", "uid": owner}]},
            "spec": {"template": {"metadata": {"labels": {"app": "fraud", "pod-template-hash": name[-4:]}},
                                  "spec": {"containers": [{"name": "m", "image": image}]}}}}


class FakeKube:
    """A Deployment with three owned ReplicaSets (revisions 1-3) and one foreign one."""

    def __init__(self) -> None:
        self.deployment = {
            "metadata": {"name": "fraud", "uid": UID, "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "kubernetes.io/change-cause": "deploy v3"}},
            "spec": {"selector": {"matchLabels": {"app": "fraud"}},
                     "template": {"metadata": {"labels": {"app": "fraud"}},
                                  "spec": {"containers": [{"name": "m", "image": "m:v3"}]}}}}
        self.replicasets = [_rs("fraud-aaaa", 1, "m:v1", cause="deploy v1"),
                            _rs("fraud-bbbb", 2, "m:v2", cause="deploy v2"),
                            _rs("fraud-cccc", 3, "m:v3", cause="deploy v3"),
                            _rs("other-dddd", 9, "x:v9", owner="someone-else")]
        self.patches: list[Seen] = []

    def __call__(self, seen: Seen) -> tuple[int, Any]:
        base = "/apis/apps/v1/namespaces/ml"
        if seen.method == "GET" and seen.path == f"{base}/deployments/fraud":
            return 200, self.deployment
        if seen.method == "GET" and seen.path.startswith(f"{base}/replicasets?"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(seen.path).query)
            assert q["labelSelector"] == ["app=fraud"]
            return 200, {"items": self.replicasets}
        if seen.method == "PATCH" and seen.path == f"{base}/deployments/fraud":
            self.patches.append(seen)
            for op in seen.json():  # apply the JSON patch like the API server would
                key = op["path"].strip("/").split("/")
                obj = self.deployment
                for k in key[:-1]:
                    obj = obj[k]
                obj[key[-1]] = copy.deepcopy(op["value"])
            return 200, self.deployment
        return 404, {"kind": "Status", "code": 404}


def test_k8s_rollout_undo_patches_previous_revision(tmp_path: Path) -> None:
    kube = FakeKube()
    with target(responder=kube) as srv:
        t = make_target(tmp_path, {"type": "k8s_rollout_undo", "server": srv.url, "namespace": "ml",
                                   "deployment": "{{ model_name }}"})
        memo: dict[str, Any] = {}
        out = run(t, ctx(action="rollback"), memo)
        assert out.ok, out.detail
        assert "from revision 3 to revision 2" in out.detail
        patch = kube.patches[0]
        assert patch.headers["Content-Type"] == "application/json-patch+json"
        ops = patch.json()
        assert [(o["op"], o["path"]) for o in ops] == [("replace", "/spec/template"),
                                                       ("replace", "/metadata/annotations")]
        assert ops[0]["value"] == {"metadata": {"labels": {"app": "fraud"}},
                                   "spec": {"containers": [{"name": "m", "image": "m:v2"}]}}
        # Deployment keeps its own skip-listed annotations; the rest come from revision 2's RS.
        assert ops[1]["value"] == {"deployment.kubernetes.io/revision": "3",
                                   "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                   "kubernetes.io/change-cause": "deploy v2"}
        assert memo["rollback_to"] == "fraud-bbbb"
        # A retry after the patch landed (e.g. the response was lost) must not roll forward again.
        again = run(t, ctx(action="rollback"), memo)
        assert again.ok and "already runs the template of revision 2" in again.detail
        assert len(kube.patches) == 1


def test_k8s_rollout_undo_without_history_fails_permanently(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.replicasets = kube.replicasets[2:]
    with target(responder=kube) as srv:
        t = make_target(tmp_path, {"type": "k8s_rollout_undo", "server": srv.url, "namespace": "ml"})
        out = run(t, ctx(action="rollback"))
        assert not out.ok and not out.retryable and "no previous revision" in out.detail
        assert kube.patches == []


# ----------------------------------------------------------------------- MLflow alias switch


class FakeMlflow:
    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = dict(aliases)
        self.posts: list[Seen] = []

    def __call__(self, seen: Seen) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(seen.path)
        assert url.path == "/api/2.0/mlflow/registered-models/alias"
        if seen.method == "GET":
            q = dict(urllib.parse.parse_qsl(url.query))
            if q["alias"] not in self.aliases:
                return 400, {"error_code": "INVALID_PARAMETER_VALUE"}  # what MLflow 3 answers
            return 200, {"model_version": {"name": q["name"], "version": self.aliases[q["alias"]],
                                           "aliases": [q["alias"]]}}
        self.posts.append(seen)
        body = seen.json()
        self.aliases[body["alias"]] = body["version"]
        return 200, {}


def test_mlflow_alias_rollback(tmp_path: Path) -> None:
    ml = FakeMlflow({"champion": "4", "previous": "3"})
    with target(responder=ml) as srv:
        t = make_target(tmp_path, {"type": "mlflow_alias_rollback", "server": srv.url})
        out = run(t, ctx(action="rollback"))
        assert out.ok and "version 4 → 3" in out.detail
        assert [p.json() for p in ml.posts] == [{"name": "fraud", "alias": "champion", "version": "3"}]
        assert ml.posts[0].headers["Content-Type"] == "application/json"
        assert run(t, ctx(action="rollback")).ok  # idempotent: already points to 3
        assert len(ml.posts) == 1


def test_mlflow_without_previous_alias_fails(tmp_path: Path) -> None:
    ml = FakeMlflow({"champion": "4"})
    with target(responder=ml) as srv:
        t = make_target(tmp_path, {"type": "mlflow_alias_rollback", "server": srv.url})
        out = run(t, ctx(action="rollback"))
        assert not out.ok and not out.retryable and "no alias 'previous'" in out.detail


def test_plan_describes_multi_step_rollbacks(tmp_path: Path) -> None:
    k8s = make_target(tmp_path, {"type": "k8s_rollout_undo", "server": "https://kube", "namespace": "ml"})
    req = plan(k8s, ctx())
    assert (req.method, req.url) == ("PATCH", "https://kube/apis/apps/v1/namespaces/ml/deployments/fraud")
    ml = make_target(tmp_path, {"type": "mlflow_alias_rollback", "server": "http://mlflow:5000"})
    req = plan(ml, ctx())
    assert req.url == "http://mlflow:5000/api/2.0/mlflow/registered-models/alias"
    assert json.loads(req.body or b"")["alias"] == "champion"


def test_every_call_has_the_target_timeout(tmp_path: Path) -> None:
    import threading

    gate = threading.Event()
    srv = Target(gate=gate)
    try:
        t = make_target(tmp_path, {"type": "http", "url": srv.url, "timeout": "300ms"})
        out = run(t)
        assert not out.ok and out.retryable and "timed out" in out.detail
    finally:
        srv.close()
