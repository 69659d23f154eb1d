#!/usr/bin/env bash
# Runs the bridge on bridge.yaml with a local Kafka broker, from a fresh machine:
# builds the bridge, fetches and starts Apache Kafka (KWB_BROKER=tansu: Tansu; nothing when
# KAFKA_BOOTSTRAP names a cluster), creates the example topics, prints how to try it, and runs
# until Ctrl-C. The local broker's data is kept in .local/<broker> between runs.
# Usage: scripts/run.sh [config]   (default: bridge.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
config="${1:-bridge.yaml}"
# What to stop on exit, in order (the bridge first: it runs until this script ends).
stops=()
stop_all() {
  local stop
  for stop in "${stops[@]}"; do
    $stop || true
  done
}
trap stop_all EXIT

echo "==> building kafka-ws-bridge (release)"
cargo build --release --quiet
bridge="${CARGO_TARGET_DIR:-target}/release/kafka-ws-bridge"

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  port=9092
  if port_open "$port"; then
    port="$(free_port)"
    echo "==> port 9092 is taken; starting the local broker on $port instead"
  fi
  stops+=(stop_broker)
  start_broker "$PWD/.local/$KWB_BROKER" "$port"
  echo "==> $(broker_description) at $KAFKA_BOOTSTRAP (data in .local/$KWB_BROKER, kept between runs)"
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP"
fi

# A config with a schema_registry section gets a local Apicurio Registry (Java 21+), its URL in
# SCHEMA_REGISTRY_URL for the config to use (`url: ${SCHEMA_REGISTRY_URL}`), unless one is
# given. It keeps schemas in memory: a restart forgets them (serializers register them again).
if grep -q '^schema_registry:' "$config" && [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
  source scripts/registry/apicurio.sh
  apicurio_ensure
  mkdir -p .local/registry
  apicurio_start "$PWD/.local/registry" "$(free_port)"
  stops+=("apicurio_stop $PWD/.local/registry")
  export SCHEMA_REGISTRY_URL="$REGISTRY_URL"
  echo "==> Apicurio Registry at $SCHEMA_REGISTRY_URL (schemas in memory)"
fi

"$bridge" check --config "$config"
echo "==> creating the topics of $config"
"$bridge" create-topics --config "$config"

ws_port="$(sed -n 's/^  listen: .*:\([0-9][0-9]*\)$/\1/p' "$config" | head -n 1)"
metrics_port="$(sed -n '/^metrics:/,/^[a-z]/s/^  listen: .*:\([0-9][0-9]*\)$/\1/p' "$config" | head -n 1)"
cat <<MSG

==> kafka-ws-bridge is starting
    WebSocket:  ws://localhost:${ws_port:-8080}/ws
    Demo page:  http://localhost:${ws_port:-8080}/   (when server.demo_page is true)
    Metrics:    http://localhost:${metrics_port:-9464}/metrics   Ready: http://localhost:${metrics_port:-9464}/readyz

    Try it from any browser tab's developer console (subscribe, publish, see both):
      const ws = new WebSocket("ws://localhost:${ws_port:-8080}/ws");
      ws.onmessage = (e) => console.log(JSON.parse(e.data));
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel: "transfers" }));
        ws.send(JSON.stringify({ type: "publish", id: "p1", channel: "new-transfers", data: { from: "A-1", to: "A-2", amount: 25 } }));
      };
    You get "subscribed", then the "ack" of your publish, then the "message" it became on the transfers feed.

MSG
# The bridge runs as a child so that this script can stop the broker after it. SIGTERM or SIGINT
# (Ctrl-C) to the script goes to the bridge as SIGTERM: it drains and exits (a second one: at
# once), then the broker stops; a background child would otherwise never see Ctrl-C.
"$bridge" run --config "$config" &
bridge_pid=$!
trap 'kill -TERM "$bridge_pid" 2>/dev/null || true' TERM INT
while kill -0 "$bridge_pid" 2>/dev/null; do
  wait "$bridge_pid" || true # returns early when a signal arrives; the bridge is still draining
done
wait "$bridge_pid" # its exit status is the script's
