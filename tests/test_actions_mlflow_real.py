"""The ``mlflow_alias_rollback`` preset against a real MLflow tracking server and model registry,
on its own and at the end of the whole chain (real Alertmanager → receiver → MLflow).

The server runs from its own virtualenv (``scripts/install-mlflow.sh``, which ``make test`` runs;
the full ``mlflow`` package pins older versions of libraries Driftline itself uses), on 127.0.0.1
with an SQLite backend store. The registry is seeded through MLflow's REST API with plain urllib,
so the test checks the preset against what MLflow really answers (status codes, error bodies,
alias lookups) rather than against our reading of its documentation. A missing install fails
the test; ``DRIFTLINE_SKIP_MLFLOW=1`` skips it on a machine where that is intended.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from receiver_support import make_config, running, wait_until
from test_actions_presets import ctx, make_target, run
from test_receiver_alertmanager import am_config, amtool_add

from driftline.alertmanager import audit
from driftline_demo.stack import StackError, find_binary, free_port, start_alertmanager

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0  # generous: first start creates the SQLite schema (alembic migrations)

if os.environ.get("DRIFTLINE_SKIP_MLFLOW") == "1":
    pytest.skip("DRIFTLINE_SKIP_MLFLOW=1: the real-MLflow tests are switched off", allow_module_level=True)


def _mlflow_binary() -> Path:
    venv = Path(os.environ.get("DRIFTLINE_MLFLOW_VENV") or ROOT / ".venv-mlflow")
    binary = venv / "bin" / "mlflow"
    if not binary.exists():
        pytest.fail(f"MLflow is not installed at {binary}: run `bash scripts/install-mlflow.sh` "
                    "(make test runs it), or set DRIFTLINE_SKIP_MLFLOW=1 to skip these tests", pytrace=False)
    return binary


def _api(base: str, method: str, path: str, body: dict[str, Any] | None = None,
         query: dict[str, str] | None = None) -> tuple[int, Any]:
    url = f"{base}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _ok(base: str, method: str, path: str, body: dict[str, Any]) -> Any:
    status, out = _api(base, method, path, body)
    assert status == 200, (path, status, out)
    return out


def _alias(base: str, model: str, alias: str) -> str:
    status, out = _api(base, "GET", "registered-models/alias", query={"name": model, "alias": alias})
    assert status == 200, (status, out)
    return str(out["model_version"]["version"])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _mlflow_binary()
    work = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
         "--default-artifact-root", str(work / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n"
                            f"{(work / 'server.log').read_text()[-3000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy within {START_TIMEOUT_S:.0f}s:\n"
                            f"{(work / 'server.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.25)
        yield base
    finally:
        import signal
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _register(base: str, model: str, versions: int) -> None:
    _ok(base, "POST", "registered-models/create", {"name": model})
    for i in range(1, versions + 1):
        out = _ok(base, "POST", "model-versions/create",
                  {"name": model, "source": f"s3://driftline-models/{model}/{i}"})
        assert str(out["model_version"]["version"]) == str(i)


def test_alias_rollback_on_real_mlflow_and_replay_is_idempotent(mlflow_server: str, tmp_path: Path) -> None:
    base = mlflow_server
    _register(base, "fraud", 2)
    _ok(base, "POST", "registered-models/alias", {"name": "fraud", "alias": "champion", "version": "2"})
    _ok(base, "POST", "registered-models/alias", {"name": "fraud", "alias": "previous", "version": "1"})
    t = make_target(tmp_path, {"type": "mlflow_alias_rollback", "server": base})

    out = run(t, ctx(action="rollback"))
    assert out.ok, out.detail
    assert "version 2 → 1" in out.detail
    assert _alias(base, "fraud", "champion") == "1"
    assert _alias(base, "fraud", "previous") == "1"

    again = run(t, ctx(action="rollback"))  # a replayed alert, fresh memo: nothing to change
    assert again.ok and "already points to version 1" in again.detail, again.detail
    assert _alias(base, "fraud", "champion") == "1"


def test_model_without_previous_alias_on_real_mlflow_fails_permanently(mlflow_server: str,
                                                                        tmp_path: Path) -> None:
    base = mlflow_server
    _register(base, "churn", 2)
    _ok(base, "POST", "registered-models/alias", {"name": "churn", "alias": "champion", "version": "2"})
    t = make_target(tmp_path, {"type": "mlflow_alias_rollback", "server": base})
    out = run(t, ctx(model="churn", action="rollback"))
    assert not out.ok and not out.retryable, out.detail
    assert "no alias 'previous'" in out.detail
    assert _alias(base, "churn", "champion") == "2"


@pytest.mark.integration
def test_alertmanager_to_receiver_to_real_mlflow_rolls_back_once(mlflow_server: str, tmp_path: Path) -> None:
    """The whole chain: an alert in a real Alertmanager (labelled as the generated rules label it,
    baseline id included) → the real receiver → the alias rollback preset → the real registry.
    Alertmanager keeps re-sending the group; after the action the test moves the alias back by
    hand, so a second action would show in MLflow itself, not only in the audit log."""
    try:
        amtool = find_binary("amtool")
        find_binary("prometheus-alertmanager", env_var="DRIFTLINE_ALERTMANAGER")
    except StackError as exc:
        pytest.skip(str(exc))
    base = mlflow_server
    _register(base, "scoring", 2)
    _ok(base, "POST", "registered-models/alias", {"name": "scoring", "alias": "champion", "version": "2"})
    _ok(base, "POST", "registered-models/alias", {"name": "scoring", "alias": "previous", "version": "1"})
    cfg = make_config(tmp_path, {"registry": {"type": "mlflow_alias_rollback", "server": base}},
                      [{"model_name": "scoring", "action": "rollback", "target": "registry"}],
                      cooldown="1h")

    def rows() -> list[audit.AuditEntry]:
        return audit.read(cfg.database, limit=500)

    with running(cfg) as receiver:
        am = start_alertmanager(am_config(receiver.url, tmp_path / "token"))
        try:
            amtool_add(amtool, am.url, "DriftlineCanaryWorseThanDefault", model_name="scoring",
                       model_version="2", endpoint="canary", namespace="ml", severity="critical",
                       action="rollback", baseline_id="b-scoring-2")

            wait_until(lambda: any(e.decision == "acted" for e in rows()), timeout=60, what="the rollback")
            assert _alias(base, "scoring", "champion") == "1"
            _ok(base, "POST", "registered-models/alias",  # undo it: a second action would show
                {"name": "scoring", "alias": "champion", "version": "2"})
            wait_until(lambda: sum(e.decision == "deduplicated" for e in rows()) >= 2, timeout=30,
                       what="two re-sends of the group")
        finally:
            am.stop()
    assert _alias(base, "scoring", "champion") == "2", "a re-sent alert rolled back a second time"
    log = rows()
    acted = [e for e in log if e.decision == "acted"]
    assert len(acted) == 1, [(e.decision, e.detail) for e in log]
    e = acted[0]
    assert (e.alertname, e.action, e.model_name) == ("DriftlineCanaryWorseThanDefault", "rollback", "scoring")
    assert (e.model_version, e.baseline_id) == ("2", "b-scoring-2")
    assert "version 2 → 1" in e.detail, e.detail
    assert not [x for x in log if x.decision in ("failed", "refused")]
    assert audit.verify(cfg.database).ok
