#!/usr/bin/env bash
# bench/dialects.sh BINARY LABEL: the bridge's CPU per delivery in each client dialect. For each
# of json (the JSON WebSocket protocol), stomp (STOMP 1.2 over WebSocket) and sse (Server-Sent
# Events): a fresh BINARY process with one broadcast channel on a fresh topic, SESSIONS sessions
# of that dialect (kwb-load latency --protocol kwb|stomp|sse), RATE records/s of ~SIZE-byte JSON,
# WARM s unmeasured, then MEASURE s in which the bridge's CPU (utime+stime of /proc/PID/stat,
# read at the start and the end of the window) is divided by the deliveries the sessions
# received in that window. One JSON line per dialect is printed and written to
# target/bench/dialects-LABEL.json (logs and configs in target/bench/dialects-LABEL/):
#   {dialect, sessions, rate, deliveries, cpu_seconds, cpu_us_per_delivery, delivered_ratio, ...}
# delivered_ratio: records produced in the window that reached every session (1 = none missing);
# delivered_total_metric: the bridge's kafka_ws_bridge_messages_delivered_total at the end of
# the run (probes, warm-up and window together: a cross-check, not the window's count).
#
#   bench/dialects.sh target/release/kafka-ws-bridge before
#   KAFKA_BOOTSTRAP=127.0.0.1:9092 bench/dialects.sh BINARY after   # an existing broker
#   DIALECTS="stomp sse" SESSIONS=200 MEASURE=10 bench/dialects.sh BINARY try
#
# Without KAFKA_BOOTSTRAP a local broker is started (scripts/lib/broker.sh; KWB_BROKER picks
# it) and stopped at the end; with it, BROKER_PID (optional) has the broker's CPU reported.
# With 2 cores or more the bridge runs on core 0 and the load generator (and the broker started
# here) on core 1, as in scripts/bench.sh; KWB_PIN=0 turns that off. kwb-load is $KWB_LOAD,
# else $CARGO_TARGET_DIR/release/kwb-load (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
source scripts/lib/broker.sh

if [ $# -ne 2 ]; then
  sed -n '2,26p' "$0" >&2
  exit 2
fi
bin="$(realpath "$1")" label="$2"
[ -x "$bin" ] || { echo "$1: not an executable" >&2; exit 2; }
SESSIONS="${SESSIONS:-1000}" RATE="${RATE:-100}" SIZE="${SIZE:-200}"
WARM="${WARM:-5}" MEASURE="${MEASURE:-20}"
DIALECTS="${DIALECTS:-json stomp sse}"
for d in $DIALECTS; do
  case "$d" in json | stomp | sse) ;; *) echo "unknown dialect $d (json, stomp, sse)" >&2; exit 2 ;; esac
done

out="$repo/target/bench/dialects-$label.json"
work="$repo/target/bench/dialects-$label"
rm -rf "$work"
mkdir -p "$work"
: >"$out"

load="${KWB_LOAD:-${CARGO_TARGET_DIR:-$repo/target}/release/kwb-load}"
if [ ! -x "$load" ]; then
  echo "==> cargo build --release -p kwb-load" >&2
  cargo build --quiet --release -p kwb-load --bin kwb-load
fi

pin_bridge=() pin_load=()
if [ "${KWB_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_bridge=(taskset -c 0) pin_load=(taskset -c 1)
fi

# One session is one socket in the bridge and one in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bridge_pid="" own_broker=""
stop_bridge() {
  if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
    kill -TERM "$bridge_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$bridge_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  bridge_pid=""
}
cleanup() {
  stop_bridge
  [ -z "$own_broker" ] || stop_broker
}
trap cleanup EXIT
trap 'exit 130' INT TERM

broker_pid_arg=()
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  start_broker "$work/broker" "$(free_port)"
  own_broker=1
  if [ ${#pin_load[@]} -gt 0 ]; then taskset -apc 1 "$BROKER_PID" >/dev/null; fi
  broker_pid_arg=(--broker-pid "$BROKER_PID")
elif [ -n "${BROKER_PID:-}" ]; then
  broker_pid_arg=(--broker-pid "$BROKER_PID") # an external broker's CPU, when its pid is given
fi

suffix="$(date +%s)-$RANDOM"
for d in $DIALECTS; do
  topic="dialects-$label-$d-$suffix"
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 1 "$topic" >/dev/null
  port="$(free_port)" mport="$(free_port)"
  while [ "$mport" = "$port" ]; do mport="$(free_port)"; done
  cat >"$work/$d.yaml" <<EOF
# kafka-ws-bridge configuration of one dialect measurement (bench/dialects.sh).
instance_id: dialects-$label-$d-$suffix
kafka:
  bootstrap_servers: '$KAFKA_BOOTSTRAP'
  auto_offset_reset: latest
  consumer_properties: {fetch.wait.max.ms: 10}
server:
  listen: 127.0.0.1:$port
  ws_path: /ws
  sse_path: /sse
  stomp: {enabled: true, topic_prefix: /topic/}
  # No keepalive work in the window, and no idle closes of sessions that only read.
  ping_interval_ms: 0
  idle_timeout_ms: 0
metrics:
  listen: 127.0.0.1:$mport
auth: {mode: none}
channels:
  - {name: fanout, topic: $topic, deliver: broadcast, subscribe: {allow: anonymous}}
EOF
  "${pin_bridge[@]}" "$bin" --log-level warn run --config "$work/$d.yaml" >"$work/$d.bridge.out" 2>"$work/$d.bridge.log" &
  bridge_pid=$!
  deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$mport/readyz" -o /dev/null; do
    if ! kill -0 "$bridge_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$d: the bridge did not become ready; $work/$d.bridge.log:" >&2
      tail -n 20 "$work/$d.bridge.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  case "$d" in
    json) protocol=kwb url="ws://127.0.0.1:$port/ws" ;;
    stomp) protocol=stomp url="ws://127.0.0.1:$port/ws" ;;
    sse) protocol=sse url="http://127.0.0.1:$port/sse" ;;
  esac
  loadavg="$(cut -d' ' -f1 /proc/loadavg)"
  echo "==> $d: $SESSIONS sessions, $RATE records/s, ${WARM} s warm-up, ${MEASURE} s measured" >&2
  if ! "${pin_load[@]}" "$load" latency --url "$url" --protocol "$protocol" --pid "$bridge_pid" \
    ${broker_pid_arg[@]+"${broker_pid_arg[@]}"} --bootstrap "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --channel fanout --sessions "$SESSIONS" --size "$SIZE" --rate "$RATE" \
    --warm "$WARM" --measure "$MEASURE" --out "$work/$d.load.json" >/dev/null 2>"$work/$d.load.log"; then
    echo "$d: kwb-load failed; $work/$d.load.log:" >&2
    tail -n 20 "$work/$d.load.log" >&2
    exit 1
  fi
  delivered_metric="$(curl -s "http://127.0.0.1:$mport/metrics" |
    awk '/^kafka_ws_bridge_messages_delivered_total\{/ {s += $2} END {print s + 0}')"
  stop_bridge
  jq -c --arg dialect "$d" --arg lbl "$label" --arg binary "$bin" --argjson metric "$delivered_metric" \
    --argjson loadavg "$loadavg" \
    --argjson sessions "$SESSIONS" --argjson rate "$RATE" --argjson measure "$MEASURE" --argjson size "$SIZE" '{
      dialect: $dialect, sessions: $sessions, rate: $rate,
      deliveries: .received_during_measure,
      cpu_seconds: (.bridge_cpu_secs * 1000 | round / 1000),
      cpu_us_per_delivery: .bridge_cpu_us_per_delivery,
      delivered_ratio: .delivered_ratio,
      "label": $lbl, binary: $binary, record_bytes: $size, measure_secs: $measure,
      bridge_cpu_pct: .bridge_cpu_pct, user_secs: .bridge_user_secs, sys_secs: .bridge_sys_secs,
      latency_p50_ms: .latency.p50_ms, latency_p99_ms: .latency.p99_ms,
      generator_cpu_pct: .generator_cpu_pct, broker_cpu_pct: .broker_cpu_pct,
      produced: .produced, new_closes: .new_closes, new_errors: .new_errors,
      delivered_total_metric: $metric, loadavg_1m_before: $loadavg, notes: .notes
    }' "$work/$d.load.json" | tee -a "$out"
done
echo "==> $out" >&2
