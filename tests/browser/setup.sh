#!/usr/bin/env bash
# Prepares the browser test: installs Debian's Chromium (apt-get, as root or through sudo) when
# /usr/bin/chromium is missing, and this directory's npm dependencies (npm ci) when they are.
# Idempotent and quick when everything is there. Called by the main test script.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "tests/browser/setup.sh: /usr/bin/chromium is missing and neither root nor sudo is available;" >&2
    echo "install it with: apt-get install chromium" >&2
    exit 1
  fi
  echo "==> installing chromium with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends chromium >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y --no-install-recommends chromium >&2
  fi
fi

if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/ws ] || [ ! -d node_modules/@stomp/stompjs ] \
   || [ ! -d node_modules/keycloak-js ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci in tests/browser" >&2
  npm ci --no-audit --no-fund >&2
fi
