#!/usr/bin/env bash
# bench/lanes.sh: does the consumer stage scale per partition? For P = 1, 2, 4 partitions, the
# bridge (release, unpinned) with kafka.consumer_threads = P routes keyed records — RATE records/s
# (default 40,000; at 4,000 each hand-over carries a record or two and the wake-ups dominate)
# spread by key over the P partitions to 10,000 sessions each on its own key —
# and the CPU of its routing threads is read from /proc over the measured window: the polling
# thread (kafka-consumer) and the lanes (kafka-lane-N). With P = 1 there are no lanes (the
# polling thread routes). Prints, per P: records in the window and CPU per record of the polling
# thread, of the lanes together (each lane routes its own partitions' records, so this is also
# a lane's CPU per record it routes), and of both. A flat "lanes" column from 2 to 4 partitions
# means lanes add no contention; "both" at P > 1 against "polling" at P = 1 is the hand-off's cost.
#
#   KAFKA_BOOTSTRAP=127.0.0.1:9092 bench/lanes.sh
#   PERF=1 …: also a perf profile of the routing threads per P (pN.perf.txt in the results)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
: "${KAFKA_BOOTSTRAP:?start a broker first (scripts/lib/broker.sh start_broker) or set KAFKA_BOOTSTRAP}"
rate="${RATE:-40000}" warm="${WARM:-5}" measure="${MEASURE:-20}" sessions="${SESSIONS:-10000}"
target="${CARGO_TARGET_DIR:-target}/release"
cargo build --quiet --release -p kafka-ws-bridge -p kwb-load
out="${CARGO_TARGET_DIR:-target}/bench/lanes-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
hz="$(getconf CLK_TCK)"
# cpu_of PID NAME-PATTERN: user+system ticks of the process's threads whose name matches.
cpu_of() {
  local total=0 task
  for task in /proc/"$1"/task/*; do
    if grep -qE "$2" "$task/comm" 2>/dev/null; then
      total=$((total + $(awk '{print $14 + $15}' "$task/stat")))
    fi
  done
  echo "$total"
}
printf '%-10s %8s %16s %16s %16s\n' partitions records "polling µs/rec" "lanes µs/rec" "both µs/rec" | tee "$out/table.txt"
for partitions in 1 2 4; do
  topic="lanes-$partitions-$RANDOM$RANDOM"
  "$target/kwb-load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions "$partitions" "$topic" >/dev/null
  port="$(free_port)" mport="$(free_port)"
  cat >"$out/p$partitions.yaml" <<EOC
instance_id: lanes-$partitions-$RANDOM
kafka: {bootstrap_servers: '$KAFKA_BOOTSTRAP', auto_offset_reset: latest, consumer_threads: $partitions, consumer_properties: {fetch.wait.max.ms: 10}}
server: {listen: '127.0.0.1:$port', ws_path: /ws, max_connections: 1000000}
metrics: {listen: '127.0.0.1:$mport'}
auth: {mode: none}
channels:
  - {name: keyed, topic: $topic, key: {from: record_key}, deliver: by_key, subscribe: {allow: anonymous, keys: any}}
EOC
  "$target/kafka-ws-bridge" --log-level warn run --config "$out/p$partitions.yaml" 2>"$out/p$partitions.log" &
  pid=$!
  deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "bridge not ready" >&2; kill $pid; exit 1; }
    sleep 0.2
  done
  "$target/kwb-load" curve --scenario keyed --url "ws://127.0.0.1:$port/ws" --pid "$pid" \
    --bootstrap "$KAFKA_BOOTSTRAP" --topic "$topic" --channel keyed --sessions "$sessions" \
    --bind-from "127.9.$partitions.2" --capacity "$rate" --fractions 1.0 --warm "$warm" \
    --measure "$measure" --out "$out/p$partitions.json" >/dev/null 2>"$out/p$partitions.load.log" &
  load=$!
  consumed() { curl -s "http://127.0.0.1:$mport/metrics" | awk '/^kafka_ws_bridge_records_consumed_total/ {s += $2} END {print s + 0}'; }
  # The window: from the warm-up's end (records flow once every session is connected) to 2 s
  # before the step's end.
  until [ "$(consumed)" -gt 0 ] || ! kill -0 $load 2>/dev/null; do sleep 0.2; done
  sleep "$warm"
  poll0="$(cpu_of $pid '^kafka-consumer$')" lanes0="$(cpu_of $pid '^kafka-lane-')"
  records0="$(consumed)"
  if [ -n "${PERF:-}" ] && command -v perf >/dev/null; then
    # PERF=1: a profile of the routing threads over the window (cpu-clock, call graphs).
    perf record -q -e cpu-clock -F 999 -g -p "$pid" -o "$out/p$partitions.perf.data" -- sleep "$((measure - 2))" 2>/dev/null
    perf report -i "$out/p$partitions.perf.data" --no-children --comms kafka-consumer,kafka-lane-0,kafka-lane-1,kafka-lane-2,kafka-lane-3 \
      --sort dso,sym --percent-limit 0.7 --stdio -g none 2>/dev/null >"$out/p$partitions.perf.txt" || true
  else
    sleep "$((measure - 2))"
  fi
  poll1="$(cpu_of $pid '^kafka-consumer$')" lanes1="$(cpu_of $pid '^kafka-lane-')"
  records1="$(consumed)"
  wait $load || true
  kill -TERM $pid; wait $pid || true
  records=$((records1 - records0))
  python3 - "$partitions" "$records" "$((poll1 - poll0))" "$((lanes1 - lanes0))" "$hz" <<'PY' | tee -a "$out/table.txt"
import sys
p, records, poll, lanes, hz = map(int, sys.argv[1:])
us = lambda ticks: ticks / hz * 1e6 / max(records, 1)
print(f"{p:<10} {records:>8} {us(poll):>16.2f} {us(lanes):>16.2f} {us(poll + lanes):>16.2f}")
PY
done
echo "results in $out" >&2
