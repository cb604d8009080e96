#!/usr/bin/env bash
# Installs a real MLflow tracking server (with its model registry) into its OWN virtualenv, for
# the test that drives Driftline's mlflow_alias_rollback preset against it. Kept apart from the
# project's .venv because the full mlflow package pins older versions of libraries Driftline uses
# (pyarrow among them). Idempotent: does nothing when the pinned version is already there.
# Where: $DRIFTLINE_MLFLOW_VENV, else .venv-mlflow under the repository root.
set -euo pipefail
[ "${DRIFTLINE_SKIP_MLFLOW:-}" = 1 ] && exit 0
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DRIFTLINE_MLFLOW_VENV:-$root/.venv-mlflow}"
version="${DRIFTLINE_MLFLOW_VERSION:-3.17.2}"
python="${PYTHON:-python3}"
stamp="$venv/.installed-$version"
[ -f "$stamp" ] && [ -x "$venv/bin/mlflow" ] && exit 0
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "mlflow==$version"
"$venv/bin/mlflow" --version >/dev/null
rm -f "$venv"/.installed-*
touch "$stamp"
