"""The README's quickstart runs as written: its commands, taken from the README itself, against
the stand-in model server of examples/quickstart, in a copy of that folder. Only the ports are
moved to free ones (tests run in parallel) and `pip install .` / `cd` are left out (the test
environment has Driftline installed and runs in the folder)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    """Steps 0-2 and the offline gate of the README's quickstart block, one shell command each
    (continuation lines and the heredoc joined)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    block = block.split("\n# 3.", 1)[0]
    commands: list[str] = []
    lines = iter(block.replace("\\\n", " ").splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "<<'YAML'" in line:
            body = [line]
            for more in lines:
                body.append(more)
                if more.strip() == "YAML":
                    break
            line = "\n".join(body)
        else:
            line = re.sub(r"\s{2,}#.*$", "", line)  # the README's trailing comments
        commands.append(line)
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_quickstart_block_names_shipped_files() -> None:
    commands = _quickstart_commands()
    assert commands[0].startswith("pip install .") and commands[1] == "cd examples/quickstart"
    folder = ROOT / "examples" / "quickstart"
    for script in re.findall(r"python (\S+\.py)", "\n".join(commands)):
        assert (folder / script).is_file(), script
    assert (folder / "request.json").is_file()  # shipped, and rewritten identically by make_reference.py


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quickstart uses curl")
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", work)
    ports = {"8080": _free_port(), "8081": _free_port(), "9108": _free_port()}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    background: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    try:
        for cmd in _quickstart_commands()[2:]:
            for old, new in ports.items():
                cmd = re.sub(rf"(?<=127\.0\.0\.1:){old}\b", str(new), cmd)
            cmd = cmd.replace("python model_server.py", f"python model_server.py --port {ports['8080']}")
            if cmd.rstrip().endswith("&"):
                background.append(subprocess.Popen(["bash", "-c", cmd.rstrip().rstrip("&")], cwd=work,
                                                   env=env, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
                continue
            deadline = time.monotonic() + 60
            while True:  # the metrics of a window appear once the worker has closed it
                done = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True,
                                      text=True, timeout=120)
                if "/metrics" not in cmd or done.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            expected = 1 if "--fail-on-drift" in cmd else 0  # the README says: exit 1, it drifted
            assert done.returncode == expected, (cmd, done.stdout[-1000:], done.stderr[-2000:])
            outputs[cmd.split()[0] + " " + cmd.split()[1]] = done.stdout
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=10)
    metrics = next(v for k, v in outputs.items() if "curl" in k and "driftline_feature_psi" in v)
    psi = {m.group(1): float(m.group(2)) for m in
           re.finditer(r'driftline_feature_psi\{[^}]*feature="(\w+)"[^}]*\} (\S+)', metrics)}
    assert set(psi) == {"age", "annual_income", "loan_amount", "credit_score", "debt_to_income"}
    assert psi["debt_to_income"] > 0.25 > psi["age"]  # the shifted feature moved, the other did not
    assert "driftline_estimated_accuracy{" in metrics
    assert (work / "report.html").read_text().startswith("<!DOCTYPE html>")
