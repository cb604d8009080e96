"""Every example manifest, the generated PrometheusRule and the dashboard ConfigMaps validate
against the published Kubernetes, Prometheus Operator and KServe schemas (vendored under
tests/schemas/, see its README) plus the API-server rules the schemas cannot carry; the
kustomizations render with kubectl's kustomize and validate too; a broken manifest fails."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from manifest_schemas import CONFIGMAP_LIMIT, documents, violations
from packaging.requirements import Requirement

from driftline.alertmanager.rules_config import RulesConfig

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
NOT_KUBERNETES = {"compose", "batch-ci"}  # Docker Compose and GitHub Actions files
KUSTOMIZE_FILES = {"kustomization.yaml", "prometheus-release.yaml"}  # read by kustomize, not the API server
PATCHES = {"fetch-baseline.yaml"}  # a JSON patch; checked in its rendered form


def _manifests() -> list[Path]:
    files = [p for p in sorted(EX.rglob("*.yaml"))
             if p.relative_to(EX).parts[0] not in NOT_KUBERNETES and p.name not in KUSTOMIZE_FILES | PATCHES]
    return [*files, ROOT / "alertmanager" / "prometheusrule.yaml"]


def _one(path: Path, kind: str) -> dict[str, Any]:
    return next(d for d in documents(path) if d["kind"] == kind)


def test_every_example_manifest_validates_against_the_published_schemas() -> None:
    checked: dict[str, int] = {}
    for path in _manifests():
        docs = documents(path)
        assert docs, f"{path}: no Kubernetes object"
        for doc in docs:
            problems = violations(doc)
            assert not problems, f"{path.relative_to(ROOT)} {doc['kind']}: " + "; ".join(problems)
            checked[doc["kind"]] = checked.get(doc["kind"], 0) + 1
    assert {"Deployment", "Service", "ConfigMap", "PodMonitor", "PrometheusRule",
            "InferenceService"} <= checked.keys(), checked
    assert checked["ConfigMap"] >= 5  # two sidecar configs and the three dashboards


def _deployment() -> dict[str, Any]:
    return copy.deepcopy(_one(EX / "kubernetes-sidecar" / "deployment.yaml", "Deployment"))


def test_broken_manifests_fail_validation() -> None:
    dep = _deployment()
    dep["spec"]["template"]["spec"]["initContainers"][0]["ports"][1]["name"] = "driftline-metrics"  # 17
    assert any("port name is at most 15 characters" in v for v in violations(dep))

    dep = _deployment()
    dep["spec"]["template"]["spec"]["initContainers"][0]["resource"] = {}  # misspelt field
    assert any("'resource' was unexpected" in v for v in violations(dep))

    dep = _deployment()
    dep["spec"]["replicas"] = "two"
    assert any(v.startswith("spec.replicas:") for v in violations(dep))

    pm = copy.deepcopy(_one(EX / "kserve" / "podmonitor.yaml", "PodMonitor"))
    pm["spec"]["podMetricsEndpoints"][0] = {"targetPort": 9108, "path": "/metrics"}
    assert any("targetPort: deprecated" in v for v in violations(pm))
    pm["spec"]["podMetricEndpoints"] = pm["spec"].pop("podMetricsEndpoints")  # typo
    assert any("'podMetricEndpoints' was unexpected" in v for v in violations(pm))

    isvc = copy.deepcopy(_one(EX / "kserve" / "inferenceservice.yaml", "InferenceService"))
    isvc["spec"]["predictor"]["logger"]["mode"] = "everything"
    isvc["spec"]["predictor"]["containers"][1]["securityContext"]["runAsNonroot"] = True
    problems = violations(isvc)
    assert any("'everything' is not one of" in v for v in problems), problems
    assert any("'runAsNonroot' was unexpected" in v for v in problems), problems

    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "car-loan-baseline"},
          "data": {"baseline.json": "x" * (CONFIGMAP_LIMIT + 1)}}
    assert any("over the 1 MiB limit" in v for v in violations(cm))
    rule = copy.deepcopy(_one(ROOT / "alertmanager" / "prometheusrule.yaml", "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "15 minutes"
    assert any("does not match" in v for v in violations(rule))
    with pytest.raises(KeyError, match="no vendored schema"):
        violations({"apiVersion": "v1", "kind": "Secrett", "metadata": {"name": "x"}})


def test_sidecar_security_context_is_per_container() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    assert "securityContext" not in pod, "pod-level settings would bind the model container too"
    side = pod["initContainers"][0]["securityContext"]
    assert side["runAsNonRoot"] and side["runAsUser"] == 10001 and side["readOnlyRootFilesystem"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^USER {side['runAsUser']}:", dockerfile, re.M), "the image's user"
    isvc = _one(EX / "kserve" / "inferenceservice.yaml", "InferenceService")
    kside = {c["name"]: c for c in isvc["spec"]["predictor"]["containers"]}["driftline"]
    assert kside["securityContext"] == side
    assert kside["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert "ports" not in kside  # Knative: only the model container declares ports


def _memory_mib(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert m, quantity
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def test_sidecar_memory_request_covers_the_measured_rss() -> None:
    """64 MiB idle / 82 MiB after traffic (30 features, default profile; python -m benchmarks
    serve_rss), as the README says: the request must not be below it."""
    readme = (EX / "kubernetes-sidecar" / "README.md").read_text()
    memory = readme.split("**Memory.**", 1)[1].split("\n\n")[0]
    measured = max(int(x) for x in re.findall(r"(\d+) MiB", memory))
    dep_side = _deployment()["spec"]["template"]["spec"]["initContainers"][0]
    isvc = _one(EX / "kserve" / "inferenceservice.yaml", "InferenceService")
    kside = {c["name"]: c for c in isvc["spec"]["predictor"]["containers"]}["driftline"]
    for side in (dep_side, kside):
        res = side["resources"]
        assert _memory_mib(res["requests"]["memory"]) >= measured
        assert _memory_mib(res["limits"]["memory"]) >= 2 * measured


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize is built in)")
def test_kustomizations_render_validate_and_carry_one_release_label() -> None:
    release = RulesConfig().release
    dirs = sorted(p.parent for p in EX.rglob("kustomization.yaml"))
    assert {d.name for d in dirs} >= {"kubernetes-sidecar", "kserve", "kubernetes-sidecar-object-storage"}
    for d in dirs:
        rendered = _kustomize(d)
        for doc in rendered:
            problems = violations(doc)
            assert not problems, f"{d.name} {doc['kind']}: " + "; ".join(problems)
            if doc["kind"] in ("PodMonitor", "PrometheusRule"):
                assert doc["metadata"]["labels"]["release"] == release, (d.name, doc["kind"])
        if d.name == "kubernetes-sidecar-object-storage":
            pod = next(x for x in rendered if x["kind"] == "Deployment")["spec"]["template"]["spec"]
            names = [c["name"] for c in pod["initContainers"]]
            assert names.index("fetch-baseline") < names.index("driftline")  # runs before the sidecar
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes["baseline"] and "configMap" not in volumes["baseline"]
            fetch = pod["initContainers"][names.index("fetch-baseline")]
            side = pod["initContainers"][names.index("driftline")]
            target = {m["name"]: m["mountPath"] for m in fetch["volumeMounts"]}["baseline"]
            assert target == {m["name"]: m["mountPath"] for m in side["volumeMounts"]}["baseline"]
            assert any(a.startswith(target + "/baseline.json") for a in fetch["args"])


def test_the_release_label_has_one_source() -> None:
    release = RulesConfig().release
    assert _one(ROOT / "alertmanager" / "prometheusrule.yaml", "PrometheusRule")["metadata"]["labels"][
        "release"] == release
    for d in ("kubernetes-sidecar", "kserve"):
        transformer = yaml.safe_load((EX / d / "prometheus-release.yaml").read_text())
        assert transformer["labels"] == {"release": release}
        assert {f["kind"] for f in transformer["fieldSpecs"]} == {"PodMonitor", "PrometheusRule"}
        kust = yaml.safe_load((EX / d / "kustomization.yaml").read_text())
        assert "prometheus-release.yaml" in kust["transformers"]
        for pm in documents(EX / d / "podmonitor.yaml"):
            assert "release" not in (pm["metadata"].get("labels") or {}), "set it in prometheus-release.yaml"


def _documented_build(readme: Path) -> list[str]:
    """The README's ``driftline baseline build`` command, as arguments (continuation lines joined)."""
    m = re.search(r"^driftline baseline build (.*?[^\\])$", readme.read_text(), re.M | re.S)
    assert m, f"{readme}: no baseline build command"
    return shlex.split(m.group(1).replace("\\\n", " "))


def _reference(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 5_000  # more rows than the summary size: the file does not grow with rows beyond it
    cols: dict[str, Any] = {f"f{i}": rng.normal(size=n) for i in range(30)}
    proba = 1 / (1 + np.exp(-cols["f0"]))
    cols |= {"proba_default": proba, "prediction": (proba > 0.5).astype(np.int64),
             "defaulted": (rng.random(n) < proba).astype(np.int64)}
    pq.write_table(pa.table(cols), tmp / "reference.parquet")
    return tmp / "reference.parquet"


def _baseline_configmap(args: list[str], tmp: Path) -> dict[str, Any]:
    from driftline.cli import main

    out = tmp / "baseline.json"
    args = [str(_reference(tmp)) if a == "reference.parquet" else str(out) if a == "baseline.json" else a
            for a in args]
    assert main(["baseline", "build", *args, "--no-progress"]) == 0
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "car-loan-baseline"},
            "data": {"baseline.json": out.read_text()}}


def test_the_documented_baseline_fits_a_configmap(tmp_path: Path) -> None:
    commands = [_documented_build(EX / d / "README.md") for d in ("kubernetes-sidecar", "kserve")]
    assert commands[0] == commands[1]
    assert not violations(_baseline_configmap(commands[0], tmp_path))  # 30 features fit
    # the same without the size options (the object-storage example's command) does not
    full = _documented_build(EX / "kubernetes-sidecar-object-storage" / "README.md")
    assert "--summary-size" not in full
    assert any("1 MiB" in v for v in violations(_baseline_configmap(full, tmp_path)))


def _json_schema_errors(schema_file: str, doc: Any) -> list[str]:
    schema = json.loads((ROOT / "tests" / "schemas" / schema_file).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(doc)]


def _workflow(path: Path) -> dict[Any, Any]:
    doc = dict(yaml.safe_load(path.read_text()))
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean; GitHub reads it as "on"
        doc["on"] = doc.pop(True)
    return doc


def test_compose_file_and_ci_workflow_validate_against_their_published_schemas() -> None:
    compose = yaml.safe_load((EX / "compose" / "docker-compose.yaml").read_text())
    assert not _json_schema_errors("compose/compose-spec.json", compose)
    workflow = _workflow(EX / "batch-ci" / "github-actions-data-gate.yml")
    assert not _json_schema_errors("github-actions/github-workflows.json", workflow)
    # and they do catch mistakes
    broken = copy.deepcopy(compose)
    broken["services"]["sidecar"]["port"] = broken["services"]["sidecar"].pop("ports")
    assert any("'port' was unexpected" in e for e in _json_schema_errors("compose/compose-spec.json", broken))
    workflow["jobs"]["drift"]["runs_on"] = workflow["jobs"]["drift"].pop("runs-on")
    assert _json_schema_errors("github-actions/github-workflows.json", workflow)


def test_batch_ci_installs_driftline_from_its_repository() -> None:
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    wf = yaml.safe_load((EX / "batch-ci" / "github-actions-data-gate.yml").read_text())
    runs = [s["run"] for s in wf["jobs"]["drift"]["steps"] if "run" in s]
    install = next(r for r in runs if r.startswith("pip install"))
    req = Requirement(install.removeprefix("pip install").strip().strip('"'))
    assert req.name == name and req.url and req.url.startswith("git+https://"), install
    readme = (EX / "batch-ci" / "README.md").read_text()
    assert install.removeprefix("pip install ").strip() in readme
    gate = next(r for r in runs if "check_drift.sh" in r)
    assert gate.split()[0] == "ci/check_drift.sh" and "ci/" in readme  # where the README says to copy it


def test_fastapi_requirements_install_from_the_repository() -> None:
    folder = EX / "fastapi-sklearn"
    names = set()
    for line in (folder / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("."):
            project = tomllib.loads(((folder / line).resolve() / "pyproject.toml").read_text())["project"]
            names.add(project["name"])
        elif line:
            Requirement(line)  # an index package, well formed
            assert not line.startswith("driftline"), f"{line}: not on a package index"
    assert names == {"driftline", "driftline-demo"}
