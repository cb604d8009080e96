"""The ``notify`` section: model-name globs become regexes that match exactly what fnmatch
matches, bad input names its key and the fix, secrets are only ``*_file`` references, and amtool
accepts every generated config and routes each severity and team as configured."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from driftline.alertmanager.alertmanager_config import alertmanager_config
from driftline.alertmanager.notify_config import glob_to_regex, notify_from_mapping
from driftline.alertmanager.rules import to_yaml
from driftline.alertmanager.rules_config import RulesConfig, config_from_mapping
from driftline.errors import ConfigError
from driftline_demo.stack import StackError, find_binary

S = "/etc/alertmanager/secrets"
ALL_CHANNELS = {
    "channels": {
        "pager": {"type": "pagerduty", "routing_key_file": f"{S}/pd"},
        "slack": {"type": "slack", "api_url_file": f"{S}/slack", "channel": "#ml"},
        "mail": {"type": "email", "to": "ml@example.org", "from": "am@example.org",
                 "smarthost": "smtp.example.org:587", "auth_username": "am",
                 "auth_password_file": f"{S}/smtp", "ca_file": f"{S}/ca.crt"},
        "hook": {"type": "webhook", "url": "https://hooks.example.org/x",
                 "bearer_token_file": f"{S}/hook", "max_alerts": 10},
        "teams": {"type": "msteams", "url": "http://prometheus-msteams:2000/ml"},
        "fraud-pager": {"type": "pagerduty", "routing_key_file": f"{S}/fraud-pd"},
    },
    "severities": {"critical": ["pager", "slack"], "warning": ["slack", "teams"],
                   "info": ["mail", "hook"]},
    "owners": [{"team": "fraud", "model_name": "fraud-*", "critical": ["fraud-pager"]},
               {"team": "search", "model_name": "rank[0-9]", "warning": []}],
}

_glob_part = st.sampled_from(["a", "b", "-", ".", "_", "*", "?", "[ab]", "[!a.]", "[a-x]", "x1"])


@given(st.lists(_glob_part, min_size=1, max_size=6).map("".join),
       st.text(alphabet="ab-._x1", max_size=8))
def test_glob_regex_matches_what_fnmatch_matches(glob: str, name: str) -> None:
    assert bool(re.fullmatch(glob_to_regex(glob), name)) == fnmatch.fnmatchcase(name, glob)


def test_glob_regex_needs_no_escapes_in_a_quoted_matcher() -> None:
    assert glob_to_regex("fraud-*.v?") == "fraud-.*[.]v."
    assert "\\" not in glob_to_regex("a.b[!c.]*")
    for bad in ("fraud$", "a(b)", "x[", "x[]", "x\\y", ""):
        with pytest.raises(ConfigError):
            glob_to_regex(bad)


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"channels": {"p": {"type": "pagerduty", "routing_key": "abc"}}},
     "notify.channels.p.routing_key", "routing_key_file"),
    ({"channels": {"s": {"type": "slack", "api_url": "https://hooks.slack.com/x"}}},
     "notify.channels.s.api_url", "api_url_file"),
    ({"channels": {"m": {"type": "email", "to": "a@b", "from": "c@d", "smarthost": "h:25",
                         "auth_password": "pw"}}}, "notify.channels.m.auth_password",
     "auth_password_file"),
    ({"channels": {"s": {"type": "slack", "api_url_file": "secrets/slack"}}},
     "notify.channels.s.api_url_file", "absolute path"),
    ({"channels": {"x": {"type": "sms"}}}, "notify.channels.x.type", "pagerduty"),
    ({"channels": {"m": {"type": "email", "to": "a@b", "from": "c@d", "smarthost": "h"}}},
     "notify.channels.m.smarthost", "host:port"),
    ({"severities": {"critical": ["nowhere"]}}, "notify.severities.critical", "no channel"),
    ({"severities": {"page": []}}, "notify.severities.page", "critical, warning, info"),
    ({"owners": [{"team": "a", "model_name": "x(y)"}]}, "notify.owners[0].model_name",
     "unsupported character"),
    ({"owners": [{"team": "a", "model_name": "x"}, {"team": "a", "model_name": "y"}]},
     "notify.owners[1].team", "twice"),
    ({"timing": {"critical": {"group_wait": "soon"}}}, "notify.timing.critical.group_wait",
     "duration"),
    ({"templates": "x"}, "notify.templates", "unknown key"),
])
def test_bad_notify_config_names_the_key_and_the_fix(change: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"notify": change}, "rules.yaml")
    assert exc.value.key == key
    assert words in str(exc.value)
    assert "rules.yaml" in str(exc.value)


def _amtool() -> str:
    try:
        return find_binary("amtool")
    except StackError as exc:
        pytest.skip(str(exc))


def _write(cfg: RulesConfig, tmp: Path) -> Path:
    path = tmp / "alertmanager.yaml"
    path.write_text(to_yaml(alertmanager_config(cfg)))
    return path


@pytest.mark.integration
@pytest.mark.parametrize("notify", [None, {}, ALL_CHANNELS], ids=["example", "none", "all"])
def test_amtool_accepts_every_generated_config(notify: dict | None, tmp_path: Path) -> None:
    cfg = RulesConfig() if notify is None else config_from_mapping({"notify": notify})
    path = _write(cfg, tmp_path)
    out = subprocess.run([_amtool(), "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    text = path.read_text()
    for secret_key in ("routing_key:", "api_url:", "auth_password:", "credentials:"):
        assert secret_key not in text


@pytest.mark.integration
@pytest.mark.parametrize(("labels", "receivers"), [
    ({"severity": "critical", "model_name": "churn"}, "driftline-critical"),
    ({"severity": "critical", "model_name": "churn", "action": "rollback"},
     "driftline-actions,driftline-critical"),
    ({"severity": "warning", "model_name": "churn"}, "driftline-warning"),
    ({"severity": "info", "model_name": "churn"}, "driftline-info"),
    ({"severity": "critical", "model_name": "fraud-eu"}, "team-fraud-critical"),
    ({"severity": "warning", "model_name": "fraud-eu"}, "driftline-warning"),
    ({"severity": "critical", "model_name": "fraudster"}, "driftline-critical"),
    ({"severity": "warning", "model_name": "rank7"}, "driftline-none"),
    ({"severity": "critical", "model_name": "rank7"}, "driftline-critical"),
    ({"model_name": "churn"}, "driftline-none"),
])
def test_amtool_routes_each_severity_and_team(labels: dict[str, str], receivers: str,
                                             tmp_path: Path) -> None:
    notify = {**ALL_CHANNELS, "owners": [
        {"team": "fraud", "model_name": "fraud-*", "critical": ["fraud-pager"]},
        {"team": "search", "model_name": "rank[0-9]", "warning": []}]}
    path = _write(config_from_mapping({"notify": notify}), tmp_path)
    args = [f"{k}={v}" for k, v in {"alertname": "DriftlineFeatureDrift", **labels}.items()]
    out = subprocess.run([_amtool(), "config", "routes", "test", f"--config.file={path}", *args],
                         capture_output=True, text=True)
    assert out.stdout.strip() == receivers, out.stdout + out.stderr


def test_an_owner_keeps_the_default_channels_of_the_severities_it_does_not_list() -> None:
    n = notify_from_mapping(ALL_CHANNELS)
    fraud = n.owners[0]
    assert [c.name for c in n.channels_for("critical", fraud)] == ["fraud-pager"]
    assert [c.name for c in n.channels_for("warning", fraud)] == ["slack", "teams"]
    doc = alertmanager_config(config_from_mapping({"notify": ALL_CHANNELS}))
    names = [r["name"] for r in doc["receivers"]]
    assert "team-fraud-critical" in names and "team-fraud-warning" not in names
    (mail,) = next(r for r in doc["receivers"] if r["name"] == "driftline-info")["email_configs"]
    assert mail["auth_password_file"] == f"{S}/smtp" and mail["require_tls"] is True
    assert yaml.safe_load(to_yaml(doc)) == doc
