"""SLO burn-rate rules: the burn limits are the workbook's factors times the configured budget,
every window a condition reads is recorded, bad ``slo`` input names its key, and promtool runs the
generated tests for a non-default objective too (silent one step before ``for:``, fires at it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from driftline.alertmanager.generate import write_files
from driftline.alertmanager.rules import rule_groups
from driftline.alertmanager.rules_config import config_from_mapping
from driftline.alertmanager.slo_rules import SLO_WINDOWS, slo_names
from driftline.errors import ConfigError
from driftline_demo.stack import StackError, find_binary


def _rules(slo: dict) -> dict[str, dict]:
    cfg = config_from_mapping({"slo": slo})
    return {r.get("alert") or r["record"]: r for g in rule_groups(cfg) for r in g["rules"]}


def test_burn_limits_are_the_workbook_factors_times_the_budget() -> None:
    rules = _rules({"availability": 0.999, "latency": {"threshold": 0.25, "target": 0.98}})
    fast = rules["DriftlineAvailabilityBudgetBurn"]["expr"]
    # 14.4 × 0.001, 6 × 0.001 — hand-computed. The condition stands twice: once joined with
    # the model's baseline, once for models without driftline_build_info (rules.join_baseline).
    assert re.findall(r"rate(\w+) > ([0-9.e-]+)", fast) == 2 * [
        ("1h", "0.0144"), ("5m", "0.0144"), ("6h", "0.006"), ("30m", "0.006")]
    slow = rules["DriftlineLatencyBudgetBurnSlow"]["expr"]
    assert re.findall(r"rate(\w+) > ([0-9.e-]+)", slow) == 2 * [
        ("24h", "0.06"), ("2h", "0.06"), ("72h", "0.02"), ("6h", "0.02")]
    assert 'le="0.25"' in rules[slo_names("slow", "5m")]["expr"]
    for kind in ("errors", "slow"):
        for w in SLO_WINDOWS:
            assert slo_names(kind, w) in rules
    assert rules["DriftlineAvailabilityBudgetBurn"]["labels"]["severity"] == "critical"
    assert rules["DriftlineLatencyBudgetBurnSlow"]["labels"]["severity"] == "warning"


@pytest.mark.parametrize(("slo", "key"), [
    ({"availability": 1.0}, "slo.availability"),
    ({"availability": 0.9}, "slo.availability"),  # 14.4 × 0.1 > 100 %: could never page
    ({"latency": {"threshold": 0.3}}, "slo.latency.threshold"),
    ({"latency": {"target": 2}}, "slo.latency_target"),
    ({"latency": {"p99": 1}}, "slo.latency"),
    ({"avail": 0.9}, "slo"),
])
def test_bad_slo_names_the_key(slo: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"slo": slo}, "rules.yaml")
    assert exc.value.key == key


@pytest.mark.integration
def test_promtool_passes_the_generated_slo_tests_for_another_objective(tmp_path: Path) -> None:
    try:
        promtool = find_binary("promtool")
    except StackError as exc:
        pytest.skip(str(exc))
    cfg = config_from_mapping({"slo": {"availability": 0.95, "latency": {"threshold": 1.0,
                                                                          "target": 0.9999}}})
    write_files(cfg, tmp_path)
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "rules_test.yaml")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BudgetBurn" in (tmp_path / "rules_test.yaml").read_text()
