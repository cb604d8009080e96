"""Template language and config validation: errors name the file, the key and the fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from driftline.alertmanager.actions_config import (
    PRESET_PARAMS,
    RetryPolicy,
    load_config,
    load_config_dict,
    parse_duration,
)
from driftline.alertmanager.template import Template, compile_tree, render_tree
from driftline.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "alertmanager" / "actions.example.yaml"
CTX = {"labels": {"model_name": "Fraud", "empty": ""}, "annotations": {"summary": 'a "quoted"\nline'},
       "alert": {"fingerprint": "abc"}, "dedupe_key": "k1", "model_name": "Fraud"}


# ---------------------------------------------------------------------------------- templates

@pytest.mark.parametrize(("source", "expected"), [
    ("plain", "plain"),
    ("{{ labels.model_name }}", "Fraud"),
    ("{{labels.model_name|lower}}-{{ dedupe_key }}", "fraud-k1"),
    ("{{ labels.missing }}", ""),
    ('{{ labels.empty | default:"n/a" }}', "n/a"),
    ('{{ labels.model_name | default:"n/a" }}', "Fraud"),
    ("{{ annotations.summary | json }}", '"a \\"quoted\\"\\nline"'),
    ("{{ annotations.summary | truncate:3 | upper }}", 'A "'),
    ("{{ labels.model_name | url }}", "Fraud"),
    ("{{ alert.fingerprint }}", "abc"),
    ("{{ labels }}", '{"empty":"","model_name":"Fraud"}'),
])
def test_render(source: str, expected: str) -> None:
    assert Template(source, where="t").render(CTX) == expected


@pytest.mark.parametrize(("source", "message"), [
    ("{{ __import__('os') }}", "not a dotted name"),
    ("{{ labels.x | shell }}", "unknown template filter"),
    ("{{ secrets.token }}", "unknown template variable"),
    ("{{ labels.x }", "unbalanced"),
    ("{{ labels.x | default }}", "quoted argument"),
    ("{{ labels.x | truncate:abc }}", "unknown template filter"),
])
def test_bad_templates_fail_at_load(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        Template(source, where="targets.t.body")
    assert "targets.t.body" in str(exc.value)


def test_url_templates_escape_values() -> None:
    t = Template("http://h/x/{{ labels.model_name }}?q={{ labels.model_name }}", where="u",
                 escape_url=True)
    assert t.render({"labels": {"model_name": "a/b c&d"}}) == "http://h/x/a%2Fb%20c%26d?q=a%2Fb%20c%26d"


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=5))
def test_tree_rendering_is_value_preserving(labels: dict[str, str]) -> None:
    names = [k for k in labels if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
    tree = compile_tree({"all": ["{{ labels." + k + " }}" for k in names]}, "b")
    assert render_tree(tree, {"labels": labels}) == {"all": [labels[k] for k in names]}


# ---------------------------------------------------------------------------------- durations

@pytest.mark.parametrize(("value", "seconds"), [
    (30, 30.0), (1.5, 1.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
    ("2d", 172800.0), ("10", 10.0)])
def test_parse_duration(value: Any, seconds: float) -> None:
    assert parse_duration(value, path="f", key="k") == seconds


@pytest.mark.parametrize("value", ["soon", "-1s", True, [], "5 minutes"])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match="f:k"):
        parse_duration(value, path="f", key="k")


def test_backoff_is_exponential_and_capped() -> None:
    p = RetryPolicy(max_attempts=10, initial_backoff=1, max_backoff=10, multiplier=2)
    assert [p.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


# ---------------------------------------------------------------------------------- config

def _cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"auth": {"allow_unauthenticated": True},
                            "targets": {"t": {"type": "http", "url": "http://127.0.0.1:1/x"}},
                            "routes": [{"model_name": "fraud-*", "action": "retrain", "target": "t"}]}
    base.update(over)
    return base


@pytest.mark.parametrize(("override", "key", "fix"), [
    ({"listen": "nope"}, "listen", "127.0.0.1:9096"),
    ({"bogus": 1}, "bogus", "allowed keys"),
    ({"auth": {}}, "auth", "bearer_token_file"),
    ({"auth": {"bearer_token": "inline"}}, "auth.bearer_token", "bearer_token_file"),
    ({"auth": {"bearer_token_file": "/nonexistent/tok"}}, "auth.bearer_token_file", "create it"),
    ({"auth": {"bearer_token_env": "DL_SURELY_UNSET_VAR"}}, "auth.bearer_token_env", "export"),
    ({"targets": {"t": {"type": "argo"}}}, "targets.t.type", "argo_workflows"),
    ({"targets": {"t": {"type": "argo_workflows", "server": "http://a"}}}, "targets.t.", "add it"),
    ({"targets": {"t": {"type": "http", "url": "ftp://x"}}}, "targets.t.url", "full URL"),
    ({"targets": {"t": {"type": "http", "url": "http://x", "headers": {"Authorization": "x"}}}},
     "targets.t.headers.Authorization", "auth.bearer_token_file"),
    ({"targets": {"t": {"type": "http", "url": "http://x", "body": "{{ env.HOME }}"}}},
     "targets.t.body", "labels"),
    ({"targets": {"t": {"type": "http", "url": "http://x", "extra": 1}}}, "targets.t.extra",
     "allowed keys"),
    ({"routes": [{"action": "restart", "target": "t"}]}, "routes[0].action", "retrain or rollback"),
    ({"routes": [{"action": "retrain", "target": "nope"}]}, "routes[0].target", "targets"),
    ({"retry": {"max_attempts": 0}}, "retry.max_attempts", None),
    ({"cooldown": "forever"}, "cooldown", "1h"),
])
def test_config_errors_name_key_and_fix(override: dict[str, Any], key: str, fix: str | None) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_dict(_cfg(**override), path="actions.yaml")
    text = str(exc.value)
    assert text.startswith(f"actions.yaml:{key}"), text
    if fix:
        assert fix in text


def test_routes_first_match_wins() -> None:
    cfg = load_config_dict(_cfg(routes=[
        {"model_name": "fraud-eu", "action": "retrain", "target": "t", "cooldown": "5m"},
        {"model_name": "fraud-*", "action": "retrain", "target": "t"},
        {"model_name": "*", "action": "rollback", "target": "t"}]))
    assert cfg.route_for("fraud-eu", "retrain").cooldown == 300  # type: ignore[union-attr]
    assert cfg.route_for("fraud-us", "retrain").cooldown is None  # type: ignore[union-attr]
    assert cfg.route_for("churn", "retrain") is None
    assert cfg.route_for("churn", "rollback") is not None


def _fill_secrets(node: Any, tmp: Path) -> Any:
    """Point every *_file at a temporary file (the example uses in-cluster paths)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k.endswith("_file") and isinstance(v, str):
                p = tmp / Path(v).name
                p.write_text("secret\n")
                out[k] = str(p)
            else:
                out[k] = _fill_secrets(v, tmp)
        return out
    if isinstance(node, list):
        return [_fill_secrets(v, tmp) for v in node]
    return node


def test_example_config_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DRIFTLINE_WEBHOOK_TOKEN", "AIRFLOW_PASSWORD", "GITHUB_TOKEN"):
        monkeypatch.setenv(var, "x")
    raw = _fill_secrets(yaml.safe_load(EXAMPLE.read_text()), tmp_path)
    raw["database"] = str(tmp_path / "a.db")
    cfg = load_config_dict(raw, path=str(EXAMPLE), base=tmp_path)
    # The example shows every preset.
    assert {t.type for t in cfg.targets.values()} >= set(PRESET_PARAMS) - {"airflow3"}
    assert cfg.route_for("fraud-eu", "rollback").target == "kserve-canary"  # type: ignore[union-attr]


def test_cli_check_and_error_message(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_cfg(database=str(tmp_path / "db.sqlite"))))
    ok = subprocess.run([sys.executable, "-m", "driftline", "actions", "check", "--config", str(good)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "1 target(s), 1 route(s)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_cfg(routes=[{"action": "retrain", "target": "missing"}])))
    res = subprocess.run([sys.executable, "-m", "driftline", "actions", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"{bad}:routes[0].target: no target named 'missing'" in res.stderr


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("zq-secret-value\n")
    f = tmp_path / "actions.yaml"
    f.write_text(yaml.safe_dump({"auth": {"bearer_token_file": "tok"}, "database": "q.db"}))
    cfg = load_config(f)
    assert cfg.database == tmp_path / "q.db"
    assert cfg.auth.bearer is not None and cfg.auth.bearer.value() == "zq-secret-value"
    assert "zq-secret-value" not in repr(cfg)
