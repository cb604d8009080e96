"""Run real Prometheus and Alertmanager (and any other server) as child processes on 127.0.0.1.

The demo, the end-to-end test and every integration test use these helpers, so they all drive
the same real binaries the same way: temporary config and storage, a free loopback port,
readiness polling, and a stop that kills the whole process group. Nothing listens on a public
address (Alertmanager's gossip is switched off with an empty ``--cluster.listen-address``).

>>> with start_prometheus(["127.0.0.1:9108"], rule_files=["rules.yaml"]) as prom:  # doctest: +SKIP
...     prom.wait_for("up", lambda r: len(r) == 1)
...     prom.query('driftline_feature_psi{feature="amount"}')

Every process started here is also stopped at interpreter exit (``atexit``), so a crashed test
or an interrupted demo does not leave servers behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import yaml

from driftline.errors import DriftlineError

__all__ = [
    "AlertmanagerProcess",
    "ManagedProcess",
    "PrometheusProcess",
    "StackError",
    "find_binary",
    "free_port",
    "http_json",
    "prometheus_config",
    "start_alertmanager",
    "start_process",
    "start_prometheus",
    "stop_all",
]

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


class StackError(DriftlineError):
    """A helper process could not be found, started or made ready."""


# ---------------------------------------------------------------------------------------- utils


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_binary(name: str, *, env_var: str | None = None) -> str:
    """Path of ``name`` (``$env_var`` first, then ``PATH``, then ``/usr/bin``) or a StackError
    that says how to install it."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not found:
        raise StackError(
            f"{name!r} is not installed. Install the Debian packages with "
            f"`{INSTALL_HINT}` (as root: scripts/install-system-deps.sh does it)"
            + (f", or point {env_var} at the binary" if env_var else "")
        )
    return found


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 5.0,
              headers: Mapping[str, str] | None = None) -> Any:
    """A small JSON-over-HTTP call (stdlib only). Raises ``urllib.error.URLError`` on failure."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _url_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_all() -> None:
    """Stop every process started by this module that is still running."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        p.stop()


def _register(proc: ManagedProcess) -> None:
    global _ATEXIT_REGISTERED
    with _LIVE_LOCK:
        _LIVE.add(proc)
        if not _ATEXIT_REGISTERED:
            atexit.register(stop_all)
            _ATEXIT_REGISTERED = True


# ------------------------------------------------------------------------------ managed process


class ManagedProcess:
    """A child process in its own process group, with a log file and a readiness URL.

    ``stop()`` sends SIGTERM to the group, waits, then SIGKILLs it; it is idempotent and also
    removes the process's temporary directory when it created one.
    """

    def __init__(self, name: str, argv: Sequence[str], *, ready_url: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                 workdir: Path | None = None, keep_workdir: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_url = ready_url
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"driftline-{name}-"))
        self._keep_workdir = keep_workdir
        self.log_path = self.workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            self.popen = subprocess.Popen(
                self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=full_env, cwd=cwd, start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise StackError(f"cannot start {name}: {exc}") from exc
        self._stopped = False
        _register(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the process's combined stdout/stderr."""
        try:
            self._log.flush()
            return self.log_path.read_text(errors="replace")[-tail:]
        except (OSError, ValueError):  # ValueError: log already closed by stop()
            return ""

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.1) -> Self:
        """Poll ``ready_url`` until it answers 2xx; fail early (with the log) if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise StackError(f"{self.name} exited with code {self.popen.returncode} before it was "
                                 f"ready; its log ends with:\n{self.log_text()}")
            if self.ready_url is None or _url_ok(self.ready_url):
                return self
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} not ready at {self.ready_url} after {timeout:.0f}s; "
                                 f"its log ends with:\n{self.log_text()}")
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the process group (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        if self._stopped:
            return self.popen.returncode
        self._stopped = True
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children left in the group after the leader exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._own_workdir and not self._keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.popen.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.popen.pid}>"


def start_process(name: str, argv: Sequence[str], *, ready_url: str | None = None,
                  env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                  timeout: float = 30.0, keep_workdir: bool = False) -> ManagedProcess:
    """Start any server (``driftline serve``, ``driftline actions serve``, a model server) as a
    managed child and wait until ``ready_url`` answers 2xx."""
    proc = ManagedProcess(name, argv, ready_url=ready_url, env=env, cwd=cwd, keep_workdir=keep_workdir)
    try:
        return proc.wait_ready(timeout)
    except BaseException:
        proc.stop()
        raise


# ---------------------------------------------------------------------------------- Prometheus


def _split_target(target: str) -> tuple[str, str, str]:
    """``host:port`` or ``http://host:port/path`` → (scheme, host:port, metrics path)."""
    if "://" not in target:
        return "http", target, "/metrics"
    u = urllib.parse.urlsplit(target)
    return u.scheme or "http", u.netloc, u.path or "/metrics"


def prometheus_config(scrape_targets: Sequence[str], *, rule_files: Sequence[str | os.PathLike[str]] = (),
                      alertmanager_url: str | None = None, scrape_interval: str = "1s",
                      evaluation_interval: str = "1s", job_name: str = "driftline",
                      extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The prometheus.yml for a list of targets (``host:port`` or full metrics URLs).

    Targets sharing scheme and path form one job; the first job is named ``job_name`` and the
    others ``job_name-2``, ``job_name-3``... ``extra_labels`` are added to every target (e.g.
    ``namespace``), which is how alert rules that group by namespace see one.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for t in scrape_targets:
        scheme, hostport, path = _split_target(t)
        groups.setdefault((scheme, path), []).append(hostport)
    jobs = []
    for i, ((scheme, path), hosts) in enumerate(groups.items()):
        sc: dict[str, Any] = {"targets": hosts}
        if extra_labels:
            sc["labels"] = dict(extra_labels)
        jobs.append({"job_name": job_name if i == 0 else f"{job_name}-{i + 1}", "scheme": scheme,
                     "metrics_path": path, "static_configs": [sc]})
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": evaluation_interval},
        "scrape_configs": jobs,
    }
    if rule_files:
        cfg["rule_files"] = [str(Path(r).resolve()) for r in rule_files]
    if alertmanager_url:
        u = urllib.parse.urlsplit(alertmanager_url)
        am: dict[str, Any] = {"scheme": u.scheme or "http", "static_configs": [{"targets": [u.netloc]}]}
        if u.path and u.path != "/":
            am["path_prefix"] = u.path
        cfg["alerting"] = {"alertmanagers": [am]}
    return cfg


class _LoopbackServer(ManagedProcess):
    """A Prometheus-family server on 127.0.0.1 that owns its temporary work directory: ready
    when ``/-/ready`` answers, and the directory goes with it on stop."""

    name = "server"

    def __init__(self, argv: Sequence[str], *, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(self.name, argv, ready_url=f"{self.url}/-/ready", workdir=workdir)
        self._tmp_root = workdir

    def stop(self, timeout: float = 10.0) -> int | None:
        rc = super().stop(timeout)
        shutil.rmtree(self._tmp_root, ignore_errors=True)
        return rc


class PrometheusProcess(_LoopbackServer):
    """A real Prometheus on 127.0.0.1 with a temporary config and TSDB."""

    name = "prometheus"

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return ``data`` (raises StackError on an API error)."""
        qs = urllib.parse.urlencode(params)
        try:
            doc = http_json(f"{self.url}/api/v1/{path}" + (f"?{qs}" if qs else ""), timeout=10)
        except urllib.error.HTTPError as exc:
            raise StackError(f"Prometheus /api/v1/{path} {params}: HTTP {exc.code}: "
                             f"{exc.read().decode(errors='replace')[:500]}") from exc
        if doc.get("status") != "success":
            raise StackError(f"Prometheus /api/v1/{path} {params}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the ``result`` list (``[{"metric": {...}, "value": [t, "v"]}]``).
        A scalar or string result is returned as one item without labels."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def values(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """Instant query as ``(labels, float value)`` pairs (vector results)."""
        return [(r["metric"], float(r["value"][1])) for r in self.query(expr) if "value" in r]

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool] = bool,
                 timeout: float = 60.0, interval: float = 0.5) -> list[dict[str, Any]]:
        """Re-run ``expr`` until ``predicate(results)`` holds; return the results or raise
        TimeoutError naming the query and its last result."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while True:
            if not self.running():
                raise StackError(f"prometheus exited: {self.log_text()}")
            try:
                last = self.query(expr)
                if predicate(last):
                    return last
            except (StackError, urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} did not satisfy the condition within {timeout:.0f}s; "
                                   f"last result: {json.dumps(last)[:800]}")
            time.sleep(interval)

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``/api/v1/alerts``)."""
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        """Loaded rule groups (``/api/v1/rules``)."""
        return list(self.api("rules")["groups"])

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (``/api/v1/targets``)."""
        return list(self.api("targets")["activeTargets"])


def start_prometheus(scrape_targets: Sequence[str], rule_files: Sequence[str | os.PathLike[str]] = (),
                     alertmanager_url: str | None = None, scrape_interval: str = "1s",
                     evaluation_interval: str = "1s", port: int = 0, *, job_name: str = "driftline",
                     extra_labels: Mapping[str, str] | None = None, timeout: float = 30.0,
                     binary: str | None = None, extra_args: Sequence[str] = ()) -> PrometheusProcess:
    """Start Prometheus on 127.0.0.1 scraping ``scrape_targets`` and wait until it is ready.

    ``port=0`` picks a free port (retrying if another process takes it first). Rule files are
    checked by Prometheus at start-up: a bad file fails here with Prometheus' own message.
    """
    exe = binary or find_binary("prometheus", env_var="DRIFTLINE_PROMETHEUS")
    cfg = prometheus_config(scrape_targets, rule_files=rule_files, alertmanager_url=alertmanager_url,
                            scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                            job_name=job_name, extra_labels=extra_labels)
    return _start_loopback_server(
        PrometheusProcess, yaml.safe_dump(cfg, sort_keys=False), port, timeout,
        lambda cfg_path, workdir, p: [
            exe, f"--config.file={cfg_path}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{p}", f"--web.external-url=http://127.0.0.1:{p}",
            "--web.enable-lifecycle", *extra_args])


_S = TypeVar("_S", bound="_LoopbackServer")


def _start_loopback_server(cls: type[_S], config_text: str, port: int, timeout: float,
                           argv_for: Callable[[Path, Path, int], list[str]]) -> _S:
    """Write the config into a fresh work dir, start ``cls`` and wait until it is ready.

    With ``port=0`` a free port is picked, and picked again (up to 3 tries) when another process
    takes it between the pick and the bind.
    """
    last_error: StackError | None = None
    for _attempt in range(3):
        p = port or free_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"driftline-{cls.name}-"))
        cfg_path = workdir / f"{cls.name}.yml"
        cfg_path.write_text(config_text)
        proc = cls(argv_for(cfg_path, workdir, p), port=p, workdir=workdir)
        try:
            return proc.wait_ready(timeout)
        except StackError as exc:
            proc.stop()
            last_error = exc
            if port or "address already in use" not in str(exc):
                raise
    assert last_error is not None
    raise last_error


# -------------------------------------------------------------------------------- Alertmanager


class AlertmanagerProcess(_LoopbackServer):
    """A real Alertmanager on 127.0.0.1 (no cluster gossip), temporary storage."""

    name = "alertmanager"

    def alerts(self, *, active: bool = True, silenced: bool = True,
               inhibited: bool = True) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``GET /api/v2/alerts``)."""
        qs = urllib.parse.urlencode({"active": str(active).lower(), "silenced": str(silenced).lower(),
                                     "inhibited": str(inhibited).lower()})
        return list(http_json(f"{self.url}/api/v2/alerts?{qs}", timeout=10))

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Post alerts the way Prometheus (or amtool) does (``POST /api/v2/alerts``)."""
        http_json(f"{self.url}/api/v2/alerts", method="POST", body=list(alerts), timeout=10)

    def wait_for_alert(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0,
                       interval: float = 0.5) -> dict[str, Any]:
        """Wait until an alert matching ``predicate`` is held by Alertmanager; return it."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                for a in self.alerts():
                    if predicate(a):
                        return a
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching alert in Alertmanager within {timeout:.0f}s")
            time.sleep(interval)


def start_alertmanager(config: str | os.PathLike[str] | Mapping[str, Any], port: int = 0, *,
                       timeout: float = 30.0, binary: str | None = None,
                       extra_args: Sequence[str] = ()) -> AlertmanagerProcess:
    """Start Alertmanager on 127.0.0.1 with ``config`` (YAML text, a path, or a dict).

    A string containing a newline, or naming no existing file, is taken as YAML text.
    """
    exe = binary or find_binary("prometheus-alertmanager", env_var="DRIFTLINE_ALERTMANAGER")
    if isinstance(config, Mapping):
        text = yaml.safe_dump(dict(config), sort_keys=False)
    elif isinstance(config, os.PathLike) or ("\n" not in config and Path(config).is_file()):
        text = Path(config).read_text()
    else:
        text = str(config)
    return _start_loopback_server(
        AlertmanagerProcess, text, port, timeout,
        lambda cfg_path, workdir, p: [
            exe, f"--config.file={cfg_path}", f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{p}", f"--web.external-url=http://127.0.0.1:{p}",
            "--cluster.listen-address=", *extra_args])
