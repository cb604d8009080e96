"""Getting the dashboards into Grafana: push them over the HTTP API (grafana-client), or package
them as ConfigMaps for the Grafana Helm chart's dashboard sidecar.

Pushing is idempotent: the folder is looked up by title and created only when absent, and each
dashboard is saved by uid with ``overwrite: true``, so running it twice changes nothing but the
version counter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from driftline.alertmanager.rules import BlockDumper
from driftline.dashboards.generate import file_name, render
from driftline.errors import DriftlineError

__all__ = ["PushResult", "configmaps", "configmaps_yaml", "folder_uid", "push"]


@dataclass(frozen=True)
class PushResult:
    uid: str
    version: int | None
    url: str | None


def folder_uid(title: str) -> str:
    """A stable folder uid from its title (``Driftline`` → ``driftline``)."""
    return re.sub(r"[^a-z0-9-]+", "-", title.lower()).strip("-")[:40] or "driftline"


def _ensure_folder(api: Any, title: str) -> str:
    for f in api.folder.get_all_folders():
        if f.get("title") == title:
            return str(f["uid"])
    created = api.folder.create_folder(title, uid=folder_uid(title))
    return str(created["uid"])


def push(dashboards: Mapping[str, dict[str, Any]], url: str, *, token: str | None = None,
         user: str | None = None, password: str | None = None, folder: str = "Driftline",
         timeout: float = 10.0) -> list[PushResult]:
    """Create or update every dashboard in ``folder`` of the Grafana at ``url``."""
    try:
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaException
    except ModuleNotFoundError as exc:
        raise DriftlineError("`driftline dashboards push` needs the grafana-client package: "
                             "pip install 'driftline[dashboards]'") from exc

    credential: str | tuple[str, str] | None = token
    if user is not None:
        credential = (user, password or "")
    api = GrafanaApi.from_url(url, credential=credential, timeout=timeout)
    try:
        api.client.GET("/health")  # GET /api/health: reachable before anything is written
        fuid = _ensure_folder(api, folder)
        out = []
        for uid, dash in dashboards.items():
            body = {"dashboard": {**dash, "id": None}, "folderUid": fuid, "overwrite": True,
                    "message": "driftline dashboards push"}
            r = api.dashboard.update_dashboard(body)
            out.append(PushResult(uid, r.get("version"), r.get("url")))
        return out
    except GrafanaException as exc:
        raise DriftlineError(f"Grafana at {url}: {exc}") from exc
    except OSError as exc:
        raise DriftlineError(f"cannot reach Grafana at {url}: {exc}") from exc


def configmaps(dashboards: Mapping[str, dict[str, Any]], *, namespace: str | None = None,
               folder: str = "Driftline") -> list[dict[str, Any]]:
    """One ConfigMap per dashboard, labelled for the Grafana sidecar (``grafana_dashboard: "1"``)
    with the ``grafana_folder`` annotation (needs ``folderAnnotation: grafana_folder``)."""
    out = []
    for uid, dash in dashboards.items():
        meta: dict[str, Any] = {"name": uid}
        if namespace:
            meta["namespace"] = namespace
        meta["labels"] = {"grafana_dashboard": "1", "app.kubernetes.io/name": "driftline",
                          "app.kubernetes.io/component": "dashboards"}
        meta["annotations"] = {"grafana_folder": folder}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                    "data": {file_name(uid): render(dash)}})
    return out


def configmaps_yaml(dashboards: Mapping[str, dict[str, Any]], *, namespace: str | None = None,
                    folder: str = "Driftline") -> str:
    """The ConfigMaps as one multi-document YAML stream (``kubectl apply -f -``)."""
    docs = configmaps(dashboards, namespace=namespace, folder=folder)
    return yaml.dump_all(docs, Dumper=BlockDumper, sort_keys=False, width=1_000_000)


