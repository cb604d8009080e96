"""Rebuild ``kubernetes-v1.33.json`` from the JSON schemas the PyPI package kubernetes-validate ships.

The published ``_definitions.json`` (1.3 MB) covers every API type; the examples need a few
kinds, so this keeps those kinds and every definition they reach, and drops the descriptions
except the ones that say a field is deprecated (the tests refuse deprecated fields). Run it
by hand when moving to a newer Kubernetes version::

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0
    unzip -q /tmp/kv/kubernetes_validate-*.whl -d /tmp/kv/x
    python tests/schemas/vendor_kubernetes.py \
        /tmp/kv/x/kubernetes_validate/kubernetes-json-schema/v1.33.0-local-strict
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = (
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.PodSpec",  # what KServe's predictor embeds
)
PREFIX = "#/$defs/"


def _strip(node: Any, refs: set[str]) -> Any:
    """The node without descriptions (deprecation notes kept); its $refs are collected."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and "deprecated" not in str(value).lower():
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(PREFIX):
                refs.add(value[len(PREFIX):])
            out[key] = _strip(value, refs)
        return out
    if isinstance(node, list):
        return [_strip(v, refs) for v in node]
    return node


def trimmed(definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema document holding ``KINDS`` and the closure of their references."""
    todo, keep = list(KINDS), {}
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        refs: set[str] = set()
        keep[name] = _strip(definitions[name], refs)
        todo.extend(refs - keep.keys())
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": "Trimmed from kubernetes-validate 1.37.0, v1.33.0-local-strict/_definitions.json "
                        "by tests/schemas/vendor_kubernetes.py; see tests/schemas/README.md",
            "$defs": dict(sorted(keep.items()))}


def main(argv: list[str]) -> int:
    src = Path(argv[0]) / "_definitions.json"
    doc = trimmed(json.loads(src.read_text())["$defs"])
    out = Path(__file__).with_name("kubernetes-v1.33.json")
    out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"{out}: {len(doc['$defs'])} definitions, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
