"""The whole chain with real parts: model server → sidecar proxy → Prometheus rules → Alertmanager →
webhook receiver → loopback Argo / KServe targets. Drives the demo's own DemoStack and scenario,
so the demo and this test cannot diverge."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from driftline.profile.format import BaselineProfile
from driftline_demo import stack
from driftline_demo.scenario import (
    MODEL,
    NAMESPACE,
    DemoSettings,
    DemoStack,
    prepare,
    run_scenario,
    summary_json,
)


def _installed(name: str) -> bool:
    return bool(shutil.which(name)) or os.path.exists(f"/usr/bin/{name}")


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (_installed("prometheus") and _installed("prometheus-alertmanager")),
                       reason="needs prometheus and prometheus-alertmanager (apt-get install "
                              "prometheus prometheus-alertmanager)"),
]

SETTINGS = DemoSettings(seed=21, train_rows=5000, reference_rows=10000, stable_rows=700, drift_rows=1200,
                        canary_rows=400, window_records=300, timeout=90.0)


def test_drift_retrains_once_and_canary_rolls_back_once(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, SETTINGS)
    st = DemoStack(prepared, SETTINGS)
    with st:
        pids = [p.pid for p in st.procs]
        assert st.regression is not None
        pids.append(st.regression.pid)
        result = run_scenario(st)
        why = summary_json(result)
        argo_token = (tmp_path / "argo-token").read_text()
        assert st.argo is not None and st.kserve is not None
        # Alertmanager re-sends a group whenever it changes; replay the drift alert exactly as
        # Alertmanager delivered it (same fingerprint and startsAt): it must not act again.
        drift_alert = next(a for a in result.alerts
                           if a["labels"]["alertname"] == "DriftlineManyFeaturesDrifting")
        resend = {"receiver": "driftline-actions", "status": "firing", "version": "4",
                  "groupKey": "{}:{}", "truncatedAlerts": 0, "externalURL": st.alertmanager.url,
                  "groupLabels": {}, "commonLabels": drift_alert["labels"], "commonAnnotations": {},
                  "alerts": [{"status": "firing", "labels": drift_alert["labels"],
                              "annotations": drift_alert["annotations"],
                              "startsAt": drift_alert["startsAt"], "endsAt": drift_alert["endsAt"],
                              "generatorURL": drift_alert.get("generatorURL", ""),
                              "fingerprint": drift_alert["fingerprint"]}]}
        token = st.token_file.read_text().strip()
        stack.http_json(f"{st.receiver_url}/alertmanager", method="POST", body=resend,
                        headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 10
        while not any(e["decision"] in ("deduplicated", "cooling_down") for e in st.audit()):
            assert time.monotonic() < deadline, why
            time.sleep(0.2)
        time.sleep(1.0)
        retrain_calls = st.argo.calls()
        rollback_calls = st.kserve.calls()

    # Traffic went through the proxy untouched: every request answered by the model.
    assert result.stable.errors == result.drifted.errors == result.canary.errors == 0

    # Stable traffic does not drift; the downturn moves the features the generator shifts.
    assert max(result.psi_stable.values()) < 0.1, why
    # (expected at shift 0.8 from the generator's parameters: employment ≈ 0.18, credit score and
    # debt-to-income well above 0.25)
    for feature in ("credit_score", "debt_to_income"):
        assert result.psi_drifted[feature] > 0.25, why
    for feature in ("annual_income", "employment"):
        assert result.psi_drifted[feature] > 0.1, why
    assert {"credit_score", "debt_to_income"} <= set(result.drifted_features), why

    # The drift alert reached Alertmanager with action=retrain; the canary alert with rollback.
    held = {(a["labels"]["alertname"], a["labels"].get("endpoint")): a["labels"] for a in result.alerts
            if a["labels"].get("model_name") != "repayment"}  # the regression model: below
    drift = held[("DriftlineManyFeaturesDrifting", "default")]
    assert drift["action"] == "retrain" and drift["model_name"] == MODEL and drift["namespace"] == NAMESPACE
    assert held[("DriftlineCanaryWorseThanDefault", "canary")]["action"] == "rollback"

    # Exactly one retraining call (Argo submit) and one rollback call (KServe canary → 0),
    # although Alertmanager re-sent the groups and several alerts map to the same actions.
    assert len(retrain_calls) == 1, why
    call = retrain_calls[0]
    assert call.method == "POST" and call.path == "/api/v1/workflows/ml/submit"
    assert call.headers["authorization"] == f"Bearer {argo_token}"
    body = call.json()
    assert body["resourceKind"] == "WorkflowTemplate" and body["resourceName"] == f"retrain-{MODEL}"
    assert len(rollback_calls) == 1, why
    patch = rollback_calls[0]
    assert patch.method == "PATCH"
    assert patch.path == f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/{MODEL}"
    assert patch.headers["content-type"].startswith("application/merge-patch+json")
    assert patch.json() == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}

    # The audit log tells the same story: which alert acted, which were held back.
    acted = [(e["alertname"], e["action"], e["status_code"])
             for e in result.audit if e["decision"] == "acted"]
    assert acted == [("DriftlineManyFeaturesDrifting", "retrain", 200),
                     ("DriftlineCanaryWorseThanDefault", "rollback", 200)], why
    # Each action names the model version and the baseline it concerned: the generated rules
    # join driftline_build_info, so the id is the one `driftline baseline show` prints.
    baseline = BaselineProfile.load(prepared.baseline).id
    assert all(held[k]["baseline_id"] == baseline for k in held if k[0] in ("DriftlineManyFeaturesDrifting",
                                                                          "DriftlineCanaryWorseThanDefault"))
    for e in result.audit:
        if e["decision"] in ("acted", "awaiting_approval", "approved"):
            assert (e["baseline_id"], e["model_version"]) == (baseline, "1"), e

    # The rollback waited for an approver: pending (nothing sent to KServe), approved with the
    # CLI over the receiver's API, then acted once; who and why are in the audit log.
    ap = result.approval
    assert ap["action"] == "rollback" and ap["calls_while_pending"] == 0, why
    assert "rollback car-loan" in ap["pending"] and "approved" in ap["approved"], why
    order = [e["decision"] for e in result.audit if e["action"] == "rollback"]
    assert order.index("awaiting_approval") < order.index("approved") < order.index("acted"), why
    approved = next(e for e in result.audit if e["decision"] == "approved")
    assert approved["actor"] == "ml-oncall (approver) via api" and approved["detail"] == ap["reason"]

    # Stakeholders heard by severity: criticals paged PagerDuty and went to Slack; the approval
    # request reached them too; nothing but criticals paged.
    paged = {t for ch, t in result.deliveries if ch == "PagerDuty"}
    slack = {t for ch, t in result.deliveries if ch.startswith("Slack")}
    assert any("critical: DriftlineManyFeaturesDrifting" in t for t in paged), result.deliveries
    assert any("DriftlineActionAwaitingApproval" in t for t in slack), result.deliveries
    assert all("] critical: " in t for t in paged), result.deliveries

    # Realised accuracy from late labels shows what the canary did; the estimate cannot.
    assert result.accuracy["canary"]["realised"] < result.accuracy["default"]["realised"] - 0.2, why

    # The regression model's SDK metrics reached Prometheus: the estimated MAE rose more than
    # the rules' 20 % above the reference, the shipped alert fired and Alertmanager holds it;
    # the summary's estimate is close to the error the late labels show.
    reg = result.regression
    assert reg.alert is not None, why
    assert reg.alert["labels"]["metric"] == "mae" and reg.alert["labels"]["model_name"] == "repayment"
    assert reg.estimated["mae"] > 1.2 * reg.reference["mae"], why
    assert reg.estimated["mae"] == pytest.approx(reg.realised["mae"], rel=0.15), why
    assert any(a["labels"]["alertname"] == "DriftlineEstimatedPerformanceDrop"
               and a["labels"]["model_name"] == "repayment" for a in result.alerts), why

    # Nothing is left running.
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert st.procs == [] and st.argo is None and st.regression is None
