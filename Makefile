# Driftline: two commands. `make demo` runs the end-to-end demo; `make test` runs every test.
# Both create the virtualenv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test system-deps lint typecheck bench generate check-generated clean

# make demo installs only what the demo needs: Driftline itself and the driftline-demo package
# (scikit-learn). make test adds the dev tools and every extra the tests exercise.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml setup.py native/changecore.c native/windowcore.c native/rowcore.c demo/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e . -e ./demo
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml setup.py native/changecore.c native/windowcore.c native/rowcore.c demo/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev,dashboards,grpc]' -e ./demo
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/driftline demo

# the system packages first: the C compiler among them builds the compiled cores at install
system-deps:
	bash scripts/install-system-deps.sh

test: system-deps $(STAMP)
	bash scripts/install-mlflow.sh
	bash scripts/install-azurite.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	DRIFTLINE_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Regenerate every artefact derived from the metric catalogue (rules, dashboards, metric docs).
generate: $(STAMP)
	$(BIN)/driftline rules generate --output-dir alertmanager
	$(BIN)/driftline dashboards generate --output-dir dashboards
	$(BIN)/python -m driftline.exporters.reference
	cp alertmanager/prometheusrule.yaml examples/kserve/prometheusrule.yaml
	$(BIN)/driftline dashboards configmap --namespace monitoring > examples/kserve/dashboards-configmap.yaml

# Fails when a committed generated file differs from what the generators make now.
check-generated: generate
	git diff --exit-code -- 'alertmanager/*.yaml' 'alertmanager/*.tmpl' 'dashboards/*.json' docs/metrics.md examples/kserve

clean:
	rm -rf $(VENV) .venv-mlflow build *.egg-info .pytest_cache .mypy_cache .ruff_cache
