"""Render every generated alerting file from one RulesConfig (``driftline rules generate``).

>>> sorted(render_files(RulesConfig()))
['alertmanager.yaml', 'driftline-rules.yaml', 'driftline.tmpl', 'prometheusrule.yaml', 'rules_test.yaml']
"""

from __future__ import annotations

from pathlib import Path

from driftline.alertmanager.alertmanager_config import TEMPLATE_FILE, alertmanager_config, template_text
from driftline.alertmanager.rules import prometheus_rule, rule_groups, to_yaml
from driftline.alertmanager.rules_config import RulesConfig
from driftline.alertmanager.rules_tests import rules_test_file

__all__ = ["RULES_FILE", "render_files", "write_files"]

RULES_FILE = "driftline-rules.yaml"
#: Where the committed copies live (this package's folder, ``alertmanager/``).
PACKAGE_DIR = Path(__file__).resolve().parent


def render_files(cfg: RulesConfig) -> dict[str, str]:
    """File name → text of the rule file, the PrometheusRule, the promtool tests and the
    Alertmanager config with its notification template."""
    return {
        RULES_FILE: to_yaml({"groups": rule_groups(cfg)}),
        "prometheusrule.yaml": to_yaml(prometheus_rule(cfg)),
        "rules_test.yaml": to_yaml(rules_test_file(cfg, RULES_FILE)),
        "alertmanager.yaml": to_yaml(alertmanager_config(cfg)),
        TEMPLATE_FILE: template_text(),
    }


def write_files(cfg: RulesConfig, out: Path) -> list[Path]:
    """Write :func:`render_files` into ``out`` (created if needed); return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_files(cfg).items():
        p = out / name
        p.write_text(text)
        paths.append(p)
    return paths
