"""The demo's closing summary: drift per feature, accuracy, alerts, actions and URLs (rich tables)."""

from __future__ import annotations

import datetime as _dt
import urllib.parse
from typing import TYPE_CHECKING, Any

from rich.table import Table

from driftline_demo.data import CATEGORICAL, FEATURES

if TYPE_CHECKING:
    from rich.console import Console

    from driftline_demo.scenario import DemoStack, ScenarioResult


def _f(v: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if v is None else fmt.format(v)


def drift_table(result: ScenarioResult) -> Table:
    t = Table(title="Drift per feature: PSI of one window of each phase, and the drifted window's "
              "decision (docs/statistics.md#three-meanings-of-drifted)", title_justify="left")
    for col in ("feature", "type", "stable traffic", "drifted traffic", "drifted"):
        # Feature names and decisions stay whole at 80 columns; the long MMD cells fold.
        t.add_column(col, justify="right" if "traffic" in col else "left", overflow="fold",
                     no_wrap=col in ("feature", "type", "drifted"))
    for f in FEATURES:
        after = result.psi_drifted.get(f)
        flag = "[red]yes[/]" if f in result.drifted_features else "no"
        colour = "red" if after is not None and after >= 0.25 else "yellow" if after and after >= 0.1 else ""
        t.add_row(f, "categorical" if f in CATEGORICAL else "numeric", _f(result.psi_stable.get(f)),
                  f"[{colour}]{_f(after)}[/]" if colour else _f(after), flag)
    for f, emb in result.embedding_drifted.items():  # MMD p-value, not PSI
        before = result.embedding_stable.get(f, {})

        def cell(row: dict[str, float]) -> str:
            if "pvalue" not in row:
                return "—"
            return f"MMD p={row['pvalue']:.3f}, cos {row.get('cosine', float('nan')):.4f}"

        t.add_row(f, "embedding", cell(before), cell(emb),
                  "[red]yes[/]" if emb.get("drifted", 0.0) >= 1 else "no")
    return t


def accuracy_table(result: ScenarioResult) -> Table:
    t = Table(title="Accuracy: label-free estimate vs realised (labels via /feedback)", title_justify="left")
    for col in ("endpoint", "reference", "estimated", "realised"):
        t.add_column(col, justify="left" if col == "endpoint" else "right")
    for ep, row in result.accuracy.items():
        t.add_row(ep, _f(row.get("reference")), _f(row.get("estimated")), _f(row.get("realised")))
    return t


def regression_table(result: ScenarioResult) -> Table | None:
    r = result.regression
    if r is None:
        return None
    t = Table(title=f"Regression model (repaid share): error estimated without labels (DLE) vs "
              f"realised ({r.labels} labels joined by id), last window of {r.records} downturn "
              "records", title_justify="left")
    for col in ("metric", "reference", "estimated", "realised"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for m in ("mae", "rmse", "mape", "r2"):
        t.add_row(m, _f(r.reference.get(m), "{:.4f}"), _f(r.estimated.get(m), "{:.4f}"),
                  _f(r.realised.get(m), "{:.4f}"))
    if r.alert is not None:
        t.caption = (f"{r.alert['labels'].get('alertname')} fired on the estimated "
                     f"{r.alert['labels'].get('metric', 'error')} (SDK metrics scraped by "
                     "Prometheus, held by Alertmanager)")
        t.caption_justify = "left"
    return t


def alerts_table(alerts: list[dict[str, Any]]) -> Table:
    """One row per (alert, endpoint); per-feature alerts are counted, not repeated."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for a in alerts:
        lab = a.get("labels", {})
        key = (lab.get("alertname", ""), lab.get("severity", ""), lab.get("action", ""),
               lab.get("endpoint", ""))
        groups.setdefault(key, [])
        if lab.get("feature"):
            groups[key].append(lab["feature"])
    t = Table(title="Alerts that reached Alertmanager", title_justify="left")
    for col in ("alert", "severity", "action", "endpoint", "features"):
        t.add_column(col, overflow="fold", no_wrap=col in ("alert", "severity", "action"))
    for (name, sev, action, ep), feats in sorted(groups.items()):
        style = "bold red" if action in ("retrain", "rollback") else ""
        t.add_row(f"[{style}]{name}[/]" if style else name, sev, action, ep,
                  str(len(feats)) if feats else "")
    return t


def channels_table(deliveries: list[tuple[str, str]]) -> Table:
    """Which stakeholder channel got which alert, by severity (rules.yaml ``notify``):
    notifications per channel, firing and resolved."""
    import re

    rows: dict[tuple[str, str], dict[str, list[int]]] = {}
    channels = sorted({ch for ch, _ in deliveries})
    for ch, title in deliveries:
        m = re.match(r"^\[(\w+)(?::\d+)?\] (\w+): (\w+) for model", title)
        if m is None:
            continue
        status, severity, alert = m.groups()
        counts = rows.setdefault((alert, severity), {c: [0, 0] for c in channels})
        counts[ch][0 if status == "FIRING" else 1] += 1
    t = Table(title="Notifications: which channel each alert went to (firing/resolved)",
              title_justify="left")
    for col in ("alert", "severity", *channels):
        t.add_column(col, overflow="fold", no_wrap=col != "alert")
    for (alert, severity), counts in sorted(rows.items()):
        t.add_row(alert, severity, *(f"{f}/{r}" if f or r else "—" for f, r in
                                     (counts[c] for c in channels)))
    return t


def audit_table(entries: list[dict[str, Any]]) -> Table:
    t = Table(title="Receiver audit log", title_justify="left")
    for col in ("time", "decision", "alert", "action", "request", "status"):
        t.add_column(col, overflow="fold", no_wrap=col in ("time", "decision", "action", "status"))
    for e in entries:
        ts = _dt.datetime.fromtimestamp(float(e.get("ts") or 0), _dt.UTC).strftime("%H:%M:%S")
        path = urllib.parse.urlsplit(str(e.get("url") or "")).path
        req = f"{e.get('method', '')} {path}".strip()
        decision = e.get("decision", "")
        style = {"acted": "green", "failed": "red", "approved": "green",
                 "awaiting_approval": "yellow"}.get(decision, "")
        t.add_row(ts, f"[{style}]{decision}[/]" if style else decision, e.get("alertname", ""),
                  e.get("action", ""), req, str(e.get("status_code") or ""))
    return t


def render_summary(console: Console, st: DemoStack, result: ScenarioResult, elapsed: float) -> None:
    console.rule("Driftline demo: summary")
    console.print(drift_table(result))
    console.print(accuracy_table(result))
    reg = regression_table(result)
    if reg is not None:
        console.print(reg)
    if result.alerts:
        console.print(alerts_table(result.alerts))
    elif result.direct_alerts:
        console.print("(no Prometheus/Alertmanager: the alert conditions were evaluated by the demo)")
    console.print(audit_table(result.audit))
    if result.deliveries:
        console.print(channels_table(result.deliveries))
    ap = result.approval
    if ap:
        console.print(f"[bold]Approval[/]: {ap['action']} of {ap['model']} waited as action "
                      f"{ap['id']} ({ap['calls_while_pending']} call(s) on KServe while pending):")
        console.print(f"  $ driftline actions pending --url … --token-file …\n  {ap['pending']}")
        console.print(f"  $ driftline actions approve {ap['id']} --reason '{ap['reason']}' …\n"
                      f"  {ap['approved']}")
    acted = [e for e in result.audit if e.get("decision") == "acted"]
    retrain = [e for e in acted if e.get("action") == "retrain"]
    rollback = [e for e in acted if e.get("action") == "rollback"]
    ok = "[green]✓[/]"
    bad = "[red]✗[/]"
    console.print(f"{ok if retrain else bad} retraining: {len(retrain)} action(s) in the audit log, "
                  f"{result.retrain_calls} call(s) received by the Argo Workflows stub")
    console.print(f"{ok if rollback else bad} rollback: {len(rollback)} action(s) in the audit log, "
                  f"{result.rollback_calls} call(s) received by the KServe stub")
    for name, secs in sorted(result.action_latency.items() if not result.direct_alerts else []):
        console.print(f"{name} fired → call on the target: {secs:.1f} s "
                      "(Prometheus → Alertmanager → receiver)")
    console.print(f"traffic: {len(result.stable.ids)} stable + {len(result.canary.ids)} canary + "
                  f"{len(result.drifted.ids)} drifted requests; the whole demo took {elapsed:.0f} s")
    urls = Table(title="URLs (they stay up with --keep-running)", title_justify="left", show_header=False)
    urls.add_row("sidecar /metrics", f"{st.metrics_url}/metrics")
    urls.add_row("sidecar proxy → model", f"{st.proxy_url}/v2/models/car-loan/infer")
    if st.prometheus is not None:
        urls.add_row("Prometheus", f"{st.prometheus.url}/alerts")
    if st.alertmanager is not None:
        urls.add_row("Alertmanager", f"{st.alertmanager.url}/#/alerts")
    urls.add_row("receiver", f"{st.receiver_url}/metrics")
    urls.add_row("audit log", f"driftline actions log --db {st.audit_db}")
    console.print(urls)
