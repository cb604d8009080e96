#!/usr/bin/env bash
# A data gate: fail the job when a new batch of data drifted from the model's baseline.
#
#   examples/batch-ci/check_drift.sh BASELINE DATA...     (files, directories or quoted globs)
#
# Writes drift-report.json (for programs) and, when the batch drifted, drift-report.html (for
# people: per-window heat map, estimated vs realised accuracy); exits 1 when any window drifted,
# 0 otherwise, 2 on a usage or input error. WINDOW_SIZE (default 5000), PSI_THRESHOLD (0.1) and REPORT_DIR (.) tune it.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BASELINE DATA..." >&2
  exit 2
fi
baseline=$1
shift
out=${REPORT_DIR:-.}
mkdir -p "$out"
common=(--baseline "$baseline" --window-size "${WINDOW_SIZE:-5000}" --psi-threshold "${PSI_THRESHOLD:-0.1}")

status=0
driftline analyze "${common[@]}" --format json --output "$out/drift-report.json" --fail-on-drift "$@" \
  || status=$?
if [ "$status" -eq 1 ]; then
  driftline analyze "${common[@]}" --format html --output "$out/drift-report.html" "$@"
  echo "data gate: drift detected; see $out/drift-report.html" >&2
elif [ "$status" -eq 0 ]; then
  echo "data gate: no drift" >&2
fi
exit "$status"
