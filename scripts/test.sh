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
cargo test --no-fail-fast "$@"
echo "==> test suite passed in $((SECONDS - started)) s"
