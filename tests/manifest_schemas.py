"""Validate Kubernetes manifests offline against the published schemas vendored in tests/schemas/.

Two layers, as the API server applies them:

* the OpenAPI schema of the kind (Kubernetes' own types from kubernetes-v1.33.json, the
  Prometheus Operator and KServe CRD schemas), strict like ``kubectl apply --validate=strict``:
  an unknown or misspelt field is an error, and so is a field the schema marks deprecated;
* the API server's validation rules that OpenAPI cannot express, for the fields the examples
  use: port names are IANA service names (at most 15 characters), container and object names
  are DNS labels / subdomains, label values at most 63 characters, a ConfigMap at most 1 MiB.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CONFIGMAP_LIMIT = 1024 * 1024  # etcd's object size limit, which the API server enforces on ConfigMaps

_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@cache
def _kubernetes() -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / "kubernetes-v1.33.json").read_text()))


def _kubernetes_kinds() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) → definition name, from the x-kubernetes-group-version-kind markers."""
    out = {}
    for name, d in _kubernetes()["$defs"].items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            out[(api, gvk["kind"])] = name
    return out


def _strict(node: Any) -> Any:
    """A CRD schema as the API server applies it with strict field validation.

    Objects that list ``properties`` and say nothing else about extra keys refuse them (the
    server would prune them silently, which hides typos); a leading ``^(?i)`` (Go regex syntax)
    becomes ``(?i)^`` for Python's ``re``.
    """
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
            out["pattern"] = "(?i)^" + out["pattern"][5:]
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _crd(path: str) -> dict[str, Any]:
    return dict(_strict(yaml.safe_load((SCHEMAS / path).read_text())))


@cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    isvc = _crd("kserve/inferenceservice-v1beta1.yaml")
    pred = isvc["properties"]["spec"]["properties"]["predictor"]
    if pred.pop("x-driftline-inline-podspec", False):  # PredictorSpec inlines a PodSpec
        podspec = copy.deepcopy(_kubernetes()["$defs"]["io.k8s.api.core.v1.PodSpec"])
        pred["properties"] = {**podspec["properties"], **pred["properties"]}
        pred["additionalProperties"] = False
    return {
        ("monitoring.coreos.com/v1", "PodMonitor"): _crd("prometheus-operator/podmonitor-v1.yaml"),
        ("monitoring.coreos.com/v1", "PrometheusRule"): _crd("prometheus-operator/prometheusrule-v1.yaml"),
        ("serving.kserve.io/v1beta1", "InferenceService"): isvc,
    }


def schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of the document's kind; KeyError names a kind with no vendored schema."""
    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    if key in _crds():
        return {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$defs": _kubernetes()["$defs"], **_crds()[key]}
    name = _kubernetes_kinds().get(key)
    if name is None:
        raise KeyError(f"no vendored schema for {key[1]} {key[0]}: add it under tests/schemas/")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": _kubernetes()["$defs"], "$ref": f"#/$defs/{name}"}


def _resolve(schema: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _deprecated(schema: dict[str, Any], node: Any, value: Any, where: str) -> Iterator[str]:
    """Fields in ``value`` whose schema description says they are deprecated."""
    node = _resolve(schema, node)
    if not isinstance(node, dict):
        return
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key, sub in value.items():
            prop = _resolve(schema, props.get(key))
            if isinstance(prop, dict):
                note = str(prop.get("description", ""))
                if "deprecated" in note.lower():
                    yield f"{where}.{key}: deprecated ({note.strip().splitlines()[-1]})"
                yield from _deprecated(schema, prop, sub, f"{where}.{key}")
    elif isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            yield from _deprecated(schema, node["items"], item, f"{where}[{i}]")


def _walk(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    yield where, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]")


def _server_rules(doc: dict[str, Any]) -> Iterator[str]:
    """The API server's checks the OpenAPI schemas do not carry, for the fields examples use."""
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not (_DNS_SUBDOMAIN.match(name) and len(name) <= 253):
        yield f"metadata.name {name!r}: not a DNS subdomain (lowercase letters, digits, '-', '.')"
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            yield f"metadata.labels.{key}: {value!r} is not a label value (a string of at most 63 characters)"
    for where, value in _walk(doc):
        if re.search(r"(?:^|\.)(?:containers|initContainers)\[\d+\]$", where) and isinstance(value, dict):
            cname = str(value.get("name", ""))
            if not (_DNS_LABEL.match(cname) and len(cname) <= 63):
                yield f"{where}.name {cname!r}: not a DNS label"
            for i, port in enumerate(value.get("ports") or []):
                pname = port.get("name")
                if pname is not None and not _port_name_ok(str(pname)):
                    yield (f"{where}.ports[{i}].name {pname!r}: a port name is at most 15 characters "
                           "(lowercase letters, digits, '-'; at least one letter; no '--')")
    if doc.get("kind") == "ConfigMap":
        size = sum(len(str(v).encode()) for v in (doc.get("data") or {}).values()) \
            + sum(len(str(v)) * 3 // 4 for v in (doc.get("binaryData") or {}).values())
        if size > CONFIGMAP_LIMIT:
            yield f"ConfigMap {name}: {size} bytes of data, over the 1 MiB limit"


def _port_name_ok(name: str) -> bool:
    return (len(name) <= 15 and bool(_IANA_SVC_NAME.match(name)) and "--" not in name
            and any(c.isalpha() for c in name))


def violations(doc: dict[str, Any]) -> list[str]:
    """Everything the API server (with strict field validation) would refuse in ``doc``."""
    schema = schema_for(doc)
    validator = jsonschema.Draft202012Validator(schema)
    out = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
           for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    out.extend(_deprecated(schema, schema, doc, ""))
    out.extend(_server_rules(doc))
    return out


def documents(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects in a YAML file (documents with apiVersion and kind)."""
    return [d for d in yaml.safe_load_all(path.read_text())
            if isinstance(d, dict) and "apiVersion" in d and "kind" in d]
