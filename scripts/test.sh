#!/usr/bin/env bash
# Runs the whole test suite against a real Kafka broker.
#   - KAFKA_BOOTSTRAP set: use that cluster (e.g. Apache Kafka in Docker).
#   - otherwise: install Tansu if missing, start it on a free port in a temp dir, stop it after.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test outbound).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh

started=$SECONDS
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_tansu
  broker_dir="$(mktemp -d -t kwb-broker-XXXXXX)"
  trap 'stop_broker; rm -rf "$broker_dir"' EXIT
  start_broker "$broker_dir" "$(free_port)"
  echo "==> Tansu broker at $KAFKA_BOOTSTRAP (data in $broker_dir)"
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP"
fi

# promtool (Debian package `prometheus`) is installed by this check when missing; the Rust
# tests use it too.
scripts/check-dashboards.sh
status=0
# A hung test must fail the run with a message, not eat CI's whole time budget.
limit="${KWB_TEST_TIMEOUT:-45m}"
# Without arguments: every crate of the workspace (the bridge and the benchmark's load generator).
[ "$#" -eq 0 ] && set -- --workspace
timeout --kill-after=30s "$limit" cargo test --no-fail-fast "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "==> cargo test did not finish within $limit (KWB_TEST_TIMEOUT): a test is hung" >&2
fi
if [ "$1" = --workspace ] && [ "$#" -eq 1 ]; then
  # The JS client against the bridge binary cargo just built, then the demo page in headless
  # Chromium (installed with apt-get by setup.sh when missing).
  echo "==> JS client tests (node --test)"
  (cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run typecheck) || status=$?
  echo "==> browser test (Chromium + playwright-core)"
  (tests/browser/setup.sh && node tests/browser/run.mjs) || status=$?
  # The benchmark pipeline at tiny sizes (about a minute), so it cannot rot; its figures are
  # not judged here (docs/performance.md).
  echo "==> benchmark smoke (scripts/bench.sh --smoke)"
  scripts/bench.sh --smoke || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "==> test suite FAILED after $((SECONDS - started)) s" >&2
  exit "$status"
fi
echo "==> test suite passed in $((SECONDS - started)) s"
