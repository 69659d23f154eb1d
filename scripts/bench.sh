#!/usr/bin/env bash
# Benchmark: kafka-ws-bridge next to the two baseline bridges (bench/baselines: Node kafkajs+ws,
# Python aiokafka+websockets), same broker, same configuration, same load, one table.
#
#   scripts/bench.sh                 # the full run (~15-20 min on 2 cores), release builds
#   scripts/bench.sh --smoke         # tiny sizes, debug builds, kafka-ws-bridge only + the floor;
#                                    # fails only when something breaks (scripts/test.sh runs it)
#   scripts/bench.sh --only bridge   # full sizes, a subset of bridges (bridge, node, python)
#   KAFKA_BOOTSTRAP=host:9092 scripts/bench.sh   # against an existing cluster
#
# What it does (docs/performance.md explains each scenario and every setting):
#   - installs what is missing: the local broker (scripts/lib/broker.sh: Apache Kafka, or Tansu
#     with KWB_BROKER=tansu), `npm ci` for the Node baseline, a venv for the Python one (as
#     bench/baselines/smoke.sh does);
#   - builds kafka-ws-bridge and kwb-load (release; debug with --smoke);
#   - without KAFKA_BOOTSTRAP: one local Apache Kafka broker pinned to core 1, fresh topics for
#     every measurement (with KWB_BROKER=tansu: a FRESH Tansu broker for every measurement, as
#     Tansu's fetch cost grows with what earlier runs left behind, see docs/performance.md);
#     with it: fresh topics on that cluster for every measurement;
#   - the floor (plain librdkafka consumer) and the plain-producer reference, then for each
#     bridge the scenarios a-f, each on a freshly started bridge process pinned to core 0, the
#     load generator pinned to core 1;
#   - prints the table and writes it to bench/results/latest.md (--smoke: only printed); the
#     raw JSON of every measurement stays in target/bench/<timestamp>/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/lib/broker.sh

mode=full
bridges=(bridge node python)
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke; bridges=(bridge) ;;
    --only) shift; IFS=, read -r -a bridges <<<"${1:?--only needs bridge,node,python}" ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for b in "${bridges[@]}"; do
  case "$b" in bridge | node | python) ;; *) echo "unknown bridge: $b" >&2; exit 2 ;; esac
done

started=$SECONDS
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$repo/target/bench/$stamp-$mode"
work="$(mktemp -d -t kwb-bench-XXXXXX)"
mkdir -p "$results"
external_kafka="${KAFKA_BOOTSTRAP:-}"
bridge_pid=""
failed=0
say() { echo "==> $*" >&2; }

cleanup() {
  stop_bridge
  stop_broker
  if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "work files kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'failed=1; exit 130' INT TERM

# ---- sizes -------------------------------------------------------------------------------------

if [ "$mode" = smoke ]; then
  FLOOR_RATE=20 FLOOR_WARM=1 FLOOR_MEASURE=3
  FAN_SESSIONS=50 FAN_START=10 FAN_MAX=20 FAN_WARM=1 FAN_MEASURE=2
  LAT_SESSIONS=50 LAT_RATE=20 LAT_WARM=1 LAT_MEASURE=3
  KEY_SESSIONS=50 KEY_START=50 KEY_MAX=100 KEY_WARM=1 KEY_MEASURE=2
  IN_CLIENTS=10 IN_WINDOW=4 IN_WARM=1 IN_MEASURE=3
  IDLE_SESSIONS=200 IDLE_HOLD=2 IDLE_SETTLE=1
else
  FLOOR_RATE=100 FLOOR_WARM=5 FLOOR_MEASURE=20
  FAN_SESSIONS=1000 FAN_START=10 FAN_MAX=20000 FAN_WARM=1 FAN_MEASURE=4
  LAT_SESSIONS=1000 LAT_RATE=100 LAT_WARM=5 LAT_MEASURE=20
  KEY_SESSIONS=10000 KEY_START=250 KEY_MAX=640000 KEY_WARM=1 KEY_MEASURE=4
  IN_CLIENTS=100 IN_WINDOW=16 IN_WARM=3 IN_MEASURE=15
  IDLE_SESSIONS="${IDLE_SESSIONS:-60000}" IDLE_HOLD=20 IDLE_SETTLE=5
fi
PARTITIONS="${BENCH_PARTITIONS:-1}"
FETCH_WAIT_MS=10
RECORD_BYTES=140

# ---- pinning -----------------------------------------------------------------------------------

ncpu="$(nproc)"
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
  pin_bridge=(taskset -c 0)
  pin_load=(taskset -c 1)
  pinning="bridge on core 0; broker and load generator on core 1"
else
  pin_bridge=()
  pin_load=()
  pinning="none (fewer than 2 cores or no taskset)"
fi

# ---- dependencies and builds -------------------------------------------------------------------

venv="$repo/bench/baselines/python/.venv"
py="$venv/bin/python"
ensure_python_deps() {
  if [ ! -x "$py" ]; then
    local interpreter="${PYTHON:-}"
    [ -n "$interpreter" ] || interpreter="$(command -v python3.11 || command -v python3)"
    say "creating $venv with $interpreter"
    "$interpreter" -m venv "$venv"
  fi
  if ! cmp -s bench/baselines/python/requirements.txt "$venv/.installed-requirements.txt"; then
    say "pip install -r bench/baselines/python/requirements.txt"
    "$py" -m pip install --quiet --disable-pip-version-check -r bench/baselines/python/requirements.txt
    cp bench/baselines/python/requirements.txt "$venv/.installed-requirements.txt"
  fi
}
ensure_node_deps() {
  command -v node >/dev/null || { echo "node is not installed" >&2; return 1; }
  if ! (cd bench/baselines/node && npm ls --silent >/dev/null 2>&1); then
    say "npm ci (bench/baselines/node)"
    (cd bench/baselines/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
# jq and curl (Debian packages) are installed when missing, as root or through sudo.
missing=()
for tool in jq curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
for b in "${bridges[@]}"; do
  case "$b" in node) ensure_node_deps ;; python) ensure_python_deps ;; esac
done
[ -n "$external_kafka" ] || ensure_broker

if [ "$mode" = smoke ]; then
  say "cargo build -p kafka-ws-bridge -p kwb-load (debug)"
  cargo build --quiet -p kafka-ws-bridge -p kwb-load
  bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
else
  say "cargo build --release -p kafka-ws-bridge -p kwb-load"
  cargo build --quiet --release -p kafka-ws-bridge -p kwb-load
  bin="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
load="$bin/kwb-load"

# The fd limit: one session is one socket in the bridge and one in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
nofile="$(ulimit -n)"
if [ "$mode" = full ] && [ "$IDLE_SESSIONS" -gt $((nofile - 1000)) ]; then
  say "open-file limit is $nofile (hard limit; raising it is not permitted here): idle sessions capped at $((nofile - 1000))"
  IDLE_SESSIONS=$((nofile - 1000))
fi

# ---- broker per measurement --------------------------------------------------------------------

broker_pid_arg=()
fresh_broker() { # fresh_broker: a new empty Tansu; the running Kafka broker; the external cluster
  if [ -n "$external_kafka" ]; then
    export KAFKA_BOOTSTRAP="$external_kafka"
    return 0
  fi
  if [ "$KWB_BROKER" = kafka ] && [ -n "${BROKER_PID:-}" ] && pid_alive "$BROKER_PID"; then
    return 0 # fresh topics are enough on Kafka
  fi
  stop_broker
  BROKER_PID=""
  broker_pid_arg=()
  rm -rf "$work/broker"
  start_broker "$work/broker" "$(free_port)"
  if [ ${#pin_load[@]} -gt 0 ]; then taskset -apc 1 "$BROKER_PID" >/dev/null; fi
  broker_pid_arg=(--broker-pid "$BROKER_PID")
}

suffix="$(date +%s)-$RANDOM"
topics() { # topics NAME: fresh topic names for one measurement, created
  t_fan="bench-fan-$1-$suffix"
  t_keyed="bench-keyed-$1-$suffix"
  t_cmd="bench-cmd-$1-$suffix"
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions "$PARTITIONS" \
    "$t_fan" "$t_keyed" "$t_cmd" >/dev/null
}

# ---- bridges -----------------------------------------------------------------------------------

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

# await_bridge SECONDS MESSAGE LOG COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails
# with MESSAGE and the tail of LOG when the bridge process exits or SECONDS pass.
await_bridge() {
  local deadline=$((SECONDS + $1)) message="$2" log="$3"
  shift 3
  until "$@" 2>/dev/null; do
    if ! kill -0 "$bridge_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$message; log $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# start_bridge KIND SCENARIO CHANNEL: starts KIND (bridge|node|python) with the channel the
# scenario needs (fanout | keyed) and the inbound channel; sets bridge_pid and url. Its config
# and log land in $results/KIND/SCENARIO.{yaml,json,log}.
start_bridge() {
  local kind="$1" scenario="$2" channel="$3" out="$work/$1-$2.out" err="$results/$1/$2.log"
  local name="$kind-$scenario" group="bench-$kind-$scenario-$suffix"
  case "$kind" in
    bridge)
      local port mport
      port="$(free_port)"
      mport="$(free_port)"
      local chan
      if [ "$channel" = keyed ]; then
        chan="  - {name: keyed, topic: $t_keyed, key: {from: record_key}, deliver: by_key, subscribe: {allow: anonymous, keys: any}}"
      else
        chan="  - {name: fanout, topic: $t_fan, deliver: broadcast, subscribe: {allow: anonymous}}"
      fi
      cat >"$work/$name.yaml" <<EOF
# kafka-ws-bridge configuration for one benchmark measurement (scripts/bench.sh).
instance_id: $name-$suffix
kafka:
  bootstrap_servers: $KAFKA_BOOTSTRAP
  group_id_prefix: bench-$kind
  auto_offset_reset: latest
  # The same fetch wait for every consumer (on Tansu, which answers a fetch only when it
  # expires, it is the latency floor).
  consumer_properties: {fetch.wait.max.ms: $FETCH_WAIT_MS}
server:
  listen: 127.0.0.1:$port
  ws_path: /ws
  max_connections: 1000000
  # Scenario e publishes as fast as acks come: no rate limit.
  publish_rate: {per_second: 0}
  max_inflight_publishes: 256
metrics:
  listen: 127.0.0.1:$mport
auth: {mode: none}
channels:
$chan
inbound:
  - {channel: commands, topic: $t_cmd, key: none, allow: anonymous}
EOF
      cp "$work/$name.yaml" "$results/$kind/$scenario.yaml"
      "${pin_bridge[@]}" "$bin/kafka-ws-bridge" --log-level warn run --config "$work/$name.yaml" >"$out" 2>"$err" &
      bridge_pid=$!
      url="ws://127.0.0.1:$port/ws"
      await_bridge 60 "kafka-ws-bridge did not become ready" "$err" \
        curl -sf "http://127.0.0.1:$mport/readyz" -o /dev/null || return 1
      ;;
    node | python)
      local chan
      if [ "$channel" = keyed ]; then
        chan="{\"name\": \"keyed\", \"topic\": \"$t_keyed\", \"deliver\": \"by_key\"}"
      else
        chan="{\"name\": \"fanout\", \"topic\": \"$t_fan\", \"deliver\": \"broadcast\"}"
      fi
      cat >"$work/$name.json" <<EOF
{"bootstrap": "$KAFKA_BOOTSTRAP", "listen": "127.0.0.1:0", "group_id": "$group",
 "fetch_max_wait_ms": $FETCH_WAIT_MS,
 "channels": [$chan],
 "inbound": [{"channel": "commands", "topic": "$t_cmd"}]}
EOF
      cp "$work/$name.json" "$results/$kind/$scenario.config.json"
      if [ "$kind" = node ]; then
        "${pin_bridge[@]}" node bench/baselines/node/bridge.mjs --config "$work/$name.json" >"$out" 2>"$err" &
      else
        "${pin_bridge[@]}" "$py" bench/baselines/python/bridge.py --config "$work/$name.json" >"$out" 2>"$err" &
      fi
      bridge_pid=$!
      await_bridge 90 "$kind baseline did not print READY" "$err" grep -q '^READY ws://' "$out" || return 1
      url="$(grep -m1 -o '^READY ws://[^ ]*' "$out")"
      url="${url#READY }ws"
      ;;
  esac
}

# ---- one measurement ---------------------------------------------------------------------------

# measure KIND SCENARIO: fresh broker, fresh topics, fresh bridge, one kwb-load run; the JSON
# lands in $results/KIND/SCENARIO.json ({"error": ...} when it failed).
measure() {
  local kind="$1" scenario="$2" file="$results/$1/$2.json" channel=fanout status=0
  mkdir -p "$results/$kind"
  [ "$scenario" = keyed ] && channel=keyed
  say "$kind: $scenario"
  fresh_broker
  topics "$kind-$scenario"
  if ! start_bridge "$kind" "$scenario" "$channel"; then
    echo '{"error": "the bridge did not start"}' >"$file"
    stop_bridge
    return 1
  fi
  local common=(--url "$url" --pid "$bridge_pid" "${broker_pid_arg[@]}")
  local outbound=("${common[@]}" --bootstrap "$KAFKA_BOOTSTRAP" --size "$RECORD_BYTES")
  local args
  case "$scenario" in
    fanout) args=(fanout "${outbound[@]}" --topic "$t_fan" --channel fanout --sessions "$FAN_SESSIONS"
      --start-rate "$FAN_START" --max-rate "$FAN_MAX" --p99-ms 50 --warm "$FAN_WARM" --measure "$FAN_MEASURE") ;;
    latency) args=(latency "${outbound[@]}" --topic "$t_fan" --channel fanout --sessions "$LAT_SESSIONS"
      --rate "$LAT_RATE" --warm "$LAT_WARM" --measure "$LAT_MEASURE") ;;
    keyed) args=(keyed "${outbound[@]}" --topic "$t_keyed" --channel keyed --sessions "$KEY_SESSIONS"
      --start-rate "$KEY_START" --max-rate "$KEY_MAX" --p99-ms "$KEY_P99" --warm "$KEY_WARM" --measure "$KEY_MEASURE") ;;
    inbound) args=(inbound "${common[@]}" --channel commands --clients "$IN_CLIENTS" --window "$IN_WINDOW"
      --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES") ;;
    idle)
      local n_addr=$(((IDLE_SESSIONS + 19999) / 20000)) bind="" i
      for ((i = 2; i < 2 + n_addr; i++)); do bind="$bind${bind:+,}127.0.0.$i"; done
      args=(idle "${common[@]}" --channel fanout --sessions "$IDLE_SESSIONS" --bind "$bind"
        --hold "$IDLE_HOLD" --settle "$IDLE_SETTLE") ;;
  esac
  "${pin_load[@]}" "$load" "${args[@]}" --out "$file" >/dev/null 2>"$results/$kind/$scenario.stderr" || status=$?
  sed 's/^/    /' "$results/$kind/$scenario.stderr" >&2
  if [ "$status" -ne 0 ]; then
    local msg
    msg="$(grep -m1 '^kwb-load:' "$results/$kind/$scenario.stderr" | cut -c11- || true)"
    jq -n --arg e "${msg:-kwb-load exited with status $status}" '{error: $e}' >"$file"
  fi
  if ! kill -0 "$bridge_pid" 2>/dev/null; then
    echo "    $kind exited during $scenario; log: $results/$kind/$scenario.log" >&2
    status=1
  fi
  stop_bridge
  return "$status"
}

# ---- machine, versions -------------------------------------------------------------------------

# What each measurement gets new (one Kafka broker serves the whole run; Tansu is restarted).
fresh="topics and bridge process"
[ -z "$external_kafka" ] && [ "$KWB_BROKER" = tansu ] && fresh="broker, topics and bridge process"
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem_gib="$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
rdkafka_version="$(grep -A1 '^name = "rdkafka-sys"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
versions="$(jq -n \
  --arg bridge "$("$bin/kafka-ws-bridge" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo ?), $mode build)" \
  --arg rustc "$(rustc --version | awk '{print $2}')" \
  --arg librdkafka "${rdkafka_version#*+} (rdkafka-sys ${rdkafka_version%%+*})" \
  --arg node "$(node --version 2>/dev/null || echo -)" \
  --arg kafkajs "$(jq -r .dependencies.kafkajs bench/baselines/node/package.json)" \
  --arg ws "$(jq -r .dependencies.ws bench/baselines/node/package.json)" \
  --arg python "$("$py" --version 2>/dev/null | awk '{print $2}' || echo -)" \
  --arg aiokafka "$(sed -n 's/^aiokafka==//p' bench/baselines/python/requirements.txt)" \
  --arg websockets "$(sed -n 's/^websockets==//p' bench/baselines/python/requirements.txt)" \
  --arg broker "$([ -n "$external_kafka" ] && echo "external cluster $external_kafka" || broker_description)" \
  '{"kafka-ws-bridge": $bridge, rustc: $rustc, librdkafka: $librdkafka, node: $node, kafkajs: $kafkajs,
    ws: $ws, python: $python, aiokafka: $aiokafka, websockets: $websockets, broker: $broker}')"

# ---- the run -----------------------------------------------------------------------------------

say "results in $results"
fresh_broker
topics floor
say "floor: plain librdkafka consumer, $FLOOR_RATE records/s, fetch.wait.max.ms $FETCH_WAIT_MS"
"${pin_bridge[@]}" "$load" floor --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_fan" --rate "$FLOOR_RATE" \
  --warm "$FLOOR_WARM" --measure "$FLOOR_MEASURE" --fetch-wait-ms "$FETCH_WAIT_MS" --size "$RECORD_BYTES" \
  --out "$results/floor.json" >/dev/null || { failed=1; echo '{"error": "floor failed"}' >"$results/floor.json"; }
floor_p99="$(jq -r '.p99_ms // 0' "$results/floor.json")"
KEY_P99="$(jq -n --argjson f "$floor_p99" '(($f + 20) * 10 | round) / 10')"
say "floor p99 $floor_p99 ms; keyed steps pass at p99 <= $KEY_P99 ms (floor + 20)"

fresh_broker
topics plain
say "plain producer: FutureProducer, acks=all, idempotent, linger.ms=1, $((IN_CLIENTS * IN_WINDOW)) in flight"
"${pin_bridge[@]}" "$load" plain-produce --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_cmd" \
  --inflight $((IN_CLIENTS * IN_WINDOW)) --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES" \
  --out "$results/plain.json" >/dev/null || { failed=1; echo '{"error": "plain producer failed"}' >"$results/plain.json"; }

for kind in "${bridges[@]}"; do
  for scenario in fanout latency keyed inbound idle; do
    measure "$kind" "$scenario" || failed=1
  done
done
stop_broker

jq -cn --arg mode "$mode" --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg pinning "$pinning" \
  --arg cpu "$cpu_model" --argjson nproc "$ncpu" --argjson mem "$mem_gib" --arg kernel "$(uname -r)" \
  --argjson nofile "$nofile" --argjson versions "$versions" \
  --arg settings "topics with $PARTITIONS partition(s), fresh $fresh per measurement; fetch wait $FETCH_WAIT_MS ms for every consumer; records of $RECORD_BYTES bytes {\"ts\": µs, \"seq\", \"pad\"}; kafka-ws-bridge: publish_rate off, max_inflight_publishes 256, max_connections 1000000, everything else default (send_queue_bytes 1 MiB, send_queue_messages 8192, on_slow_client disconnect, ping 20 s)" \
  '{mode: $mode, date: $date, pinning: $pinning, settings: $settings, versions: $versions,
    machine: {nproc: $nproc, cpu_model: $cpu, mem_gib: $mem, kernel: $kernel, nofile_hard: $nofile}}' \
  >"$results/meta.json"

table="$("$load" report --dir "$results")"
echo
echo "$table"
echo
if [ "$mode" = full ]; then
  mkdir -p bench/results
  echo "$table" >bench/results/latest.md
  say "table written to bench/results/latest.md; raw results in $results"
else
  say "raw results in $results"
fi

# ---- smoke checks: the pipeline works (performance numbers are not judged) ----------------------

if [ "$mode" = smoke ]; then
  check() { # check FILE JQ-EXPR DESCRIPTION
    if ! jq -e "$2" "$1" >/dev/null 2>&1; then
      echo "SMOKE FAIL: $3 ($1: $(head -c 300 "$1" 2>/dev/null))" >&2
      failed=1
    fi
  }
  r="$results/bridge"
  check "$results/floor.json" '.count > 0' "the floor consumer received records"
  check "$results/plain.json" '.acks_per_sec > 0 and .failed == 0' "the plain producer got acks"
  check "$r/fanout.json" '.best_deliveries_per_sec > 0 and (.closes | length) == 0' "fan-out delivered, no session closed"
  check "$r/latency.json" '.delivered_ratio >= 0.99 and .bridge_cpu_us_per_delivery > 0' "latency run delivered everything and measured CPU"
  check "$r/keyed.json" '.best_deliveries_per_sec > 0 and (.errors | length) == 0' "keyed sessions received their keys"
  check "$r/inbound.json" '.acks_per_sec > 0 and (.errors | length) == 0 and .unanswered == 0' "publishes were acked"
  check "$r/idle.json" ".sessions == $IDLE_SESSIONS and .rss_per_session_kib != null" "every idle session connected"
fi

if [ "$failed" -ne 0 ]; then
  say "benchmark ${mode}: something FAILED after $((SECONDS - started)) s (see above; work files kept)"
  exit 1
fi
say "benchmark $mode done in $((SECONDS - started)) s"
