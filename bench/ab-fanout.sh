#!/usr/bin/env bash
# A/B of two bridge binaries at a fixed broadcast rate, alternating in one run on one broker:
#   bench/ab-fanout.sh OLD_BINARY NEW_BINARY [ROUNDS] [RATE] [SESSIONS]
# Each round starts each binary in turn (old first on odd rounds, new first on even ones) on a
# fresh topic, pinned to core 0 (the load generator and broker on core 1), and runs
# `kwb-load latency` for RATE records/s × SESSIONS sessions (default 100 × 1000 = 100k
# deliveries/s), 5 s warm-up, 20 s measured. Prints p50/p99/p99.9 and CPU µs per delivery of
# every run and the median of each side; raw JSON in target/bench/ab-*/.
# Used for refactors that must not change speed (docs/performance.md, "A/B runs").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh

old="$(realpath "$1")" new="$(realpath "$2")"
rounds="${3:-3}" rate="${4:-100}" sessions="${5:-1000}"
load=target/release/kwb-load
[ -x "$load" ] || cargo build --release -p kwb-load --bin kwb-load
out="target/bench/ab-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
pin_bridge=() pin_load=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_bridge=(taskset -c 0) pin_load=(taskset -c 1)
fi

ensure_broker
broker_dir="$(mktemp -d -t kwb-ab-XXXXXX)"
bridge_pid=""
cleanup() {
  [ -n "$bridge_pid" ] && kill -KILL "$bridge_pid" 2>/dev/null || true
  stop_broker
  rm -rf "$broker_dir"
}
trap cleanup EXIT
start_broker "$broker_dir" "$(free_port)"
[ ${#pin_load[@]} -gt 0 ] && [ -n "${BROKER_PID:-}" ] && taskset -apc 1 "$BROKER_PID" >/dev/null || true
echo "==> load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"

measure() { # measure SIDE BINARY ROUND
  local side="$1" binary="$2" round="$3" topic="ab-$1-$3-$RANDOM$RANDOM" port mport
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 1 "$topic" >/dev/null
  port="$(free_port)" mport="$(free_port)"
  cat >"$out/$side-$round.yaml" <<EOF
instance_id: ab-$side-$round-$RANDOM
kafka:
  bootstrap_servers: $KAFKA_BOOTSTRAP
  auto_offset_reset: latest
  consumer_properties: {fetch.wait.max.ms: 10}
server: {listen: '127.0.0.1:$port', ws_path: /ws, max_connections: 1000000}
metrics: {listen: '127.0.0.1:$mport'}
auth: {mode: none}
channels:
  - {name: fanout, topic: $topic, deliver: broadcast, subscribe: {allow: anonymous}}
EOF
  "${pin_bridge[@]}" "$binary" run --config "$out/$side-$round.yaml" 2>"$out/$side-$round.log" &
  bridge_pid=$!
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$side bridge not ready" >&2; exit 1; }
    sleep 0.2
  done
  "${pin_load[@]}" "$load" latency --url "ws://127.0.0.1:$port/ws" --pid "$bridge_pid" \
    --bootstrap "$KAFKA_BOOTSTRAP" --size 140 --topic "$topic" --channel fanout \
    --sessions "$sessions" --rate "$rate" --warm 5 --measure 20 --out "$out/$side-$round.json" >/dev/null
  kill -TERM "$bridge_pid"
  wait "$bridge_pid" || true
  bridge_pid=""
  jq -r --arg side "$side" --arg round "$round" \
    '"\($side) round \($round): p50 \(.latency.p50_ms) ms, p99 \(.latency.p99_ms) ms, p99.9 \(.latency.p999_ms) ms, CPU \(.bridge_cpu_us_per_delivery) µs/delivery, delivered \(.delivered_ratio), closes \(.closes | length)"' \
    "$out/$side-$round.json" | tee -a "$out/runs.txt"
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then
    measure old "$old" "$r"
    measure new "$new" "$r"
  else
    measure new "$new" "$r"
    measure old "$old" "$r"
  fi
done
echo "==> load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
for side in old new; do
  jq -s -r --arg side "$side" '
    def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    "\($side) median of \(length): p99 \(map(.latency.p99_ms) | median) ms, CPU \(map(.bridge_cpu_us_per_delivery) | median) µs/delivery"' \
    "$out"/$side-*.json | tee -a "$out/runs.txt"
done
echo "==> raw results in $out"
