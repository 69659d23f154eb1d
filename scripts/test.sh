#!/usr/bin/env bash
# Runs the whole test suite against a real Kafka broker.
#   - KAFKA_BOOTSTRAP set: use that cluster (nothing is started).
#   - otherwise: Apache Kafka (fetched once with Maven; needs Java 17), or Tansu with
#     KWB_BROKER=tansu, started on a free port in a temp dir and stopped after
#     (scripts/lib/broker.sh). Tests that need a broker of their own start more of the same.
#   - KWB_SCHEMA_REGISTRY_URL set: the Schema Registry tests use that registry (its
#     Confluent-compatible API); otherwise Apicurio Registry (fetched once with Maven; needs
#     Java 21+), started on a free port and stopped after (scripts/registry/apicurio.sh).
#   - Keycloak (fetched once with Maven, its first start done once; Java 17+) for
#     tests/keycloak.rs and tests/browser/keycloak.mjs, which start their own
#     (scripts/keycloak/keycloak.sh).
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test outbound).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
source scripts/registry/apicurio.sh
source scripts/keycloak/keycloak.sh

started=$SECONDS
status=0
broker_dir="" registry_dir=""
cleanup() {
  [ -z "$broker_dir" ] || stop_broker
  [ -z "$registry_dir" ] || apicurio_stop "$registry_dir"
  if [ "$status" -eq 0 ]; then
    rm -rf "$broker_dir" "$registry_dir"
  else
    [ -z "$broker_dir" ] || echo "==> the broker's log is kept: $broker_dir/broker.log" >&2
    [ -z "$registry_dir" ] || echo "==> the registry's log is kept: $registry_dir/registry.log" >&2
  fi
}
trap cleanup EXIT
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  # The tests' own brokers (tests/common/mod.rs) follow the same choice, fallback included.
  export KWB_BROKER
  broker_dir="$(mktemp -d -t kwb-broker-XXXXXX)"
  status=1 # keeps the log when the start fails
  start_broker "$broker_dir" "$(free_port)"
  status=0
  echo "==> $(broker_description) at $KAFKA_BOOTSTRAP (data in $broker_dir)"
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP"
fi

# The Schema Registry tests: a registry (tests/common/registry.rs reads KWB_SCHEMA_REGISTRY_URL;
# the tests' own registries are Apicurio too, so it is installed either way) and Confluent's
# serializers in a venv (scripts/registry/pyenv.sh), both cached in $KWB_CACHE.
apicurio_ensure
scripts/registry/pyenv.sh >/dev/null
if [ -z "${KWB_SCHEMA_REGISTRY_URL:-}" ]; then
  registry_dir="$(mktemp -d -t kwb-registry-XXXXXX)"
  status=1 # keeps the log when the start fails
  apicurio_start "$registry_dir" "$(free_port)" >/dev/null
  status=0
  export KWB_SCHEMA_REGISTRY_URL="$REGISTRY_URL"
  echo "==> Apicurio Registry $APICURIO_VERSION at $KWB_SCHEMA_REGISTRY_URL"
else
  echo "==> using the schema registry at $KWB_SCHEMA_REGISTRY_URL"
fi

# promtool (Debian package `prometheus`) is installed by this check when missing; the Rust
# tests use it too.
scripts/check-dashboards.sh
# The real OpenID provider of tests/oidc.rs (zitadel/oidc's example OP), built once with Go into
# $KWB_CACHE (about 15 s the first time, with the module downloads).
scripts/oidc/provider.sh path >/dev/null
# Keycloak for tests/keycloak.rs: fetched (177 MB zip, about 10 s) and given its first start (its
# server image and a seed database, about 40-90 s) once into $KWB_CACHE, here rather than inside
# a test, whose deadlines would then have to allow for it. The test starts its own Keycloak from
# the seed (6-13 s): one per test process with a realm per test, and one over HTTPS with a
# certificate the test makes; KWB_KEYCLOAK_URL names another.
keycloak_ensure
# A hung test must fail the run with a message, not eat CI's whole time budget.
limit="${KWB_TEST_TIMEOUT:-45m}"
# Without arguments: every crate of the workspace (the bridge and the benchmark's load generator).
[ "$#" -eq 0 ] && set -- --workspace
timeout --kill-after=30s "$limit" cargo test --no-fail-fast "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "==> cargo test did not finish within $limit (KWB_TEST_TIMEOUT): a test is hung" >&2
fi
if [ "$1" = --workspace ] && [ "$#" -eq 1 ]; then
  # The consumer group protocol of KIP-848 (group.protocol: consumer) as well as the classic one,
  # for the tests of what the consumer delivers (tests/common/mod.rs reads KWB_GROUP_PROTOCOL).
  # Tansu has no such protocol.
  if [ "$KWB_BROKER" != tansu ]; then
    echo "==> outbound and state tests again with group.protocol: consumer (KIP-848)"
    KWB_GROUP_PROTOCOL=consumer timeout --kill-after=30s "$limit" \
      cargo test --no-fail-fast --test outbound --test state || status=$?
  fi
  # The consumer stage in lanes (kafka.consumer_threads: 4, tests/common/mod.rs reads
  # KWB_CONSUMER_THREADS): delivery, state, and records held for their schema.
  echo "==> outbound, state and registry tests again with the consumer stage in 4 lanes"
  KWB_CONSUMER_THREADS=4 timeout --kill-after=30s "$limit" \
    cargo test --no-fail-fast --test outbound --test state --test registry || status=$?
  # The JS client against the bridge binary cargo just built, then the demo page in headless
  # Chromium (installed with apt-get by setup.sh when missing).
  echo "==> JS client tests (node --test)"
  (cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run typecheck) || status=$?
  echo "==> STOMP with @stomp/stompjs in Node"
  (cd tests/stomp-js && npm ci --no-audit --no-fund --loglevel=error && npm test) || status=$?
  echo "==> browser test (Chromium + playwright-core)"
  (tests/browser/setup.sh && node tests/browser/run.mjs) || status=$?
  echo "==> STOMP in Chromium (@stomp/stompjs)"
  (tests/browser/setup.sh && node tests/browser/stomp.mjs) || status=$?
  echo "==> Server-Sent Events in Chromium (EventSource)"
  (tests/browser/setup.sh && node tests/browser/sse.mjs) || status=$?
  echo "==> permessage-deflate in Chromium (compressed both ways)"
  (tests/browser/setup.sh && node tests/browser/deflate.mjs) || status=$?
  # Keycloak's login page driven by Chromium, keycloak-js handing tokens to the JS client's
  # getToken (its own Keycloak, from the seed keycloak_ensure made; about 30 s).
  echo "==> Keycloak in Chromium (keycloak-js sign-in, the JS client's getToken)"
  (tests/browser/setup.sh && node tests/browser/keycloak.mjs) || status=$?
  # The four reference systems of examples/, each with its backend, in Chromium (about 40 s).
  echo "==> examples in Chromium (examples/test.sh)"
  examples/test.sh || status=$?
  # The benchmark pipeline at tiny sizes (about two minutes; Centrifugo is built once into the cache, ~8 min the first time), so it cannot rot; its figures are
  # not judged here (docs/performance.md).
  echo "==> benchmark smoke (scripts/bench.sh --smoke)"
  scripts/bench.sh --smoke || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "==> test suite FAILED after $((SECONDS - started)) s" >&2
  exit "$status"
fi
echo "==> test suite passed in $((SECONDS - started)) s"
