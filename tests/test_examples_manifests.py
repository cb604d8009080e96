"""The examples stay consistent with the code: manifests parse, ports/paths/names agree with the
sidecar config, the catalogue, the generated rules and dashboards; configs load with Driftline's
own loaders; promtool/amtool accept the Prometheus and Alertmanager files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline import catalogue
from driftline.alertmanager.actions_config import load_config_dict
from driftline.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _kind(path: Path, kind: str) -> dict[str, Any]:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path}: expected one {kind}"
    return found[0]


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def _embedded_config(configmap: Path) -> dict[str, Any]:
    cm = _kind(configmap, "ConfigMap")
    raw = yaml.safe_load(cm["data"]["driftline.yaml"])
    config_from_dict(raw, check_files=False)  # Driftline's own loader accepts it
    return dict(raw)


def test_every_yaml_file_parses() -> None:
    files = sorted(p for p in EX.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 15
    for f in files:
        assert _docs(f), f"{f} is empty"


def test_every_example_has_a_readme() -> None:
    for d in ("fastapi-sklearn", "kserve", "kubernetes-sidecar", "kubernetes-sidecar-object-storage",
              "batch-ci", "compose", "quickstart"):
        assert (EX / d / "README.md").read_text().startswith("# ")


def test_kubernetes_native_sidecar_is_wired_consistently() -> None:
    d = EX / "kubernetes-sidecar"
    cfg = _embedded_config(d / "driftline-config.yaml")
    dep = _kind(d / "deployment.yaml", "Deployment")
    pod = dep["spec"]["template"]["spec"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    side = {c["name"]: c for c in pod["initContainers"]}["driftline"]
    assert side["restartPolicy"] == "Always"  # native sidecar
    assert side["args"][:2] == ["serve", "--config"]
    mounts = {m["mountPath"]: m for m in side["volumeMounts"]}
    assert mounts[side["args"][2]]["subPath"] == "driftline.yaml"
    ports = {p["name"]: p["containerPort"] for p in side["ports"]}
    assert ports["proxy"] == _port(cfg["proxy"]["listen"])
    assert ports["drift-metrics"] == _port(cfg["metrics"]["listen"])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert side[probe]["httpGet"] == {"path": path, "port": "drift-metrics"}
    model = pod["containers"][0]
    assert f":{model['ports'][0]['containerPort']}" in cfg["proxy"]["upstream"]
    assert "127.0.0.1" in cfg["proxy"]["upstream"]  # loopback inside the pod
    baseline_mount = {m["name"]: m["mountPath"] for m in side["volumeMounts"]}["baseline"]
    assert cfg["models"][0]["baseline"].startswith(baseline_mount + "/")

    svc = _kind(d / "service.yaml", "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "proxy"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    pm = _kind(d / "podmonitor.yaml", "PodMonitor")
    ep = pm["spec"]["podMetricsEndpoints"][0]
    assert ep["port"] == "drift-metrics" and ep["path"] == "/metrics"
    assert pm["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    kust = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert all((d / r).exists() for r in kust["resources"])


def test_kserve_logger_points_at_the_sidecar() -> None:
    d = EX / "kserve"
    cfg = _embedded_config(d / "driftline-config.yaml")
    assert "proxy" not in cfg  # ingest-only: the payload logger pushes
    isvc = _kind(d / "inferenceservice.yaml", "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    pred = isvc["spec"]["predictor"]
    logger = pred["logger"]
    assert logger["mode"] == "all"
    # writes go to the loopback ingest listener; the scraped metrics port is read-only
    assert cfg["ingest"]["listen"].startswith("127.0.0.1:")
    assert logger["url"] == f"http://127.0.0.1:{_port(cfg['ingest']['listen'])}/cloudevents"
    names = [c["name"] for c in pred["containers"]]
    assert names[0] == "kserve-container" and "driftline" in names
    # the model name Driftline monitors is the InferenceService name (ce-inferenceservicename)
    assert cfg["models"][0]["name"] == isvc["metadata"]["name"]
    pm = _kind(d / "podmonitor.yaml", "PodMonitor")
    ep = pm["spec"]["podMetricsEndpoints"][0]
    # the model container's declared port selects one target per pod; the address is rewritten
    # to the sidecar's metrics port on the pod IP (the sidecar may not declare a port)
    model_ports = {p.get("name"): p["containerPort"] for p in pred["containers"][0]["ports"]}
    assert ep["port"] in model_ports and ep["path"] == "/metrics"
    address = next(r for r in ep["relabelings"] if r.get("targetLabel") == "__address__")
    assert address["sourceLabels"] == ["__meta_kubernetes_pod_ip"]
    assert address["replacement"] == f"$1:{_port(cfg['metrics']['listen'])}"
    assert pm["spec"]["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": "car-loan"}
    kust = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert all((d / r).exists() for r in kust["resources"])


def test_kserve_prometheusrule_is_the_generated_one() -> None:
    assert (EX / "kserve" / "prometheusrule.yaml").read_text() == \
        (ROOT / "alertmanager" / "prometheusrule.yaml").read_text(), \
        "refresh it: cp alertmanager/prometheusrule.yaml examples/kserve/"


def test_kserve_dashboard_configmaps_are_the_generated_ones() -> None:
    out = subprocess.run([sys.executable, "-m", "driftline", "dashboards", "configmap", "--namespace",
                          "monitoring"], capture_output=True, text=True, check=True).stdout
    path = EX / "kserve" / "dashboards-configmap.yaml"
    assert path.read_text() == out, ("refresh it: driftline dashboards configmap --namespace monitoring "
                                     "> examples/kserve/dashboards-configmap.yaml")
    maps = _docs(path)
    shipped = {p.name: json.loads(p.read_text()) for p in (ROOT / "dashboards").glob("*.json")}
    seen = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        for key, text in cm["data"].items():
            seen[key] = json.loads(text)
    assert seen.keys() == shipped.keys()
    assert {d["uid"] for d in seen.values()} == {d["uid"] for d in shipped.values()}


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((EX / "compose" / "docker-compose.yaml").read_text()))


def test_compose_services_agree_with_their_configs() -> None:
    d = EX / "compose"
    services = _compose()["services"]
    assert {"model", "sidecar", "prometheus", "alertmanager", "receiver", "grafana"} <= set(services)
    side = yaml.safe_load((d / "driftline.yaml").read_text())
    config_from_dict(side, check_files=False)
    model_cmd = services["model"]["command"]
    assert side["proxy"]["upstream"] == f"http://model:{model_cmd[model_cmd.index('--port') + 1]}"
    published = {p.split(":")[1] for p in services["sidecar"]["ports"]}
    assert {str(_port(side[k]["listen"])) for k in ("proxy", "metrics")} == published
    # every bind-mounted host path exists
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            assert (d / host).exists(), f"{name}: {host} does not exist"

    prom = yaml.safe_load((d / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    metrics_port = _port(side["metrics"]["listen"])
    assert jobs["driftline"]["static_configs"][0]["targets"] == [f"sidecar:{metrics_port}"]
    # the shipped rules select sidecars by job name
    rules_text = (ROOT / "alertmanager" / "driftline-rules.yaml").read_text()
    assert re.search(r'job=~"\.\*driftline\.\*"', rules_text)

    actions = yaml.safe_load((d / "actions.yaml").read_text())
    actions["auth"]["bearer_token_file"] = str(d / "secrets" / "receiver-token")
    cfg = load_config_dict(actions, path=str(d / "actions.yaml"))
    assert cfg.dry_run and cfg.route_for("car-loan", "retrain") and cfg.route_for("car-loan", "rollback")
    am = yaml.safe_load((d / "alertmanager.yml").read_text())
    hook = {r["name"]: r for r in am["receivers"]}["driftline-actions"]["webhook_configs"][0]
    assert hook["url"] == f"http://receiver:{cfg.port}/alertmanager"
    token_mount = next(v for v in services["alertmanager"]["volumes"] if "receiver-token" in v)
    assert token_mount.split(":")[1] == hook["http_config"]["authorization"]["credentials_file"]

    prov = d / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((prov / "dashboards" / "driftline.yaml").read_text())["providers"][0]
    dash_mount = next(v for v in services["grafana"]["volumes"]
                      if "dashboards" in v and "provisioning" not in v)
    assert dash_mount.split(":")[1] == provider["options"]["path"]
    assert len(list((d / dash_mount.split(":")[0]).glob("driftline-*.json"))) == 3


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (apt-get install prometheus)")
def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    prom = yaml.safe_load((EX / "compose" / "prometheus.yml").read_text())
    prom["rule_files"] = [str(ROOT / "alertmanager" / "driftline-rules.yaml")]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(prom))
    done = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("amtool") is None,
                    reason="needs amtool (apt-get install prometheus-alertmanager)")
def test_compose_alertmanager_config_passes_amtool_and_routes_actions(tmp_path: Path) -> None:
    am = yaml.safe_load((EX / "compose" / "alertmanager.yml").read_text())
    token = tmp_path / "token"
    token.write_text("t")
    am["receivers"][1]["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(token)
    cfg = tmp_path / "am.yml"
    cfg.write_text(yaml.safe_dump(am))
    done = subprocess.run(["amtool", "check-config", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for action, receiver in (("retrain", "driftline-actions"), ("rollback", "driftline-actions"),
                             ("none", "ml-team")):
        route = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={cfg}",
                                "alertname=DriftlineManyFeaturesDrifting", f"action={action}"],
                               capture_output=True, text=True)
        assert route.stdout.strip() == receiver, (action, route.stdout, route.stderr)


def _known_series() -> set[str]:
    names: set[str] = set()
    for m in catalogue.ALL:
        names.add(m.name)
        if m.type == "histogram":
            names.update(m.name + s for s in ("_bucket", "_sum", "_count"))
    rules = yaml.safe_load((ROOT / "alertmanager" / "driftline-rules.yaml").read_text())
    for group in rules["groups"]:
        names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def test_metric_names_in_examples_exist() -> None:
    known = _known_series()
    pattern = re.compile(r"\b((?:[a-z_]+:)?driftline_[a-z0-9_]+(?::[a-z0-9_]+)?)")
    used: dict[str, str] = {}
    for f in EX.rglob("*"):
        generated = f.name in ("dashboards-configmap.yaml", "prometheusrule.yaml")
        if f.is_file() and f.suffix in (".md", ".yaml", ".yml", ".py", ".sh") and not generated:
            for name in pattern.findall(f.read_text()):
                used[name] = str(f.relative_to(ROOT))
    assert used, "the examples should show at least one metric"
    unknown = {n: f for n, f in used.items() if n not in known and n != "driftline_demo"}  # the package
    assert not unknown, f"metric names not in the catalogue or the recording rules: {unknown}"


def test_dockerfile_is_slim_non_root_health_checked_and_copies_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS base$", text, re.M)
    stages = re.split(r"^FROM ", text, flags=re.M)
    sidecar = next(s for s in stages if s.startswith("base AS sidecar"))
    user = re.search(r"^USER (\S+)$", sidecar, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*", sidecar, re.M) and "/healthz" in sidecar
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", sidecar, re.M) for p in line.split()}
    from driftline.config import _DEFAULT_METRICS

    assert _port(_DEFAULT_METRICS) in exposed
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = {m.split()[0] for m in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)}
    assert package_dirs <= copied, f"Dockerfile misses {package_dirs - copied}"
    for src in copied:
        for part in src.split():
            if not part.startswith("./"):
                assert (ROOT / part).exists(), part
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not (package_dirs | {"pyproject.toml", "README.md"}) & ignored
    # ChangeDetector's compiled core: its source, setup.py, and a compiler in the build stage
    assert {"setup.py", "native"} <= {p for m in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
                                      for p in m.split()[:-1]}
    assert not {"setup.py", "native"} & ignored
    build = next(s for s in stages if s.startswith("base AS build"))
    assert "gcc" in build and "gcc" not in sidecar


def test_example_scripts_compile() -> None:
    for f in EX.rglob("*.py"):
        compile(f.read_text(), str(f), "exec")
    for f in EX.rglob("*.sh"):
        done = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert os.access(f, os.X_OK), f"{f} should be executable"
