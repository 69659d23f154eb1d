#!/usr/bin/env bash
# Runs one example with a local broker: builds the bridge, starts Apache Kafka (or uses
# KAFKA_BOOTSTRAP), creates the example's topics, starts its bridge(s), its backend and a static
# server for its page, then prints the links to open (with tokens for the examples that sign in)
# and runs until Ctrl-C. The broker's data is kept in .local/examples-<broker> between runs.
# An example whose bridge.yaml names a schema_registry (dashboard) also gets an Apicurio
# Registry on a free port (or uses SCHEMA_REGISTRY_URL); its backend then starts first, so that
# its schemas are registered before the bridge reads the topics.
# Usage: examples/run.sh bank|dashboard|notifications|chat
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
source scripts/registry/apicurio.sh

name="${1:-}"
case "$name" in
  bank | dashboard | notifications | chat) ;;
  *) echo "usage: examples/run.sh bank|dashboard|notifications|chat" >&2; exit 2 ;;
esac
dir="examples/$name"

echo "==> building kafka-ws-bridge"
cargo build --quiet --bin kafka-ws-bridge
bridge="${CARGO_TARGET_DIR:-target}/debug/kafka-ws-bridge"
if ! (cd examples && npm ls --silent >/dev/null 2>&1); then
  echo "==> npm ci in examples/ (kafkajs, jose, playwright-core)"
  (cd examples && npm ci --no-audit --no-fund --loglevel=error)
fi

pids=()
registry_dir=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -z "$registry_dir" ] || apicurio_stop "$registry_dir"
  stop_broker
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  port=9092
  port_open "$port" && port="$(free_port)"
  start_broker "$PWD/.local/examples-$KWB_BROKER" "$port"
  echo "==> $(broker_description) at $KAFKA_BOOTSTRAP (data in .local/examples-$KWB_BROKER)"
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP"
fi
export KAFKA_BOOTSTRAP KAFKAJS_NO_PARTITIONER_WARNING=1

registry=""
if grep -q '^schema_registry:' "$dir/bridge.yaml"; then
  registry=1
  if [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
    apicurio_ensure
    # In memory: each run starts empty, and the backend registers its schemas again, in the same
    # order, so they get the ids the records kept in .local/examples-<broker> carry.
    registry_dir="$PWD/.local/examples-registry"
    apicurio_stop "$registry_dir" # one a killed run left behind
    rm -rf "$registry_dir"
    apicurio_start "$registry_dir" "$(free_port)" >/dev/null
    apicurio_watch_owner "$$" "$registry_dir"
    export SCHEMA_REGISTRY_URL="$REGISTRY_URL"
  else
    echo "==> using the Schema Registry at $SCHEMA_REGISTRY_URL"
  fi
fi

page_port="$(free_port)"
export PAGE_ORIGIN="http://127.0.0.1:$page_port"
secret="$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64url"))')"
export BANK_JWT_SECRET="$secret" CHAT_JWT_SECRET="$secret" NOTIFY_JWT_SECRET="$secret"
export NOTIFY_API_KEY="$(node -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
token() { node examples/lib/tokens.mjs "$secret" "$@"; }

logs="$PWD/.local/examples-logs"
mkdir -p "$logs"
ready_urls=()
# start_bridge INSTANCE PORT: one bridge on the example's bridge.yaml, its log in $logs.
start_bridge() {
  local metrics
  metrics="$(free_port)"
  INSTANCE_ID="$1" LISTEN="127.0.0.1:$2" METRICS_LISTEN="127.0.0.1:$metrics" \
    "$bridge" run --config "$dir/bridge.yaml" >"$logs/$1.log" 2>&1 &
  pids+=($!)
  ready_urls+=("http://127.0.0.1:$metrics/readyz")
}
# The bridges' /readyz, within 60 s (node's fetch: no curl needed).
wait_ready() {
  node -e '
    const urls = process.argv.slice(1), deadline = Date.now() + 60000;
    (async () => {
      for (const url of urls) {
        for (;;) {
          try { if ((await fetch(url)).ok) break; } catch {}
          if (Date.now() > deadline) { console.error(`${url} not ready after 60 s`); process.exit(1); }
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    })();' "${ready_urls[@]}"
}
# The example's backend (Kafka only), its log in $logs.
start_backend() {
  case "$name" in
    bank) node "$dir/backend.mjs" >"$logs/$name-backend.log" 2>&1 & ;;
    dashboard) RATE="${RATE:-2}" node "$dir/generator.mjs" >"$logs/$name-backend.log" 2>&1 & ;;
    notifications) node "$dir/worker.mjs" >"$logs/$name-backend.log" 2>&1 & ;;
    chat) node "$dir/backend.mjs" >"$logs/$name-backend.log" 2>&1 & ;;
  esac
  pids+=($!)
}
# The backend's `ready` line (after it registered its schemas), within 60 s.
wait_backend() {
  local pid="${pids[-1]}" deadline=$((SECONDS + 60))
  until grep -qx ready "$logs/$name-backend.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "==> the backend did not become ready; its log ($logs/$name-backend.log):" >&2
      tail -n 20 "$logs/$name-backend.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}
"$bridge" check --config "$dir/bridge.yaml"
"$bridge" create-topics --config "$dir/bridge.yaml"

if [ -n "$registry" ]; then
  start_backend
  wait_backend
fi
ws_port="$(free_port)"
start_bridge "$name-1" "$ws_port"
if [ "$name" = notifications ]; then
  ws_port2="$(free_port)"
  start_bridge "$name-2" "$ws_port2"
fi
wait_ready || { echo "==> the bridge did not become ready; its log: $logs/$name-1.log" >&2; exit 1; }
[ -n "$registry" ] || start_backend
node examples/lib/serve.mjs "$name" "$page_port" >/dev/null &
pids+=($!)

page="http://127.0.0.1:$page_port/?bridge=ws://127.0.0.1:$ws_port/ws"
echo
echo "==> examples/$name is starting (README: $dir/README.md). Open:"
case "$name" in
  bank)
    echo "    customer C-1:   $page#token=$(token C-1)"
    echo "    customer C-2:   $page#token=$(token C-2)"
    echo "    staff S-1 (for C-1, C-3): $page#token=$(token S-1 staff C-1,C-3)"
    echo "    Open C-1 twice (two browsers or a private window) to see the first one signed out." ;;
  dashboard)
    echo "    $page"
    echo "    (two generated transfers a second; RATE=N examples/run.sh dashboard for more)"
    echo "    The generator's Avro schemas: $SCHEMA_REGISTRY_URL/subjects" ;;
  notifications)
    page2="http://127.0.0.1:$page_port/?bridge=ws://127.0.0.1:$ws_port2/ws"
    echo "    alice on relay 1: $page#token=$(token alice)"
    echo "    alice on relay 2: $page2#token=$(token alice)"
    echo "    bob on relay 2:   $page2#token=$(token bob)"
    echo "    Push from a backend that speaks HTTP only, through either relay:"
    echo "      node examples/notifications/push.mjs http://127.0.0.1:$ws_port $NOTIFY_API_KEY user bob Your report is ready"
    echo "      node examples/notifications/push.mjs http://127.0.0.1:$ws_port2 $NOTIFY_API_KEY all Maintenance at 22:00" ;;
  chat)
    echo "    alice: $page#token=$(token alice)"
    echo "    bob:   $page#token=$(token bob)"
    echo "    carol: $page#token=$(token carol)"
    echo "    Close bob's tab, write to him, open his link again: what he missed, once each." ;;
esac
echo "    Logs: $logs/$name-*.log. Ctrl-C stops everything (the broker's data stays in .local/)."
echo
# Until Ctrl-C, or until one of the processes ends (its error is above).
wait -n "${pids[@]}"
echo "==> a process of the example stopped; stopping the others" >&2
exit 1
