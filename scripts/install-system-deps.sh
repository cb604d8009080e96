#!/usr/bin/env bash
# Installs the real Prometheus, promtool, Alertmanager and amtool from Debian's packages when they
# are missing, a C compiler (ChangeDetector's compiled core), headless Chromium for the HTML
# report's screenshot test, Node.js and npm for the
# Azure storage emulator (scripts/install-azurite.sh), and the Java runtime the
# Spark engine's tests run on (PySpark 4 needs Java 17+). Needs root (CI and the dev machines run
# as root); otherwise it says what to run.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)  # Azurite (scripts/install-azurite.sh)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)  # ChangeDetector's compiled core
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  need+=(openjdk-17-jre-headless)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Driftline's integration tests need: ${need[*]} (Debian packages)." >&2
  echo "Install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages start system services on their default ports; the tests use their own ports
# and configs, so stop those services where a service manager runs them.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  (service "$svc" stop >/dev/null 2>&1 || true)
done
