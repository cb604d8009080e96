"""The estimated-performance alert watches the metrics rules.yaml names."""

from __future__ import annotations

import pytest

from driftline.alertmanager.rules import performance_drop_expr
from driftline.alertmanager.rules_config import config_from_mapping
from driftline.errors import ConfigError


def test_named_metrics_pick_the_comparison() -> None:
    only_rmse = performance_drop_expr(config_from_mapping({"performance_metrics": "rmse"}))
    assert 'metric=~"rmse"' in only_rmse and "\n> (" in only_rmse and "\nor\n" not in only_rmse
    both = performance_drop_expr(config_from_mapping(
        {"performance_metrics": ["roc_auc", "recall", "mape"],
         "thresholds": {"estimated_performance_margin": 0.1, "estimated_error_increase": 0.5}}))
    assert 'metric=~"roc_auc|recall"' in both and "- 0.1)" in both
    assert 'metric=~"mape"' in both and "* 1.5)" in both


def test_unknown_metric_names_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"performance_metrics.*'auc'.*roc_auc"):
        config_from_mapping({"performance_metrics": ["auc"]})
    with pytest.raises(ConfigError, match="estimated_error_increase"):
        config_from_mapping({"thresholds": {"estimated_error_increase": 0}})
