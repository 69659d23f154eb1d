#!/usr/bin/env bash
# The examples' end-to-end tests: each example's bridge.yaml, backend and page, driven in
# headless Chromium (examples/test/run.mjs). Called by scripts/test.sh; also runs alone, then
# starting a broker of its own unless KAFKA_BOOTSTRAP names one. Screenshots:
# target/examples-artifacts/ (EXAMPLES_ARTIFACTS). Arguments: example names (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh

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
    "$bin" check --config "$config" 2>&1)" || { echo "$out" >&2; exit 1; }
  if grep -qi warning <<<"$out"; then echo "$out" >&2; exit 1; fi
  echo "==> $out"
done

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  broker_dir="$(mktemp -d -t kwb-examples-broker-XXXXXX)"
  trap 'stop_broker; rm -rf "$broker_dir"' EXIT
  start_broker "$broker_dir" "$(free_port)"
fi
node examples/test/run.mjs "$@"
