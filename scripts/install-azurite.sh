#!/usr/bin/env bash
# Installs Azurite, Microsoft's Azure Storage emulator (npm package `azurite`), for the tests
# that drive Driftline's abfs:// paths against a real Blob / ADLS Gen2 endpoint on 127.0.0.1.
# Idempotent and quick when the pinned version is already there. Pinned to 3.35.0: later
# releases need Node.js 21+, Debian bookworm ships Node.js 18.
# Where: $DRIFTLINE_AZURITE_PREFIX, else a cache shared by every clone of the repository
# (${XDG_CACHE_HOME:-~/.cache}/driftline/azurite-VERSION); the tests look there too.
# Without npm it says what to install and exits 0 (the Azure tests then skip, saying why).
set -euo pipefail
[ "${DRIFTLINE_SKIP_AZURITE:-}" = 1 ] && exit 0
version="${DRIFTLINE_AZURITE_VERSION:-3.35.0}"
prefix="${DRIFTLINE_AZURITE_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline/azurite-$version}"
exe="$prefix/node_modules/.bin/azurite-blob"
stamp="$prefix/.installed-$version"
[ -f "$stamp" ] && [ -x "$exe" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "Driftline's Azure storage tests need Azurite from npm; install Node.js and npm" >&2
  echo "(sudo apt-get install -y nodejs npm), then run scripts/install-azurite.sh" >&2
  exit 0
fi
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "azurite@$version" >/dev/null
"$exe" --version >/dev/null
touch "$stamp"
