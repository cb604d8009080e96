"""`driftline demo`: the whole chain on one machine, from a model's traffic to a rollback.

What it runs, all on 127.0.0.1 and all stopped when it ends or is interrupted:

1. trains a scikit-learn classifier on a generated car-loan dataset (:mod:`.demo_data`), plus a
   broken canary version (trained with the target's encoding flipped), and builds the baseline
   with ``driftline baseline build``;
2. serves both from a real OIP v2 model server (:mod:`.demo_model`, or MLServer with
   ``--mlserver``);
3. starts the sidecar (``driftline serve``) as a reverse proxy in front of it, Prometheus with the
   generated rules (``driftline rules generate``, ``for:`` scaled down), Alertmanager with the
   generated routes on the ``action`` label, the webhook receiver (``driftline actions serve``)
   and two loopback stubs standing in for Argo Workflows (retraining) and KServe (rollback);
4. replays traffic: stable applications, then a downturn that shifts the population (→ drift
   alert → retraining), then canary traffic logged the way KServe's payload logger does
   (CloudEvents, ``ce-endpoint: canary``; → canary alert → rollback); labels arrive late through
   ``/feedback``;
5. prints drift per feature, estimated vs realised accuracy, the alerts and the audit log.

The end-to-end test (``tests/test_e2e_chain.py``) drives the same :class:`DemoStack` and
:func:`run_scenario`, so the demo and the test cannot diverge.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import yaml

from driftline_demo import stack
from driftline_demo.cli import DEFAULT_SEED
from driftline_demo.data import CATEGORICAL, TARGET, generate, records, write_parquet
from driftline_demo.targets import TargetStub
from driftline_demo.traffic import Sent, TrafficClient

MODEL = "car-loan"
CANARY_MODEL = "car-loan-canary"
NAMESPACE = "demo"

__all__ = ["DemoSettings", "DemoStack", "Prepared", "ScenarioResult", "prepare", "run",
           "run_scenario"]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and timings. The defaults finish in about a minute on 2 cores."""

    seed: int = DEFAULT_SEED
    train_rows: int = 8000
    reference_rows: int = 20000
    stable_rows: int = 1200
    canary_rows: int = 600
    drift_rows: int = 2000
    shift: float = 0.8
    window_records: int = 300
    window_max_age: float = 30.0
    #: the shipped ``for:`` durations are divided by this (15m → 5s), keeping their order
    time_scale: int = 180
    drift_range: str = "1m"
    scrape_interval: str = "2s"
    threads: int = 4
    trickle_per_second: float = 40.0
    timeout: float = 120.0
    use_prometheus: bool = True
    #: path of an ``mlserver`` executable: serve the models with MLServer instead of the built-in server
    mlserver: str | None = None


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` made: the baseline, the models and their accuracy on fresh data."""

    workdir: Path
    baseline: Path
    models_dir: Path
    accuracy: float
    canary_accuracy: float
    server: str = "built-in OIP v2 server"


def _driftline(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a ``driftline`` subcommand with this interpreter; raise with its output on failure."""
    argv = [sys.executable, "-m", "driftline", *args]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)
    if done.returncode != 0:
        raise stack.StackError(f"`driftline {' '.join(args)}` failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


# ------------------------------------------------------------------------------------ prepare


def prepare(workdir: Path, settings: DemoSettings = DemoSettings()) -> Prepared:
    """Train the model and the broken canary, write the reference set, build the baseline."""
    workdir.mkdir(parents=True, exist_ok=True)
    train = generate(settings.train_rows, seed=settings.seed)
    ref = generate(settings.reference_rows, seed=settings.seed + 1)
    test = generate(4000, seed=settings.seed + 2)
    cols = dict(ref)
    if settings.mlserver:
        from driftline_demo.mlserver import train_in_mlserver

        preds = train_in_mlserver(settings.mlserver, workdir / "mlserver", train, ref, test)
        cols["prediction"], cols["proba_default"] = preds[f"{MODEL}/reference"]
        acc = float((preds[f"{MODEL}/test"][0] == test[TARGET]).mean())
        cacc = float((preds[f"{CANARY_MODEL}/test"][0] == test[TARGET]).mean())
        models_dir, server = workdir / "mlserver" / "models", "MLServer"
    else:
        from driftline_demo.model import LoanModel, save_model

        models_dir, server = workdir / "models", "built-in OIP v2 server"
        models_dir.mkdir(exist_ok=True)
        model = LoanModel.fit(train, train[TARGET])
        canary = LoanModel.fit(train, 1 - train[TARGET])  # the bug: the target's encoding flipped
        save_model(model, models_dir / f"{MODEL}.pkl")
        save_model(canary, models_dir / f"{CANARY_MODEL}.pkl")
        proba = model.predict_proba(ref)
        cols["prediction"] = model.predict(ref).astype(np.int64)
        cols["proba_default"] = proba[:, list(model.classes).index("1")]
        acc = float((model.predict(test).astype(int) == test[TARGET]).mean())
        cacc = float((canary.predict(test).astype(int) == test[TARGET]).mean())
    ref_path = write_parquet(workdir / "reference.parquet", cols)
    baseline = workdir / "baseline.json"
    _driftline("baseline", "build", str(ref_path), "-o", str(baseline), "--prediction", "prediction",
               "--proba", "proba_default", "--target", TARGET, "--categorical", ",".join(CATEGORICAL),
               "--model-name", MODEL, "--model-version", "1")
    return Prepared(workdir, baseline, models_dir, acc, cacc, server)


# -------------------------------------------------------------------------------------- configs


def sidecar_config(baseline: Path, *, upstream: str, proxy_port: int, metrics_port: int,
                   settings: DemoSettings) -> dict[str, Any]:
    return {
        "models": [{"name": MODEL, "version": "1", "baseline": str(baseline)}],
        "proxy": {"listen": f"127.0.0.1:{proxy_port}", "upstream": upstream},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        # full windows of the quick demo (150 records) still decide; the default is 200
        "windows": {"records": settings.window_records, "max_age": settings.window_max_age,
                    "min_records": min(settings.window_records, 200)},
        "tick_interval": 0.5,
    }


def rules_config(settings: DemoSettings, *, receiver_url: str, token_file: Path,
                 channels: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shipped rules on the demo's time scale: every ``for:`` divided by ``time_scale`` (so a
    realised-accuracy drop, 30m, still waits twice as long as many drifting features, 15m), and
    the fleet-wide PSI computed over the last ``drift_range`` instead of an hour."""
    from driftline.alertmanager.rules_config import DEFAULT_ALERTS, duration_seconds

    alerts: dict[str, dict[str, str]] = {}
    for name, shipped in DEFAULT_ALERTS.items():
        seconds = duration_seconds(shipped.for_ or "1m") / settings.time_scale
        alerts[name] = {"for": f"{max(1, round(seconds))}s"}
    out: dict[str, Any] = {
        "alerts": alerts,
        "drift_range": settings.drift_range, "rate_range": "1m", "adwin_range": "1m",
        "thresholds": {"min_samples": 50},
        "actions_url": f"{receiver_url}/alertmanager", "actions_token_file": str(token_file)}
    if channels is not None:
        out["notify"] = channels
    return out


def notify_config(channel_url: str, secrets: Path, templates_dir: Path) -> dict[str, Any]:
    """The demo's stakeholders: PagerDuty pages for critical alerts, Slack for critical and
    warning ones, both loopback endpoints of one stub (``/pagerduty``, ``/slack``)."""
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "pagerduty-routing-key").write_text("demo-routing-key\n")
    (secrets / "slack-webhook-url").write_text(f"{channel_url}/slack\n")
    return {
        "templates_dir": str(templates_dir),
        "channels": {
            "oncall-pagerduty": {"type": "pagerduty", "url": f"{channel_url}/pagerduty",
                                 "routing_key_file": str(secrets / "pagerduty-routing-key")},
            "ml-slack": {"type": "slack", "channel": "#ml-alerts",
                         "api_url_file": str(secrets / "slack-webhook-url")},
        },
        "severities": {"critical": ["oncall-pagerduty", "ml-slack"], "warning": ["ml-slack"]},
    }


def actions_config(*, port: int, database: Path, token_file: Path, argo_url: str, kserve_url: str,
                   argo_token_file: Path, approver_token_file: Path | None = None,
                   alertmanager_url: str | None = None) -> dict[str, Any]:
    """The receiver: retraining → Argo Workflows submit, rollback → KServe canary traffic to 0,
    the rollback only once an approver says yes (``driftline actions approve``)."""
    approval: dict[str, Any] = {"expires": "1h", "public_url": f"http://127.0.0.1:{port}"}
    if alertmanager_url:
        approval["alertmanager_url"] = alertmanager_url
    extra: dict[str, Any] = {}
    if approver_token_file is not None:
        extra = {"access": [{"name": "ml-oncall", "role": "approver",
                             "token_file": str(approver_token_file)}],
                 "approval": approval}
    return {**extra,
        "listen": f"127.0.0.1:{port}",
        "database": str(database),
        "auth": {"bearer_token_file": str(token_file)},
        "cooldown": "10m",
        "retry": {"max_attempts": 3, "initial_backoff": "200ms", "max_backoff": "2s"},
        "targets": {
            "argo-retrain": {"type": "argo_workflows", "server": argo_url, "namespace": "ml",
                             "template": "retrain-{{ labels.model_name }}",
                             "auth": {"bearer_token_file": str(argo_token_file)}},
            "kserve-rollback": {"type": "kserve_canary_rollback", "server": kserve_url,
                                "namespace": NAMESPACE, "name": "{{ labels.model_name }}"},
        },
        # the classifier's actions only: the regression model's drift alerts are notified, not
        # acted on (it has no retraining pipeline in the demo)
        "routes": [
            {"model_name": MODEL, "action": "retrain", "target": "argo-retrain"},
            {"model_name": MODEL, "action": "rollback", "target": "kserve-rollback",
             "require_approval": approver_token_file is not None},
        ],
    }


def alertmanager_config(generated: Path) -> dict[str, Any]:
    """The shipped Alertmanager config (routes on ``action``, inhibitions) from
    ``driftline rules generate``, with the demo's timings: group_wait 1s, group_interval 2s."""
    cfg = yaml.safe_load(generated.read_text())

    def fast(route: dict[str, Any]) -> None:
        route["group_wait"], route["group_interval"] = "1s", "2s"
        for child in route.get("routes", []):
            fast(child)

    fast(cfg["route"])
    return dict(cfg)


# ---------------------------------------------------------------------------------------- stack


@dataclass
class DemoStack:
    """Every process and stub of the demo; ``stop()`` (or leaving the ``with``) ends them all."""

    prepared: Prepared
    settings: DemoSettings = field(default_factory=DemoSettings)
    log: Callable[[str], None] = lambda _msg: None
    procs: list[stack.ManagedProcess] = field(default_factory=list)
    argo: TargetStub | None = None
    kserve: TargetStub | None = None
    #: The stakeholders' loopback endpoints (PagerDuty at /pagerduty, Slack at /slack).
    channels: TargetStub | None = None
    approver_token: Path = Path()
    model_url: str = ""
    proxy_url: str = ""
    metrics_url: str = ""
    receiver_url: str = ""
    token_file: Path = Path()
    audit_db: Path = Path()
    prometheus: stack.PrometheusProcess | None = None
    alertmanager: stack.AlertmanagerProcess | None = None
    #: the regression model's SDK monitor, its metrics endpoint scraped by Prometheus
    regression: Any = None

    def __enter__(self) -> DemoStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, name: str, argv: list[str], ready_url: str) -> stack.ManagedProcess:
        proc = stack.ManagedProcess(name, argv, ready_url=ready_url,
                                    workdir=self.prepared.workdir / "logs", keep_workdir=True)
        self.procs.append(proc)
        proc.wait_ready(60)
        return proc

    def start(self) -> DemoStack:
        wd, s = self.prepared.workdir, self.settings
        (wd / "logs").mkdir(exist_ok=True)
        self.token_file = wd / "receiver-token"
        self.token_file.write_text("demo-" + os.urandom(12).hex())
        argo_token = wd / "argo-token"
        argo_token.write_text("argo-" + os.urandom(8).hex())
        self.approver_token = wd / "approver-token"
        self.approver_token.write_text("approver-" + os.urandom(12).hex())
        self.argo = TargetStub("argo-workflows").start()
        self.kserve = TargetStub("kserve").start()
        self.channels = TargetStub("channels").start()
        if s.use_prometheus:
            from driftline_demo.regression import RegressionProcess

            # the regression model is monitored by the SDK in its own process (as in a model
            # server); Prometheus scrapes its metrics endpoint beside the sidecar's. It trains
            # and builds its baseline while the other processes start.
            self.regression = RegressionProcess(s.seed, stack.free_port(),
                                                log=wd / "logs" / "regression.log")
        self.log(f"loopback targets: Argo Workflows {self.argo.url}, KServe {self.kserve.url}; "
                 f"PagerDuty and Slack {self.channels.url}")

        port = stack.free_port()
        self.model_url = f"http://127.0.0.1:{port}"
        if s.mlserver:
            from driftline_demo.mlserver import mlserver_settings

            mlserver_settings(self.prepared.models_dir, http_port=port, grpc_port=stack.free_port(),
                              metrics_port=stack.free_port())
            argv = [s.mlserver, "start", str(self.prepared.models_dir)]
        else:
            argv = [sys.executable, "-m", "driftline_demo.model", "--models", str(self.prepared.models_dir),
                    "--port", str(port)]
        self._start("model-server", argv, f"{self.model_url}/v2/health/ready")
        self.log(f"model server: {self.prepared.server} (Open Inference Protocol v2) {self.model_url}")

        proxy_port, metrics_port = stack.free_port(), stack.free_port()
        cfg = wd / "driftline.yaml"
        cfg.write_text(yaml.safe_dump(sidecar_config(self.prepared.baseline, upstream=self.model_url,
                                                     proxy_port=proxy_port, metrics_port=metrics_port,
                                                     settings=s), sort_keys=False))
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}"
        self._start("sidecar", [sys.executable, "-m", "driftline", "serve", "--config", str(cfg)],
                    f"{self.metrics_url}/readyz")
        self.log(f"sidecar: proxy {self.proxy_url} → model, metrics {self.metrics_url}/metrics")

        rport = stack.free_port()
        self.receiver_url = f"http://127.0.0.1:{rport}"
        self.audit_db = wd / "actions.db"
        rule_files: list[Path] = []
        if s.use_prometheus:
            rules_dir = wd / "rules"
            rcfg = wd / "rules-config.yaml"
            rcfg.write_text(yaml.safe_dump(rules_config(
                s, receiver_url=self.receiver_url, token_file=self.token_file,
                channels=notify_config(self.channels.url, wd / "secrets", rules_dir)),
                sort_keys=False))
            _driftline("rules", "generate", "--config", str(rcfg), "--output-dir", str(rules_dir))
            rule_files = sorted(p for p in rules_dir.glob("*.y*ml")
                                if p.name not in ("prometheusrule.yaml", "rules_test.yaml",
                                                  "alertmanager.yaml"))
            self.alertmanager = stack.start_alertmanager(alertmanager_config(rules_dir / "alertmanager.yaml"))
            self.procs.append(self.alertmanager)
        acfg = wd / "actions.yaml"
        acfg.write_text(yaml.safe_dump(actions_config(
            port=rport, database=self.audit_db, token_file=self.token_file, argo_url=self.argo.url,
            kserve_url=self.kserve.url, argo_token_file=argo_token,
            approver_token_file=self.approver_token,
            alertmanager_url=self.alertmanager.url if self.alertmanager else None), sort_keys=False))
        self._start("receiver",
                    [sys.executable, "-m", "driftline", "actions", "serve", "--config", str(acfg)],
                    f"{self.receiver_url}/healthz")
        self.log(f"webhook receiver {self.receiver_url}/alertmanager (rollbacks wait for approval)")

        targets = [f"127.0.0.1:{metrics_port}"]
        if self.alertmanager is not None:
            # ready before Prometheus scrapes it (it trained while the rest started)
            self.regression.wait_ready()
            targets.append(f"127.0.0.1:{self.regression.metrics_port}")
            self.log(f"regression model: SDK monitor with direct loss estimation, metrics "
                     f"http://127.0.0.1:{self.regression.metrics_port}/metrics")
            self.prometheus = stack.start_prometheus(
                targets, rule_files=rule_files, alertmanager_url=self.alertmanager.url,
                job_name="driftline", extra_labels={"namespace": NAMESPACE},
                scrape_interval=s.scrape_interval)
            self.procs.append(self.prometheus)
            self.log(f"Prometheus {self.prometheus.url} ({len(rule_files)} rule file(s)), "
                     f"Alertmanager {self.alertmanager.url}")
        return self

    def stop(self) -> None:
        if self.regression is not None:
            with contextlib.suppress(Exception):
                self.regression.close()
            self.regression = None
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()
        for stub in (self.argo, self.kserve, self.channels):
            if stub is not None:
                with contextlib.suppress(Exception):
                    stub.stop()
        self.argo = self.kserve = self.channels = None

    # ---------------------------------------------------------------------------- observations

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The sidecar's own /metrics as {(sample name, sorted labels): value}."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                out[(smp.name, tuple(sorted(smp.labels.items())))] = float(smp.value)
        return out

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        """The receiver's audit log, oldest first."""
        from dataclasses import asdict

        from driftline.alertmanager import audit

        if not self.audit_db.exists():
            return []
        return [asdict(e) for e in audit.read(self.audit_db, limit=limit)]


# ------------------------------------------------------------------------------------- scenario


@dataclass
class ScenarioResult:
    stable: Sent
    canary: Sent
    drifted: Sent
    psi_stable: dict[str, float]
    psi_drifted: dict[str, float]
    drifted_features: list[str]
    accuracy: dict[str, dict[str, float]]
    alerts: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    retrain_calls: int
    rollback_calls: int
    elapsed: float
    direct_alerts: bool = False
    #: seconds from the alert firing in Prometheus to the call landing on the target
    action_latency: dict[str, float] = field(default_factory=dict)
    #: the rollback's approval: id, the `pending` listing, the `approve` answer, calls before it
    approval: dict[str, Any] = field(default_factory=dict)
    #: per embedding feature: MMD p-value and mean-embedding cosine distance, last window
    embedding_stable: dict[str, dict[str, float]] = field(default_factory=dict)
    embedding_drifted: dict[str, dict[str, float]] = field(default_factory=dict)
    #: (channel, title) of every notification the stakeholders' loopback endpoints received
    deliveries: list[tuple[str, str]] = field(default_factory=list)
    #: the regression model's last window: estimated (DLE) vs realised (labels by id) error
    regression: Any = None


def _labelled(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
              **match: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {lab: v for (n, lab), v in metrics.items()
            if n == name and all(dict(lab).get(k) == val for k, val in match.items())}


def feature_values(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
                   endpoint: str = "default") -> dict[str, float]:
    """{feature: value} of a per-feature gauge for the demo model's endpoint."""
    return {dict(lab)["feature"]: v for lab, v in
            _labelled(metrics, name, model_name=MODEL, endpoint=endpoint).items() if "feature" in dict(lab)}


def embedding_values(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
                     ) -> dict[str, dict[str, float]]:
    """{embedding feature: {"pvalue", "cosine", "drifted"}} of the demo model's last window."""
    out: dict[str, dict[str, float]] = {}
    for key, name in (("pvalue", "driftline_embedding_mmd_pvalue"),
                      ("cosine", "driftline_embedding_cosine_distance")):
        for f, v in feature_values(metrics, name).items():
            out.setdefault(f, {})[key] = v
    drifted = feature_values(metrics, "driftline_feature_drifted")
    for f, row in out.items():
        row["drifted"] = drifted.get(f, 0.0)
    return out


def _wait_metric(st: DemoStack, predicate: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        m = st.metrics()
        if predicate(m):
            return m
        if time.monotonic() > deadline:
            raise TimeoutError("the sidecar's /metrics did not reach the expected state in time")
        time.sleep(0.5)


def _windows(m: Any, endpoint: str = "default") -> float:
    return sum(_labelled(m, "driftline_windows_total", model_name=MODEL, endpoint=endpoint).values())


@contextlib.contextmanager
def _trickle(st: DemoStack, rows: list[dict[str, Any]], per_second: float) -> Iterator[None]:
    """Keep drifted traffic (and its labels) flowing so windows keep closing while we wait."""
    stop = threading.Event()
    client = TrafficClient(threads=1)

    def loop() -> None:
        i = 0
        while not stop.is_set():
            batch = [rows[(i + j) % len(rows)] for j in range(max(1, int(per_second)))]
            i += len(batch)
            with contextlib.suppress(Exception):
                client.infer_v2(st.proxy_url, MODEL, batch, id_prefix="trickle")
            stop.wait(1.0)

    t = threading.Thread(target=loop, name="demo-trickle", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(10)


def run_scenario(st: DemoStack, *, step: Callable[[str, int], Callable[[int], None]] | None = None,
                 log: Callable[[str], None] = lambda _m: None) -> ScenarioResult:
    """Replay the story and wait for each action before the next act:

    1. stable traffic through the proxy, labels late → every PSI small;
    2. a downturn shifts the applicants → many features drift → Alertmanager → retraining;
    3. a canary version logged by KServe's payload logger, labels late → the canary is far less
       accurate than the default endpoint → rollback.

    Drifted traffic keeps trickling in the background, as production traffic would.
    """
    s = st.settings
    t0 = time.monotonic()
    client = TrafficClient(threads=s.threads)
    assert st.argo is not None and st.kserve is not None
    direct = st.prometheus is None
    if direct:
        log("Prometheus/Alertmanager not available: evaluating the alert conditions from /metrics "
            "and posting Alertmanager-shaped webhooks to the receiver directly")

    def progress(name: str, total: int) -> Callable[[int], None] | None:
        return step(name, total) if step else None

    def wait_action(name: str, stub: TargetStub, action: str) -> None:
        tick = progress(name, 1)
        if direct:
            _post_direct_alerts(st, _wait_metric(st, lambda m: bool(_direct_alerts(m, action)), 60), action)
        stub.wait_for_calls(1, timeout=s.timeout)
        if tick:
            tick(1)

    stable = generate(s.stable_rows, seed=s.seed + 10)
    drifted = generate(s.drift_rows, seed=s.seed + 12, shift=s.shift)
    canary_rows = generate(s.canary_rows, seed=s.seed + 11, shift=s.shift)

    sent_stable = client.infer_v2(st.proxy_url, MODEL, records(stable), id_prefix="stable",
                                  progress=progress("stable traffic via the proxy", s.stable_rows))
    client.feedback(st.metrics_url, sent_stable.ids, stable[TARGET].tolist(),
                    progress=progress("late labels (stable)", s.stable_rows))
    full = max(1, s.stable_rows // s.window_records)
    m = _wait_metric(st, lambda m: _windows(m) >= full, 60)
    psi_stable = feature_values(m, "driftline_feature_psi")
    emb_stable = embedding_values(m)

    windows_before = _windows(m)
    sent_drift = client.infer_v2(st.proxy_url, MODEL, records(drifted), id_prefix="drift",
                                 progress=progress("drifted traffic via the proxy", s.drift_rows))
    client.feedback(st.metrics_url, sent_drift.ids, drifted[TARGET].tolist(),
                    progress=progress("late labels (drifted)", s.drift_rows))
    # the last window made of drifted traffic only (the first one may still hold stable records)
    target = windows_before + max(1, s.drift_rows // s.window_records)
    m = _wait_metric(st, lambda m: _windows(m) >= target, 60)
    psi_drifted = feature_values(m, "driftline_feature_psi")
    # the decision of that same window, beside its PSI (not the end-of-run state, which mixes
    # in the canary phase): see docs/statistics.md#three-meanings-of-drifted
    drifted_features = sorted(f for f, v in feature_values(m, "driftline_feature_drifted").items()
                              if v >= 1)
    emb_drifted = embedding_values(m)

    tail_rows = records(generate(2000, seed=s.seed + 13, shift=s.shift))
    with _trickle(st, tail_rows, s.trickle_per_second):
        wait_action("drift alert → Alertmanager → receiver → Argo (retrain)", st.argo, "retrain")
        sent_canary = client.infer_canary_cloudevents(
            st.model_url, CANARY_MODEL, st.metrics_url, MODEL, records(canary_rows),
            progress=progress("canary traffic (KServe logger CloudEvents)", s.canary_rows))
        client.feedback(st.metrics_url, sent_canary.ids, canary_rows[TARGET].tolist(),
                        progress=progress("late labels (canary)", s.canary_rows))
        approval = _approve_rollback(st, progress, direct, log)
        tick = progress("approved rollback → KServe", 1)
        st.kserve.wait_for_calls(1, timeout=s.timeout)
        if tick:
            tick(1)
        time.sleep(3.0)  # let Alertmanager's re-sends arrive: they must not cause a second action
        m = st.metrics()
        alerts = st.alertmanager.alerts() if st.alertmanager is not None else []

    acc: dict[str, dict[str, float]] = {}
    for ep in ("default", "canary"):
        row = {}
        for key, name in (("estimated", "driftline_estimated_accuracy"), ("realised", "driftline_accuracy"),
                          ("reference", "driftline_reference_accuracy")):
            vals = list(_labelled(m, name, model_name=MODEL, endpoint=ep).values())
            if vals:
                row[key] = vals[0]
        if row:
            acc[ep] = row
    regression = _regression_act(st, progress, log)
    if st.alertmanager is not None:
        alerts = st.alertmanager.alerts()
    return ScenarioResult(
        stable=sent_stable, canary=sent_canary, drifted=sent_drift, psi_stable=psi_stable,
        psi_drifted=psi_drifted or feature_values(m, "driftline_feature_psi"),
        drifted_features=drifted_features, accuracy=acc, alerts=alerts, audit=st.audit(),
        retrain_calls=len(st.argo.calls()), rollback_calls=len(st.kserve.calls()),
        elapsed=time.monotonic() - t0, direct_alerts=direct,
        action_latency=_action_latency(st.audit(), {"retrain": st.argo, "rollback": st.kserve}),
        approval=approval, deliveries=deliveries(st), regression=regression,
        embedding_stable=emb_stable, embedding_drifted=emb_drifted)


def _regression_act(st: DemoStack, progress: Callable[[str, int], Callable[[int], None] | None],
                    log: Callable[[str], None]) -> Any:
    """Downturn traffic and late labels for the regression model; with the stack's Prometheus,
    wait until DriftlineEstimatedPerformanceDrop fires on its estimated MAE and Alertmanager
    holds it (the rule's ``for:`` on the demo's time scale)."""
    from driftline_demo.regression import run_regression

    log("regression model: downturn traffic through the SDK, labels joined by id")
    if st.regression is None or st.alertmanager is None:
        return run_regression(st.settings.seed)
    result = st.regression.run()
    tick = progress("estimated MAE up → DriftlineEstimatedPerformanceDrop (Prometheus)", 1)
    alert = st.alertmanager.wait_for_alert(
        lambda a: a["labels"].get("alertname") == "DriftlineEstimatedPerformanceDrop"
        and a["labels"].get("model_name") == "repayment", timeout=st.settings.timeout)
    if tick:
        tick(1)
    return replace(result, alert=alert)


def _approve_rollback(st: DemoStack, progress: Callable[[str, int], Callable[[int], None] | None],
                      direct: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """The rollback route needs an approver: wait until the receiver holds the rollback as
    pending, show it with `driftline actions pending`, check nothing was rolled back yet, then
    approve it with `driftline actions approve` (over the receiver's API, as the approver)."""
    assert st.kserve is not None
    tick = progress("canary alert → Alertmanager → receiver: rollback awaits approval", 1)
    if direct:
        _post_direct_alerts(st, _wait_metric(st, lambda m: bool(_direct_alerts(m, "rollback")), 60),
                            "rollback")
    auth = {"Authorization": f"Bearer {st.approver_token.read_text().strip()}"}
    deadline = time.monotonic() + st.settings.timeout
    pending: list[dict[str, Any]] = []
    while not pending:
        pending = stack.http_json(f"{st.receiver_url}/api/v1/actions/pending", headers=auth)["pending"]
        if time.monotonic() > deadline:
            raise TimeoutError("the rollback never reached the receiver's approval queue")
        if not pending:
            time.sleep(0.5)
    if tick:
        tick(1)
    waiting = time.monotonic()
    where = ["--url", st.receiver_url, "--token-file", str(st.approver_token)]
    shown = _driftline("actions", "pending", *where).stdout.strip()
    log(f"$ driftline actions pending …\n{shown}")
    calls_before = len(st.kserve.calls())
    time.sleep(1.0)  # pending really means waiting: still no call after a second
    job = pending[0]
    reason = "demo: the canary is less accurate than the default endpoint"
    done = _driftline("actions", "approve", str(job["id"]), "--reason", reason, *where).stdout.strip()
    log(f"$ driftline actions approve {job['id']} --reason '{reason}'\n{done}")
    return {"id": job["id"], "action": job["action"], "model": job["model_name"],
            "pending": shown, "approved": done, "reason": reason,
            "calls_while_pending": calls_before, "waited": time.monotonic() - waiting}


def deliveries(st: DemoStack) -> list[tuple[str, str]]:
    """(channel, notification title) of everything Alertmanager sent to PagerDuty and Slack."""
    if st.channels is None:
        return []
    out: list[tuple[str, str]] = []
    for c in st.channels.calls(method="POST"):
        with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
            body = c.json()
            if c.path.startswith("/pagerduty"):
                out.append(("PagerDuty", str(body["payload"]["summary"])))
            elif c.path.startswith("/slack"):
                out.append(("Slack #ml-alerts", str(body["attachments"][0]["title"])))
    return out


def _action_latency(audit: list[dict[str, Any]], stubs: dict[str, TargetStub]) -> dict[str, float]:
    """For each action taken: the acted alert's ``startsAt`` (when Prometheus fired it, as the
    receiver got it) → the first call on the target."""
    import datetime as dt

    out: dict[str, float] = {}
    for e in audit:
        stub = stubs.get(e.get("action", ""))
        if e.get("decision") != "acted" or stub is None or not e.get("starts_at") or not stub.calls():
            continue
        with contextlib.suppress(ValueError):
            started = dt.datetime.fromisoformat(str(e["starts_at"]).replace("Z", "+00:00")).timestamp()
            out.setdefault(e.get("alertname", ""), stub.calls()[0].at - started)
    return out


def _direct_alerts(m: Any, action: str) -> list[tuple[str, str]]:
    """Without Prometheus: the (alertname, summary) pairs the shipped rules would fire for
    ``action``, evaluated on the sidecar's own last-window gauges."""
    out: list[tuple[str, str]] = []
    if action == "retrain":
        drifted = sorted(f for f, v in feature_values(m, "driftline_feature_drifted").items() if v >= 1)
        if len(drifted) >= 3:
            out.append(("DriftlineManyFeaturesDrifting",
                        f"{len(drifted)} features drifting: {', '.join(drifted)}"))
    else:
        acc = {ep: list(_labelled(m, "driftline_accuracy", model_name=MODEL, endpoint=ep).values())
               for ep in ("default", "canary")}
        if acc["default"] and acc["canary"] and acc["canary"][0] < acc["default"][0] - 0.02:
            out.append(("DriftlineCanaryWorseThanDefault",
                        f"canary accuracy {acc['canary'][0]:.2f} < default {acc['default'][0]:.2f}"))
    return out


def _post_direct_alerts(st: DemoStack, m: Any, action: str) -> None:
    """Post what Alertmanager would send (webhook v4) to the receiver, with its bearer token."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    token = st.token_file.read_text().strip()
    for name, summary in _direct_alerts(m, action):
        labels = {"alertname": name, "severity": "critical", "action": action, "model_name": MODEL,
                  "model_version": "1", "namespace": NAMESPACE}
        fingerprint = hashlib.sha256(f"{name}/{MODEL}".encode()).hexdigest()[:16]
        payload = {"receiver": "driftline-actions", "status": "firing", "version": "4",
                   "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0,
                   "groupLabels": {"alertname": name}, "commonLabels": labels,
                   "commonAnnotations": {"summary": summary}, "externalURL": "http://127.0.0.1/demo",
                   "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": summary},
                               "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                               "fingerprint": fingerprint}]}
        stack.http_json(f"{st.receiver_url}/alertmanager", method="POST", body=payload,
                        headers={"Authorization": f"Bearer {token}"})


# ------------------------------------------------------------------------------------------ CLI


def _ensure_stack_binaries(console: Any) -> bool:
    """True when Prometheus and Alertmanager can run; installs them as root when missing."""
    try:
        stack.find_binary("prometheus", env_var="DRIFTLINE_PROMETHEUS")
        stack.find_binary("prometheus-alertmanager", env_var="DRIFTLINE_ALERTMANAGER")
        return True
    except stack.StackError:
        pass
    script = Path(__file__).resolve().parents[2] / "scripts" / "install-system-deps.sh"
    if os.geteuid() == 0 and script.exists():
        console.print("[yellow]Prometheus/Alertmanager missing: installing the Debian packages…[/]")
        subprocess.run(["bash", str(script)], check=False)
        try:
            stack.find_binary("prometheus")
            stack.find_binary("prometheus-alertmanager")
            return True
        except stack.StackError:
            pass
    console.print(f"[yellow]Prometheus/Alertmanager are not installed; install them with "
                  f"`{stack.INSTALL_HINT}`. Running the rest with Driftline's own /metrics and "
                  "the receiver driven directly.[/]")
    return False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """``driftline demo`` (its parser is :mod:`driftline_demo.cli`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from driftline_demo.report import render_summary

    console = Console()
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    use_prom = not args.no_prometheus and _ensure_stack_binaries(console)
    settings = DemoSettings(seed=args.seed, use_prometheus=use_prom, mlserver=args.mlserver)
    if args.mlserver:  # MLServer answers ~25 requests/s here (pandas codec per request): less traffic
        settings = replace(settings, stable_rows=600, drift_rows=900, canary_rows=300, window_records=150)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    t0 = time.monotonic()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("training the model and building the baseline", total=None)
            prepared = prepare(workdir, settings)
            bar.update(task, total=1, completed=1)
            console.log(f"model accuracy on fresh data {prepared.accuracy:.3f}; the canary's "
                        f"{prepared.canary_accuracy:.3f} (trained with the target flipped)")
            start_task = bar.add_task("starting the stack", total=None)
            with DemoStack(prepared, settings, log=console.log) as st:
                bar.update(start_task, total=1, completed=1)

                def step(name: str, total: int) -> Callable[[int], None]:
                    tid = bar.add_task(name, total=total)
                    return lambda n: bar.advance(tid, n)

                result = run_scenario(st, step=step, log=console.log)
                bar.stop()
                render_summary(console, st, result, time.monotonic() - t0)
                if args.keep_running:
                    console.print("[bold]Everything keeps running; Ctrl-C stops it all.[/]")
                    while True:
                        time.sleep(3600)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every child process was stopped[/]")
        return 130
    except (TimeoutError, stack.StackError) as exc:
        console.print(f"[red]demo failed: {exc}[/]\nlogs: {workdir / 'logs'}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        stack.stop_all()
    return 0


def summary_json(result: ScenarioResult) -> str:
    """The scenario's outcome as JSON (for scripts and the test's failure messages)."""
    return json.dumps({
        "psi_drifted": result.psi_drifted, "drifted_features": result.drifted_features,
        "embedding_drifted": result.embedding_drifted,
        "accuracy": result.accuracy, "alerts": [a.get("labels", {}) for a in result.alerts],
        "audit": [{k: e.get(k) for k in ("decision", "alertname", "action", "status_code")}
                  for e in result.audit],
        "retrain_calls": result.retrain_calls, "rollback_calls": result.rollback_calls,
        "regression": None if result.regression is None else {
            "reference": result.regression.reference, "estimated": result.regression.estimated,
            "realised": result.regression.realised,
            "alert": None if result.regression.alert is None
            else result.regression.alert["labels"].get("alertname")},
    }, indent=1, default=str)

