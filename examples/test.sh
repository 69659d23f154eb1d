#!/usr/bin/env bash
# The examples' end-to-end tests: each example's bridge.yaml, backend and page, driven in
# headless Chromium (examples/test/run.mjs). Called by scripts/test.sh; also runs alone, then
# starting a broker of its own unless KAFKA_BOOTSTRAP names one, and, when an example to run
# names a schema_registry in its bridge.yaml (dashboard), an Apicurio Registry of its own unless
# SCHEMA_REGISTRY_URL (or scripts/test.sh's KWB_SCHEMA_REGISTRY_URL) names one. Screenshots: target/examples-artifacts/ (EXAMPLES_ARTIFACTS).
# Arguments: example names (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
source scripts/registry/apicurio.sh

# Chromium from Debian (and the browser test's own packages), as the browser test installs it.
tests/browser/setup.sh
if ! (cd examples && npm ls --silent >/dev/null 2>&1); then
  echo "==> npm ci in examples/" >&2
  (cd examples && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ -z "${BRIDGE_BIN:-}" ]; then
  cargo build --quiet --bin kafka-ws-bridge
fi

# Every example's bridge.yaml passes `check` without warnings (the browser tests then run them).
bin="${BRIDGE_BIN:-${CARGO_TARGET_DIR:-target}/debug/kafka-ws-bridge}"
for config in examples/*/bridge.yaml; do
  secret=check-only-secret-0123456789abcdef0123
  out="$(BANK_JWT_SECRET=$secret NOTIFY_JWT_SECRET=$secret NOTIFY_API_KEY=$secret CHAT_JWT_SECRET=$secret \
    SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/check-only}" \
    "$bin" check --config "$config" 2>&1)" || { echo "$out" >&2; exit 1; }
  if grep -qi warning <<<"$out"; then echo "$out" >&2; exit 1; fi
  echo "==> $out"
done

broker_dir="" registry_dir=""
cleanup() {
  local status=$?
  if [ -n "$registry_dir" ]; then
    apicurio_stop "$registry_dir"
    if [ "$status" -eq 0 ]; then rm -rf "$registry_dir"; else echo "==> the registry's log: $registry_dir/registry.log" >&2; fi
  fi
  if [ -n "$broker_dir" ]; then stop_broker; rm -rf "$broker_dir"; fi
}
trap cleanup EXIT
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  broker_dir="$(mktemp -d -t kwb-examples-broker-XXXXXX)"
  start_broker "$broker_dir" "$(free_port)"
fi
# A registry (Apicurio, on a free port) when an example to run names one in its bridge.yaml,
# unless SCHEMA_REGISTRY_URL names one already, or KWB_SCHEMA_REGISTRY_URL (scripts/test.sh's
# registry: the examples' subjects carry their random topic prefixes).
[ -n "${SCHEMA_REGISTRY_URL:-}" ] || [ -z "${KWB_SCHEMA_REGISTRY_URL:-}" ] || export SCHEMA_REGISTRY_URL="$KWB_SCHEMA_REGISTRY_URL"
chosen=("$@")
[ ${#chosen[@]} -gt 0 ] || chosen=(bank dashboard notifications chat)
needs_registry=""
for name in "${chosen[@]}"; do
  if grep -q '^schema_registry:' "examples/$name/bridge.yaml" 2>/dev/null; then needs_registry=1; fi
done
if [ -n "$needs_registry" ] && [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
  apicurio_ensure
  registry_dir="$(mktemp -d -t kwb-examples-registry-XXXXXX)"
  apicurio_start "$registry_dir" "$(free_port)" >/dev/null
  export SCHEMA_REGISTRY_URL="$REGISTRY_URL"
fi
node examples/test/run.mjs "$@"
