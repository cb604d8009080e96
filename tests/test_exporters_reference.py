"""docs/metrics.md is generated from the catalogue; the public API of driftline.exporters is pinned."""

from __future__ import annotations

from pathlib import Path

import pytest

import driftline.exporters as exporters
from driftline import catalogue as cat
from driftline.exporters.otlp import attribute_name, otel_unit
from driftline.exporters.reference import render_doc

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_docs_metrics_md_is_up_to_date() -> None:
    text = DOC.read_text()
    assert render_doc(text) == text, "run: python -m driftline.exporters.reference"
    for spec in cat.ALL:
        assert f"`{spec.name}`" in text and f"`{spec.otel_name}`" in text


def test_public_api_is_pinned_and_importable() -> None:
    assert exporters.__all__ == [
        "CardinalityGuard", "CardinalityLimits", "DriftlineCollector", "OtlpMetricsExporter",
        "StaticSource", "build_points", "new_registry", "otlp_exporter_from_env", "render",
        "start_metrics_server", "synthetic_fleet",
    ]
    assert set(exporters.__all__) == set(exporters._EXPORTS)
    for name in exporters.__all__:
        assert getattr(exporters, name) is not None
    with pytest.raises(AttributeError):
        _ = exporters.nope


def test_label_to_attribute_mapping_round_trips_to_the_label() -> None:
    labels = {lab for spec in cat.ALL for lab in spec.labels}
    for lab in labels:
        attr = attribute_name(lab)
        assert attr.replace(".", "_") == lab
    assert attribute_name("model_name") == "model.name"


@pytest.mark.parametrize("spec", cat.ALL, ids=lambda s: s.name)
def test_otel_unit_never_makes_the_translation_add_a_suffix(spec: cat.MetricSpec) -> None:
    unit = otel_unit(spec)
    if spec.unit == "s":
        assert unit == "s" and spec.name.removesuffix("_total").endswith("_seconds")
    elif spec.unit == "By":  # the translation appends _bytes, so the OTel name has no unit word
        assert unit == "By" and spec.name.endswith("_bytes")
        assert spec.otel_name.replace(".", "_") + "_bytes" == spec.name
    elif unit == "1":
        assert spec.type == "gauge" and spec.name.endswith("_ratio")
    else:
        assert unit == ""


@pytest.mark.parametrize("module", ["cardinality", "fleet", "prometheus"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"driftline.exporters.{module}")
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0
