# Driftline: two commands. `make demo` runs the end-to-end demo; `make test` runs every test.
# Both create the virtualenv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench generate check-generated clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/driftline demo

test: $(STAMP)
	bash scripts/install-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Regenerate every artefact derived from the metric catalogue (rules, dashboards, metric docs).
generate: $(STAMP)
	$(BIN)/driftline rules generate --out alertmanager
	$(BIN)/driftline dashboards generate --out dashboards
	$(BIN)/python -m driftline.exporters.reference
	cp alertmanager/prometheusrule.yaml examples/kserve/prometheusrule.yaml
	$(BIN)/driftline dashboards configmap --namespace monitoring > examples/kserve/dashboards-configmap.yaml

# Fails when a committed generated file differs from what the generators make now.
check-generated: generate
	git diff --exit-code -- 'alertmanager/*.yaml' 'dashboards/*.json' docs/metrics.md examples/kserve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
